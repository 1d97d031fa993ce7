/**
 * Standard input as a byte stream with 1 MiB reads. `process.stdin` reads a redirected
 * file 64 KiB at a time; a layer tar of hundreds of MiB then costs thousands of extra
 * read calls and event-loop turns. A pipe still gives what the kernel has (≤ 64 KiB).
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';

export const STDIN_CHUNK = 1024 * 1024;

export function stdinStream(chunkBytes: number = STDIN_CHUNK): Readable {
  try {
    const st = fs.fstatSync(0);
    if (st.isFile() || st.isFIFO()) return fs.createReadStream('', { fd: 0, highWaterMark: chunkBytes, autoClose: false });
  } catch {
    // fall back to process.stdin (a TTY or a socket)
  }
  return process.stdin;
}
