/**
 * Layer blobs travel compressed (registries serve `tar+gzip`, and more and more
 * `tar+zstd`), while the layer itself, its digest (the DiffID) and everything below work
 * on the tar. The first bytes of the input say which it is: gzip is decompressed on the fly,
 * streaming, as is zstd where Node's zlib has it; other compressions are a typed error that
 * says what to do. Anything else passes through untouched.
 */
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { createError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const BZIP2_MAGIC = [0x42, 0x5a, 0x68];
/** Enough bytes to tell every format above apart. */
const SNIFF_BYTES = 6;
/** Decompressed bytes per chunk. */
const OUTPUT_CHUNK = 256 * 1024;

/** The compression the first bytes of an input announce. */
export function sniffCompression(head: Uint8Array): Compression | 'xz' | 'bzip2' {
  const starts = (magic: readonly number[]): boolean => head.length >= magic.length && magic.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  if (starts(XZ_MAGIC)) return 'xz';
  // "BZh" then a block size digit: a tar's first name byte is rarely 'B' followed by "Zh1".."Zh9".
  if (starts(BZIP2_MAGIC) && head.length > 3 && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39) return 'bzip2';
  return 'none';
}

type ZstdFactory = (options?: { chunkSize?: number }) => NodeJS.ReadWriteStream & Readable;

/** Node's zstd decompressor, where this Node has one (22.15 and later). */
function zstdFactory(zlib: typeof import('node:zlib')): ZstdFactory | undefined {
  const candidate = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;
  return typeof candidate === 'function' ? candidate : undefined;
}

/**
 * `chunk` as bytes: a layer tar's input is bytes. A string (a stream read with an
 * encoding) or any other value is the caller's mistake, ERR_ARGUMENT_INVALID, not a tar
 * to judge.
 */
export function tarChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') throw createError('ERR_ARGUMENT_INVALID', 'tar input: got a string chunk; read the input without an encoding');
  throw createError('ERR_ARGUMENT_INVALID', `tar input: got a chunk that is not bytes (${chunk === null ? 'null' : typeof chunk}); give Buffers or Uint8Arrays`);
}

/**
 * The tar bytes of `source`: decompressed when it starts like a gzip (or, with a Node that
 * has it, zstd) stream, as is otherwise. `onCompression` learns which it was.
 */
export async function* decompressIfNeeded(
  source: AsyncIterable<Uint8Array>,
  onCompression?: (c: Compression) => void,
): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let ended = false;
  try {
    while (headBytes < SNIFF_BYTES) {
      const r = await it.next();
      if (r.done === true) {
        ended = true;
        break;
      }
      const chunk = tarChunk(r.value);
      if (chunk.length === 0) continue;
      head.push(chunk);
      headBytes += chunk.length;
    }
    const first = head.length === 1 ? (head[0] as Uint8Array) : Buffer.concat(head);
    const kind = sniffCompression(first);
    if (kind === 'xz' || kind === 'bzip2') {
      const zstd = zstdFactory(createRequire(import.meta.url)('node:zlib') as typeof import('node:zlib')) !== undefined;
      const reads = zstd ? 'tar, tar+gzip and tar+zstd' : 'tar and tar+gzip, and tar+zstd on Node 22.15 or later';
      throw createError('ERR_COMPRESSION_UNSUPPORTED', `the input is ${kind}-compressed: decompress it first (winlayer reads ${reads})`, {
        compression: kind,
      });
    }
    let factory: (() => NodeJS.ReadWriteStream & Readable) | undefined;
    // Loaded only for compressed input: a plain tar's worker does not pay for it at start-up.
    // require, not import(): the worker's bundle runs as CommonJS in a vm.Script, where import() has no loader.
    const zlib = kind === 'none' ? undefined : (createRequire(import.meta.url)('node:zlib') as typeof import('node:zlib'));
    if (kind === 'gzip' && zlib !== undefined) factory = () => zlib.createGunzip({ chunkSize: OUTPUT_CHUNK });
    if (kind === 'zstd' && zlib !== undefined) {
      const zstd = zstdFactory(zlib);
      if (zstd === undefined) {
        throw createError(
          'ERR_COMPRESSION_UNSUPPORTED',
          `the input is zstd-compressed and Node ${process.version} cannot decompress zstd: decompress it first (zstd -d), or use Node 22.15 or later`,
          { compression: kind },
        );
      }
      factory = () => zstd({ chunkSize: OUTPUT_CHUNK });
    }
    onCompression?.(kind === 'none' ? 'none' : kind);
    if (factory === undefined) {
      if (headBytes > 0) yield first;
      if (ended) return;
      for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
      return;
    }
    yield* inflate(first, it, ended, factory, kind);
  } finally {
    // The caller stopped early or something failed: let the source release its resources.
    // An async generator that is busy finishes its step first, so do not wait for it.
    if (!ended) it.return?.()?.catch(() => undefined);
  }
}

async function* inflate(
  first: Uint8Array,
  it: AsyncIterator<Uint8Array>,
  ended: boolean,
  factory: () => NodeJS.ReadWriteStream & Readable,
  kind: string,
): AsyncGenerator<Uint8Array> {
  const decoder = factory();
  // Feeds the decoder from the source with backpressure; the decoder's output is read below.
  // Once the decoder is destroyed (the reader stopped, or it failed) feeding stops.
  let feedError: unknown;
  const write = (chunk: Uint8Array): Promise<boolean> =>
    new Promise((resolve) => {
      if (decoder.destroyed) {
        resolve(false);
        return;
      }
      if (decoder.write(chunk)) {
        resolve(true);
        return;
      }
      const settle = (): void => {
        decoder.off('drain', settle);
        decoder.off('close', settle);
        resolve(!decoder.destroyed);
      };
      decoder.on('drain', settle);
      decoder.on('close', settle);
    });
  const feed = async (): Promise<void> => {
    try {
      if (!(await write(first))) return;
      if (!ended) {
        for (let r = await it.next(); r.done !== true; r = await it.next()) {
          if (!(await write(r.value))) return;
        }
      }
      if (!decoder.destroyed) decoder.end();
    } catch (error) {
      feedError = error;
      decoder.destroy(error as Error);
    }
  };
  void feed();
  try {
    for await (const chunk of decoder as AsyncIterable<Buffer>) yield chunk;
  } catch (error) {
    if (feedError !== undefined) throw feedError;
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw createError('ERR_COMPRESSED_INVALID', `the ${kind} input does not decompress: ${(error as Error).message}`, { compression: kind, reason: code }, error);
  } finally {
    decoder.destroy();
  }
}
