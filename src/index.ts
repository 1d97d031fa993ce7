/** winlayer: Windows container image layers for Node.js. Re-exports only. */
export * from './errors.js';
export * from './util/windows.js';
export { parseLayerPath, type LayerPath, type LayerRoot } from './util/safe-path.js';
export { LayerStore, validateLayerId, type LayerSummary, type Staging } from './store/layer-store.js';
export { importLayer, exportLayer, type ImportLayerOptions, type ImportLayerResult } from './store/layer-ops.js';
export { portableBackend } from './native/portable.js';
export type { NativeBackend, BackendName, WriteLayerRequest, WriteLayerResult, ReadLayerRequest } from './native/backend.js';
export type { ImportProgress } from './convert/import-tar.js';
export { buildLayerTar, streamLayerTar, type BuilderEntry, type EntryData } from './convert/layer-tar-builder.js';
export type { LayerInfo } from './layer/metadata-index.js';
export { WindowsFilterDriver, DEFAULT_SANDBOX_SIZE, type DriverOptions, type ApplyDiffOptions, type ApplyDiffResult, type CreateOptions, type FileGetter, type LayerListing, type Change, type ChangeKind } from './driver/driver.js';
export { parseRamSize, parseStorageOptions, type StorageOptions } from './driver/storage-opt.js';
export { Controller, type ControllerOptions } from './controller/controller.js';
export type { TarSource } from './controller/spawn-worker.js';
