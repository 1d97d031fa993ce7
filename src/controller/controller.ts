/**
 * The controller: runs worker jobs with bounded concurrency. The only module that
 * imports p-queue. A job waiting in the queue can be canceled by its AbortSignal
 * before it starts; a running one is canceled by killing its worker (spawn-worker).
 */
import * as os from 'node:os';
import PQueue from 'p-queue';
import type { Readable } from 'node:stream';
import { createError } from '../errors.js';
import { runExportLayerWorker, runWriteLayerWorker, type WorkerJob } from './spawn-worker.js';

export interface ControllerOptions {
  /**
   * How many workers may run at once. An integer ≥ 1.
   * @default the number of CPUs
   */
  readonly concurrency?: number;
  /** Kill a worker that runs longer than this (milliseconds, > 0). @default no timeout */
  readonly timeout?: number;
  /** The worker script (tests substitute misbehaving workers). */
  readonly workerPath?: string;
}

export class Controller {
  readonly #queue: PQueue;
  readonly #timeout: number | undefined;
  readonly #workerPath: string | undefined;

  constructor(options: ControllerOptions = {}) {
    const concurrency = options.concurrency ?? Math.max(1, os.availableParallelism());
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`concurrency\` to be an integer >= 1, got \`${String(concurrency)}\` (${typeof concurrency})`);
    }
    if (options.timeout !== undefined && !(Number.isFinite(options.timeout) && options.timeout > 0)) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`timeout\` to be a number > 0, got \`${String(options.timeout)}\` (${typeof options.timeout})`);
    }
    this.#queue = new PQueue({ concurrency });
    this.#timeout = options.timeout;
    this.#workerPath = options.workerPath;
  }

  /** Jobs running and waiting. */
  get pending(): { running: number; queued: number } {
    return { running: this.#queue.pending, queued: this.#queue.size };
  }

  #job(job: Omit<WorkerJob, 'timeout' | 'workerPath'>): WorkerJob {
    return { ...job, timeout: this.#timeout, workerPath: this.#workerPath };
  }

  /** Imports through a worker once a slot is free; resolves to the layer size. */
  async writeLayer(job: Omit<WorkerJob, 'command' | 'timeout' | 'workerPath'>, source: AsyncIterable<Uint8Array> | Readable): Promise<number> {
    const run = (): Promise<number> => runWriteLayerWorker(this.#job({ ...job, command: 'write-layer' }), source);
    try {
      return await this.#queue.add(run, { throwOnTimeout: true, ...(job.signal === undefined ? {} : { signal: job.signal }) });
    } catch (error) {
      if (job.signal?.aborted === true && !(typeof error === 'object' && error !== null && 'code' in error)) {
        throw createError('ERR_CANCELED', `write-layer ${job.id}: canceled before it started`, { id: job.id }, error);
      }
      throw error;
    }
  }

  /** Exports through a worker once a slot is free; the slot is held until the tar stream closes. */
  exportLayer(job: Omit<WorkerJob, 'command' | 'timeout' | 'workerPath'>): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      const run = (): Promise<void> =>
        new Promise<void>((done) => {
          const stream = runExportLayerWorker(this.#job({ ...job, command: 'export-layer' }));
          stream.once('close', () => done());
          resolve(stream);
        });
      this.#queue.add(run, { throwOnTimeout: true, ...(job.signal === undefined ? {} : { signal: job.signal }) }).catch((error: unknown) => {
        reject(job.signal?.aborted === true ? createError('ERR_CANCELED', `export-layer ${job.id}: canceled before it started`, { id: job.id }, error) : error);
      });
    });
  }

  /** Waits until every job has finished. */
  async idle(): Promise<void> {
    await this.#queue.onIdle();
  }
}
