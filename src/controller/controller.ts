/**
 * The controller: runs worker jobs with bounded concurrency. The only module that
 * imports p-queue. A job waiting in the queue can be canceled by its AbortSignal
 * before it starts; a running one is canceled by killing its worker (spawn-worker).
 */
import * as os from 'node:os';
import PQueue from 'p-queue';
import type { Readable } from 'node:stream';
import { createError } from '../errors.js';
import { checkTarSource, runChangesWorker, runExportLayerWorker, runExportLayerWorkerTo, runViewWorker, runWriteLayerWorker, type TarSource, type WorkerChange, type WorkerJob } from './spawn-worker.js';

export interface ControllerOptions {
  /**
   * How many workers may run at once. An integer ≥ 1.
   * @default the number of CPUs
   */
  readonly concurrency?: number;
  /** Kill a worker that runs longer than this (milliseconds, > 0). @default no timeout */
  readonly timeout?: number;
  /** Kill a worker that has not said it started after this many milliseconds (> 0). @default 30,000 */
  readonly startTimeout?: number;
  /** The worker script (tests substitute misbehaving workers). */
  readonly workerPath?: string;
}

export class Controller {
  readonly #queue: PQueue;
  readonly #timeout: number | undefined;
  readonly #startTimeout: number | undefined;
  readonly #workerPath: string | undefined;

  constructor(options: ControllerOptions = {}) {
    const concurrency = options.concurrency ?? Math.max(1, os.availableParallelism());
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`concurrency\` to be an integer >= 1, got \`${String(concurrency)}\` (${typeof concurrency})`);
    }
    if (options.timeout !== undefined && !(Number.isFinite(options.timeout) && options.timeout > 0)) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`timeout\` to be a number > 0, got \`${String(options.timeout)}\` (${typeof options.timeout})`);
    }
    if (options.startTimeout !== undefined && !(Number.isFinite(options.startTimeout) && options.startTimeout > 0)) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`startTimeout\` to be a number > 0, got \`${String(options.startTimeout)}\` (${typeof options.startTimeout})`);
    }
    this.#queue = new PQueue({ concurrency });
    this.#timeout = options.timeout;
    this.#startTimeout = options.startTimeout;
    this.#workerPath = options.workerPath;
  }

  /** Jobs running and waiting. */
  get pending(): { running: number; queued: number } {
    return { running: this.#queue.pending, queued: this.#queue.size };
  }

  #job(job: Omit<WorkerJob, 'timeout' | 'startTimeout' | 'workerPath'>): WorkerJob {
    return { ...job, timeout: this.#timeout, startTimeout: this.#startTimeout, workerPath: this.#workerPath };
  }

  /**
   * Runs `task` in a queue slot. The caller's signal removes a job that has not started
   * (p-queue's own signal would also abandon a running one, leaving its worker behind);
   * a started job is canceled by the worker's kill, which cleans up after itself.
   */
  async #schedule<T>(what: string, id: string, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    const beforeStart = new AbortController();
    let started = false;
    const onAbort = (): void => {
      if (!started) beforeStart.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.#queue.add(
        () => {
          started = true;
          if (signal?.aborted === true) throw createError('ERR_CANCELED', `${what} ${id}: canceled before it started`, { id });
          return task();
        },
        { throwOnTimeout: true, signal: beforeStart.signal },
      );
    } catch (error) {
      if (!started && signal?.aborted === true) throw createError('ERR_CANCELED', `${what} ${id}: canceled before it started`, { id }, error);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Imports through a worker once a slot is free; resolves to the layer size. */
  async writeLayer(job: Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath'>, source: TarSource): Promise<number> {
    checkTarSource(source);
    return this.#schedule('write-layer', job.id, job.signal, () => runWriteLayerWorker(this.#job({ ...job, command: 'write-layer' }), source));
  }

  /** Exports through a worker once a slot is free; the slot is held until the tar stream closes. */
  exportLayer(job: Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath'>): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      this.#schedule(
        'export-layer',
        job.id,
        job.signal,
        () =>
          new Promise<void>((done) => {
            const stream = runExportLayerWorker(this.#job({ ...job, command: 'export-layer' }));
            stream.once('close', () => done());
            resolve(stream);
          }),
      ).catch(reject);
    });
  }

  /** Exports through a worker whose stdout is the open descriptor `fd`; resolves when it is written. */
  async exportLayerTo(job: Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath'>, fd: number): Promise<void> {
    await this.#schedule('export-layer', job.id, job.signal, () => runExportLayerWorkerTo(this.#job({ ...job, command: 'export-layer' }), fd));
  }

  /** Makes `job.dest`, a new directory, the merged view of `job.parents` through a worker. */
  async materializeView(job: Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath'> & { dest: string }): Promise<void> {
    await this.#schedule('view', job.id, job.signal, () => runViewWorker(this.#job({ ...job, command: 'view' })));
  }

  /** The changes of layer `job.id` against `job.parents`, listed by a worker. */
  async changes(job: Omit<WorkerJob, 'command' | 'timeout' | 'startTimeout' | 'workerPath'>, each?: (change: WorkerChange) => Promise<void> | void): Promise<WorkerChange[]> {
    return this.#schedule('changes', job.id, job.signal, () => runChangesWorker(this.#job({ ...job, command: 'changes' }), each));
  }

  /** Waits until every job has finished. */
  async idle(): Promise<void> {
    await this.#queue.onIdle();
  }
}
