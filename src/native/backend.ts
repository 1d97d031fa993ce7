/**
 * The native backend interface: what differs between the portable store (any OS) and
 * the Windows one (edge-js → C# helper → BackupWrite/HCS). Both take the same tar and
 * produce the same layer; the choice is made once, in `native/select.ts`.
 */
import type { ImportProgress } from '../convert/import-tar.js';

export type BackendName = 'portable' | 'edge';

export interface WriteLayerRequest {
  /** The empty staging directory to fill. */
  readonly root: string;
  /** Parent layer paths, nearest first (empty: a base layer). */
  readonly parents: readonly string[];
  /** The layer tar. */
  readonly source: AsyncIterable<Uint8Array>;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
  /** Layer id, recorded in the index. */
  readonly id: string;
}

export interface WriteLayerResult {
  /** Sum of regular-file data sizes (ADS not counted). */
  size: number;
  /** Tar entries read. */
  entries: number;
  /** `sha256:<hex>` of the tar bytes read. */
  digest: string;
}

export interface ReadLayerRequest {
  /** The committed layer directory. */
  readonly root: string;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
}

/** One implementation per platform family. */
export interface NativeBackend {
  readonly name: BackendName;
  /** Writes the layer from its tar into `req.root`. Flushing and the commit rename are the store's. */
  writeLayer(req: WriteLayerRequest): Promise<WriteLayerResult>;
  /** The layer as a tar, streamed. */
  readLayer(req: ReadLayerRequest): AsyncGenerator<Buffer, void, undefined>;
}
