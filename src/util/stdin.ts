/**
 * Standard input as a byte stream with 1 MiB reads. `process.stdin` reads a redirected
 * file 64 KiB at a time; a layer tar of hundreds of MiB then costs thousands of extra
 * read calls and event-loop turns. A pipe or a socket still gives what the kernel has.
 *
 * A pipe or a socket is read with blocking reads on the thread pool only when it is in
 * blocking mode: a read of a non-blocking one answers EAGAIN when it is empty, which a
 * file stream takes for an error. A Node parent's `stdio: 'pipe'` gives its child a
 * blocking socket (a worker reads it so ~15% faster than through `process.stdin`: 256 MiB
 * in 0.69–0.80 s against 0.83–1.13 s); one that a process sharing it set non-blocking goes
 * through `process.stdin`, which waits for it.
 */
import * as fs from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';

export const STDIN_CHUNK = 1024 * 1024;

export function stdinStream(chunkBytes: number = STDIN_CHUNK): Readable {
  try {
    const st = fs.fstatSync(0);
    const stream = st.isFIFO() || st.isSocket();
    // Where the mode cannot be read (not Linux), pipes are read directly, as ever, and sockets not.
    // A directory too: its read fails with EISDIR, which process.stdin takes for the end.
    if (st.isFile() || st.isDirectory() || (stream && (nonBlocking(0) ?? st.isSocket()) === false)) {
      return fs.createReadStream('', { fd: 0, highWaterMark: chunkBytes, autoClose: false });
    }
  } catch {
    // fall back to process.stdin (a TTY, or a descriptor that cannot be inspected)
  }
  return slot[REAL_STDIN]?.() ?? process.stdin;
}

/**
 * process.stdin as Node made it, once shieldStdin replaced it. Kept on the global object:
 * the CLI's import shields stdin from a bundle of its own (prestart.ts) before the CLI's
 * bundle, whose copy of this module must find Node's getter, not the shield's.
 */
const REAL_STDIN = Symbol.for('winlayer.realStdin');
const slot = globalThis as { [REAL_STDIN]?: () => Readable };

/**
 * Keeps `process.stdin` from being made by code that only looks at it: execa does when it
 * loads (to know the standard streams), and Node's stream for a pipe on stdin makes the
 * pipe non-blocking, for every process that shares it: a worker handed that stdin then
 * reads it through the slower process.stdin, and a tool reading the same pipe after
 * `winlayer export` failed with EAGAIN. For the CLI, which reads stdin only through
 * stdinStream; that still gets the real one where it needs it.
 */
export function shieldStdin(): void {
  if (slot[REAL_STDIN] !== undefined) return;
  const descriptor = Object.getOwnPropertyDescriptor(process, 'stdin');
  const get = descriptor?.get;
  if (descriptor?.configurable !== true || get === undefined) return;
  slot[REAL_STDIN] = () => get.call(process) as Readable;
  let stub: Readable | undefined;
  Object.defineProperty(process, 'stdin', {
    configurable: true,
    enumerable: descriptor.enumerable ?? false,
    get: () => (stub ??= new PassThrough().end()),
  });
}

/** Whether descriptor `fd` is in non-blocking mode, from the octal flags in /proc (Linux); undefined where that cannot be read. */
export function nonBlocking(fd: number): boolean | undefined {
  let info: string;
  try {
    info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1');
  } catch {
    return undefined;
  }
  const m = /^flags:\s*([0-7]+)$/m.exec(info);
  return m === null ? undefined : (parseInt(m[1] as string, 8) & fs.constants.O_NONBLOCK) !== 0;
}
