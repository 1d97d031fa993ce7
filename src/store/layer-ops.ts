/**
 * Import and export of whole layers against a store: staging, the backend's work,
 * the atomic commit, and clean failure (nothing half-written stays visible).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError, toWinLayerError, type WinLayerError } from '../errors.js';
import { decompressIfNeeded } from '../tar/decompress.js';
import type { ImportProgress } from '../convert/import-tar.js';
import type { NativeBackend, WriteLayerResult } from '../native/backend.js';
import { checkOptions, isOptionsObject, quietProgress, shown } from '../util/options.js';
import { releaseSource } from '../util/release-source.js';
import { directoryIdentity, isLayerId, type LayerStore } from './layer-store.js';

export interface ImportLayerOptions {
  /** The parent chain: layer paths, nearest first. Use `store.chainFor(parentId)`. */
  readonly parents: readonly string[];
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
  /** Flush to disk before the commit rename. @default true */
  readonly durable?: boolean | undefined;
  /**
   * Called after the flush, just before the commit rename, with the staging directory:
   * throwing here aborts the import (the worker refuses to commit once the controller that
   * wanted the layer is gone).
   */
  readonly beforeCommit?: ((staging: string) => void) | undefined;
}

export interface ImportLayerResult extends WriteLayerResult {
  id: string;
  path: string;
}

/**
 * Imports the tar `source` as layer `id`; on any failure the store is left as it was. A
 * gzip-compressed tar (or zstd, where Node has it) is decompressed on the fly: the layer's
 * digest is then that of the tar inside (its DiffID), not of the compressed blob.
 * `options.parents` must be a chain of this store's as `store.chainFor` gives it: anything
 * else is refused (ERR_ARGUMENT_INVALID, ERR_PARENT_NOT_FOUND) before anything is written.
 */
export async function importLayer(
  store: LayerStore,
  backend: NativeBackend,
  id: string,
  source: AsyncIterable<Uint8Array>,
  options: ImportLayerOptions,
): Promise<ImportLayerResult> {
  checkImport(store, source, options);
  const stage = await store.beginImport(id, options.parents);
  try {
    const result = await backend.writeLayer({
      root: stage.path,
      parents: options.parents,
      source: decompressIfNeeded(untilAborted(source, options.signal)),
      id,
      signal: options.signal,
      onProgress: quietProgress(options.onProgress),
    });
    const path = await store.commit(stage, options.parents, { durable: options.durable ?? true, beforeRename: options.beforeCommit });
    return { ...result, id, path };
  } catch (error) {
    await store.abort(stage);
    throw toWinLayerError(error, `import of layer ${id} failed`, { id });
  }
}

/**
 * `source` until `signal` aborts. The import looks at the signal between entries, but a
 * source that stops sending (a stalled download) would keep it waiting for its next chunk
 * for ever: that wait ends at the abort, with ERR_CANCELED, and the source is released
 * (a Node stream destroyed, since its iterator's return() would wait behind the read).
 */
async function* untilAborted(source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  if (signal === undefined) {
    yield* source;
    return;
  }
  const it = source[Symbol.asyncIterator]();
  const canceled = (): WinLayerError => createError('ERR_CANCELED', 'import canceled', {});
  // The wait for the chunk being read, which the abort ends.
  let stopWaiting: ((error: unknown) => void) | undefined;
  const onAbort = (): void => stopWaiting?.(canceled());
  signal.addEventListener('abort', onAbort, { once: true });
  let ended = false;
  try {
    for (;;) {
      if (signal.aborted) throw canceled();
      const r = await new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
        stopWaiting = reject;
        // A next() may answer with a plain result, as `for await` takes it.
        Promise.resolve(it.next()).then(resolve, reject);
      });
      stopWaiting = undefined;
      if (r.done === true) {
        ended = true;
        return;
      }
      yield r.value;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (!ended) releaseSource(source, it);
  }
}

/**
 * Refuses arguments importLayer cannot use. A chain that names anything but the store's
 * layers would be committed and then refused by every reader of it (ERR_LAYER_CORRUPT),
 * so each parent is checked as `readChain` checks a stored one (an absolute path, here also
 * without `.` or `..`, to a layer id in the store's directory), and the chain must be the
 * nearest parent's own.
 */
function checkImport(store: LayerStore, source: unknown, options: unknown): asserts options is ImportLayerOptions {
  if (typeof (source as { [Symbol.asyncIterator]?: unknown } | null | undefined)?.[Symbol.asyncIterator] !== 'function') {
    const what = source instanceof Uint8Array ? 'a Buffer (pass Readable.from([buffer]))' : shown(source);
    throw createError('ERR_ARGUMENT_INVALID', `the layer tar must be a Readable or an async iterable of bytes; got ${what}`);
  }
  if (!isOptionsObject(options)) throw createError('ERR_ARGUMENT_INVALID', `Expected \`options\` to be an object { parents }, got ${shown(options)}`, { option: 'options' });
  checkOptions(options, 'options', { signal: 'signal', onProgress: 'function', beforeCommit: 'function' });
  const { parents } = options as { parents?: unknown };
  if (!Array.isArray(parents)) {
    throw createError('ERR_ARGUMENT_INVALID', `Expected \`parents\` to be an array of layer paths (store.chainFor(parentId)), got ${shown(parents)}`, { option: 'parents' });
  }
  for (const p of parents as unknown[]) {
    if (typeof p !== 'string' || path.resolve(p) !== p || !isLayerId(path.basename(p)) || !isDirectoryOf(path.dirname(p), store.home)) {
      throw createError('ERR_ARGUMENT_INVALID', `parents: ${JSON.stringify(p) ?? String(p)} is not a layer of the store ${store.home}`, { option: 'parents', parent: String(p) });
    }
    if (!store.exists(path.basename(p))) throw createError('ERR_PARENT_NOT_FOUND', `parent layer ${path.basename(p)} does not exist`, { id: path.basename(p) });
  }
  const [nearest, ...rest] = parents as string[];
  if (nearest === undefined) return;
  const own = store.readChain(path.basename(nearest)).map((p) => path.basename(p));
  if (own.length !== rest.length || rest.some((p, i) => path.basename(p) !== own[i])) {
    throw createError('ERR_ARGUMENT_INVALID', `parents: not the chain of ${path.basename(nearest)} (${[nearest, ...own].map((p) => path.basename(p)).join(', ')})`, { option: 'parents' });
  }
}

/** Whether `dir` is `home`: by name, else by what both resolve to (a store opened through a link). */
function isDirectoryOf(dir: string, home: string): boolean {
  if (dir === home) return true;
  try {
    return fs.realpathSync(dir) === fs.realpathSync(home);
  } catch {
    return false;
  }
}

/** Streams layer `id` as a tar. */
export async function* exportLayer(
  store: LayerStore,
  backend: NativeBackend,
  id: string,
  options: { signal?: AbortSignal | undefined; onProgress?: ((p: ImportProgress) => void) | undefined } = {},
): AsyncGenerator<Buffer, void, undefined> {
  const root = store.stat(id).path;
  const identity = directoryIdentity(root);
  try {
    yield* backend.readLayer({ root, signal: options.signal, onProgress: quietProgress(options.onProgress) });
  } catch (error) {
    throw exportError(root, error, identity) ?? error;
  }
}

/**
 * ERR_LAYER_NOT_FOUND for an export of the layer at `root` that failed with `error` because
 * the layer is no longer there: a removal renames the layer away first, and what the
 * reader then fails to open is gone, not damaged. So is a layer made again under its id
 * since the export began, when it was the directory `identity` (directoryIdentity).
 * Undefined when the layer the export read is still there.
 */
export function exportError(root: string, error: unknown, identity?: string): WinLayerError | undefined {
  const now = directoryIdentity(root);
  if (now !== undefined && (identity === undefined || now === identity)) return undefined;
  const id = path.basename(root);
  return createError('ERR_LAYER_NOT_FOUND', `layer ${id} was removed during its export`, { id }, error);
}
