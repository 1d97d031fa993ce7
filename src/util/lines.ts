/**
 * Text files of one record a line, written and read in bounded pieces: the layer's index
 * (entries.jsonl) and its tombstones.txt can hold hundreds of thousands of lines, and
 * neither may be held whole in memory.
 */
import * as fs from 'node:fs';

const WRITE_BUFFER_BYTES = 64 * 1024;
const READ_BYTES = 256 * 1024;

/** Appends lines to `fd` through a 64 KiB buffer; a line is garbage once encoded. */
export class LineWriter {
  readonly #fd: number;
  readonly #buffer = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  #used = 0;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** Appends `line` and a newline. */
  add(line: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8 (a pair is 4 for 2), then the newline.
    const most = 3 * line.length + 1;
    if (this.#used + most > WRITE_BUFFER_BYTES) {
      this.flush();
      if (most > WRITE_BUFFER_BYTES) {
        writeAll(this.#fd, Buffer.from(line + '\n', 'utf8'));
        return;
      }
    }
    this.#used += this.#buffer.write(line, this.#used);
    this.#buffer[this.#used++] = 0x0a;
  }

  /** Writes what is buffered. */
  flush(): void {
    if (this.#used === 0) return;
    writeAll(this.#fd, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

/** Writes all of `bytes` at the file position of `fd`. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/** Reads into all of `into` from `position` of `fd`, fewer bytes only at the end of the file; returns how many. */
export function readAt(fd: number, into: Uint8Array, position: number): number {
  let got = 0;
  while (got < into.length) {
    const n = fs.readSync(fd, into, got, into.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Where a line lies in its file: byte offset and byte length, newline not counted. */
export interface LineSpan {
  offset: number;
  length: number;
}

/**
 * The lines of the file `fd` (from its position on), read 256 KiB at a time as they are
 * taken, each without its newline; a last line without one is a line too. Lines split on
 * the newline byte, which no UTF-8 sequence holds, so each is decoded whole. When given
 * `span`, it is set to each line's place before the line is yielded (byte offsets counted
 * from where the reading started).
 */
export function* readLinesSync(fd: number, span?: LineSpan): Generator<string> {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  let carry: Buffer = Buffer.alloc(0);
  /** File offset of data[0]. */
  let base = 0;
  for (;;) {
    const got = fs.readSync(fd, buffer, 0, buffer.length, null);
    if (got === 0) break;
    const data = carry.length === 0 ? buffer.subarray(0, got) : Buffer.concat([carry, buffer.subarray(0, got)]);
    let start = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
      const line = data.toString('utf8', start, nl);
      if (span !== undefined) {
        span.offset = base + start;
        span.length = nl - start;
      }
      start = nl + 1;
      yield line;
    }
    base += start;
    carry = Buffer.from(data.subarray(start)); // a copy: the read buffer is reused
  }
  if (carry.length > 0) {
    if (span !== undefined) {
      span.offset = base;
      span.length = carry.length;
    }
    yield carry.toString('utf8');
  }
}
