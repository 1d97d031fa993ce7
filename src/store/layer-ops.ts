/**
 * Import and export of whole layers against a store: staging, the backend's work,
 * the atomic commit, and clean failure (nothing half-written stays visible).
 */
import * as fs from 'node:fs';
import { createError, toWinLayerError } from '../errors.js';
import { decompressIfNeeded } from '../tar/decompress.js';
import type { ImportProgress } from '../convert/import-tar.js';
import type { NativeBackend, WriteLayerResult } from '../native/backend.js';
import type { LayerStore } from './layer-store.js';

export interface ImportLayerOptions {
  /** The parent chain: layer paths, nearest first. Use `store.chainFor(parentId)`. */
  readonly parents: readonly string[];
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
  /** Flush to disk before the commit rename. @default true */
  readonly durable?: boolean;
  /**
   * Called after the flush, just before the commit rename: throwing here aborts the import
   * (the worker refuses to commit once the controller that wanted the layer is gone).
   */
  readonly beforeCommit?: (() => void) | undefined;
}

export interface ImportLayerResult extends WriteLayerResult {
  id: string;
  path: string;
}

/**
 * Imports the tar `source` as layer `id`; on any failure the store is left as it was. A
 * gzip-compressed tar (or zstd, where Node has it) is decompressed on the fly: the layer's
 * digest is then that of the tar inside (its DiffID), not of the compressed blob.
 */
export async function importLayer(
  store: LayerStore,
  backend: NativeBackend,
  id: string,
  source: AsyncIterable<Uint8Array>,
  options: ImportLayerOptions,
): Promise<ImportLayerResult> {
  const stage = await store.beginImport(id, options.parents);
  try {
    const result = await backend.writeLayer({
      root: stage.path,
      parents: options.parents,
      source: decompressIfNeeded(source),
      id,
      signal: options.signal,
      onProgress: options.onProgress,
    });
    const path = await store.commit(stage, options.parents, { durable: options.durable ?? true, beforeRename: options.beforeCommit });
    return { ...result, id, path };
  } catch (error) {
    await store.abort(stage);
    throw toWinLayerError(error, `import of layer ${id} failed`, { id });
  }
}

/** Streams layer `id` as a tar. */
export async function* exportLayer(
  store: LayerStore,
  backend: NativeBackend,
  id: string,
  options: { signal?: AbortSignal | undefined; onProgress?: ((p: ImportProgress) => void) | undefined } = {},
): AsyncGenerator<Buffer> {
  const root = store.stat(id).path;
  try {
    yield* backend.readLayer({ root, signal: options.signal, onProgress: options.onProgress });
  } catch (error) {
    // A removal renames the layer away first: what the reader then fails to open is gone,
    // not damaged.
    if (!fs.existsSync(root)) throw createError('ERR_LAYER_NOT_FOUND', `layer ${id} was removed during its export`, { id }, error);
    throw error;
  }
}
