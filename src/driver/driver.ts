/**
 * WindowsFilterDriver: the graph-driver surface of Docker's windowsfilter (DESIGN.md §6,
 * FORMATS.md §4.2) over a winlayer store. Imports and exports run in worker processes
 * through the controller (execa + p-queue), as windowsfilter re-execs
 * `docker-windows-write-layer`; `WINLAYER_NOREEXEC=1` runs them in this process instead
 * (debugging only, as DOCKER_WINDOWSFILTER_NOREEXEC).
 *
 * Layers are read-only (imported with applyDiff, or made empty by create) or read-write
 * (createReadWrite: a writable directory on top of the parent view, made at the first get).
 *
 * Example:
 *   const driver = await WindowsFilterDriver.open({ home: '/var/lib/winlayer' });
 *   const { size } = await driver.applyDiff('l1', undefined, fs.createReadStream('l1.tar'));
 *   await driver.createReadWrite('c1', 'l1');
 *   const dir = await driver.get('c1');   // edit files under dir …
 *   driver.diff('c1').pipe(fs.createWriteStream('c1.tar'));   // … and get a Windows layer tar
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { onAbort } from '../util/derived-signal.js';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImportProgress } from '../convert/import-tar.js';
import { checkControllerOptions, Controller } from '../controller/controller.js';
import { checkDescriptor, checkTarSource, isFdSource, type TarSource } from '../controller/spawn-worker.js';
import { noReexecAsked } from '../controller/protocol.js';
import { DATA_STREAM_TYPE, hasDataStreamType } from '../convert/tar-header.js';
import { createError, isWinLayerError, toWinLayerError, type WinLayerError } from '../errors.js';
import { indexEntriesSync, indexEntryAt, readLayerInfo, type IndexEntry, type LayerInfo } from '../layer/metadata-index.js';
import type { ByteRange } from '../layer/layer-reader.js';
import { descriptorWritable, readDescriptor } from '../util/descriptor.js';
import { releasableSource, releaseUnread } from '../util/release-source.js';
import type { LineSpan } from '../util/lines.js';
import { MUTATED_UTILITY_VM_FILES } from '../layer/utility-vm.js';
import type { BackendName, NativeBackend } from '../native/backend.js';
import { readFileRange } from '../native/portable.js';
import { isBackendName, NATIVE_BACKEND_ENV, selectBackend } from '../native/select.js';
import { exportLayer, importLayer } from '../store/layer-ops.js';
import { directoryIdentity, finishCleanup, IMPORTING_INFIX, isLayerId, isWorkName, LayerStore, listStore, ownerAlive, ownerPid, present, REMOVING_SUFFIX, REPLACING_INFIX, validateLayerId, type Sweep } from '../store/layer-store.js';
import { caseFoldKey, parseLayerPath } from '../util/safe-path.js';
import { MountTable, MOUNTS_DIR } from './mounts.js';
import { refuseReFS } from './refs.js';
import { isReadWriteLayer, isWritableMarked, layerChanges, markWritableMade, readWriteLayerTar, RW_DIR, RW_INFO, type Change } from './rw-diff.js';
import { parseStorageOptions, type StorageOptions } from './storage-opt.js';
import { itemOf, materializeView, resolveView, ViewEntry } from './view.js';
import { mountPointsWithin, removeTreeGuarded } from '../util/remove-tree.js';
import { checkFunction, checkOptions, checkString, isOptionsObject, quietProgress, shown } from '../util/options.js';

export type { Change, ChangeKind } from './rw-diff.js';

export interface DriverOptions {
  readonly home: string;
  /** Workers that may run at once. @default the number of CPUs */
  readonly concurrency?: number | undefined;
  /** Kill a worker that runs longer than this many milliseconds. @default none */
  readonly timeout?: number | undefined;
  /** Kill a worker that has not started after this many milliseconds (ERR_WORKER_TIMEOUT). @default 30,000 */
  readonly startTimeout?: number | undefined;
  /**
   * The backend that writes and reads layers: `'portable'`, `'edge'`, or a NativeBackend of
   * one of those names. Workers run the backend of its name (WINLAYER_NATIVE in their
   * environment); in process, this object. Anything else is ERR_ARGUMENT_INVALID.
   * @default selectBackend(): WINLAYER_NATIVE, else edge on Windows and portable elsewhere
   */
  readonly backend?: NativeBackend | BackendName | undefined;
  /** Remove crash leftovers on open (staging of dead processes, half-made mounts), best effort. @default true */
  readonly cleanup?: boolean | undefined;
  /** Run imports and exports in this process. @default process.env.WINLAYER_NOREEXEC is set, to anything but empty or `0` */
  readonly inProcess?: boolean | undefined;
  /** The worker script: for a tool that bundles winlayer, the path `winlayer/worker` resolves to (ControllerOptions.workerPath). */
  readonly workerPath?: string | undefined;
}

export interface ApplyDiffOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
}

export interface ApplyDiffResult {
  size: number;
  entries: number;
  digest: string;
}

export interface CreateOptions {
  /** `{size: '20GB'}` or `['size=20GB']` (read-write layers only). */
  readonly storageOpt?: Readonly<Record<string, string>> | readonly string[] | undefined;
}

/** One row of `list()`. */
export interface LayerListing {
  id: string;
  kind: 'read-only' | 'read-write';
  /** The nearest parent's id, or null for a base layer. */
  parent: string | null;
  /** Read-only layers: data size, tar entries, tar digest. */
  size: number | null;
  entries: number | null;
  digest: string | null;
  /** Mount count. */
  mounted: number;
  /**
   * True when the layer's `layerchain.json` cannot be used (not JSON, or naming anything but
   * a layer of this store): its parent is then unknown (`parent` null), and what reads the
   * chain (changes, get, diff, a layer made on it) fails with ERR_LAYER_CORRUPT. Also when a
   * read-only layer's `layer.json` cannot be read or used: its size, entries and digest are
   * then null.
   */
  corrupt: boolean;
}

/** What diffGetter returns: the bytes of a tar entry by its name. */
export interface FileGetter {
  get(name: string): Readable;
  close(): void;
}

/** ERR_ARGUMENT_INVALID for a layer named as its own parent (applyDiff onto a layer `create` made would set it aside, then miss it as the parent). */
function checkNotOwnParent(id: string, parentId: string | undefined): void {
  if (parentId === id) throw createError('ERR_ARGUMENT_INVALID', `layer ${id} cannot be its own parent`, { id });
}

/** `.winlayer/rw.json` of a read-write layer. */
interface ReadWriteInfo {
  version: 1;
  id: string;
  kind: 'read-write';
  parent: string | null;
  storage: StorageOptions;
}

const INDEX_DIR = '.winlayer';
/** What the options of a worker's job (applyDiff, diff, diffTo) must be. */
const JOB_OPTIONS = { signal: 'signal', onProgress: 'function' } as const;
/** The sandbox size windowsfilter gives a read-write layer when none is asked for. */
export const DEFAULT_SANDBOX_SIZE = 127 * 2 ** 30;

export class WindowsFilterDriver {
  readonly store: LayerStore;
  readonly backend: NativeBackend;
  readonly #controller: Controller;
  readonly #inProcess: boolean;
  readonly #mounts: MountTable;
  /** The backend workers are told to run: the one open was given; unset, they choose by their environment. */
  readonly #workerBackend: BackendName | undefined;

  private constructor(store: LayerStore, backend: NativeBackend, options: DriverOptions) {
    this.store = store;
    this.backend = backend;
    this.#workerBackend = options.backend === undefined ? undefined : backend.name;
    this.#inProcess = options.inProcess ?? noReexecAsked();
    this.#controller = new Controller({
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.startTimeout === undefined ? {} : { startTimeout: options.startTimeout }),
      ...(options.workerPath === undefined ? {} : { workerPath: options.workerPath }),
    });
    this.#mounts = new MountTable(store.home);
  }

  /**
   * Opens the store at `home` (created with mode 0700), removing `-importing-` and
   * `-removing` leftovers of dead processes and half-made mounts; on Windows a home on
   * ReFS is refused. The sweep is best effort: a leftover that cannot be removed stays
   * for the next open (cleanup() reports it) and never fails this one.
   */
  static async open(options: DriverOptions): Promise<WindowsFilterDriver> {
    if (typeof options !== 'object' || options === null) throw createError('ERR_ARGUMENT_INVALID', 'Expected options `{ home }`');
    const backend = backendOf(options.backend);
    // Every option is checked before the store is made: a wrong one leaves no directory behind.
    checkControllerOptions(options);
    for (const name of ['cleanup', 'inProcess'] as const) {
      const v: unknown = options[name];
      if (v !== undefined && typeof v !== 'boolean') throw createError('ERR_ARGUMENT_INVALID', `Expected \`${name}\` to be a boolean or undefined, got ${shown(v)}`, { option: name });
    }
    const cleanup = options.cleanup !== false;
    refuseReFS(options.home);
    const store = await LayerStore.open(options.home, { cleanup });
    const driver = new WindowsFilterDriver(store, backend, options);
    // What it could not remove is left for later, not reported: see open's comment.
    if (cleanup) await driver.#cleanMounts();
    return driver;
  }

  get home(): string {
    return this.store.home;
  }

  /** Workers running and queued. */
  get workers(): { running: number; queued: number } {
    return this.#controller.pending;
  }

  // ---- existence and metadata ----------------------------------------------------------

  #isReadWrite(id: string): boolean {
    return isReadWriteLayer(this.store.layerPath(id));
  }

  /** True when `id` is a layer (read-only or read-write). */
  exists(id: string): boolean {
    validateLayerId(id);
    return this.store.exists(id) || this.#isReadWrite(id);
  }

  #require(id: string): void {
    if (!this.exists(id)) throw createError('ERR_LAYER_NOT_FOUND', `layer ${id} does not exist`, { id });
  }

  /** `{dir}`: the layer directory, as windowsfilter's GetMetadata. */
  getMetadata(id: string): { dir: string } {
    this.#require(id);
    return { dir: this.store.layerPath(id) };
  }

  /** Key/value pairs describing the driver. A layer this user may not read is ERR_IO, as for exists and list, not left out of the counts. */
  status(): [string, string][] {
    const names = listStore(this.home).filter((n) => !n.startsWith('.') && !isWorkName(n) && isLayerId(n));
    const rw = names.filter((n) => present(path.join(this.home, n, INDEX_DIR, RW_INFO), `layer ${n}`)).length;
    const ro = names.filter((n) => present(path.join(this.home, n, INDEX_DIR, 'layer.json'), `layer ${n}`)).length;
    return [
      ['Driver', 'windowsfilter (winlayer)'],
      ['Backend', this.backend.name],
      ['Home', this.home],
      ['Read-only layers', String(ro)],
      ['Read-write layers', String(rw)],
      ['Mounted', String(this.#mounts.mounted().length)],
      ['Workers', this.#inProcess ? 'in process' : 're-exec'],
    ];
  }

  // ---- creation ------------------------------------------------------------------------

  #parentChain(parentId: string | undefined): string[] {
    if (parentId === undefined || parentId === '') return [];
    validateLayerId(parentId, 'parent');
    if (this.#isReadWrite(parentId)) throw createError('ERR_ARGUMENT_INVALID', `parent ${parentId} is a read-write layer: only read-only layers can be parents`, { id: parentId });
    return this.store.chainFor(parentId);
  }

  /** An empty read-only layer on `parentId` (windowsfilter Create); applyDiff may fill it later. */
  async create(id: string, parentId?: string, options?: CreateOptions): Promise<void> {
    validateLayerId(id);
    checkNotOwnParent(id, parentId);
    parseStorageOptions(checkOptions(options, 'options').storageOpt);
    if (this.exists(id)) throw createError('ERR_LAYER_EXISTS', `layer ${id} already exists`, { id });
    this.#refuseIfSetAside(id);
    const parents = this.#parentChain(parentId);
    await importLayer(this.store, this.backend, id, emptyTar(), { parents });
  }

  /** A read-write layer on `parentId` (windowsfilter CreateReadWrite); storage option `size`. */
  async createReadWrite(id: string, parentId?: string, options?: CreateOptions): Promise<void> {
    validateLayerId(id);
    checkNotOwnParent(id, parentId);
    const storage = parseStorageOptions(checkOptions(options, 'options').storageOpt);
    if (this.exists(id)) throw createError('ERR_LAYER_EXISTS', `layer ${id} already exists`, { id });
    this.#refuseIfSetAside(id);
    const parents = this.#parentChain(parentId);
    const stage = await this.store.beginImport(id, parents);
    try {
      fs.mkdirSync(path.join(stage.path, INDEX_DIR));
      const info: ReadWriteInfo = { version: 1, id, kind: 'read-write', parent: parentId ?? null, storage: { size: storage.size ?? DEFAULT_SANDBOX_SIZE } };
      fs.writeFileSync(path.join(stage.path, INDEX_DIR, RW_INFO), JSON.stringify(info));
      await this.store.commit(stage, parents);
    } catch (error) {
      await this.store.abort(stage);
      throw toWinLayerError(error, `create-rw ${id} failed`, { id });
    }
  }

  // ---- import and export ----------------------------------------------------------------

  /** What a worker job of layer `id` needs from this driver and the caller's options. */
  #workerJob(id: string, parents: readonly string[], options: { signal?: AbortSignal | undefined; onProgress?: ((p: ImportProgress) => void) | undefined } = {}) {
    return {
      home: this.home,
      id,
      parents,
      ...(this.#workerBackend === undefined ? {} : { backend: this.#workerBackend }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    };
  }

  /**
   * Imports `tar` as layer `id` on `parentId` through a worker. `tar` is a stream or
   * iterable of bytes, or `{fd}`: an open file or pipe the worker reads directly. An empty
   * layer made by create() is replaced; any other existing layer is an error. A stream or
   * iterable is let go of (destroyed, canceled) when the import fails, also before it read
   * any of it (a bad id, a missing parent, a cancel while queued); `{fd}` stays the caller's.
   */
  async applyDiff(id: string, parentId: string | undefined, tar: TarSource, options?: ApplyDiffOptions): Promise<ApplyDiffResult> {
    if (tar instanceof ReadableStream && tar.locked) {
      throw createError('ERR_ARGUMENT_INVALID', 'the layer tar is a web ReadableStream already being read (locked): pass one nobody reads', { id: String(id) });
    }
    // A web stream is read as the Node stream made of it, whose destruction cancels it.
    const source = releasableSource(tar);
    // Heard from now on: a source that fails while its job waits in the queue (an upload
    // cut off, a file that is not there) must not reach its process as an uncaught error.
    // The import reports it when it reads the source.
    const unheard = (): void => undefined;
    if (source instanceof EventEmitter) source.on('error', unheard);
    try {
      const result = await this.#applyDiff(id, parentId, source, options);
      if (source instanceof EventEmitter) source.off('error', unheard);
      return result;
    } catch (error) {
      if (source instanceof EventEmitter) source.off('error', unheard);
      releaseUnread(source);
      throw error;
    }
  }

  async #applyDiff(id: string, parentId: string | undefined, tar: TarSource, options: ApplyDiffOptions | undefined): Promise<ApplyDiffResult> {
    validateLayerId(id);
    checkNotOwnParent(id, parentId);
    checkTarSource(tar);
    const { signal, onProgress } = checkOptions(options, 'options', JOB_OPTIONS);
    const parents = this.#parentChain(parentId);
    let aside: string | undefined;
    if (this.exists(id)) {
      // Under the mount lock: a mount of the empty layer being made, or a second applyDiff
      // of the same id, waits or sees the layer gone (a second import then fails at its
      // commit with ERR_LAYER_EXISTS, or makes the layer if the first failed).
      aside = await this.#mounts.withLock(id, async () => {
        if (!this.exists(id)) return undefined;
        if (this.#isReadWrite(id) || readLayerInfo(this.store.layerPath(id)).records > 0) {
          throw createError('ERR_LAYER_EXISTS', `layer ${id} already exists`, { id });
        }
        if (this.#mounts.refs(id) > 0) throw createError('ERR_LAYER_IN_USE', `layer ${id} is mounted`, { id });
        // Layers made on the empty one would change under their users: refused as remove refuses.
        const dir = this.store.layerPath(id);
        this.#refuseIfParent(id, dir, '');
        // Named with this process's pid: if it dies mid-import, the next open puts the layer back.
        const name = await this.store.setAside(id);
        workingCopies.add(path.basename(name));
        // One made on it between that look and the rename sees it again, and so does this.
        try {
          this.#refuseIfParent(id, dir, ', made while an import was to replace it');
        } catch (error) {
          workingCopies.delete(path.basename(name));
          await fsp.rename(name, dir).catch((cause: unknown) => {
            throw toWinLayerError(cause, `layer ${id}: cannot put it back after finding a child`, { id });
          });
          throw error;
        }
        return name;
      });
    }
    if (aside === undefined) this.#refuseIfSetAside(id);
    let committed = false;
    try {
      if (this.#inProcess) {
        const source = isFdSource(tar) ? readDescriptor(tar.fd) : tar;
        const r = await importLayer(this.store, this.backend, id, source, { parents, signal, onProgress });
        committed = true;
        return { size: r.size, entries: r.entries, digest: r.digest };
      }
      const size = await this.#controller.writeLayer(this.#workerJob(id, parents, { signal, onProgress }), tar);
      committed = true;
      const info = this.#layerInfo(id);
      return { size, entries: info.entries, digest: info.digest };
    } catch (error) {
      if (aside !== undefined && !committed && !fs.existsSync(this.store.layerPath(id))) await fsp.rename(aside, this.store.layerPath(id)).catch(() => undefined);
      throw error;
    } finally {
      if (aside !== undefined) {
        workingCopies.delete(path.basename(aside));
        // Only once this import committed: a copy that could not go back stays, the layer
        // itself, for remove or the next open to put back (a layer of that id made by
        // someone else meanwhile is not this one). Best effort: the import's outcome stands.
        if (committed) await removeTreeGuarded(aside).catch(() => undefined);
      }
    }
  }

  /**
   * The layer as a Windows layer tar, made by a worker: a read-only layer's export, or a
   * read-write layer's changes against its parent.
   */
  diff(id: string, _parentId?: string, options?: ApplyDiffOptions): Readable {
    validateLayerId(id);
    const { signal: callers, onProgress } = checkOptions(options, 'options', JOB_OPTIONS);
    // The stream destroyed before its end (a client that went away) cancels its job too: one
    // still queued never starts a worker. The caller's signal is followed through onAbort,
    // which lets go when the stream closes: AbortSignal.any kept a reference in the caller's
    // signal for every export made with it (a daemon's one signal grew ~65 bytes a call).
    const destroyed = new AbortController();
    const signal = destroyed.signal;
    let unfollow: (() => void) | undefined;
    if (callers?.aborted === true) destroyed.abort(callers.reason);
    else if (callers !== undefined) unfollow = onAbort(callers, () => destroyed.abort(callers.reason));
    const self = this;
    async function* tar(): AsyncGenerator<Uint8Array> {
      self.#require(id);
      if (self.#inProcess) {
        yield* self.#isReadWrite(id) ? readWriteLayerTar(self.store.layerPath(id), self.store.readChain(id), quietProgress(onProgress)) : exportLayer(self.store, self.backend, id, { signal, onProgress });
        return;
      }
      // A read-write layer's worker compares its directory with the parent view there.
      const stream = await self.#controller.exportLayer(self.#workerJob(id, self.store.readChain(id), { signal, onProgress }));
      yield* stream as AsyncIterable<Uint8Array>;
    }
    const out = Readable.from(tar(), { objectMode: false });
    // At destroy, not at 'close': a stream made of a generator closes only once the
    // generator has returned, which a job waiting for its turn does when the turn comes.
    const destroy = out._destroy.bind(out);
    out._destroy = (error, callback) => {
      if (!out.readableEnded) destroyed.abort();
      destroy(error, callback);
    };
    out.once('close', () => unfollow?.());
    return out;
  }

  /**
   * Writes the layer tar to the open descriptor `fd` (a file or a pipe). A read-only
   * layer's worker writes it there itself, with no copy through this process.
   */
  async diffTo(id: string, fd: number, options?: ApplyDiffOptions): Promise<void> {
    validateLayerId(id);
    const { signal, onProgress } = checkOptions(options, 'options', JOB_OPTIONS);
    checkDescriptor(fd, `export-layer ${id}`);
    this.#require(id);
    if (this.#inProcess) {
      let outError: NodeJS.ErrnoException | undefined;
      const out = descriptorWritable(fd, (error) => (outError = error));
      // The signal ends the copy too, inside an entry: the export itself looks only between entries.
      await pipeline(this.diff(id, undefined, options), out, ...(signal === undefined ? [] : [{ signal }])).catch((error: unknown) => {
        if (signal?.aborted === true && outError === undefined) throw createError('ERR_CANCELED', `export-layer ${id}: canceled`, { id }, error);
        // Marked as a worker marks a failed write to its stdout, which is `fd` there; a
        // failure of the export itself is that failure.
        if (outError === undefined) throw error;
        throw createError('ERR_IO', `export-layer ${id}: writing to descriptor ${fd} failed: ${outError.message}`, { id, errno: outError.code ?? null, stream: 'stdout' }, outError);
      });
      return;
    }
    await this.#controller.exportLayerTo(this.#workerJob(id, this.store.readChain(id), { signal, onProgress }), fd);
  }

  /**
   * What the layer changes against its parent. Unlike windowsfilter, which reports every
   * change as a modification, additions and modifications are told apart by looking at
   * the parent chain.
   */
  async changes(id: string, _parentId?: string): Promise<Change[]> {
    this.#require(id);
    return this.#whileThere(id, async () => {
      const chain = this.store.readChain(id);
      // The whole chain's names, and for a read-write layer a stat of every file: in a worker.
      if (this.#inProcess) return [...layerChanges(this.store.layerPath(id), chain)];
      return this.#controller.changes(this.#workerJob(id, chain));
    });
  }

  /**
   * `work` on layer `id`; when it fails and the layer is gone meanwhile (another process
   * removed it), ERR_LAYER_NOT_FOUND: what failed was reading a layer being deleted.
   * A cancellation, and an error `passOn` names (a caller's own), go on as they are.
   */
  async #whileThere<T>(id: string, work: () => Promise<T>, passOn?: (error: unknown) => boolean): Promise<T> {
    const identity = this.#identity(id);
    try {
      return await work();
    } catch (error) {
      if ((isWinLayerError(error) && error.code === 'ERR_CANCELED') || passOn?.(error) === true) throw error;
      throw this.#unlessGone(id, error, identity);
    }
  }

  /** The summary of read-only layer `id` (ERR_LAYER_NOT_FOUND when it is removed meanwhile). */
  #layerInfo(id: string): LayerInfo {
    const identity = this.#identity(id);
    try {
      return readLayerInfo(this.store.layerPath(id));
    } catch (error) {
      throw this.#unlessGone(id, error, identity);
    }
  }

  /** Which directory layer `id` is now (directoryIdentity); undefined when there is none. */
  #identity(id: string): string | undefined {
    return directoryIdentity(this.store.layerPath(id));
  }

  /**
   * `error`, or ERR_LAYER_NOT_FOUND (caused by it) when layer `id` is gone: another process
   * removed it while it was read, or removed it and made it again (it is no longer the
   * directory `identity` it was when the read began).
   */
  #unlessGone(id: string, error: unknown, identity?: string): unknown {
    const now = this.exists(id) ? this.#identity(id) : undefined;
    if (now !== undefined && (identity === undefined || now === identity)) return error;
    return createError('ERR_LAYER_NOT_FOUND', `layer ${id} was removed while it was read`, { id }, error);
  }

  /**
   * changes(), handed to `each` one at a time as they are found, none kept: for a layer of
   * hundreds of thousands of entries, whose list would be tens of MB. The next waits for
   * the promise `each` returns. `signal` cancels (ERR_CANCELED), the worker killed; what
   * `each` throws stops it too, and is what this rejects with.
   */
  async forEachChange(id: string, each: (change: Change) => Promise<void> | void, options?: { readonly signal?: AbortSignal | undefined }): Promise<void> {
    validateLayerId(id);
    checkFunction(each, 'each');
    const { signal } = checkOptions(options, 'options', { signal: 'signal' });
    this.#require(id);
    // What `each` throws is passed on as it is, even when the layer went meanwhile.
    const thrown = new Set<unknown>();
    const guarded = async (c: Change): Promise<void> => {
      try {
        await each(c);
      } catch (error) {
        thrown.add(error);
        throw error;
      }
    };
    await this.#whileThere(
      id,
      async () => {
        const chain = this.store.readChain(id);
        if (this.#inProcess) {
          const canceled = (): WinLayerError => createError('ERR_CANCELED', `changes ${id}: canceled`, { id });
          // A function, read anew each time: the callback may abort between two reads.
          const aborted = (): boolean => signal?.aborted === true;
          for (const c of layerChanges(this.store.layerPath(id), chain)) {
            if (aborted()) throw canceled();
            // A callback that stops on the abort (throwIfAborted) is a cancellation too.
            try {
              await guarded(c);
            } catch (error) {
              throw aborted() && !isWinLayerError(error) ? canceled() : error;
            }
          }
          return;
        }
        await this.#controller.changes(this.#workerJob(id, chain, { signal }), guarded);
      },
      (error) => thrown.has(error),
    );
  }

  /** Bytes of the layer's own data: regular-file data of a read-only layer, or of the changed files of a read-write one. */
  async diffSize(id: string, parentId?: string): Promise<number> {
    this.#require(id);
    if (!this.#isReadWrite(id)) return this.#layerInfo(id).size;
    const rw = path.join(this.store.layerPath(id), RW_DIR);
    const identity = this.#identity(id);
    let total = 0;
    /** Files with more than one name, counted once (as Docker's ChangesSize and the export do). */
    const counted = new Set<string>();
    for (const c of await this.changes(id, parentId)) {
      if (c.kind === 'delete') continue;
      let st: fs.Stats | undefined;
      try {
        // A file a running container removed since it was listed counts for nothing.
        st = fs.lstatSync(path.join(rw, c.path.slice('Files/'.length)), { throwIfNoEntry: false });
      } catch (cause) {
        throw this.#unlessGone(id, toWinLayerError(cause, `layer ${id}: cannot read ${c.path}`, { id, entry: c.path }), identity);
      }
      if (st === undefined || !st.isFile()) continue;
      if (st.nlink > 1) {
        const inode = `${st.dev}:${st.ino}`;
        if (counted.has(inode)) continue;
        counted.add(inode);
      }
      total += st.size;
    }
    return total;
  }

  // ---- mounts --------------------------------------------------------------------------

  /**
   * Mounts the layer: a read-only layer's merged view of its chain is materialized under
   * HOME/.mounts/<id>; a read-write layer's writable directory is made from its parent
   * view at the first get and kept. Reference counted across processes.
   */
  async get(id: string, options?: { readonly onProgress?: ((p: ImportProgress) => void) | undefined; readonly signal?: AbortSignal | undefined }): Promise<string> {
    validateLayerId(id);
    const { onProgress, signal } = checkOptions(options, 'options', { onProgress: 'function', signal: 'signal' });
    this.#require(id);
    if (signal?.aborted === true) throw createError('ERR_CANCELED', `mount of layer ${id}: canceled`, { id });
    // Another get of the layer may hold the lock for as long as its view takes to write
    // (seconds for a base layer, longer behind a full worker queue): waited for as Docker's
    // per-layer lock is, not failed after the table's wait; a holder that died is broken.
    return this.#mounts.withLock(
      id,
      async () => {
        const refs = this.#mounts.refs(id);
        const rw = this.#isReadWrite(id);
        const dir = rw ? path.join(this.store.layerPath(id), RW_DIR) : this.#mounts.viewPath(id);
        // A view nobody counts was left by a mount that ended between writing it and counting
        // it (a signal, a kill): the layer may have changed since (applyDiff after create), so
        // it is never handed out, but made again.
        if (!rw && refs === 0 && fs.existsSync(dir)) await this.#removeView(id);
        if (!fs.existsSync(dir)) {
          const layers = rw ? this.store.readChain(id) : [this.store.layerPath(id), ...this.store.readChain(id)];
          try {
            if (this.#inProcess) {
              // Named by the process that writes it (this one), as a worker names its own.
              const tmp = `${dir}-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
              fs.mkdirSync(tmp, { mode: 0o755 });
              try {
                const checkpoint = (): void => {
                  if (signal?.aborted === true) throw createError('ERR_CANCELED', `mount of layer ${id}: canceled`, { id });
                };
                materializeView(resolveView(layers, checkpoint), tmp, quietProgress(onProgress), checkpoint);
                fs.renameSync(tmp, dir);
              } catch (error) {
                // Best effort, so that the mount's own error is the one reported: what stays is
                // a `-tmp-` leftover, removed by the next open or cleanup once this process is gone.
                await removeTreeGuarded(tmp).catch(() => undefined);
                throw error;
              }
            } else {
              // The view is resolved and written by a worker (seconds of work for a large
              // layer), which renames it to `dir` when whole.
              await this.#controller.materializeView({ ...this.#workerJob(id, layers, { onProgress, signal }), dest: dir });
            }
          } catch (error) {
            // Canceled or timed out just after its worker put the view in place: nobody counts
            // it, and this process may never open the store again to find it. A read-write
            // layer's writable directory, whole once renamed, stays: the next mount marks it.
            if (!rw) await this.#removeView(id).catch(() => undefined);
            throw toWinLayerError(error, `mount of layer ${id} failed`, { id });
          }
        }
        // What the container writes from now on is told from what the view made by this mark,
        // left once the directory is whole: also by the first mount after one killed before it
        // could (the container has not run yet: it never got the directory).
        if (rw && !isWritableMarked(this.store.layerPath(id))) {
          try {
            markWritableMade(this.store.layerPath(id));
          } catch (cause) {
            throw toWinLayerError(cause, `layer ${id}: cannot mark its writable directory`, { id });
          }
        }
        this.#mounts.setRefs(id, refs + 1);
        return dir;
      },
      { waitMs: Infinity, signal },
    );
  }

  /**
   * Unmounts: at a count of zero a read-only view is removed. Resolves to whether a mount
   * was released: unmounting what is not mounted, or no layer at all, is not an error (as
   * windowsfilter's Put), and removes only a view nobody counts.
   */
  async put(id: string): Promise<boolean> {
    validateLayerId(id);
    // Behind a get of the same layer that is writing its view (see get).
    return this.#mounts.withLock(
      id,
      async () => {
        const refs = this.#mounts.refs(id);
        if (refs === 0) {
          // Not mounted; a view nobody counts (see get) goes.
          if (!this.#isReadWrite(id)) await this.#removeView(id);
          return false;
        }
        this.#mounts.setRefs(id, refs - 1);
        if (refs - 1 === 0 && !this.#isReadWrite(id)) await this.#removeView(id);
        return true;
      },
      { waitMs: Infinity },
    );
  }

  /**
   * Every layer, sorted by id: read-only ones with their summary, read-write ones with their
   * parent; a layer whose chain cannot be used is listed, marked `corrupt`.
   */
  list(): LayerListing[] {
    const out: LayerListing[] = [];
    for (const name of listStore(this.home).sort()) {
      if (name.startsWith('.') || isWorkName(name)) continue;
      try {
        validateLayerId(name);
      } catch {
        continue;
      }
      const rw = this.#isReadWrite(name);
      if (!rw && !this.store.exists(name)) continue;
      let parents: string[] = [];
      let corrupt = false;
      try {
        parents = this.store.readChain(name);
      } catch (error) {
        if (isWinLayerError(error) && error.code === 'ERR_LAYER_NOT_FOUND') continue; // removed meanwhile
        // Shown as what it is, not as a base layer; a chain that cannot be read (EACCES) is ERR_IO, as everywhere.
        if (!isWinLayerError(error) || error.code !== 'ERR_LAYER_CORRUPT') throw error;
        corrupt = true;
      }
      const parent = parents[0] === undefined ? null : path.basename(parents[0]);
      if (rw) {
        out.push({ id: name, kind: 'read-write', parent, size: null, entries: null, digest: null, mounted: this.#mounts.refs(name), corrupt });
      } else {
        let info: LayerInfo | undefined;
        try {
          info = this.#layerInfo(name);
        } catch (error) {
          if (isWinLayerError(error) && error.code === 'ERR_LAYER_NOT_FOUND') continue; // removed meanwhile
          // One damaged layer (or one of a newer winlayer's index) does not hide the others:
          // listed, marked, without its summary.
          if (!isWinLayerError(error) || (error.code !== 'ERR_LAYER_CORRUPT' && error.code !== 'ERR_INDEX_VERSION')) throw error;
          corrupt = true;
        }
        out.push({
          id: name,
          kind: 'read-only',
          parent,
          size: info?.size ?? null,
          entries: info?.entries ?? null,
          digest: info?.digest ?? null,
          mounted: this.#mounts.refs(name),
          corrupt,
        });
      }
    }
    return out;
  }

  /** Mount count of `id`. */
  mountCount(id: string): number {
    validateLayerId(id);
    return this.#mounts.refs(id);
  }

  // ---- removal and cleanup ---------------------------------------------------------------

  /**
   * Removes a layer: renamed to `<id>-removing`, then deleted. A missing layer is not an
   * error; a mounted layer or a parent of another layer is. The rename removes the layer
   * from the store; the deletion after it is best effort, as windowsfilter's (which logs a
   * failed DestroyLayer and succeeds): what it cannot delete stays as `<id>-removing`, for
   * the next open or cleanup (which reports it), and a retry would find no layer anyway.
   */
  async remove(id: string): Promise<void> {
    validateLayerId(id);
    const dir = this.store.layerPath(id);
    if (!fs.existsSync(dir) && this.#setAside(id).length === 0) return;
    await this.#mounts.withLock(id, async () => {
      // Copies set aside by an import that replaces the layer (applyDiff after create), or
      // by a removal: without the layer, one whose process lives is that work in progress
      // (the layer comes back if it fails), and one whose process died is the layer, put
      // back as the next open would. Beside the layer, every copy is obsolete (its import
      // committed, or lost to another): it goes, or it would come back once the layer is
      // removed.
      const aside = this.#setAside(id);
      // A copy of this process's that no work of its holds (one it failed to put back) counts as dead.
      const working = (n: string): boolean => ownerAlive(n) && (!n.includes(`${REPLACING_INFIX}${process.pid}-`) || workingCopies.has(n));
      if (!fs.existsSync(dir) && aside.some(working)) throw createError('ERR_LAYER_IN_USE', `layer ${id} is being replaced by an import, or removed`, { id });
      for (const n of aside) {
        const at = path.join(this.home, n);
        try {
          if (fs.existsSync(dir)) await removeTreeGuarded(at);
          else await fsp.rename(at, dir);
        } catch (error) {
          // A sweep of another process's open (or the importer itself) took it meanwhile.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toWinLayerError(error, `cannot remove layer ${id}`, { id });
        }
      }
      if (!fs.existsSync(dir)) return; // another remove took it while this one waited
      if (this.#mounts.refs(id) > 0) throw createError('ERR_LAYER_IN_USE', `layer ${id} is mounted`, { id });
      // A container's volume left mounted in a read-write layer: its files are not the layer's.
      const mounted = mountPointsWithin(dir)[0];
      if (mounted !== undefined) throw createError('ERR_LAYER_IN_USE', `layer ${id}: a file system is mounted at ${mounted} (unmount it first)`, { id, mountPoint: mounted });
      // A leftover of an earlier removal goes first (best effort): nothing slow may come
      // between the check for layers and imports on this one and the rename.
      const removing = path.join(this.home, `${id}${REMOVING_SUFFIX}`);
      await removeTreeGuarded(removing).catch(() => undefined);
      this.#refuseIfParent(id, dir, '');
      // First out of sight under a name with this process's pid, which no other process's
      // sweep takes while it lives (and which the next open puts back if it dies): an
      // import on this layer checks its parents just before it commits, and one that
      // checked after the look above and before this rename committed on this layer. It is
      // there to see now: the layer goes back, and the removal is refused.
      const interim = path.join(this.home, `${id}${REPLACING_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
      try {
        await fsp.rename(dir, interim);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // gone meanwhile: removed is what was asked
        throw toWinLayerError(error, `cannot remove layer ${id}`, { id });
      }
      workingCopies.add(path.basename(interim));
      try {
        await this.#finishRemove(id, dir, interim, removing);
      } finally {
        workingCopies.delete(path.basename(interim));
      }
      await removeTreeGuarded(removing).catch(() => undefined);
      // Best effort too: a view left (nobody counts it: the layer was not mounted) goes in a later sweep.
      await this.#removeView(id).catch(() => undefined);
    });
  }

  /** ERR_LAYER_IN_USE when a layer, or an import, has the layer at `dir` in its chain. */
  #refuseIfParent(id: string, dir: string, when: string): void {
    const child = this.store.dependentOf(dir);
    if (child === undefined) return;
    const importing = isWorkName(child);
    throw createError('ERR_LAYER_IN_USE', `layer ${id} is a parent of layer ${layerIdOf(child)}${importing ? ', being imported' : ''}${when}`, { id, child: layerIdOf(child) });
  }

  /** remove's last steps, the layer under `interim`: the second look for children, then `removing`. */
  async #finishRemove(id: string, dir: string, interim: string, removing: string): Promise<void> {
    const late = this.store.dependentOf(dir);
    if (late !== undefined) {
      await fsp.rename(interim, dir).catch((error: unknown) => {
        throw toWinLayerError(error, `layer ${id}: cannot put it back after finding its child ${layerIdOf(late)}`, { id });
      });
      throw createError('ERR_LAYER_IN_USE', `layer ${id} is a parent of layer ${layerIdOf(late)}, imported while it was being removed`, { id, child: layerIdOf(late) });
    }
    try {
      try {
        await fsp.rename(interim, removing);
      } catch (error) {
        // A leftover of an earlier removal stayed (ENOTEMPTY here, EPERM on Windows): the
        // layer joins it, so that the one name holds both.
        if (!fs.existsSync(removing)) throw error;
        await fsp.rename(interim, path.join(removing, `${id}-${randomBytes(4).toString('hex')}`));
      }
    } catch (error) {
      // Not removed: the layer goes back where it was, not left hidden under this pid.
      await fsp.rename(interim, dir).catch(() => undefined);
      throw toWinLayerError(error, `cannot remove layer ${id}`, { id });
    }
  }

  /**
   * Refuses to make layer `id` (not there) while a copy of it is set aside: that copy is the
   * layer, which an import that replaces it (or a removal) works on, or which the next open
   * puts back when that process died. Made meanwhile, a second layer of that id would
   * have the set-aside one thrown away.
   */
  #refuseIfSetAside(id: string): void {
    const aside = this.#setAside(id)[0];
    if (aside === undefined) return;
    const pid = ownerPid(aside) ?? '?';
    const why = ownerAlive(aside) ? `is being replaced by an import, or removed, in process ${pid}` : `was set aside by process ${pid}, which died: cleanup puts it back`;
    throw createError('ERR_LAYER_EXISTS', `layer ${id} already exists: it ${why}`, { id });
  }

  /** The names of `id`'s layer set aside by imports that replace it (`<id>-replacing-<pid>-<nonce>`). */
  #setAside(id: string): string[] {
    return listStore(this.home).filter((n) => n.startsWith(`${id}${REPLACING_INFIX}`));
  }

  /**
   * Removes the materialized view of `id`: renamed aside first (a temporary name that
   * cleanup removes once this process is gone), so that a crash while it is deleted never
   * leaves a partial view where the next mount would take it for a whole one. The deletion
   * is best effort: once renamed, the view is gone from the mount's point of view, and an
   * aside that stays is such a leftover.
   */
  async #removeView(id: string): Promise<void> {
    const view = this.#mounts.viewPath(id);
    const aside = `${view}-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(view, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    await removeTreeGuarded(aside).catch(() => undefined);
  }


  /**
   * Removes leftovers of crashes: staging and removing directories, half-made mounts;
   * returns what it removed (relative to the home). Every leftover is tried, and when some
   * stay (a file system error), ERR_CLEANUP_INCOMPLETE names them (`data.remaining`) and
   * what went (`data.removed`).
   */
  async cleanup(): Promise<string[]> {
    const store = await this.store.sweep();
    const mounts = await this.#cleanMounts();
    return finishCleanup(this.home, { removed: [...store.removed, ...mounts.removed], failed: [...store.failed, ...mounts.failed] });
  }

  /** Removes `-tmp-` views and writable directories whose owner is gone, and views nobody counts; failures are returned, not thrown. */
  async #cleanMounts(): Promise<Sweep> {
    const sweep: Sweep = { removed: [], failed: [] };
    const dirs = [this.#mounts.dir, ...listStore(this.home).filter((n) => !n.startsWith('.')).map((n) => path.join(this.home, n))];
    for (const d of dirs) {
      let names: string[];
      try {
        names = fs.readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        if (!/-tmp-\d+-[0-9a-f]{8}$/.test(n) || ownerAlive(n)) continue;
        const name = path.relative(this.home, path.join(d, n));
        try {
          await removeTreeGuarded(path.join(d, n));
          sweep.removed.push(name);
        } catch (error) {
          sweep.failed.push({ name, error });
        }
      }
    }
    // Locks of processes killed while they held them.
    const locks = this.#mounts.sweepLocks();
    for (const n of locks.removed) sweep.removed.push(path.join(MOUNTS_DIR, n));
    for (const f of locks.failed) sweep.failed.push({ name: path.join(MOUNTS_DIR, f.name), error: f.error });
    // Views nobody counts: left by a mount that ended between writing its view and counting
    // it. Every other name there (counts, locks, views being written) is no layer id.
    for (const id of this.#mounts.names()) {
      const name = path.join(MOUNTS_DIR, id);
      try {
        validateLayerId(id);
        if (this.#mounts.refs(id) > 0) continue;
        // Without waiting: a lock held now is a command at work on that id, and every open comes here.
        const removed = await this.#mounts.withLock(
          id,
          async () => {
            if (this.#mounts.refs(id) > 0 || !fs.existsSync(this.#mounts.viewPath(id))) return false;
            await this.#removeView(id);
            return true;
          },
          { waitMs: 0 },
        );
        if (removed) sweep.removed.push(name);
      } catch (error) {
        // Not a view's name, or a mount holds its lock (it is being made): not a leftover.
        if (!isWinLayerError(error) || (error.code !== 'ERR_ID_INVALID' && error.code !== 'ERR_LAYER_IN_USE')) sweep.failed.push({ name, error });
      }
    }
    return sweep;
  }

  // ---- diffGetter ------------------------------------------------------------------------

  /**
   * Opens files of a read-only layer by tar entry name (`Files/a.txt`, `Files/a.txt:stream`,
   * `Hives/…`, `UtilityVM/…`), serving the original bytes of the BCD files from
   * `bcd*.bak`, as windowsfilter's DiffGetter does for byte-identical re-export.
   */
  diffGetter(id: string): FileGetter {
    this.#require(id);
    if (this.#isReadWrite(id)) throw createError('ERR_ARGUMENT_INVALID', `layer ${id} is read-write: diffGetter serves read-only layers`, { id });
    const root = this.store.layerPath(id);
    const identity = this.#identity(id);
    /**
     * Where each file's record is in the index, and each hard link's target: not the records
     * themselves: for a 105,000-entry layer, 32 MB of heap instead of 62 MB. A record is read
     * back when its file is asked for.
     */
    const served = new Map<string, { name: string; line: LineSpan }>();
    const span: LineSpan = { offset: 0, length: 0 };
    for (const r of indexEntriesSync(root, span)) {
      if (r.inherited === true || r.kind === 'whiteout') continue;
      // Directories and symbolic links too: they may have alternate data streams (`Files/dir:s`).
      served.set(caseFoldKey(r.name), { name: r.name, line: { offset: span.offset, length: span.length } });
    }
    const open = (name: string): Readable => {
      const colon = name.indexOf(':');
      const fileName = colon < 0 ? name : name.slice(0, colon);
      // `file:stream:$DATA` (the stream's full NTFS name, as Windows opens it) is `file:stream`.
      const named = colon < 0 ? undefined : name.slice(colon + 1);
      const typed = named !== undefined && hasDataStreamType(named) ? named.slice(0, -DATA_STREAM_TYPE.length) : named;
      // `file::$DATA` is the file's own data, as Windows names it.
      const stream = typed === '' && named !== '' ? undefined : typed;
      const p = parseLayerPath(fileName);
      const backup = MUTATED_UTILITY_VM_FILES.get(p.name);
      if (backup !== undefined && stream === undefined && fs.existsSync(path.join(root, backup))) {
        return fs.createReadStream(path.join(root, backup));
      }
      const fileKey = caseFoldKey(p.name);
      const r = served.get(fileKey);
      if (r === undefined) throw createError('ERR_LAYER_NOT_FOUND', `${name}: no such file in layer ${id}`, { id, entry: name });
      const { rec, item } = last?.key === fileKey ? last : (last = { key: fileKey, ...fileOf(r), streams: undefined });
      if (item.kind !== 'entry' || (rec.kind !== 'file' && stream === undefined)) throw createError('ERR_LAYER_NOT_FOUND', `${name}: not a file`, { id, entry: name });
      let range = item.data;
      if (stream !== undefined) {
        // The streams by case-folded name, made once for the file: a tar's streams follow
        // their file, each asked for in turn (16,000 of them took minutes, each looked up
        // by parsing the file's backup stream again).
        if (last.streams === undefined) {
          last.streams = new Map();
          for (const s of item.streams) {
            const k = caseFoldKey(s.name);
            if (!last.streams.has(k)) last.streams.set(k, s.range);
          }
        }
        range = last.streams.get(caseFoldKey(`:${stream}:$data`));
      }
      // An empty file backed up without a DATA stream: its tar entry is empty too.
      if (range === undefined && stream === undefined && rec.kind === 'file') return Readable.from([]);
      if (range === undefined) throw createError('ERR_LAYER_NOT_FOUND', `${name}: no such stream in layer ${id}`, { id, entry: name });
      return Readable.from(readFileRange(range));
    };
    /** The record of a served name (a hard link's target's), and what the view makes of it. */
    const fileOf = (r: { name: string; line: LineSpan }): { rec: IndexEntry; item: ReturnType<typeof itemOf> } => {
      let rec = indexEntryAt(root, r.line, r.name);
      if (rec.kind === 'link') {
        // A hard link is its target's content: this layer's file of that name, or else
        // (a parent's file, or one the layer added only after the link) the link's own
        // name in the layer's directory, which the import linked to that file.
        const t = rec.parentTarget === true ? undefined : served.get(caseFoldKey(rec.target ?? ''));
        const target = t === undefined ? undefined : indexEntryAt(root, t.line, t.name);
        const { target: _named, parentTarget: _parents, ...asFile } = rec;
        // A link to this layer's symbolic link is one too: not a file, as the link itself.
        rec = target !== undefined && (target.kind === 'file' || target.kind === 'symlink') ? target : { ...asFile, kind: 'file' };
      }
      return { rec, item: itemOf(ViewEntry.ofRecord(root, rec)) };
    };
    /** The file asked for last: its record, its view, and its streams once one was asked for. */
    let last: { key: string; rec: IndexEntry; item: ReturnType<typeof itemOf>; streams: Map<string, ByteRange> | undefined } | undefined;
    let closed = false;
    return {
      get: (name: string): Readable => {
        if (closed) throw createError('ERR_ARGUMENT_INVALID', 'diffGetter is closed');
        checkString(name, 'name');
        try {
          return open(name);
        } catch (error) {
          throw this.#unlessGone(id, error, identity);
        }
      },
      close: () => {
        closed = true;
      },
    };
  }

  /** Waits for running workers. */
  async idle(): Promise<void> {
    await this.#controller.idle();
  }
}

/**
 * The set-aside copies (`<id>-replacing-<pid>-…`) this process is at work on: a copy with
 * its pid and not here is one it failed to put back, which remove then takes for a dead
 * process's (the layer itself), instead of refusing for as long as the process lives.
 */
const workingCopies = new Set<string>();

/** The layer id of a store directory's name: a layer's, or one of its work in progress (`<id>-importing-…`, `<id>-replacing-…`). */
function layerIdOf(name: string): string {
  for (const infix of [IMPORTING_INFIX, REPLACING_INFIX]) {
    const at = name.indexOf(infix);
    if (at > 0) return name.slice(0, at);
  }
  return name;
}

/** The backend `open` was given: a name, a backend of a known name, or undefined for selectBackend(). */
function backendOf(value: unknown): NativeBackend {
  if (value === undefined) return selectBackend();
  if (isBackendName(value)) return selectBackend({ env: { [NATIVE_BACKEND_ENV]: value } });
  const b = value as Partial<Record<keyof NativeBackend, unknown>>;
  if (isOptionsObject(value) && isBackendName(b.name) && typeof b.writeLayer === 'function' && typeof b.readLayer === 'function') return value as NativeBackend;
  throw createError('ERR_ARGUMENT_INVALID', `Expected \`backend\` to be 'portable', 'edge' or a NativeBackend of one of those names, got ${shown(value)}`, { option: 'backend' });
}

async function* emptyTar(): AsyncGenerator<Uint8Array> {
  yield Buffer.alloc(1024);
}
