/**
 * tombstones.txt: UTF-8 BOM, `Version 1.0`, then one `\path` line per deleted file,
 * relative to Files with backslashes (FORMATS.md §3.2). Written LF, read LF or CRLF.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError } from '../errors.js';
import { caseFoldKey, layerNameBelowFiles } from '../util/safe-path.js';
import { NameHashSet } from './name-hash-set.js';

export const TOMBSTONES_FILE = 'tombstones.txt';
const HEADER = '\ufeffVersion 1.0';

/** Writes tombstones.txt into `layerRoot`. */
export function writeTombstones(layerRoot: string, lines: readonly string[], durable: boolean): void {
  const fd = fs.openSync(path.join(layerRoot, TOMBSTONES_FILE), 'wx');
  try {
    fs.writeSync(fd, [HEADER, ...lines].join('\n') + '\n');
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const BUFFER_BYTES = 64 * 1024;

/**
 * Writes tombstones.txt as deletions come: the header at once, then each line through a
 * 64 KiB buffer. (Kept in memory and joined at the end, 100,000 deletions cost ~100 MB of
 * heap at close: the lines, the joined text, two bytes a character once the BOM made it
 * two-byte, and its UTF-8 copy.)
 */
export class TombstoneWriter {
  readonly #fd: number;
  readonly #file: string;
  readonly #buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  #used = 0;
  #closed = false;

  /** Creates tombstones.txt in `layerRoot` (it must not exist). */
  constructor(layerRoot: string) {
    this.#file = path.join(layerRoot, TOMBSTONES_FILE);
    this.#fd = fs.openSync(this.#file, 'wx');
    this.#append(HEADER);
  }

  /** Appends one `\path` line. */
  add(line: string): void {
    this.#append(line);
  }

  /** Every line so far (the file read back: for the rare exact check, see the writer). */
  lines(): string[] {
    this.#flush();
    return parseTombstones(fs.readFileSync(this.#file, 'utf8'), this.#file);
  }

  /** Writes what is buffered and closes the file; with `durable`, flushed to disk first. */
  finish(durable: boolean): void {
    try {
      this.#flush();
      if (durable) fs.fsyncSync(this.#fd);
    } finally {
      this.close();
    }
  }

  /** Closes the file without writing what is buffered (abort). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }

  #append(line: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8, then the newline.
    const most = 3 * line.length + 1;
    if (this.#used + most > BUFFER_BYTES) {
      this.#flush();
      if (most > BUFFER_BYTES) {
        writeAll(this.#fd, Buffer.from(line + '\n', 'utf8'));
        return;
      }
    }
    this.#used += this.#buffer.write(line, this.#used);
    this.#buffer[this.#used++] = 0x0a;
  }

  #flush(): void {
    if (this.#used === 0) return;
    writeAll(this.#fd, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/** Parses tombstones.txt content into `\path` lines. */
export function parseTombstones(text: string, file = TOMBSTONES_FILE): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines[0] !== HEADER) throw createError('ERR_TOMBSTONES_INVALID', `${file}: does not start with a BOM and 'Version 1.0'`, { path: file });
  const out: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') continue;
    if (!line.startsWith('\\')) throw createError('ERR_TOMBSTONES_INVALID', `${file}:${i + 1}: a tombstone must start with '\\'`, { path: file, line: i + 1 });
    out.push(line);
  }
  return out;
}

/** Reads a layer's tombstones.txt (none → empty). */
export function readTombstones(layerRoot: string): string[] {
  const file = path.join(layerRoot, TOMBSTONES_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw cause;
  }
  return parseTombstones(text, file);
}

const READ_BYTES = 256 * 1024;

/**
 * The names a layer's tombstones.txt deletes, case-folded, for lookups: hashed (off the
 * heap) while the file is read in chunks; a hash hit is confirmed against the exact names,
 * read from the file only the first time one is needed. A parent's 100,000 deletions held
 * as a Set of strings took a small child import from ~70 to 140 MiB.
 */
export class DeletedNames {
  readonly #file: string;
  readonly #hashes = new NameHashSet();
  #exact: Set<string> | undefined;

  private constructor(file: string) {
    this.#file = file;
  }

  /** Reads the tombstones of `layerRoot` (none: an empty set). */
  static ofLayer(layerRoot: string): DeletedNames {
    const set = new DeletedNames(path.join(layerRoot, TOMBSTONES_FILE));
    let fd: number;
    try {
      fd = fs.openSync(set.#file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return set;
      throw cause;
    }
    try {
      const buffer = Buffer.allocUnsafe(READ_BYTES);
      // Lines are ASCII separators in UTF-8: split on the byte, decode each line whole.
      let carry: Buffer = Buffer.alloc(0);
      let n = 0;
      const take = (line: Buffer): void => {
        n++;
        const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
        const text = line.toString('utf8', 0, end);
        if (n === 1) {
          if (text !== HEADER) throw createError('ERR_TOMBSTONES_INVALID', `${set.#file}: does not start with a BOM and 'Version 1.0'`, { path: set.#file });
          return;
        }
        if (text === '') return;
        if (!text.startsWith('\\')) throw createError('ERR_TOMBSTONES_INVALID', `${set.#file}:${n}: a tombstone must start with '\\'`, { path: set.#file, line: n });
        set.#hashes.add(caseFoldKey(layerNameBelowFiles(text)));
      };
      for (;;) {
        const got = fs.readSync(fd, buffer, 0, buffer.length, null);
        if (got === 0) break;
        const data = carry.length === 0 ? buffer.subarray(0, got) : Buffer.concat([carry, buffer.subarray(0, got)]);
        let start = 0;
        for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
          take(data.subarray(start, nl));
          start = nl + 1;
        }
        carry = Buffer.from(data.subarray(start)); // a copy: the read buffer is reused
      }
      if (carry.length > 0 || n === 0) take(carry);
    } finally {
      fs.closeSync(fd);
    }
    return set;
  }

  /** Whether `key` (a case-folded layer name) is deleted. */
  has(key: string): boolean {
    if (!this.#hashes.has(key)) return false;
    this.#exact ??= new Set(readTombstones(path.dirname(this.#file)).map((line) => caseFoldKey(layerNameBelowFiles(line))));
    return this.#exact.has(key);
  }
}
