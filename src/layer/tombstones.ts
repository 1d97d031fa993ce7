/**
 * tombstones.txt: UTF-8 BOM, `Version 1.0`, then one `\path` line per deleted file,
 * relative to Files with backslashes (FORMATS.md §3.2). Written LF, read LF or CRLF.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError } from '../errors.js';
import { isMissingLayerFile, openLayerFile, readLayerText } from './metadata-index.js';
import { LineWriter, readLinesSync } from '../util/lines.js';
import { caseFoldKey, layerNameBelowFiles } from '../util/safe-path.js';
import { NameHashSet } from './name-hash-set.js';

export const TOMBSTONES_FILE = 'tombstones.txt';
const HEADER = '\ufeffVersion 1.0';

/** Writes tombstones.txt into `layerRoot` with `lines`. */
export function writeTombstones(layerRoot: string, lines: readonly string[], durable: boolean): void {
  const w = new TombstoneWriter(layerRoot);
  try {
    for (const line of lines) w.add(line);
  } catch (error) {
    w.close();
    throw error;
  }
  w.finish(durable);
}

/**
 * Writes tombstones.txt as deletions come: the header at once, then each line through a
 * 64 KiB buffer. (Kept in memory and joined at the end, 100,000 deletions cost ~100 MB of
 * heap at close: the lines, the joined text, two bytes a character once the BOM made it
 * two-byte, and its UTF-8 copy.)
 */
export class TombstoneWriter {
  readonly #fd: number;
  readonly #lines: LineWriter;
  #closed = false;
  /** The names written so far, for lookups (buffered lines are flushed before it reads the file). */
  readonly deleted: DeletedNames;

  /** Creates tombstones.txt in `layerRoot` (it must not exist). */
  constructor(layerRoot: string) {
    const file = path.join(layerRoot, TOMBSTONES_FILE);
    this.#fd = fs.openSync(file, 'wx');
    this.#lines = new LineWriter(this.#fd);
    this.#lines.add(HEADER);
    this.deleted = new DeletedNames(file, () => this.#lines.flush());
  }

  /** Appends one `\path` line. */
  add(line: string): void {
    this.#lines.add(line);
    this.deleted.add(line);
  }

  /** Writes what is buffered and closes the file; with `durable`, flushed to disk first. */
  finish(durable: boolean): void {
    try {
      this.#lines.flush();
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
}

/** Parses tombstones.txt content into `\path` lines. */
export function parseTombstones(text: string, file = TOMBSTONES_FILE): string[] {
  return [...tombstoneLines(text.split('\n'), file)];
}

/**
 * The `\path` lines of tombstones.txt given as its lines: the first must be the BOM and
 * `Version 1.0`, every other non-empty one a path starting with `\` (a trailing CR is
 * dropped); anything else is ERR_TOMBSTONES_INVALID naming the line.
 */
function* tombstoneLines(lines: Iterable<string>, file: string): Generator<string> {
  let n = 0;
  for (const raw of lines) {
    n++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (n === 1) {
      if (line !== HEADER) throw headerMissing(file);
    } else if (line !== '') {
      if (!line.startsWith('\\')) throw notAPath(file, n);
      yield line;
    }
  }
  if (n === 0) throw headerMissing(file);
}

/** Reads a layer's tombstones.txt (none → empty). */
export function readTombstones(layerRoot: string): string[] {
  const file = path.join(layerRoot, TOMBSTONES_FILE);
  let text: string;
  try {
    text = readLayerText(file, layerRoot, { path: layerRoot });
  } catch (cause) {
    if (isMissingLayerFile(cause)) return [];
    throw cause;
  }
  return parseTombstones(text, file);
}

/**
 * The names a layer's tombstones.txt deletes, case-folded, for lookups: hashed (off the
 * heap) as lines are read or written; a hash hit is confirmed against the exact names,
 * read from the file only the first time one is needed. A parent's 100,000 deletions held
 * as a Set of strings took a small child import from ~70 to 140 MiB.
 */
export class DeletedNames {
  readonly #file: string;
  readonly #beforeRead: () => void;
  readonly #hashes = new NameHashSet();
  #exact: Set<string> | undefined;

  /** For `file`; `beforeRead` runs before the file is read for exact names (a writer flushes there). */
  constructor(file: string, beforeRead: () => void = () => undefined) {
    this.#file = file;
    this.#beforeRead = beforeRead;
  }

  /** Adds the deletion of the `\path` line `line`. */
  add(line: string): void {
    const key = caseFoldKey(layerNameBelowFiles(line));
    this.#hashes.add(key);
    this.#exact?.add(key);
  }

  /** Reads the tombstones of `layerRoot` (none: an empty set). */
  static ofLayer(layerRoot: string): DeletedNames {
    const set = new DeletedNames(path.join(layerRoot, TOMBSTONES_FILE));
    let fd: number;
    try {
      fd = openLayerFile(set.#file, layerRoot, { path: layerRoot });
    } catch (cause) {
      if (isMissingLayerFile(cause)) return set;
      throw cause;
    }
    try {
      for (const line of tombstoneLines(readLinesSync(fd), set.#file)) set.add(line);
    } finally {
      fs.closeSync(fd);
    }
    return set;
  }

  /** Whether `key` (a case-folded layer name) is deleted. */
  has(key: string): boolean {
    if (!this.#hashes.has(key)) return false;
    if (this.#exact === undefined) this.#beforeRead();
    this.#exact ??= new Set(readTombstones(path.dirname(this.#file)).map((line) => caseFoldKey(layerNameBelowFiles(line))));
    return this.#exact.has(key);
  }
}

function headerMissing(file: string): Error {
  return createError('ERR_TOMBSTONES_INVALID', `${file}: does not start with a BOM and 'Version 1.0'`, { path: file });
}

function notAPath(file: string, line: number): Error {
  return createError('ERR_TOMBSTONES_INVALID', `${file}:${line}: a tombstone must start with '\\'`, { path: file, line });
}
