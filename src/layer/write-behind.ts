/**
 * Write-behind for the data of large files: positional writes on the thread pool, so that
 * the writer's own thread goes on reading, hashing and parsing the tar while the kernel
 * copies the previous megabyte into the page cache. The bytes in flight are bounded
 * (`whenWritable`), a file's descriptor is never closed before its writes are done (a
 * reused descriptor would take them), and the first failure is kept and thrown by the
 * next write or by `settled()`.
 *
 * Every write names its position: a write-behind file is never written at its offset.
 * Chunks are not copied; a chunk must not change after it is handed over (a stream's
 * chunks never do).
 *
 * A file whose write-behind data passes `FLUSH_EVERY_BYTES` also starts its flush to disk
 * (fdatasync on the thread pool) while the import goes on, once per that many bytes: the
 * writer's files are flushed all at once before a layer is committed, and that flush then
 * finds most of the data on disk already.
 */
import * as fs from 'node:fs';
import { toWinLayerError, type WinLayerError } from '../errors.js';

/** Bytes in flight at most before `whenWritable` makes the writer wait. */
export const WRITE_BEHIND_BYTES = 8 * 1024 * 1024;
/** A write-behind file starts a flush to disk each time this many more bytes were written. */
export const FLUSH_EVERY_BYTES = 16 * 1024 * 1024;

/** One file's operations in flight and what runs once they are done. */
export class WriteBehindFile {
  readonly fd: number;
  readonly entry: string;
  #pending = 0;
  #after: (() => void)[] | undefined;
  #flushedAt = 0;
  #flushing = false;

  constructor(fd: number, entry: string) {
    this.fd = fd;
    this.entry = entry;
  }

  get idle(): boolean {
    return this.#pending === 0;
  }

  /** Runs `fn` once nothing is in flight for this file (now, when nothing is). */
  afterWrites(fn: () => void): void {
    if (this.#pending === 0) fn();
    else (this.#after ??= []).push(fn);
  }

  /** Called by WriteBehind: one more operation in flight. */
  begin(): void {
    this.#pending++;
  }

  /** Called by WriteBehind: one operation done. */
  end(): void {
    if (--this.#pending > 0 || this.#after === undefined) return;
    const after = this.#after;
    this.#after = undefined;
    for (const fn of after) fn();
  }

  /** Whether a flush should start now that `written` bytes were handed over. */
  flushDue(written: number): boolean {
    if (this.#flushing || written - this.#flushedAt < FLUSH_EVERY_BYTES) return false;
    this.#flushing = true;
    this.#flushedAt = written;
    return true;
  }

  flushDone(): void {
    this.#flushing = false;
  }
}

/** The writes in flight of one layer writer. */
export class WriteBehind {
  #bytes = 0;
  #wake: (() => void) | undefined;
  #waiting: Promise<void> | undefined;
  #failure: WinLayerError | undefined;
  /** Writes and flushes in flight, and who waits for there to be none. */
  #operations = 0;
  #drained: (() => void)[] = [];

  /** Bytes handed over and not yet written. */
  get bytesInFlight(): number {
    return this.#bytes;
  }

  /** Throws the first failure of a write or flush, if any. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * The first failure of a write or flush once none is in flight (after a failure
   * elsewhere: a disk that filled up while this data was being written fails it too, and
   * this data came first).
   */
  async failureOnceDone(): Promise<WinLayerError | undefined> {
    if (this.#operations > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    return this.#failure;
  }

  #begin(): void {
    this.#operations++;
  }

  #end(): void {
    if (--this.#operations > 0) return;
    const drained = this.#drained;
    this.#drained = [];
    for (const resolve of drained) resolve();
  }

  /** Writes `chunk` at `position` of `file` (a file is written front to back). */
  write(file: WriteBehindFile, chunk: Uint8Array, position: number): void {
    this.check();
    this.#bytes += chunk.length;
    file.begin();
    this.#begin();
    const step = (offset: number): void => {
      fs.write(file.fd, chunk, offset, chunk.length - offset, position + offset, (error, n) => {
        if (error === null && n > 0 && offset + n < chunk.length) {
          step(offset + n);
          return;
        }
        if (error !== null || n === 0) this.#fail(error ?? new Error('the write made no progress'), file.entry, 'writing');
        this.#bytes -= chunk.length;
        file.end();
        if (this.#wake !== undefined && this.#bytes <= WRITE_BEHIND_BYTES / 2) {
          const wake = this.#wake;
          this.#wake = undefined;
          this.#waiting = undefined;
          wake();
        }
        this.#end();
      });
    };
    step(0);
    if (file.flushDue(position + chunk.length)) {
      file.begin();
      this.#begin();
      fs.fdatasync(file.fd, (error) => {
        if (error !== null) this.#fail(error, file.entry, 'flushing to disk');
        file.flushDone();
        file.end();
        this.#end();
      });
    }
  }

  /** A promise to wait on while too many bytes are in flight; undefined when the writer may go on. */
  whenWritable(): Promise<void> | undefined {
    this.check();
    if (this.#bytes <= WRITE_BEHIND_BYTES) return undefined;
    this.#waiting ??= new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    return this.#waiting;
  }

  #fail(error: Error, entry: string, doing: string): void {
    this.#failure ??= toWinLayerError(error, `${entry}: ${doing}`, { entry });
  }
}
