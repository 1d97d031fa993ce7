/**
 * The portable backend: layers in the transport format on any POSIX file system, with
 * what POSIX cannot hold in the layer's metadata index. The default off Windows.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ChunkHasher } from '../layer/file-thread.js';
import type { ByteRange } from '../layer/layer-reader.js';
import { openLayerFile } from '../layer/metadata-index.js';
import type { NativeBackend, ReadLayerRequest, WriteLayerRequest, WriteLayerResult } from './backend.js';

const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Bytes an offloadable source keeps unhashed while a helper thread may still take the
 * hashing (an import of many small files starts one within its first few hundred KiB).
 */
export const HOLD_BYTES = 4 * 1024 * 1024;

export interface DigestingSourceOptions {
  /**
   * Hold the first chunks (up to HOLD_BYTES) instead of hashing them, so that `offload`
   * can still move all of the hashing to another thread. @default false
   */
  readonly offloadable?: boolean;
}

/**
 * Counts and hashes the bytes of a source as they pass, on this thread or, once handed a
 * ChunkHasher in time, on that one. Held chunks are not copied: a source's chunks never
 * change after they were read.
 */
export class DigestingSource implements AsyncIterable<Uint8Array> {
  readonly #source: AsyncIterable<Uint8Array>;
  #hash: Hash | undefined;
  #hasher: ChunkHasher | undefined;
  #held: Uint8Array[] | undefined;
  #heldBytes = 0;
  bytes = 0;

  constructor(source: AsyncIterable<Uint8Array>, options: DigestingSourceOptions = {}) {
    this.#source = source;
    if (options.offloadable === true) this.#held = [];
    else this.#hash = createHash('sha256');
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const chunk of this.#source) {
      this.bytes += chunk.length;
      if (this.#hasher !== undefined) {
        this.#hasher.hash(chunk);
      } else if (this.#held !== undefined) {
        this.#held.push(chunk);
        this.#heldBytes += chunk.length;
        if (this.#heldBytes > HOLD_BYTES) this.#hashHeld();
      } else {
        (this.#hash as Hash).update(chunk);
      }
      yield chunk;
    }
  }

  /** Moves the hashing to `hasher`, unless some bytes were already hashed here. */
  offload(hasher: ChunkHasher): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    for (const chunk of held) hasher.hash(chunk);
    this.#hasher = hasher;
  }

  /** Whether the hashing moved to another thread. */
  get offloaded(): boolean {
    return this.#hasher !== undefined;
  }

  #hashHeld(): Hash {
    const hash = createHash('sha256');
    for (const chunk of this.#held ?? []) hash.update(chunk);
    this.#held = undefined;
    this.#hash = hash;
    return hash;
  }

  /** `sha256:<hex>` of everything read (call once, at the end). */
  digest(): string {
    if (this.#hasher !== undefined) return this.#hasher.digest();
    return 'sha256:' + (this.#hash ?? this.#hashHeld()).digest('hex');
  }
}

/** Streams a byte range of a file in chunks of at most 1 MiB. */
export async function* readFileRange(range: ByteRange): AsyncGenerator<Buffer> {
  if (range.bytes !== undefined) {
    if (range.bytes.length > 0) yield range.bytes;
    return;
  }
  const fd = openLayerFile(range.file, 'export');
  try {
    let pos = range.offset;
    let left = range.length;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, READ_CHUNK_BYTES));
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return;
      pos += n;
      left -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export const portableBackend: NativeBackend = {
  name: 'portable',

  async writeLayer(req: WriteLayerRequest): Promise<WriteLayerResult> {
    // Loaded on first use: a worker that imports never compiles the export code, and back.
    const [{ writeLayerFromTar }, { readTar }, { TransportLayerWriter }] = await Promise.all([
      import('../convert/import-tar.js'),
      import('../tar/reader.js'),
      import('../layer/layer-writer.js'),
    ]);
    const source = new DigestingSource(req.source, { offloadable: true });
    // Files are flushed all at once by the store before the commit rename.
    const writer = new TransportLayerWriter({
      root: req.root,
      parents: req.parents,
      durable: false,
      onFileThread: (hasher) => source.offload(hasher),
    });
    try {
      const result = await writeLayerFromTar(readTar(source), writer, {
        signal: req.signal,
        onProgress: req.onProgress,
        bytesRead: () => source.bytes,
      });
      await writer.settled();
      const digest = source.digest();
      writer.close({ id: req.id, size: result.size, entries: result.entries, digest });
      await writer.flushed();
      return { size: result.size, entries: result.entries, digest };
    } catch (error) {
      const reported = await writer.reportedFailure(error);
      writer.abort();
      throw reported;
    }
  },

  async *readLayer(req: ReadLayerRequest): AsyncGenerator<Buffer> {
    const [{ tarFromLayerEntries }, { readLayerEntries }] = await Promise.all([import('../convert/export-tar.js'), import('../layer/layer-reader.js')]);
    yield* tarFromLayerEntries(readLayerEntries(req.root), readFileRange, { signal: req.signal, onProgress: req.onProgress });
  },
};
