/**
 * Streams over a descriptor the caller owns and keeps: Node's file streams close theirs
 * when destroyed, whatever `autoClose` says, so a failed import or export in process
 * closed the caller's descriptor, and the caller's own close then closed whatever file
 * had taken that number since.
 */
import * as fs from 'node:fs';
import { Writable } from 'node:stream';

/** The bytes of `fd` from where it stands, `chunkBytes` at a time; `fd` is never closed here. */
export async function* readDescriptor(fd: number, chunkBytes = 1024 * 1024): AsyncGenerator<Buffer> {
  for (;;) {
    const buf = Buffer.allocUnsafe(chunkBytes);
    const n = await new Promise<number>((resolve, reject) => {
      fs.read(fd, buf, 0, chunkBytes, null, (error, read) => (error === null ? resolve(read) : reject(error)));
    });
    if (n === 0) return;
    yield n === chunkBytes ? buf : buf.subarray(0, n);
  }
}

/** A Writable onto `fd` from where it stands; `fd` is never closed here. */
export function descriptorWritable(fd: number): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done): void {
      const step = (from: number): void => {
        fs.write(fd, chunk, from, chunk.length - from, null, (error, n) => {
          if (error !== null) done(error);
          else if (from + n < chunk.length) step(from + n);
          else done();
        });
      };
      step(0);
    },
  });
}
