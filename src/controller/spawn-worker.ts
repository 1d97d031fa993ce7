/**
 * Spawning one worker process and reading its result: the only module that imports
 * execa. The stages of a worker's life: spawn (the running Node, this package's worker
 * entry) → stream the tar into stdin with backpressure → collect stdout, stderr and the
 * progress lines on fd 3 → exit → result (size) or a rebuilt typed error.
 *
 * Errors are decided in one place, `errorFromResult`, with execa's priority:
 * timed out > canceled > the worker's own JSON error > killed by a signal > exit code.
 */
import type { Result } from 'execa';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createError, errorFromSerialized, toWinLayerError, type WinLayerError } from '../errors.js';
import type { ImportProgress } from '../convert/import-tar.js';
import { ENTRIES_FILE, INDEX_DIR, readLayerInfo } from '../layer/metadata-index.js';
import type { BackendName } from '../native/backend.js';
import { NATIVE_BACKEND_ENV } from '../native/select.js';
import { IMPORTING_INFIX } from '../store/layer-store.js';
import { tarChunk } from '../tar/decompress.js';
import { EXPORT_NODE_OPTIONS, MANY_ENTRIES_NODE_OPTIONS, PROGRESS_FD, STOP_SIGNALS, type CommitIdentity, type WorkerCommand } from './protocol.js';
import { quietProgress } from '../util/options.js';
import { derivedSignal } from '../util/derived-signal.js';
import { releaseSource } from '../util/release-source.js';
import { removeTreeSync } from '../util/remove-tree.js';
import { descriptorsShort, fewEntriesIn, FORCE_KILL_AFTER_MS, loadExeca, smallInput, SMALL_TAR_BYTES, SPAWN_DESCRIPTORS, WORKER_ENTRY, workerCwd, workerEnv, type Execa } from './launch.js';
import { adoptPrestarted, prestartedDefaultHeap } from './prestart.js';

export {
  MANY_HEADER_BLOCKS,
  SMALL_COMPRESSED_BYTES,
  SMALL_TAR_BYTES,
  WORKER_BUNDLE,
  WORKER_BUNDLE_ENTRY,
  WORKER_ENTRY,
  WORKER_MODULE_ENTRY,
  workerCwd,
  workerEnv,
} from './launch.js';

const STDERR_TAIL_CHARS = 2000;

export interface WorkerJob {
  readonly command: WorkerCommand;
  readonly home: string;
  readonly id: string;
  /** Parent layer paths, nearest first (for `view`: the layers to merge, nearest first). */
  readonly parents: readonly string[];
  /** `view` only: the directory to make (a new one: the worker writes beside it and renames). */
  readonly dest?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Kill the worker after this many milliseconds. @default no timeout */
  readonly timeout?: number | undefined;
  /** Kill a worker that has not said it started after this many milliseconds. @default WORKER_START_MS */
  readonly startTimeout?: number | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
  /** The worker script to run (tests substitute misbehaving workers). @default WORKER_ENTRY */
  readonly workerPath?: string | undefined;
  /** The backend the worker runs, set as its NATIVE_BACKEND_ENV. @default the worker's own choice */
  readonly backend?: BackendName | undefined;
  /**
   * Told when the job starts (a CallerWait) and stops (undefined) waiting on its caller:
   * the controller starts a queued job beyond its limit when every running one waits so.
   */
  readonly onCallerWait?: ((wait: CallerWait | undefined) => void) | undefined;
}

/**
 * What a running job waits on: its `caller` (an export's stream nobody reads, a `changes`
 * callback that has not returned) or its `input` (an import's stream that gives no bytes).
 */
export type CallerWait = 'caller' | 'input';

/**
 * Where a worker's tar comes from: bytes the controller streams into its stdin, or an open
 * file descriptor (a file or a pipe) the worker reads itself — no copy through the
 * controller, which is what the CLI does with its own stdin. A file stream
 * (`fs.createReadStream(path)`) not yet read from is treated as its file.
 */
export type TarSource = AsyncIterable<Uint8Array> | Readable | { readonly fd: number };

export function isFdSource(source: TarSource): source is { readonly fd: number } {
  return typeof source === 'object' && source !== null && typeof (source as { fd?: unknown }).fd === 'number' && !(source instanceof Readable);
}

/** The largest file descriptor: a C int. A larger number would wrap to another descriptor in the worker's stdio. */
const MAX_DESCRIPTOR = 2 ** 31 - 1;

function isDescriptor(fd: unknown): fd is number {
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 && fd <= MAX_DESCRIPTOR;
}

/** Throws ERR_ARGUMENT_INVALID unless `fd` is a file descriptor: an integer from 0 to 2^31 - 1. */
export function checkDescriptor(fd: unknown, what: string): asserts fd is number {
  if (isDescriptor(fd)) return;
  throw createError('ERR_ARGUMENT_INVALID', `${what}: expected an open file descriptor (an integer from 0 to ${MAX_DESCRIPTOR}), got \`${String(fd)}\` (${typeof fd})`);
}

/** Throws ERR_ARGUMENT_INVALID unless `source` is a TarSource: a stream, an async iterable of bytes, or `{ fd }`. */
export function checkTarSource(source: unknown): asserts source is TarSource {
  if (typeof source === 'object' && source !== null) {
    if (isFdSource(source as TarSource)) {
      const fd = (source as { fd: unknown }).fd;
      if (isDescriptor(fd as number)) return;
      throw createError('ERR_ARGUMENT_INVALID', `the layer tar { fd }: expected an open file descriptor (an integer from 0 to 2147483647), got ${String(fd)}`, { option: 'fd' });
    } else if (typeof (source as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function') {
      return;
    }
  }
  const what = source === null ? 'null' : Array.isArray(source) ? 'an array' : source instanceof Uint8Array ? 'a Buffer (pass Readable.from([buffer]))' : typeof source;
  throw createError('ERR_ARGUMENT_INVALID', `the layer tar must be a Readable, an async iterable of bytes or { fd }; got ${what}`);
}

/** Resolves to `{subprocess}`: execa's subprocess is itself a promise, so it must not be what an async function returns. */
async function spawn(job: WorkerJob, stdout: 'pipe' | number, stdin: 'pipe' | number = 'pipe', nodeOptions: readonly string[] = []) {
  // The worker the CLI's import started before it knew this job, when it is the one this job would start.
  const adopted = adoptPrestarted(job, stdin, stdout, nodeOptions) as ReturnType<typeof start> | undefined;
  if (adopted !== undefined) {
    watchStart(adopted, job);
    return { subprocess: adopted };
  }
  const context = `${job.command} ${job.id}: the worker could not be started`;
  let execa: Execa;
  try {
    execa = await loadExeca();
  } catch (error) {
    throw toWinLayerError(error, context, { id: job.id, command: job.command });
  }
  checkWorkerPath(job);
  checkDescriptorsFree(context, job);
  let subprocess: ReturnType<typeof start>;
  try {
    subprocess = start(execa, job, stdout, stdin, nodeOptions);
  } catch (error) {
    throw toWinLayerError(error, context, { id: job.id, command: job.command });
  }
  watchStart(subprocess, job);
  return { subprocess };
}

/**
 * How long a worker may take to say it started (a line on its progress pipe, the first
 * thing it does) before it is killed. Node started near a system's limit of processes or
 * threads (`ulimit -u`) can hang before any of its code runs, waiting on a thread it could
 * not make: without this, its job, and the mount lock it may hold, waited for ever.
 */
export const WORKER_START_MS = 30_000;

/** Jobs whose worker was killed for not starting in time (errorFromResult says so). */
const notStarted = new WeakSet<object>();

function watchStart(subprocess: ReturnType<typeof start>, job: WorkerJob): void {
  const progress = subprocess.stdio[PROGRESS_FD] as Readable | null | undefined;
  if (progress === null || progress === undefined) return;
  const timer = setTimeout(() => {
    notStarted.add(job);
    subprocess.kill('SIGKILL');
  }, job.startTimeout ?? WORKER_START_MS);
  timer.unref();
  const started = (): void => clearTimeout(timer);
  // Read from here on, by watchProgress (attached in this same turn, before any data).
  progress.once('data', started);
  progress.once('close', started);
}

/**
 * Throws ERR_IO (ENOENT) when the worker script is not there, naming it: Node would start,
 * fail to load it and exit without the protocol's error line. That is what a tool that
 * bundles winlayer meets, where the default is looked for beside the bundle.
 */
function checkWorkerPath(job: WorkerJob): void {
  const script = job.workerPath ?? WORKER_ENTRY;
  if (fs.existsSync(script)) return;
  throw createError(
    'ERR_IO',
    `${job.command} ${job.id}: the worker could not be started: ${script} does not exist (where winlayer is bundled into another file, pass the \`workerPath\` option: the path \`winlayer/worker\` resolves to, dist/worker/start.cjs of the installed package)`,
    { id: job.id, command: job.command, errno: 'ENOENT', path: script },
  );
}

/**
 * Throws ERR_IO (EMFILE) unless the descriptors a spawn takes can be opened now. Node
 * reports a spawn that runs out of them as an 'error' event on a child process that
 * execa, failing at once on its missing pipes, never returns to listen on: an uncaught
 * error that ends this whole process, the controller a failed worker must never take
 * down. Nothing runs between this check and the spawn, which execa makes synchronously.
 */
function checkDescriptorsFree(context: string, job: WorkerJob): void {
  const failure = descriptorsShort(SPAWN_DESCRIPTORS);
  if (failure !== undefined) throw toWinLayerError(failure, context, { id: job.id, command: job.command });
}

function start(execa: Execa, job: WorkerJob, stdout: 'pipe' | number, stdin: 'pipe' | number, nodeOptions: readonly string[]) {
  const paths = job.command === 'view' ? [job.dest ?? '', ...job.parents] : job.parents;
  const cwd = workerCwd(job);
  // execa listens on its cancelSignal: one signal of its own per worker (derivedSignal).
  const cancel = job.signal === undefined ? undefined : derivedSignal(job.signal);
  const launch = () =>
    execa(process.execPath, [...nodeOptions, job.workerPath ?? WORKER_ENTRY, job.command, job.home, job.id, ...paths], {
    env: workerEnv(job.backend === undefined ? process.env : { ...process.env, [NATIVE_BACKEND_ENV]: job.backend }, nodeOptions.length > 0),
    extendEnv: false,
    ...(cwd === undefined ? {} : { cwd }),
    // execa takes a file descriptor number for stdin; its option types do not spell that case.
    stdio: [stdin as 'pipe', stdout as 'pipe', 'pipe', 'pipe'],
    ...(cancel === undefined ? {} : { cancelSignal: cancel.signal }),
    ...(job.timeout === undefined ? {} : { timeout: job.timeout }),
    forceKillAfterDelay: FORCE_KILL_AFTER_MS,
    reject: false,
    stripFinalNewline: false,
    encoding: 'utf8',
    buffer: { stdout: job.command === 'write-layer' && stdout === 'pipe', stderr: true, fd3: false },
  });
  let subprocess: ReturnType<typeof launch>;
  try {
    subprocess = launch();
  } catch (error) {
    cancel?.release();
    throw error;
  }
  if (cancel !== undefined) subprocess.then(cancel.release, cancel.release);
  return subprocess;
}

function watchProgress(stream: Readable | null | undefined, callersProgress: ((p: ImportProgress) => void) | undefined): ProgressWatch {
  const onProgress = quietProgress(callersProgress);
  const watch: ProgressWatch = { commit: undefined, closed: Promise.resolve() };
  if (stream === null || stream === undefined) return watch;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  watch.closed = new Promise((resolve) => {
    lines.once('close', resolve);
    stream.once('error', () => resolve());
  });
  lines.on('line', (line) => {
    try {
      const p = JSON.parse(line) as Partial<ImportProgress> & { commit?: Partial<CommitIdentity> };
      if (typeof p.entries === 'number' && typeof p.bytes === 'number') onProgress?.({ entries: p.entries, bytes: p.bytes });
      else if (typeof p.commit?.dev === 'string' && typeof p.commit.ino === 'string') watch.commit = { dev: p.commit.dev, ino: p.commit.ino };
    } catch {
      // a garbled progress line is not worth failing an import for
    }
  });
  return watch;
}

/** What a worker said on its progress pipe beside progress. */
interface ProgressWatch {
  /** The staging directory an import announced just before its commit rename. */
  commit: CommitIdentity | undefined;
  /** Settles once the worker's end of the pipe is closed (it exited), and every line was read. */
  closed: Promise<void>;
}

/** How long a dead worker's progress pipe may take to close (only a process it left behind would hold it). */
const PIPE_CLOSE_MS = 2000;

/**
 * The size of `job`'s layer when the worker that ended without printing it had committed
 * it (killed between the rename and the print): the layer's directory is the staging
 * directory the worker announced. Undefined when it did not commit, or the layer is not
 * that one (another import's, made meanwhile).
 */
async function committedSize(job: WorkerJob, watch: ProgressWatch): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([watch.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, PIPE_CLOSE_MS)))]);
  clearTimeout(timer);
  const commit = watch.commit;
  if (commit === undefined) return undefined;
  const dir = path.join(job.home, job.id);
  try {
    const st = fs.lstatSync(dir, { bigint: true });
    if (!st.isDirectory() || String(st.dev) !== commit.dev || String(st.ino) !== commit.ino) return undefined;
    return readLayerInfo(dir).size;
  } catch {
    return undefined;
  }
}

/** The error of a failed worker, from its result. */
export function errorFromResult(
  result: Pick<Result, 'timedOut' | 'isCanceled' | 'signal' | 'exitCode' | 'stderr' | 'failed'> & { cause?: unknown },
  job: Pick<WorkerJob, 'command' | 'id' | 'timeout' | 'startTimeout'>,
): WinLayerError {
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const tail = stderr.slice(-STDERR_TAIL_CHARS);
  const data = { id: job.id, command: job.command, exitCode: result.exitCode ?? null, signal: result.signal ?? null, stderr: tail };
  if (notStarted.has(job)) {
    return createError('ERR_WORKER_TIMEOUT', `${job.command} ${job.id}: the worker did not start within ${job.startTimeout ?? WORKER_START_MS} ms (a system out of processes or threads?)`, data);
  }
  if (result.timedOut) return createError('ERR_WORKER_TIMEOUT', `${job.command} ${job.id}: worker timed out after ${job.timeout} ms`, data);
  if (result.isCanceled) return createError('ERR_CANCELED', `${job.command} ${job.id}: canceled`, data);
  const last = stderr.trimEnd().split('\n').pop() ?? '';
  if (last.startsWith('{')) {
    try {
      return errorFromSerialized(JSON.parse(last));
    } catch {
      // not the protocol's JSON line: fall through to the generic worker error
    }
  }
  const cause = result.cause as NodeJS.ErrnoException | undefined;
  if (result.exitCode === undefined && (result.signal ?? undefined) === undefined && typeof cause?.code === 'string') {
    // No worker ran: the spawn itself failed (a descriptor to hand over that is not open: EBADF).
    return toWinLayerError(cause, `${job.command} ${job.id}: the worker could not be started`, data);
  }
  if (result.signal !== undefined && result.signal !== null) {
    // An import worker stops at a termination signal once it runs (ERR_CANCELED, its
    // staging removed); one that came before it could listen ended it: nothing committed
    // either (a commit found after such an end is reported by committedSize first).
    if (job.command === 'write-layer' && (STOP_SIGNALS as readonly string[]).includes(result.signal)) {
      return createError('ERR_CANCELED', `${job.command} ${job.id}: worker stopped by ${result.signal} as it started`, data);
    }
    return createError('ERR_WORKER_EXITED', `${job.command} ${job.id}: worker killed by ${result.signal}`, data);
  }
  return createError('ERR_WORKER_EXITED', `${job.command} ${job.id}: worker exited with code ${String(result.exitCode)} without an error report`, data);
}

/**
 * Removes what a killed import worker left (its staging directory, named with its pid).
 * Best effort: the worker's own error is the one to report, and what stays belongs to a
 * dead pid, so the next open or cleanup of the store removes it.
 */
export function removeStaging(home: string, id: string, pid: number | undefined): void {
  if (pid === undefined) return;
  let names: string[];
  try {
    names = fs.readdirSync(home);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(`${id}${IMPORTING_INFIX}${pid}-`)) continue;
    try {
      removeTreeSync(path.join(home, name));
    } catch {
      // left for the next sweep
    }
  }
}

/**
 * The file behind `source` when it is a file stream nobody has read from yet and that
 * covers the whole file: the worker can then read the file itself, as it does an fd
 * source, instead of every byte crossing the controller and a pipe. That doubles what an
 * import of a file moves per second (256 MiB: 0.90 s instead of 1.55 s here) and lets
 * parallel imports scale (two at once: 1.6–1.7× one instead of 1.2–1.4×).
 */
export function untouchedFileOf(source: TarSource): string | undefined {
  if (!(source instanceof fs.ReadStream)) return undefined;
  const s = source as fs.ReadStream & { start?: number; end?: number };
  if (typeof s.path !== 'string' || s.bytesRead !== 0 || s.destroyed || s.readableFlowing === true || s.readableLength > 0) return undefined;
  if ((s.start ?? 0) !== 0 || (s.end !== undefined && s.end !== Infinity)) return undefined;
  return s.path;
}

/** Opens the file of an untouched file stream for the worker; undefined when it cannot (the stream then reports why). */
function openWholeFile(source: TarSource): number | undefined {
  const file = untouchedFileOf(source);
  if (file === undefined) return undefined;
  try {
    return fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
}

/** Runs `write-layer` with `source` on stdin; resolves to the layer size. */
export async function runWriteLayerWorker(job: WorkerJob, source: TarSource): Promise<number> {
  const ownFd = openWholeFile(source);
  try {
    return await writeLayerFrom(job, ownFd === undefined ? source : { fd: ownFd });
  } finally {
    if (ownFd !== undefined) {
      fs.closeSync(ownFd);
      // The worker read the file: the stream is used up, and releases its own descriptor.
      (source as Readable).destroy();
    }
  }
}

/** How long the controller waits for a stream's first SMALL_TAR_BYTES before it starts the worker anyway. */
const PEEK_WAIT_MS = 100;

/**
 * Reads up to SMALL_TAR_BYTES of a stream before the worker starts, to learn whether the
 * whole tar is that small (SMALL_COMPRESSED_BYTES when compressed); hands back the bytes
 * read and the rest of the stream. A stream slower than PEEK_WAIT_MS is taken for a large one: its worker starts then, so timeouts
 * and cancellation keep their meaning, and start-up hides behind the wait for data.
 */
async function peekSmall(
  source: AsyncIterable<Uint8Array> | Readable,
  jobId: string,
  onCallerWait?: WorkerJob['onCallerWait'],
): Promise<{ small: boolean; stream: Readable; failure: () => unknown; release: () => void }> {
  const it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let bytes = 0;
  let ended = false;
  let pending: Promise<IteratorResult<Uint8Array>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<'waited'>((resolve) => {
    timer = setTimeout(() => resolve('waited'), PEEK_WAIT_MS);
  });
  try {
    while (bytes <= SMALL_TAR_BYTES) {
      pending = it.next();
      onCallerWait?.('input');
      const r = await Promise.race([pending, waited]).finally(() => onCallerWait?.(undefined));
      if (r === 'waited') break; // `pending` is replayed below
      pending = undefined;
      if (r.done === true) {
        ended = true;
        break;
      }
      const chunk = tarChunk(r.value);
      head.push(chunk);
      bytes += chunk.length;
    }
  } catch (error) {
    it.return?.()?.catch(() => undefined);
    throw toWinLayerError(error, `write-layer ${jobId}: reading the layer tar failed`, { id: jobId });
  } finally {
    clearTimeout(timer);
  }
  let failure: unknown;
  let done = ended;
  let released = false;
  // The source's next chunk; what goes wrong there is remembered as the source's failure
  // (an error the pipe's end throws into replay() at a yield is not, nor one that comes of
  // releasing the source).
  const read = async (next: Promise<IteratorResult<Uint8Array>>): Promise<Uint8Array | undefined> => {
    onCallerWait?.('input');
    try {
      const r = await next;
      return r.done === true ? undefined : tarChunk(r.value);
    } catch (error) {
      if (!released) failure = error;
      throw error;
    } finally {
      onCallerWait?.(undefined);
    }
  };
  async function* replay(): AsyncGenerator<Uint8Array> {
    try {
      yield* head;
      if (done) return;
      for (let chunk = await read(pending ?? it.next()); chunk !== undefined; chunk = await read(it.next())) yield chunk;
      done = true;
    } finally {
      // The worker stopped reading (it failed, or was killed): release the source.
      release();
    }
  }
  /** Releases the source unless it was read to its end (see releaseSource). */
  const release = (): void => {
    if (done || released) return;
    released = true;
    releaseSource(source, it);
  };
  return { small: ended && smallInput(firstBytes(head, 8), bytes), stream: Readable.from(replay(), { objectMode: false }), failure: () => failure, release };
}

/** The first `n` bytes of `chunks` (fewer when they hold fewer). */
function firstBytes(chunks: readonly Uint8Array[], n: number): Uint8Array {
  const out: number[] = [];
  for (const c of chunks) {
    for (let i = 0; i < c.length && out.length < n; i++) out.push(c[i] as number);
    if (out.length >= n) break;
  }
  return Uint8Array.from(out);
}

async function writeLayerFrom(job: WorkerJob, source: TarSource): Promise<number> {
  const direct = isFdSource(source);
  let defaultHeap: boolean;
  let stream: Readable | undefined;
  // The source failing mid-way (a stream error, a chunk that is not bytes) is what to
  // report, not the cut tar the worker would then see: the worker is stopped at once.
  let sourceFailure: () => unknown = () => undefined;
  let releaseSource = (): void => undefined;
  if (direct) {
    defaultHeap = prestartedDefaultHeap(source.fd) ?? fewEntriesIn(source.fd);
  } else {
    ({ small: defaultHeap, stream, failure: sourceFailure, release: releaseSource } = await peekSmall(source, job.id, job.onCallerWait));
  }
  // A small tar on a large chain can make the worker read much of the chain (an opaque
  // whiteout over a directory of 200,000 names peaked at 126 MiB with V8's defaults, 99 MiB
  // with the options): the parents' records count too (~10 ms more to start).
  if (defaultHeap && manyRecordsIn(job.parents)) defaultHeap = false;
  const { subprocess } = await spawn(job, 'pipe', direct ? source.fd : 'pipe', defaultHeap ? [] : MANY_ENTRIES_NODE_OPTIONS);
  const watch = watchProgress(subprocess.stdio[PROGRESS_FD] as Readable | undefined, job.onProgress);
  // A failure of the pipe that is not the source's is the worker no longer reading: its
  // own result says why.
  const feeding =
    stream === undefined
      ? Promise.resolve()
      : pipeline(stream, subprocess.stdin as Writable).catch(() => {
          if (sourceFailure() !== undefined) subprocess.kill();
        });
  const result = await subprocess;
  // The worker is done reading: a source it did not read to the end (it failed, was
  // canceled or timed out, or the tar ended before the source) is released now.
  releaseSource();
  await feeding;
  // A worker that committed read a whole tar (its end-of-archive and only zeros after it):
  // the layer stands, whatever the source did after that.
  const out = typeof result.stdout === 'string' ? result.stdout : '';
  // A worker prints the size only once its layer is committed: killed after that (a
  // cancellation that came as it finished), the layer is whole and stays, and so does the
  // import's success. ERR_CANCELED promises that nothing was committed.
  if (result.failed && (result.isCanceled || result.timedOut || result.signal !== undefined) && /^\d+\n$/.test(out)) return Number(out.trim());
  if (result.failed) {
    // Killed after the rename, before the size reached stdout: committed all the same.
    const size = await committedSize(job, watch);
    if (size !== undefined) return size;
    if (result.isCanceled || result.timedOut || result.signal !== undefined) removeStaging(job.home, job.id, subprocess.pid);
    const failed = sourceFailure();
    if (failed === undefined || result.isCanceled || result.timedOut) throw errorFromResult(result, job);
    throw toWinLayerError(failed, `${job.command} ${job.id}: reading the layer tar failed`, { id: job.id });
  }
  if (!/^\d+\n$/.test(out)) {
    throw createError('ERR_WORKER_PROTOCOL', `${job.command} ${job.id}: worker succeeded but printed ${JSON.stringify(out.slice(0, 100))} instead of a size`, {
      id: job.id,
      stdout: out.slice(0, 200),
    });
  }
  return Number(out.trim());
}

/**
 * Index records from which a worker that reads a view (the view, `changes`, a read-write
 * layer's export) runs with MANY_ENTRIES_NODE_OPTIONS. Below, the default young generation
 * does not grow far; a 105,000-entry layer (50,000 of them hard links) exported at
 * 108–111 MiB with V8's defaults and 73 MiB with the options, in about the same time.
 */
export const MANY_EXPORT_RECORDS = 20_000;

/**
 * Heap options for exporting `job.id`: a read-only layer's export always runs with
 * EXPORT_NODE_OPTIONS, since what it holds per entry is not told by its record count (a
 * layer of 500 files with 3,000 EAs each exported at 125 MiB with V8's defaults and 76 MiB
 * with them, paths 4,000 characters deep at 110 and 80 MiB; a 10-file export starts ~10 ms
 * later); a read-write layer's (no summary of its own) by the records of the parents whose
 * view it is compared with.
 */
export function exportHeapOptions(job: Pick<WorkerJob, 'home' | 'id' | 'parents'>): readonly string[] {
  return isReadOnlyLayer(path.join(job.home, job.id)) ? EXPORT_NODE_OPTIONS : MANY_ENTRIES_NODE_OPTIONS;
}

/**
 * Whether the layer at `root` is a read-only one (its summary reads). Anything else, a
 * read-write layer above all, holds what no count tells ahead: a container may have
 * written 200,000 files over a parent of ten, and V8's default heap took their export
 * to 299 MiB (173 with small semi-spaces).
 */
function isReadOnlyLayer(root: string): boolean {
  try {
    readLayerInfo(root);
    return true;
  } catch {
    return false;
  }
}

/**
 * The heap options of a worker that reads the indexes of `layers` (a view, a comparison):
 * many entries' options once they hold MANY_EXPORT_RECORDS records, or MANY_INDEX_BYTES of
 * index, whichever comes first: what a record holds is not told by their count (19,900
 * files with 3.6 KB paths mounted at 117 MiB with V8's defaults, 74 MiB with the options).
 */
function heapOptionsFor(layers: readonly string[]): readonly string[] {
  return manyRecordsIn(layers) ? MANY_ENTRIES_NODE_OPTIONS : [];
}

/** Bytes of index past which a worker reading it gets the many entries' options (see heapOptionsFor). */
export const MANY_INDEX_BYTES = 4 * 1024 * 1024;

/** Whether `layers` together hold MANY_EXPORT_RECORDS records or MANY_INDEX_BYTES of index (a layer that cannot be read counts none: its worker reports it). */
function manyRecordsIn(layers: readonly string[]): boolean {
  let records = 0;
  let bytes = 0;
  for (const layer of layers) {
    try {
      records += readLayerInfo(layer).records;
      bytes += fs.statSync(path.join(layer, INDEX_DIR, ENTRIES_FILE)).size;
    } catch {
      // the worker reports what is wrong with the layer
    }
    if (records >= MANY_EXPORT_RECORDS || bytes >= MANY_INDEX_BYTES) return true;
  }
  return false;
}

/**
 * Runs `export-layer` with its stdout on the open descriptor `fd` (a file or a pipe): the
 * tar goes straight from the worker to its destination. Resolves when the worker is done.
 */
export async function runExportLayerWorkerTo(job: WorkerJob, fd: number): Promise<void> {
  const { subprocess } = await spawn(job, fd, 'pipe', exportHeapOptions(job));
  watchProgress(subprocess.stdio[PROGRESS_FD] as Readable | undefined, job.onProgress);
  const result = await subprocess;
  if (result.failed) throw errorFromResult(result, job);
}

/**
 * Runs `view`: the worker writes the merged view of `job.parents` into a directory beside
 * `job.dest` named with its own pid, and renames it to `job.dest` when whole. A view
 * resolves every name of the chain in memory and writes every file, seconds of work for a
 * large layer: in a worker, the controller's event loop stays free and its heap small. A
 * worker that fails removes its directory; one that was killed (canceled, timed out, a
 * signal) cannot, and its directory is removed here.
 */
export async function runViewWorker(job: WorkerJob): Promise<void> {
  await runWithoutInput(job, heapOptionsFor(job.parents), (pid) => {
    if (job.dest !== undefined) removeViewLeftover(job.dest, pid);
  });
}

/** Removes the directory a killed view worker was writing beside `dest` (`<dest>-tmp-<pid>-<hex>`). */
function removeViewLeftover(dest: string, pid: number | undefined): void {
  if (pid === undefined) return;
  const dir = path.dirname(dest);
  const prefix = `${path.basename(dest)}-tmp-${pid}-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith(prefix)) removeTreeSync(path.join(dir, name));
}

/**
 * Runs a worker that reads no input, with the V8 options `heap`; its result, or its
 * error (after `killed` for a worker that was killed).
 */
async function runWithoutInput(job: WorkerJob, heap: readonly string[], killed?: (pid: number | undefined) => void, read?: (stdout: Readable) => Promise<void>) {
  const { subprocess } = await spawn(job, 'pipe', 'pipe', heap);
  watchProgress(subprocess.stdio[PROGRESS_FD] as Readable | undefined, job.onProgress);
  (subprocess.stdin as Writable | null)?.end();
  // Settles with what went wrong, so that a failed read waits (handled) for the worker's
  // result. A read that fails (its consumer threw, or the CLI's reader went away) kills the
  // worker: nobody reads its output any more, so it would block on a full pipe for ever.
  let stoppedByRead = false;
  const reading = read?.(subprocess.stdout as Readable).then(
    () => undefined,
    (error: unknown) => {
      stoppedByRead = subprocess.kill();
      return { error };
    },
  );
  const result = await subprocess;
  const readFailure = await reading;
  // What the caller's own callback threw is handed back as it is (it is not winlayer's).
  const readError = (): unknown =>
    readFailure?.error instanceof CallerError
      ? readFailure.error.cause
      : toWinLayerError(readFailure?.error, `${job.command} ${job.id}: reading the worker's output`, { id: job.id, command: job.command });
  if (result.failed) {
    if (result.isCanceled || result.timedOut || result.signal !== undefined) killed?.(subprocess.pid);
    // The reader's failure when it is what ended the worker (by the signal it sent); a
    // cancellation, a timeout or the worker's own failure otherwise.
    const endedByRead = stoppedByRead && readFailure !== undefined && !result.isCanceled && !result.timedOut && result.signal !== undefined;
    if (endedByRead) throw readError();
    throw errorFromResult(result, job);
  }
  // The worker's own error comes first: a read cut short by its death says less.
  if (readFailure !== undefined) throw readError();
  return result;
}

/** A failure of the caller's callback, carried through the read to be rethrown as it is. */
class CallerError extends Error {
  constructor(cause: unknown) {
    super('the caller stopped', { cause });
  }
}

/** A change as the `changes` worker prints it. */
export interface WorkerChange {
  path: string;
  kind: 'add' | 'modify' | 'delete';
}

/**
 * Runs `changes`: the layer's changes against `job.parents`, from the worker's JSON lines,
 * read as they come (a base layer's list, every entry it holds, is tens of MB of text).
 */
export async function runChangesWorker(job: WorkerJob, each?: (change: WorkerChange) => Promise<void> | void): Promise<WorkerChange[]> {
  const out: WorkerChange[] = [];
  let garbage: string | undefined;
  const read = async (stdout: Readable): Promise<void> => {
    const lines = createInterface({ input: stdout, crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === '' || garbage !== undefined) continue;
      const c = parseChange(line);
      if (c === undefined) garbage = line;
      else if (each === undefined) out.push(c);
      else {
        // Canceled: no change more for the callback, though the worker wrote them already.
        if (job.signal?.aborted === true) throw new CallerError(createError('ERR_CANCELED', `changes ${job.id}: canceled`, { id: job.id }));
        // Its pace is the worker's: the pipe fills while it waits.
        job.onCallerWait?.('caller');
        try {
          await each(c);
        } catch (error) {
          throw new CallerError(error);
        } finally {
          job.onCallerWait?.(undefined);
        }
      }
    }
  };
  const root = path.join(job.home, job.id);
  const heap = isReadOnlyLayer(root) ? heapOptionsFor([root, ...job.parents]) : MANY_ENTRIES_NODE_OPTIONS;
  await runWithoutInput(job, heap, undefined, read);
  if (garbage !== undefined) {
    throw createError('ERR_WORKER_PROTOCOL', `changes ${job.id}: the worker printed ${JSON.stringify(garbage.slice(0, 200))}, not a change`, { id: job.id, command: job.command });
  }
  return out;
}

/** One line of the `changes` worker as a change, or undefined when it is not one. */
function parseChange(line: string): WorkerChange | undefined {
  let c: Partial<WorkerChange> | undefined;
  try {
    c = JSON.parse(line) as Partial<WorkerChange> | undefined;
  } catch {
    return undefined;
  }
  if (typeof c?.path !== 'string' || (c.kind !== 'add' && c.kind !== 'modify' && c.kind !== 'delete')) return undefined;
  return { path: c.path, kind: c.kind };
}

/** Runs `export-layer`; the returned stream is the tar, and errors if the worker fails. */
export function runExportLayerWorker(job: WorkerJob): Readable {
  async function* tar(): AsyncGenerator<Buffer> {
    job.onCallerWait?.(undefined);
    const { subprocess } = await spawn(job, 'pipe', 'pipe', exportHeapOptions(job));
    watchProgress(subprocess.stdio[PROGRESS_FD] as Readable | undefined, job.onProgress);
    const stdout = subprocess.stdout as Readable;
    let drained = false;
    try {
      for await (const chunk of stdout) {
        // Suspended here for longer than a moment only while nobody reads the stream.
        job.onCallerWait?.('caller');
        yield chunk as Buffer;
        job.onCallerWait?.(undefined);
      }
      drained = true;
    } finally {
      // The consumer stopped early: the worker is no longer wanted.
      if (!drained && subprocess.exitCode === null) subprocess.kill();
    }
    const result = await subprocess;
    if (result.failed) throw errorFromResult(result, job);
    // The worker is done: what holds the slot now is the caller's reading of the rest.
    job.onCallerWait?.('caller');
  }
  // Nothing runs until the stream is first read.
  job.onCallerWait?.('caller');
  return Readable.from(tar(), { objectMode: false });
}
