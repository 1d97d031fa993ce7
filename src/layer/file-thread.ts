/**
 * Creates small files on a helper thread while the writer goes on with the next entries.
 *
 * An import of many small files spends much of its time in open, write, futimes and close
 * (most of it in the file system's inode allocator on ext4). Those calls need nothing from
 * the entries that follow, so the writer hands each finished small file (its whole content,
 * at most one write buffer) to this thread and moves on: parsing and writing then overlap on
 * two CPUs.
 *
 * Files travel in batches: contents are copied into an arena that is transferred to the
 * thread, not cloned. The writer stays synchronous: when too many batches are in flight, and
 * when it needs every file on disk (before hard links, directory times and the index), it
 * blocks with Atomics.wait on a counter the thread advances after each batch. A failure is
 * read back synchronously (receiveMessageOnPort) and names the entry; after one, the thread
 * skips what is left. Every file is created with O_EXCL and O_NOFOLLOW, as on the writer's
 * own path. Directories can be queued too (mkdir), ahead of the files that go in them.
 *
 * The thread also hashes the tar for the import's digest once it runs (see ChunkHasher):
 * bytes are copied into a shared ring of slots, each slot posted in order with the batches,
 * so SHA-256 (~70 ms per 80 MiB on this path) runs beside the parsing too.
 *
 * One thread, not two. Two threads creating files at once do beat one on ext4 (20,000
 * files of 2.6 KiB in 200 directories: 1.3–1.9× in a bare test), and a base-layer-sized
 * import on two (files alternating between them by batch, directories all made by the
 * first, the second waiting for the first's batches that made directories before its
 * own) took 15.7 s instead of 20.8 s. But each thread costs ~9 MiB (an isolate of its
 * own), and that import peaked at 102–110 MiB instead of 97–100, past the 100 MiB bound;
 * a 20,000-file import gained nothing measurable on tmpfs or on ext4, where parsing or
 * the kernel bounds it. Nor did the writer writing a batch itself while the thread was
 * behind (no thread more): the kernel time grew by as much as the wait it replaced.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type * as WorkerThreads from 'node:worker_threads';
import { createError, pathTooLongError, toWinLayerError, type WinLayerError } from '../errors.js';

/** Files per batch at most. */
const BATCH_FILES = 256;
/** Bytes of file content per batch at most; a file never exceeds it. */
export const BATCH_BYTES = 256 * 1024;
/**
 * Batches handed over and not yet written, at most (bounds the memory in flight: 2 MiB).
 * Enough to keep the writer going while the thread starts (~0.1 s on a busy machine).
 */
const IN_FLIGHT = 8;
/** How long a wait may see no progress before the thread counts as stuck. */
const STALL_MS = 60_000;

const MKDIR_MARK = '\u0001';
const EMPTY = new Uint8Array(0);

/** Slots of the shared state. */
const DONE = 0;
const CANCEL = 1;
const FAILED = 2;
/** Hash slots the thread has hashed. */
const HASHED = 3;
/** Set when the thread has posted the digest. */
const DIGESTED = 4;
/** Set when the thread ends (its `exit` event: a throw escaped it, or it was stopped). */
const EXITED = 5;
const STATE_SLOTS = 6;

/** Bytes per hash slot, and slots in the ring (2 MiB in flight at most). */
export const HASH_SLOT_BYTES = 256 * 1024;
const HASH_SLOTS = 8;

/** Hashes bytes in order and gives the digest once; `digest` is `sha256:<hex>`. */
export interface ChunkHasher {
  /** `chunk` is copied before this returns: the caller may reuse it. */
  hash(chunk: Uint8Array): void;
  /** Hashes everything handed over, then returns the digest (once). */
  digest(): string;
}

/** What the thread gets: one string and three buffers, cheap to pass. */
interface Batch {
  /** Sequence number, to find the entry names of a failure. */
  seq: number;
  /** The files' absolute paths, joined with NUL (which no path holds). */
  paths: string;
  /** End offset in the arena of each file's bytes. */
  ends: Int32Array;
  /** atime, mtime (seconds) of each file. */
  times: Float64Array;
  arena: ArrayBuffer;
  /** Hash ring slots filled before this batch (slot, length pairs), hashed before its files. */
  hashSlots?: number[];
}

/** What the thread reports when a file cannot be written. */
interface Failure {
  seq: number;
  index: number;
  file: string;
  code: string | undefined;
  syscall: string | undefined;
  message: string;
}

/**
 * The thread's code, a CommonJS script (evaluated, so the bundles need no extra file).
 * Flags and slots are passed in workerData so they cannot drift from the writer's.
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { flags, mode, slots } = workerData;
const state = new Int32Array(workerData.state);
const port = workerData.port;
let hash;
const ring = new Uint8Array(workerData.ring);
process.on('exit', () => {
  Atomics.store(state, slots.exited, 1);
  for (const slot of [slots.done, slots.hashed, slots.digested]) Atomics.notify(state, slot);
});
// Node's utimes takes a negative number for "now": a time before 1970 goes as a Date (see utimesTime in src/util/windows.ts).
const utimesTime = (seconds) => (seconds < 0 ? new Date(Math.round(seconds * 1000)) : seconds);
// Fault injection (src/util/crash-point.ts): a throw out of the handler ends the thread.
const crash = process.env.WINLAYER_CRASH_AT === 'file-thread';
parentPort.on('message', (b) => {
  if (crash && b.arena !== undefined) throw new Error('crash point file-thread');
  if (b.hashSlots !== undefined) {
    // Ring slots filled since the last message: hashed first, in order, then the files.
    hash ??= require('node:crypto').createHash('sha256');
    for (let i = 0; i < b.hashSlots.length; i += 2) {
      const at = b.hashSlots[i] * workerData.slotBytes;
      hash.update(ring.subarray(at, at + b.hashSlots[i + 1]));
    }
    Atomics.add(state, slots.hashed, b.hashSlots.length / 2);
    Atomics.notify(state, slots.hashed);
    if (b.arena === undefined) return;
  }
  if (b.digest !== undefined) {
    hash ??= require('node:crypto').createHash('sha256');
    port.postMessage({ digest: hash.digest('hex') });
    Atomics.store(state, slots.digested, 1);
    Atomics.notify(state, slots.digested);
    return;
  }
  if (Atomics.load(state, slots.cancel) === 0 && Atomics.load(state, slots.failed) === 0) {
    const bytes = new Uint8Array(b.arena);
    const files = b.paths.split('\0');
    let start = 0;
    for (let i = 0; i < b.ends.length; i++) {
      const end = b.ends[i];
      try {
        if (files[i].charCodeAt(0) === 1) {
          fs.mkdirSync(files[i].slice(1));
          start = end;
          continue;
        }
        const fd = fs.openSync(files[i], flags, mode);
        try {
          let at = start;
          while (at < end) at += fs.writeSync(fd, bytes, at, end - at);
          fs.futimesSync(fd, utimesTime(b.times[2 * i]), utimesTime(b.times[2 * i + 1]));
        } finally {
          fs.closeSync(fd);
        }
      } catch (e) {
        const file = files[i].charCodeAt(0) === 1 ? files[i].slice(1) : files[i];
        port.postMessage({ failure: { seq: b.seq, index: i, file, code: e && e.code, syscall: e && e.syscall, message: String(e && e.message) } });
        Atomics.store(state, slots.failed, 1);
        break;
      }
      start = end;
    }
  }
  // The arena goes back for the next batch (before the count, so it is there to take).
  port.postMessage({ arena: b.arena }, [b.arena]);
  Atomics.add(state, slots.done, 1);
  Atomics.notify(state, slots.done);
});
`;

/** One helper thread and its batches. */
export class FileThread implements ChunkHasher {
  readonly #worker: WorkerThreads.Worker;
  readonly #results: WorkerThreads.MessagePort;
  readonly #receive: typeof WorkerThreads.receiveMessageOnPort;
  readonly #state: Int32Array;
  #posted = 0;
  #batch: Batch;
  /** Paths and entry names of the batch being filled. */
  #files: string[] = [];
  #entries: string[] = [];
  /** Entry names of the batches in flight, oldest first, and the sequence number of the first. */
  #inFlight: string[][] = [];
  #inFlightFirst = 0;
  #count = 0;
  #used = 0;
  #failure: WinLayerError | undefined;
  /** What the thread reported failing, once read from the port. */
  #report: Failure | undefined;
  /** Arenas the thread gave back. */
  readonly #arenas: ArrayBuffer[] = [];
  #stopped = false;
  readonly #ring: Uint8Array;
  /** Hash slots handed over, and bytes in the slot being filled. */
  #hashPosted = 0;
  #hashUsed = 0;
  /**
   * Slots handed over but not yet posted (slot, length pairs): they travel with the next
   * batch, or on their own when the writer must wait for the ring or wants the digest.
   */
  #hashPending: number[] = [];
  #digest: string | undefined;

  constructor() {
    // Loaded here: only an import of many small files starts a thread.
    const threads = createRequire(import.meta.url)('node:worker_threads') as typeof WorkerThreads;
    const { port1, port2 } = new threads.MessageChannel();
    this.#state = new Int32Array(new SharedArrayBuffer(STATE_SLOTS * Int32Array.BYTES_PER_ELEMENT));
    this.#ring = new Uint8Array(new SharedArrayBuffer(HASH_SLOTS * HASH_SLOT_BYTES));
    this.#results = port1;
    this.#receive = threads.receiveMessageOnPort;
    const c = fs.constants;
    this.#worker = new threads.Worker(THREAD_SOURCE, {
      eval: true,
      workerData: {
        state: this.#state.buffer,
        ring: this.#ring.buffer,
        slotBytes: HASH_SLOT_BYTES,
        port: port2,
        flags: c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW,
        mode: 0o644,
        slots: { done: DONE, cancel: CANCEL, failed: FAILED, hashed: HASHED, digested: DIGESTED, exited: EXITED },
      },
      transferList: [port2],
      // The thread needs little: it holds at most a few batches. (In a worker process of
      // many entries V8's --max-semi-space-size would override the young generation's
      // limit; the worker clears that flag first, see worker/main.ts.)
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1 },
      stdout: false,
      stderr: false,
    });
    // Its errors (it cannot start, it dies) surface through EXITED (a throw that escaped it),
    // as a stall (it could not run its exit handlers: out of memory) or as a missing result;
    // never as a crash here.
    this.#worker.on('error', () => undefined);
    this.#worker.unref();
    this.#results.unref();
    this.#batch = this.#newBatch();
  }

  /** True once a file failed on the thread (checked cheaply between entries). */
  get failed(): boolean {
    return Atomics.load(this.#state, FAILED) !== 0;
  }

  /** Queues `file` (the entry `entry`) with `bytes` as its whole content, at most BATCH_BYTES. */
  write(file: string, entry: string, bytes: Uint8Array, atime: number, mtime: number): void {
    if (this.failed) this.#throwFailure();
    if (this.#count === BATCH_FILES || this.#used + bytes.length > BATCH_BYTES) this.#post();
    const b = this.#batch;
    new Uint8Array(b.arena, this.#used, bytes.length).set(bytes);
    this.#used += bytes.length;
    this.#files.push(file);
    this.#entries.push(entry);
    b.ends[this.#count] = this.#used;
    b.times[2 * this.#count] = atime;
    b.times[2 * this.#count + 1] = mtime;
    this.#count++;
  }

  /**
   * Queues the creation of directory `dir` (the entry `entry`): files queued after it may be
   * in it. A path never starts with U+0001 (control characters are not in entry names, and
   * the root is absolute), so that marks it in the batch.
   */
  mkdir(dir: string, entry: string): void {
    this.write(MKDIR_MARK + dir, entry, EMPTY, 0, 0);
  }

  /** Copies `chunk` into the hash ring; blocks while the ring is full. */
  hash(chunk: Uint8Array): void {
    if (this.#digest !== undefined) throw createError('ERR_ARGUMENT_INVALID', 'file thread: hash() after digest()');
    let from = 0;
    while (from < chunk.length) {
      if (this.#hashUsed === 0) {
        // The slot to fill was handed over HASH_SLOTS slots ago: wait until it was hashed
        // (posting what is pending first, or the thread could never hash it).
        const target = this.#hashPosted - HASH_SLOTS + 1;
        if (Atomics.load(this.#state, HASHED) < target) this.#postHashPending();
        this.#waitFor(target, HASHED);
      }
      const n = Math.min(chunk.length - from, HASH_SLOT_BYTES - this.#hashUsed);
      const at = (this.#hashPosted % HASH_SLOTS) * HASH_SLOT_BYTES + this.#hashUsed;
      this.#ring.set(from === 0 && n === chunk.length ? chunk : chunk.subarray(from, from + n), at);
      this.#hashUsed += n;
      from += n;
      if (this.#hashUsed === HASH_SLOT_BYTES) this.#queueHashSlot();
    }
  }

  /** The digest of every byte hashed, `sha256:<hex>`; blocks until the thread has it. */
  digest(): string {
    if (this.#digest !== undefined) return this.#digest;
    if (this.#stopped) throw createError('ERR_ARGUMENT_INVALID', 'file thread: digest() after stop()');
    if (this.#hashUsed > 0) this.#queueHashSlot();
    this.#postHashPending();
    this.#worker.postMessage({ digest: true });
    this.#waitFor(1, DIGESTED);
    this.#receiveAll();
    if (this.#digest === undefined) throw createError('ERR_IO', 'the file-writing thread gave no digest');
    return this.#digest;
  }

  /**
   * Hands the filled slot over. A message per slot cost 23–39 µs of the writer's time each
   * (waking the thread), 8–13 ms of a 20,000-file import: the slot goes with the next
   * batch instead, which is posted about as often.
   */
  #queueHashSlot(): void {
    this.#hashPending.push(this.#hashPosted % HASH_SLOTS, this.#hashUsed);
    this.#hashPosted++;
    this.#hashUsed = 0;
  }

  #postHashPending(): void {
    if (this.#hashPending.length === 0) return;
    this.#worker.postMessage({ hashSlots: this.#hashPending });
    this.#hashPending = [];
  }

  /** Returns once every queued file is on disk (in the page cache); throws the first failure. */
  drain(): void {
    if (this.#count > 0) this.#post();
    this.#waitFor(this.#posted);
    if (this.failed) this.#throwFailure();
  }

  /** Stops: queued files are skipped, and none is written after this returns. */
  cancel(): void {
    if (this.#stopped) return;
    Atomics.store(this.#state, CANCEL, 1);
    this.#count = 0;
    try {
      this.#waitFor(this.#posted);
    } finally {
      this.stop();
    }
  }

  /** Ends the thread (after drain or cancel). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#results.close();
    void this.#worker.terminate().catch(() => undefined);
  }

  #post(): void {
    const b = this.#batch;
    b.seq = this.#posted;
    b.paths = this.#files.join('\0');
    b.ends = b.ends.subarray(0, this.#count);
    b.times = b.times.subarray(0, 2 * this.#count);
    // At most IN_FLIGHT batches wait: block until the thread catches up.
    this.#waitFor(this.#posted - IN_FLIGHT + 1);
    const done = Atomics.load(this.#state, DONE);
    if (!this.failed) {
      // Names are kept for failure reports only while their batch is in flight.
      this.#inFlight.splice(0, done - this.#inFlightFirst);
      this.#inFlightFirst = done;
    }
    this.#inFlight.push(this.#entries);
    if (this.#hashPending.length > 0) {
      b.hashSlots = this.#hashPending;
      this.#hashPending = [];
    }
    this.#worker.postMessage(b, [b.arena]);
    this.#posted++;
    this.#batch = this.#newBatch();
    this.#files = [];
    this.#entries = [];
    this.#count = 0;
    this.#used = 0;
  }

  /** Blocks until the counter in `slot` (batches done, by default) reaches `target`. */
  #waitFor(target: number, slot = DONE): void {
    let last = Atomics.load(this.#state, slot);
    let since = Date.now();
    while (last < target) {
      Atomics.wait(this.#state, slot, last, 1000);
      const now = Atomics.load(this.#state, slot);
      if (now < target && Atomics.load(this.#state, EXITED) !== 0) {
        // Ended before it got there: what it wrote is not all, and nothing more will come.
        this.#stopped = true;
        if (this.failed) this.#throwFailure();
        throw createError('ERR_IO', 'the file-writing thread stopped before it wrote every file', { done: now, target });
      }
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        this.#stopped = true;
        void this.#worker.terminate().catch(() => undefined);
        throw createError('ERR_IO', `the file-writing thread made no progress in ${STALL_MS / 1000} s`, { done: last, target });
      }
    }
  }

  #throwFailure(): never {
    if (this.#failure === undefined) {
      // The flag is set only after the report was posted, so it is there to read.
      this.#receiveAll();
      const report = this.#report;
      const entry = report === undefined ? undefined : this.#inFlight[report.seq - this.#inFlightFirst]?.[report.index];
      this.#failure = failureError(report, entry ?? report?.file ?? '');
    }
    throw this.#failure;
  }

  /** Takes what the thread sent back: arenas to reuse, and a failure report. */
  #receiveAll(): void {
    for (;;) {
      const received = this.#receive(this.#results);
      if (received === undefined) return;
      const message = received.message as { arena?: ArrayBuffer; failure?: Failure; digest?: string };
      if (message.arena !== undefined) this.#arenas.push(message.arena);
      if (message.digest !== undefined) this.#digest = 'sha256:' + message.digest;
      if (message.failure !== undefined) this.#report ??= message.failure;
    }
  }

  /** A batch on a returned arena when there is one: at most IN_FLIGHT + 1 arenas ever exist. */
  #newBatch(): Batch {
    if (this.#arenas.length === 0 && this.#posted > 0) this.#receiveAll();
    return {
      seq: 0,
      paths: '',
      ends: new Int32Array(BATCH_FILES),
      times: new Float64Array(2 * BATCH_FILES),
      arena: this.#arenas.pop() ?? new ArrayBuffer(BATCH_BYTES),
    };
  }
}

function failureError(report: Failure | undefined, entry: string): WinLayerError {
  if (report === undefined) return createError('ERR_IO', 'the file-writing thread failed without a report');
  const cause = Object.assign(new Error(report.message), { code: report.code, syscall: report.syscall, path: report.file });
  if (report.code === 'ENAMETOOLONG') return pathTooLongError(entry, cause);
  return toWinLayerError(cause, `${entry}: writing`, { entry });
}

