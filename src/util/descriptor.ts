/**
 * Streams over a descriptor the caller owns and keeps: Node's file streams close theirs
 * when destroyed, whatever `autoClose` says, so a failed import or export in process
 * closed the caller's descriptor, and the caller's own close then closed whatever file
 * had taken that number since.
 */
import * as fs from 'node:fs';
import { Writable } from 'node:stream';

/**
 * How long to wait before trying again a descriptor in non-blocking mode that had nothing
 * to give or no room (a pipe or socket another process, or Node itself, made so).
 */
const AGAIN_MS = 2;

/** The bytes of `fd` from where it stands, `chunkBytes` at a time; `fd` is never closed here. */
export async function* readDescriptor(fd: number, chunkBytes = 1024 * 1024): AsyncGenerator<Buffer> {
  for (;;) {
    const buf = Buffer.allocUnsafe(chunkBytes);
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => {
        fs.read(fd, buf, 0, chunkBytes, null, (error, read) => (error === null ? resolve(read) : reject(error)));
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      await new Promise((resolve) => setTimeout(resolve, AGAIN_MS));
      continue;
    }
    if (n === 0) return;
    yield n === chunkBytes ? buf : buf.subarray(0, n);
  }
}

/**
 * A Writable onto `fd` from where it stands; `fd` is never closed here. `onError` hears a
 * failed write (what the Writable fails with may also be its source's failure).
 */
export function descriptorWritable(fd: number, onError?: (error: NodeJS.ErrnoException) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done): void {
      const step = (from: number): void => {
        fs.write(fd, chunk, from, chunk.length - from, null, (error, n) => {
          if (error?.code === 'EAGAIN') {
            setTimeout(() => step(from), AGAIN_MS);
          } else if (error !== null) {
            onError?.(error);
            done(error);
          } else if (from + n < chunk.length) {
            step(from + n);
          } else {
            done();
          }
        });
      };
      step(0);
    },
  });
}
