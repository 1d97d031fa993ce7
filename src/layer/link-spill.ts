/**
 * The hard links of an import, kept on disk until the layer's end, when they are made.
 *
 * A Windows base layer holds tens of thousands of hard links (WinSxS and System32 share
 * their files). Kept as objects, each cost ~800 bytes of heap (its name, target, host
 * path, times and the record that answers "was this name seen?"): 50,000 links took an
 * import from ~80 to 118 MiB. Here each link is one record appended to a file in the
 * staging directory, and memory holds only a hash table from the link's case-folded name
 * to its record's offset (8 bytes a slot, at most three quarters full). A hit is confirmed by
 * reading the record and comparing names, so a hash collision is never taken for a match.
 *
 * Records are `u32 length ‖ JSON` (times as decimal strings: any FILETIME, losslessly), in
 * tar order, so a record's offset also tells which of two links came first.
 */
import * as fs from 'node:fs';
import { createError } from '../errors.js';
import { readAt } from '../util/lines.js';
import { filetimeString } from './metadata-index.js';
import { NameHashMap } from './name-hash-set.js';

/** One hard link as recorded. */
export interface SpilledLink {
  /** The record's offset in the file: links compare in tar order by it. */
  readonly offset: number;
  /** The link's layer path, as spelled in the tar. */
  readonly name: string;
  /** The target's layer path, as spelled in the tar. */
  readonly target: string;
  /** The link's path relative to the layer root, as spelled on disk. */
  readonly host: string;
  /** Written in the transport format (under Files/). */
  readonly transport: boolean;
  readonly attributes: number;
  /** Creation, last access, last write and change FILETIMEs. */
  readonly times: readonly [bigint, bigint, bigint, bigint];
  /** Its target was not in the layer yet when the link came: it is a parent's file (see TransportLayerWriter.addLink). */
  readonly parentsOnly?: boolean;
}

interface RecordJson {
  n: string;
  t: string;
  h: string;
  x: number;
  a: number;
  c: [string, string, string, string];
  p?: 1;
}

const BUFFER_BYTES = 64 * 1024;
/** The last offset a record may start at: the name table keeps offsets in 32 bits (~20 million links of ~200 bytes). */
const MAX_OFFSET = 0xffffffff;
const READ_BYTES = 256 * 1024;

export class LinkSpill {
  readonly #fd: number;
  /** Bytes appended, buffered ones included (the next record's offset). */
  #length = 0;
  /** Records not yet written, from file offset #length - #pending. */
  readonly #buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  #pending = 0;
  /** Case-folded name → record offset. */
  readonly #offsets = new NameHashMap();
  #closed = false;
  readonly file: string;

  /** Creates `file` (it must not exist). */
  constructor(file: string) {
    this.file = file;
    this.#fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  }

  /** Links recorded. */
  get size(): number {
    return this.#offsets.size;
  }

  /** Records a link under `key` (its case-folded name); returns its offset. */
  append(link: Omit<SpilledLink, 'offset'>, key: string): number {
    const json: RecordJson = {
      n: link.name,
      t: link.target,
      h: link.host,
      x: link.transport ? 1 : 0,
      a: link.attributes,
      c: [filetimeString(link.times[0]), filetimeString(link.times[1]), filetimeString(link.times[2]), filetimeString(link.times[3])],
      ...(link.parentsOnly === true ? { p: 1 as const } : {}),
    };
    const text = JSON.stringify(json);
    const offset = this.#length;
    if (offset > MAX_OFFSET) {
      throw createError('ERR_METADATA_TOO_LARGE', `${link.name}: more hard links than an import holds (their records pass 4 GiB)`, { entry: link.name });
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a record that surely fits is encoded
    // straight into the buffer, without a Buffer of its own.
    if (this.#pending + 4 + 3 * text.length > BUFFER_BYTES) this.#flush();
    let size: number;
    if (4 + 3 * text.length <= BUFFER_BYTES) {
      size = this.#buffer.write(text, this.#pending + 4, 'utf8');
      this.#buffer.writeUInt32LE(size, this.#pending);
      this.#pending += 4 + size;
    } else {
      const body = Buffer.from(text, 'utf8');
      size = body.length;
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32LE(size, 0);
      this.#writeAt(head, offset);
      this.#writeAt(body, offset + 4);
    }
    this.#length += 4 + size;
    this.#offsets.add(key, offset);
    return offset;
  }

  /** The link recorded under `key`, or undefined. `fold` gives a name's key (to confirm a hash hit). */
  /** False when no link of the case-folded name `key` was recorded; true when one may have been (a hash hit). */
  mayHave(key: string): boolean {
    return this.#offsets.valueAt(key, 0) !== undefined;
  }

  find(key: string, fold: (name: string) => string): SpilledLink | undefined {
    for (let nth = 0; ; nth++) {
      const offset = this.#offsets.valueAt(key, nth);
      if (offset === undefined) return undefined;
      const link = this.#read(offset);
      if (fold(link.name) === key) return link;
    }
  }

  /**
   * Every link, in the order recorded (tar order). One read buffer serves the whole walk
   * (a record is decoded into strings at once), grown only for a record larger than it.
   */
  *records(): Generator<SpilledLink> {
    this.#flush();
    let buffer = Buffer.allocUnsafe(READ_BYTES);
    let start = 0; // file offset of buffer[0]
    let filled = 0;
    let pos = 0;
    for (;;) {
      if (filled - pos >= 4) {
        const size = buffer.readUInt32LE(pos);
        if (filled - pos - 4 >= size) {
          yield decode(buffer.subarray(pos + 4, pos + 4 + size), start + pos, this.file);
          pos += 4 + size;
          continue;
        }
        // A record larger than the buffer: grow it to hold the record whole.
        if (4 + size > buffer.length) {
          const bigger = Buffer.allocUnsafe(4 + size);
          buffer.copy(bigger, 0, pos, filled);
          buffer = bigger;
          start += pos;
          filled -= pos;
          pos = 0;
        }
      }
      if (start + filled >= this.#length) break;
      // Keep the partial record, then read after it.
      if (pos > 0) {
        buffer.copy(buffer, 0, pos, filled);
        start += pos;
        filled -= pos;
        pos = 0;
      }
      const n = readAt(this.#fd, buffer.subarray(filled, Math.min(buffer.length, filled + (this.#length - start - filled))), start + filled);
      if (n === 0) break;
      filled += n;
    }
    if (filled - pos > 0) throw corrupt(this.file, start + pos);
  }

  /** Closes the file; with `remove`, deletes it too. */
  close(remove: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
    if (remove) fs.rmSync(this.file, { force: true });
  }

  #read(offset: number): SpilledLink {
    this.#flush();
    const head = Buffer.allocUnsafe(4);
    if (readAt(this.#fd, head, offset) !== 4) throw corrupt(this.file, offset);
    const body = Buffer.allocUnsafe(head.readUInt32LE(0));
    if (readAt(this.#fd, body, offset + 4) !== body.length) throw corrupt(this.file, offset);
    return decode(body, offset, this.file);
  }

  #flush(): void {
    if (this.#pending === 0) return;
    this.#writeAt(this.#buffer.subarray(0, this.#pending), this.#length - this.#pending);
    this.#pending = 0;
  }

  #writeAt(bytes: Uint8Array, position: number): void {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.#fd, bytes, done, bytes.length - done, position + done);
  }

}

function decode(body: Buffer, offset: number, file: string): SpilledLink {
  let r: RecordJson;
  try {
    r = JSON.parse(body.toString('utf8')) as RecordJson;
  } catch (cause) {
    throw corrupt(file, offset, cause);
  }
  return {
    offset,
    name: r.n,
    target: r.t,
    host: r.h,
    transport: r.x === 1,
    attributes: r.a,
    times: [BigInt(r.c[0]), BigInt(r.c[1]), BigInt(r.c[2]), BigInt(r.c[3])],
    ...(r.p === 1 ? { parentsOnly: true } : {}),
  };
}

function corrupt(file: string, offset: number, cause?: unknown): Error {
  return createError('ERR_IO', `${file}: the pending hard links were damaged at byte ${offset}`, { offset }, cause);
}
