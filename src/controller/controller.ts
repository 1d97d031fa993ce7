/**
 * The controller: runs worker jobs with bounded concurrency. The only module that
 * imports p-queue. A job waiting in the queue can be canceled by its AbortSignal
 * before it starts; a running one is canceled by killing its worker (spawn-worker).
 *
 * A running job can wait on its caller: an export whose stream nobody reads, a `changes`
 * whose callback has not returned, an import whose input gives no bytes. When the caller is
 * itself waiting for a queued job (it copies a layer, `applyDiff(b, diff(a))`, or awaits
 * another call in a `forEachChange` callback), neither would ever move: so when every
 * running job has waited on its caller for CALLER_WAIT_MS, one queued job starts beyond
 * the limit (#admit), up to as many again as the limit.
 */
import * as os from 'node:os';
import PQueue from 'p-queue';
import type { Readable } from 'node:stream';
import { createError } from '../errors.js';
import { checkDescriptor, checkTarSource, runChangesWorker, runExportLayerWorker, runExportLayerWorkerTo, runViewWorker, runWriteLayerWorker, type CallerWait, type TarSource, type WorkerChange, type WorkerJob } from './spawn-worker.js';
import type { WorkerCommand } from './protocol.js';
import { onAbort } from '../util/derived-signal.js';

/**
 * How long every running job must have waited on its caller before a queued job starts
 * beyond the limit. Long enough that a consumer that reads on, only slower than the
 * worker writes, does not count; short beside the work of any worker.
 */
export const CALLER_WAIT_MS = 50;

/** The longest timer Node keeps (a longer one fires after 1 ms). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** What a job in a queue slot is doing: working, or since when it has waited on its caller, and for what. */
interface RunningJob {
  wait: CallerWait | undefined;
  since: number;
}

/** A job in the queue, by its p-queue id. */
interface QueuedJob {
  readonly key: string;
  readonly command: WorkerCommand;
}

type Job = Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath' | 'onCallerWait'>;

export interface ControllerOptions {
  /**
   * How many workers may run at once. An integer ≥ 1.
   * @default the number of CPUs
   */
  readonly concurrency?: number | undefined;
  /** Kill a worker that runs longer than this (milliseconds, > 0 and at most MAX_TIMEOUT_MS, ~24.8 days). @default no timeout */
  readonly timeout?: number | undefined;
  /** Kill a worker that has not said it started after this many milliseconds (> 0 and at most MAX_TIMEOUT_MS). @default 30,000 */
  readonly startTimeout?: number | undefined;
  /**
   * The worker script: `dist/worker/start.cjs` of this package (`winlayer/worker`), for a
   * tool that bundles winlayer, where the default (found beside this module) is not
   * there; tests substitute misbehaving workers.
   */
  readonly workerPath?: string | undefined;
}

/** The concurrency of `options`, once every option is checked (ERR_ARGUMENT_INVALID naming the first that is wrong). */
export function checkControllerOptions(options: ControllerOptions): number {
  const concurrency = options.concurrency ?? Math.max(1, os.availableParallelism());
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw createError('ERR_ARGUMENT_INVALID', `Expected \`concurrency\` to be an integer >= 1, got \`${String(concurrency)}\` (${typeof concurrency})`);
  }
  checkTimeout('timeout', options.timeout);
  checkTimeout('startTimeout', options.startTimeout);
  if (options.workerPath !== undefined && (typeof options.workerPath !== 'string' || options.workerPath === '')) {
    throw createError('ERR_ARGUMENT_INVALID', `Expected \`workerPath\` to be a path, got \`${String(options.workerPath)}\` (${typeof options.workerPath})`);
  }
  return concurrency;
}

export class Controller {
  readonly #queue: PQueue;
  readonly #concurrency: number;
  readonly #timeout: number | undefined;
  readonly #startTimeout: number | undefined;
  readonly #workerPath: string | undefined;
  readonly #running = new Set<RunningJob>();
  /** In the order p-queue starts them. */
  readonly #queued: QueuedJob[] = [];
  #nextKey = 0;
  /** Slots lent beyond the limit (#admit), given back as jobs end. */
  #lent = 0;
  #admitTimer: NodeJS.Timeout | undefined;

  constructor(options: ControllerOptions = {}) {
    const concurrency = checkControllerOptions(options);
    this.#queue = new PQueue({ concurrency });
    this.#concurrency = concurrency;
    this.#timeout = options.timeout;
    this.#startTimeout = options.startTimeout;
    this.#workerPath = options.workerPath;
  }

  /** Jobs running and waiting. */
  get pending(): { running: number; queued: number } {
    // Queued: those not canceled (p-queue holds a canceled one until its turn).
    return { running: this.#queue.pending, queued: this.#queued.length };
  }

  #job(job: Omit<WorkerJob, 'timeout' | 'startTimeout' | 'workerPath'>): WorkerJob {
    return { ...job, timeout: this.#timeout, startTimeout: this.#startTimeout, workerPath: this.#workerPath };
  }

  /**
   * Runs `task` in a queue slot; `task` is handed what reports the job's waits on its
   * caller. The caller's signal removes a job that has not started (p-queue's own signal
   * would also abandon a running one, leaving its worker behind); a started job is
   * canceled by the worker's kill, which cleans up after itself.
   */
  async #schedule<T>(command: WorkerCommand, id: string, signal: AbortSignal | undefined, task: (onCallerWait: (wait: CallerWait | undefined) => void) => Promise<T>): Promise<T> {
    const beforeStart = new AbortController();
    let started = false;
    const queued: QueuedJob = { key: String(this.#nextKey++), command };
    const onAbortBeforeStart = (): void => {
      if (started) return;
      // Still in p-queue until its turn, but never one to start beyond the limit.
      this.#unqueue(queued);
      beforeStart.abort();
    };
    // Aborted already: the listener below would never hear it.
    if (isAborted(signal)) throw createError('ERR_CANCELED', `${command} ${id}: canceled before it started`, { id });
    const unhook = signal === undefined ? undefined : onAbort(signal, onAbortBeforeStart);
    this.#queued.push(queued);
    try {
      const added = this.#queue.add(
        async () => {
          started = true;
          this.#unqueue(queued);
          if (signal?.aborted === true) throw createError('ERR_CANCELED', `${command} ${id}: canceled before it started`, { id });
          const running: RunningJob = { wait: undefined, since: 0 };
          this.#running.add(running);
          try {
            return await task((wait) => this.#callerWait(running, wait));
          } finally {
            this.#running.delete(running);
            if (this.#lent > 0) {
              // Before p-queue counts this job out, so that it starts none in its place.
              this.#lent--;
              this.#queue.concurrency = this.#concurrency + this.#lent;
            }
            this.#watch();
          }
        },
        { id: queued.key, throwOnTimeout: true, signal: beforeStart.signal },
      );
      this.#watch();
      // p-queue keeps an aborted job until its turn, and rejects it only then: the caller
      // hears of the cancel now, and the job, when its turn comes, ends at once.
      const canceled = new Promise<never>((_resolve, reject) => {
        beforeStart.signal.addEventListener('abort', () => reject(createError('ERR_CANCELED', `${command} ${id}: canceled before it started`, { id })), { once: true });
      });
      added.catch(() => undefined);
      canceled.catch(() => undefined);
      return await Promise.race([added, canceled]);
    } catch (error) {
      if (!started && signal?.aborted === true) throw createError('ERR_CANCELED', `${command} ${id}: canceled before it started`, { id }, error);
      throw error;
    } finally {
      this.#unqueue(queued);
      unhook?.();
    }
  }



  #unqueue(job: QueuedJob): void {
    const at = this.#queued.indexOf(job);
    if (at >= 0) this.#queued.splice(at, 1);
  }

  /** A running job starts (`wait`) or stops (undefined) waiting on its caller. */
  #callerWait(job: RunningJob, wait: CallerWait | undefined): void {
    if (job.wait === wait) return;
    job.wait = wait;
    job.since = Date.now();
    if (wait !== undefined) this.#watch();
  }

  /** Arms #admit for when every running job will have waited CALLER_WAIT_MS, if they all wait and a job is queued. */
  #watch(): void {
    if (this.#admitTimer !== undefined || this.#queued.length === 0 || this.#running.size === 0) return;
    let latest = 0;
    for (const job of this.#running) {
      if (job.wait === undefined) return;
      latest = Math.max(latest, job.since);
    }
    this.#admitTimer = setTimeout(
      () => {
        this.#admitTimer = undefined;
        this.#admit();
      },
      Math.max(0, latest + CALLER_WAIT_MS - Date.now()),
    );
  }

  /**
   * Starts one queued job beyond the limit when every running job has waited on its caller
   * for CALLER_WAIT_MS: the caller may be waiting for that job. An export first when an
   * import waits for its input (the one thing of this controller that can feed it), else
   * the next in line. At most as many beyond the limit as the limit itself: readers that
   * only read slowly look like readers that wait, and twenty slow uploads at a limit of 2
   * ran twenty workers (1 GiB) before; any job, not exports alone, since the code that
   * feeds an import may itself be waiting for a `changes` or a mount.
   */
  #admit(): void {
    if (this.#queued.length === 0 || this.#running.size === 0 || this.#lent >= Math.max(2, this.#concurrency)) return;
    const now = Date.now();
    let inputOnly = false;
    for (const job of this.#running) {
      if (job.wait === undefined) return;
      if (now - job.since < CALLER_WAIT_MS) {
        this.#watch();
        return;
      }
      if (job.wait === 'input') inputOnly = true;
    }
    const next = (inputOnly ? this.#queued.find((q) => q.command === 'export-layer') : undefined) ?? this.#queued[0];
    if (next === undefined) return;
    this.#queue.setPriority(next.key, 1);
    this.#lent++;
    this.#queue.concurrency = this.#concurrency + this.#lent;
  }

  /** Imports through a worker once a slot is free; resolves to the layer size. */
  async writeLayer(job: Job, source: TarSource): Promise<number> {
    checkTarSource(source);
    return this.#schedule('write-layer', job.id, job.signal, (onCallerWait) => runWriteLayerWorker(this.#job({ ...job, command: 'write-layer', onCallerWait }), source));
  }

  /**
   * Exports through a worker once a slot is free; the slot is held until the tar stream
   * closes; while nobody reads the stream, the job waits on its caller.
   */
  exportLayer(job: Job): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      this.#schedule(
        'export-layer',
        job.id,
        job.signal,
        (onCallerWait) =>
          new Promise<void>((done) => {
            const stream = runExportLayerWorker(this.#job({ ...job, command: 'export-layer', onCallerWait }));
            stream.once('close', () => done());
            resolve(stream);
          }),
      ).catch(reject);
    });
  }

  /** Exports through a worker whose stdout is the open descriptor `fd`; resolves when it is written. */
  async exportLayerTo(job: Job, fd: number): Promise<void> {
    checkDescriptor(fd, `export-layer ${job.id}`);
    await this.#schedule('export-layer', job.id, job.signal, () => runExportLayerWorkerTo(this.#job({ ...job, command: 'export-layer' }), fd));
  }

  /** Makes `job.dest`, a new directory, the merged view of `job.parents` through a worker. */
  async materializeView(job: Job & { dest: string }): Promise<void> {
    await this.#schedule('view', job.id, job.signal, () => runViewWorker(this.#job({ ...job, command: 'view' })));
  }

  /** The changes of layer `job.id` against `job.parents`, listed by a worker; while `each` runs, the job waits on its caller. */
  async changes(job: Job, each?: (change: WorkerChange) => Promise<void> | void): Promise<WorkerChange[]> {
    return this.#schedule('changes', job.id, job.signal, (onCallerWait) => runChangesWorker(this.#job({ ...job, command: 'changes', onCallerWait }), each));
  }

  /** Waits until every job has finished. */
  async idle(): Promise<void> {
    await this.#queue.onIdle();
  }
}

/** Throws ERR_ARGUMENT_INVALID unless `value` is undefined or a timer length Node keeps: > 0 and at most MAX_TIMEOUT_MS. */
function checkTimeout(name: string, value: unknown): void {
  if (value === undefined || (typeof value === 'number' && value > 0 && value <= MAX_TIMEOUT_MS)) return;
  throw createError('ERR_ARGUMENT_INVALID', `Expected \`${name}\` to be a number > 0 and <= ${MAX_TIMEOUT_MS} (~24.8 days), got \`${String(value)}\` (${typeof value})`);
}

/** Whether `signal` is aborted (a call, not a property test TypeScript would narrow for the rest of the function). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
