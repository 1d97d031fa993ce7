/**
 * Compressed layer blobs: gzip (and zstd where Node has it) is decompressed on the fly on
 * import, the digest is the tar's (the DiffID), and other or broken compression is a typed
 * error that leaves the store as it was.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { decompressIfNeeded, sniffCompression, type Compression } from '../../src/tar/decompress.js';
import { feedInChunks } from '../helpers/chunks.js';
import { baseLayer } from '../helpers/layers.js';
import { cleanupTemp, exportTar, importTar, listTree, openStore, rejectionCode } from '../helpers/store.js';

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source) parts.push(c);
  return Buffer.concat(parts);
}

const hasZstd = typeof (zlib as unknown as { zstdCompressSync?: unknown }).zstdCompressSync === 'function';

describe('tar/decompress', () => {
  after(cleanupTemp);

  it('tells gzip, zstd, xz and bzip2 from a tar by their first bytes', () => {
    const cases: [number[], string][] = [
      [[0x1f, 0x8b, 0x08, 0, 0, 0], 'gzip'],
      [[0x28, 0xb5, 0x2f, 0xfd, 0, 0], 'zstd'],
      [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz'],
      [[0x42, 0x5a, 0x68, 0x39, 0x31, 0x41], 'bzip2'],
      [[...Buffer.from('Files\0')], 'none'],
      [[...Buffer.from('BZhx..')], 'none'],
      [[0x1f], 'none'],
      [[], 'none'],
    ];
    expect(cases.map(([bytes]) => sniffCompression(Uint8Array.from(bytes)))).to.deep.equal(cases.map(([, kind]) => kind));
  });

  for (const chunk of [1, 7, 64 * 1024]) {
    it(`passes a plain tar through unchanged and gunzips a gzip one, fed ${chunk} bytes at a time`, async () => {
      const tar = await buildLayerTar(baseLayer);
      const seen: Compression[] = [];
      expect((await collect(decompressIfNeeded(feedInChunks(tar, chunk), (c) => seen.push(c)))).equals(tar)).to.equal(true);
      const gz = zlib.gzipSync(tar);
      expect((await collect(decompressIfNeeded(feedInChunks(gz, chunk), (c) => seen.push(c)))).equals(tar)).to.equal(true);
      expect(seen).to.deep.equal(['none', 'gzip']);
    });
  }

  it('reads a gzip of several members as one stream, as gzip -d does', async () => {
    const tar = await buildLayerTar(baseLayer);
    const cut = 3000;
    const gz = Buffer.concat([zlib.gzipSync(tar.subarray(0, cut)), zlib.gzipSync(tar.subarray(cut))]);
    expect((await collect(decompressIfNeeded(feedInChunks(gz, 512)))).equals(tar)).to.equal(true);
  });

  it('imports a tar+gzip blob as the layer its tar makes, with the tar digest (the DiffID), and exports the tar', async () => {
    const tar = await buildLayerTar(baseLayer);
    const plain = await openStore();
    const packed = await openStore();
    const want = await importTar(plain, 'l', tar);
    const got = await importTar(packed, 'l', zlib.gzipSync(tar, { level: 9 }), undefined, 1000);
    expect({ ...got, path: '' }).to.deep.equal({ ...want, path: '' });
    expect((await exportTar(packed, 'l')).equals(tar)).to.equal(true);
  });

  const broken: { title: string; blob: () => Promise<Buffer>; code: string }[] = [
    { title: 'a gzip cut short', blob: async () => zlib.gzipSync(await buildLayerTar(baseLayer)).subarray(0, 400), code: 'ERR_COMPRESSED_INVALID' },
    {
      title: 'a gzip with a corrupt body',
      blob: async () => {
        const gz = zlib.gzipSync(await buildLayerTar(baseLayer));
        for (let i = 20; i < 60; i++) gz[i] = (gz[i] ?? 0) ^ 0x5a;
        return gz;
      },
      code: 'ERR_COMPRESSED_INVALID',
    },
    { title: 'a gzip of something that is not a tar', blob: async () => zlib.gzipSync(Buffer.alloc(4096, 0x41)), code: 'ERR_TAR_HEADER_INVALID' },
    { title: 'an xz blob', blob: async () => Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]), code: 'ERR_COMPRESSION_UNSUPPORTED' },
    { title: 'a bzip2 blob', blob: async () => Buffer.from('BZh91AY&SY'), code: 'ERR_COMPRESSION_UNSUPPORTED' },
  ];
  if (!hasZstd) {
    broken.push({ title: `a zstd blob (Node ${process.version} has no zstd)`, blob: async () => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]), code: 'ERR_COMPRESSION_UNSUPPORTED' });
  }
  for (const b of broken) {
    it(`rejects ${b.title} with ${b.code} and leaves the store as it was`, async () => {
      const store = await openStore();
      const before = listTree(store.home);
      expect(await rejectionCode(async () => importTar(store, 'bad', await b.blob(), undefined, 333))).to.equal(b.code);
      expect(listTree(store.home)).to.deep.equal(before);
    });
  }

  (hasZstd ? it : it.skip)('imports a tar+zstd blob where Node has zstd', async () => {
    const tar = await buildLayerTar(baseLayer);
    const zstd = (zlib as unknown as { zstdCompressSync: (b: Buffer) => Buffer }).zstdCompressSync(tar);
    const store = await openStore();
    await importTar(store, 'z', zstd);
    expect((await exportTar(store, 'z')).equals(tar)).to.equal(true);
  });

  it('stops reading the source when the reader stops early', async () => {
    let returned = false;
    let pulled = 0;
    const gz = zlib.gzipSync(randomBytes(2 * 1024 * 1024));
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (let at = 0; at < gz.length; at += 1024) {
          pulled++;
          yield gz.subarray(at, at + 1024);
        }
      } finally {
        returned = true;
      }
    }
    for await (const chunk of decompressIfNeeded(source())) {
      expect(chunk.length).to.be.greaterThan(0);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(returned, 'the source was returned').to.equal(true);
    expect(pulled, 'chunks pulled of ' + Math.ceil(gz.length / 1024)).to.be.lessThan(Math.ceil(gz.length / 1024) / 2);
  });
});
