/**
 * The portable backend: layers in the transport format on any POSIX file system, with
 * what POSIX cannot hold in the layer's metadata index. The default off Windows.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ByteRange } from '../layer/layer-reader.js';
import type { NativeBackend, ReadLayerRequest, WriteLayerRequest, WriteLayerResult } from './backend.js';

const READ_CHUNK_BYTES = 1024 * 1024;

/** Counts and hashes the bytes of a source as they pass. */
export class DigestingSource implements AsyncIterable<Uint8Array> {
  readonly #source: AsyncIterable<Uint8Array>;
  readonly #hash = createHash('sha256');
  bytes = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#source = source;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const chunk of this.#source) {
      this.#hash.update(chunk);
      this.bytes += chunk.length;
      yield chunk;
    }
  }

  /** `sha256:<hex>` of everything read (call once, at the end). */
  digest(): string {
    return 'sha256:' + this.#hash.digest('hex');
  }
}

/** Streams a byte range of a file in chunks of at most 1 MiB. */
export async function* readFileRange(range: ByteRange): AsyncGenerator<Buffer> {
  if (range.bytes !== undefined) {
    if (range.bytes.length > 0) yield range.bytes;
    return;
  }
  const fd = fs.openSync(range.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
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
    const source = new DigestingSource(req.source);
    // Files are flushed all at once by the store before the commit rename.
    const writer = new TransportLayerWriter({ root: req.root, parents: req.parents, durable: false });
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
      writer.abort();
      throw error;
    }
  },

  async *readLayer(req: ReadLayerRequest): AsyncGenerator<Buffer> {
    const [{ tarFromLayerEntries }, { readLayerEntries }] = await Promise.all([import('../convert/export-tar.js'), import('../layer/layer-reader.js')]);
    yield* tarFromLayerEntries(readLayerEntries(req.root), readFileRange, { signal: req.signal, onProgress: req.onProgress });
  },
};
