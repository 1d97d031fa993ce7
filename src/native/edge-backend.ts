/**
 * The edge backend: the portable store's layout and index, with the files outside Files/
 * (Hives/, UtilityVM/) restored by the C# helper instead of node:fs. On Windows the helper
 * restores them with BackupWrite on a backup-semantics handle, so the OS applies security
 * descriptors, EAs, ADS and reparse data; on Mono it restores with portable semantics.
 * Either way it parses each stream itself and hands back the non-data sub-streams, so the
 * metadata index is byte-identical to the portable backend's (test/native/conformance).
 *
 * Files/ is always written by the layer writer: the transport format is a byte layout,
 * not a restore. Export reads the same layout, so it is the portable reader's.
 */
import { writeLayerFromTar } from '../convert/import-tar.js';
import { TransportLayerWriter, type HostRestorer, type RestoreTarget } from '../layer/layer-writer.js';
import { readTar } from '../tar/reader.js';
import type { FileBasicInfo } from '../util/windows.js';
import type { NativeBackend, ReadLayerRequest, WriteLayerRequest, WriteLayerResult } from './backend.js';
import { LAYER_PRIVILEGES, loadNativeHelper, type NativeHelper, type NativeHelperOptions } from './edge.js';
import { DigestingSource, portableBackend } from './portable.js';

/** Bytes gathered in JavaScript before one call crosses the bridge. */
export const DEFAULT_BRIDGE_CHUNK_BYTES = 64 * 1024;

export interface EdgeBackendOptions {
  /** The helper to use; by default it is loaded on the first import. */
  readonly helper?: NativeHelper | undefined;
  /** How to load the helper when `helper` is not given. */
  readonly helperOptions?: NativeHelperOptions | undefined;
  /**
   * Small writes are coalesced up to this many bytes per call (a call costs far more than
   * a copy); larger writes cross as they are. 4 KiB to 16 MiB. @default 65536
   */
  readonly chunkBytes?: number | undefined;
}

/** A restore in the helper, fed through a coalescing buffer. */
class EdgeRestoreTarget implements RestoreTarget {
  readonly #helper: NativeHelper;
  readonly #handle: number;
  readonly #buf: Buffer;
  #used = 0;
  #isOpen = true;

  constructor(helper: NativeHelper, handle: number, chunkBytes: number) {
    this.#helper = helper;
    this.#handle = handle;
    this.#buf = Buffer.allocUnsafe(chunkBytes);
  }

  write(chunk: Buffer): void {
    if (chunk.length >= this.#buf.length) {
      this.#flush();
      this.#send(chunk);
      return;
    }
    if (this.#used + chunk.length > this.#buf.length) this.#flush();
    chunk.copy(this.#buf, this.#used);
    this.#used += chunk.length;
  }

  finish(info: FileBasicInfo): { dataSize: number; streams: Buffer } {
    this.#flush();
    // The helper closes the handle whether or not finishing succeeds.
    this.#isOpen = false;
    return this.#helper.restoreFinish(this.#handle, info);
  }

  abort(): void {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    this.#helper.restoreAbort(this.#handle);
  }

  #flush(): void {
    if (this.#used === 0) return;
    // edge-js copies the bytes into a CLR array during the call, so the buffer is free again after it.
    this.#send(this.#buf.subarray(0, this.#used));
    this.#used = 0;
  }

  #send(chunk: Buffer): void {
    try {
      this.#helper.restoreWrite(this.#handle, chunk);
    } catch (error) {
      // A failed write closes the handle in the helper.
      this.#isOpen = false;
      throw error;
    }
  }
}

/** Restores through the helper; Hives/ without security, as hcsshim's legacy writer does. */
class EdgeRestorer implements HostRestorer {
  readonly #helper: NativeHelper;
  readonly #chunkBytes: number;

  constructor(helper: NativeHelper, chunkBytes: number) {
    this.#helper = helper;
    this.#chunkBytes = chunkBytes;
  }

  create(file: string, entry: string): RestoreTarget {
    const processSecurity = entry !== 'Hives' && !entry.startsWith('Hives/');
    return new EdgeRestoreTarget(this.#helper, this.#helper.restoreCreate(file, entry, processSecurity), this.#chunkBytes);
  }
}

const MIN_CHUNK_BYTES = 4 * 1024;
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;

/** An edge backend; the helper is loaded (and its absence reported) on the first import. */
export function createEdgeBackend(options: EdgeBackendOptions = {}): NativeBackend {
  const chunkBytes = options.chunkBytes ?? DEFAULT_BRIDGE_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}, not ${chunkBytes}`);
  }
  let helper: NativeHelper | undefined;
  const getHelper = (): NativeHelper => {
    if (helper !== undefined) return helper;
    const h = options.helper ?? loadNativeHelper(options.helperOptions);
    // As windowsfilter's writer: backup, restore and security privileges before the first
    // restore, for the whole (single-purpose worker) process; see docs/windows.md.
    if (h.info().platform === 'windows') h.enablePrivileges(LAYER_PRIVILEGES);
    helper = h;
    return h;
  };

  return {
    name: 'edge',

    async writeLayer(req: WriteLayerRequest): Promise<WriteLayerResult> {
      const restorer = new EdgeRestorer(getHelper(), chunkBytes);
      const source = new DigestingSource(req.source);
      const writer = new TransportLayerWriter({ root: req.root, parents: req.parents, durable: false, restorer });
      try {
        const result = await writeLayerFromTar(readTar(source), writer, {
          signal: req.signal,
          onProgress: req.onProgress,
          bytesRead: () => source.bytes,
        });
        const digest = source.digest();
        writer.close({ id: req.id, size: result.size, entries: result.entries, digest });
        return { size: result.size, entries: result.entries, digest };
      } catch (error) {
        writer.abort();
        throw error;
      }
    },

    readLayer(req: ReadLayerRequest): AsyncGenerator<Buffer> {
      return portableBackend.readLayer(req);
    },
  };
}

/** The edge backend with the helper from this package's dotnet/bin. */
export const edgeBackend: NativeBackend = createEdgeBackend();
