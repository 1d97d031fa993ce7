/**
 * WindowsFilterDriver: every method's behaviour and side effects, imports and exports
 * through real worker processes.
 */
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { WindowsFilterDriver } from '../../src/driver/driver.js';
import { noReexecAsked } from '../../src/controller/protocol.js';
import type { WinLayerError } from '../../src/errors.js';
import { parseRamSize, parseStorageOptions } from '../../src/driver/storage-opt.js';
import { fileSystemNameFromFsutil, refuseReFS } from '../../src/driver/refs.js';
import { readTar } from '../../src/tar/reader.js';
import { readIndexEntriesSync } from '../../src/layer/metadata-index.js';
import { FILE_ATTRIBUTE_DIRECTORY, filetimeFromUnixNs } from '../../src/util/windows.js';
import { portableBackend } from '../../src/native/portable.js';
import { NATIVE_BACKEND_ENV } from '../../src/native/select.js';
import { feedInChunks } from '../helpers/chunks.js';
import { baseLayer, deltaLayer, filesLayer } from '../helpers/layers.js';
import { cleanupTemp, listTree, rejection, rejectionCode, storeEntries, tempDir, withUnremovable } from '../helpers/store.js';

const sd = CRANE_SECURITY_DESCRIPTOR;

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * Writes `text` (the file's length) into `file` and sets its times back to the microsecond,
 * as `cp -p` or `tar x` leave a file: only its change time says it was written.
 */
function rewriteKeepingTimes(file: string, text: string): void {
  const before = fs.statSync(file, { bigint: true });
  fs.writeFileSync(file, text);
  // Numbers, not Dates: a Date would lose the microseconds, and the time would show the write.
  fs.utimesSync(file, Number(before.atimeNs) / 1e9, Number(before.mtimeNs) / 1e9);
  expect(fs.statSync(file, { bigint: true }).mtimeNs / 1000n).to.equal(before.mtimeNs / 1000n);
}

/** Imports the layer tar made of `entries` as `id` on `parent`. */
async function applyEntries(driver: WindowsFilterDriver, id: string, parent: string | undefined, entries: BuilderEntry[]): Promise<void> {
  await driver.applyDiff(id, parent, Readable.from([await buildLayerTar(entries)]));
}

async function entryNames(tar: Buffer): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
    out.push(e.header.name);
    for await (const _ of e.body) void _;
  }
  return out;
}

export async function openDriver(extra: Partial<Parameters<typeof WindowsFilterDriver.open>[0]> = {}): Promise<WindowsFilterDriver> {
  return WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 2, ...extra });
}

describe('driver: WindowsFilterDriver', function () {
  this.timeout(120_000);
  after(cleanupTemp);

  describe('applyDiff and diff through worker processes', () => {
    it('imports a base and a delta layer and exports them byte for byte', async () => {
      const driver = await openDriver();
      const base = await buildLayerTar(baseLayer);
      const delta = await buildLayerTar(deltaLayer);
      const r1 = await driver.applyDiff('base', undefined, Readable.from([base]));
      expect(r1.size).to.equal(9 + 4 + 3000 + 4);
      expect(r1.entries).to.equal(10);
      expect(r1.digest).to.match(/^sha256:[0-9a-f]{64}$/);
      const r2 = await driver.applyDiff('delta', 'base', Readable.from([delta]));
      expect(r2.size).to.equal(14 + 5);
      expect((await collect(driver.diff('base'))).equals(base)).to.equal(true);
      expect((await collect(driver.diff('delta', 'base'))).equals(delta)).to.equal(true);
      expect(JSON.parse(fs.readFileSync(path.join(driver.home, 'delta', 'layerchain.json'), 'utf8'))).to.deep.equal([path.join(driver.home, 'base')]);
      // A base layer's chain is `null`, as moby writes it; one written `[]` reads the same.
      expect(fs.readFileSync(path.join(driver.home, 'base', 'layerchain.json'), 'utf8')).to.equal('null');
      // Nor tombstones, which hcsshim's base writer never writes; a delta has them, if empty.
      expect(['base', 'delta'].map((id) => fs.existsSync(path.join(driver.home, id, 'tombstones.txt')))).to.deep.equal([false, true]);
      expect(driver.store.readChain('base')).to.deep.equal([]);
      fs.writeFileSync(path.join(driver.home, 'base', 'layerchain.json'), '[]');
      expect(driver.store.readChain('base')).to.deep.equal([]);
    });

    it('takes a tar+gzip blob through the worker: the same layer, the digest of the tar inside', async () => {
      const driver = await openDriver();
      const base = await buildLayerTar(baseLayer);
      const plain = await driver.applyDiff('plain', undefined, Readable.from([base]));
      const packed = await driver.applyDiff('packed', undefined, Readable.from([gzipSync(base)]));
      expect({ size: packed.size, entries: packed.entries, digest: packed.digest }).to.deep.equal({ size: plain.size, entries: plain.entries, digest: plain.digest });
      expect((await collect(driver.diff('packed'))).equals(base)).to.equal(true);
    });

    it('hands an open file descriptor to the worker (and reads it in process)', async () => {
      const tar = await buildLayerTar(baseLayer);
      const file = path.join(tempDir(), 'layer.tar');
      fs.writeFileSync(file, tar);
      for (const inProcess of [false, true]) {
        const driver = await openDriver({ inProcess });
        const fd = fs.openSync(file, 'r');
        try {
          const r = await driver.applyDiff('fd', undefined, { fd });
          expect(r.entries).to.equal(10);
        } finally {
          fs.closeSync(fd);
        }
        expect((await collect(driver.diff('fd'))).equals(tar)).to.equal(true);
      }
      // A descriptor that is not open: no worker could start, which is said as such.
      const closed = 4000; // far above what this process has open
      const e = (await (await openDriver()).applyDiff('closed', undefined, { fd: closed }).then(
        () => undefined,
        (error: unknown) => error,
      )) as WinLayerError;
      expect({ code: e.code, errno: e.data['errno'] }).to.deep.equal({ code: 'ERR_IO', errno: 'EBADF' });
    });

    it('reports progress from the worker', async () => {
      const driver = await openDriver();
      const seen: number[] = [];
      await driver.applyDiff('p', undefined, Readable.from([await buildLayerTar(baseLayer)]), { onProgress: (p) => seen.push(p.entries) });
      expect(seen.length).to.be.greaterThan(0);
      expect(seen[seen.length - 1]).to.be.at.most(10);
    });

    for (const inProcess of [false, true]) {
      it(`an onProgress that throws is ignored ${inProcess ? 'in process' : 'through a worker'}: import, mount and export complete`, async () => {
        const driver = await openDriver({ inProcess });
        let calls = 0;
        const boom = (): void => {
          calls++;
          throw new Error('drawing failed');
        };
        const tar = await buildLayerTar(filesLayer(3000, 16));
        const r = await driver.applyDiff('p', undefined, Readable.from([tar]), { onProgress: boom });
        expect([r.entries, r.size]).to.deep.equal([3001, 3000 * 16]);
        expect(driver.exists('p')).to.equal(true);
        expect(fs.readdirSync(await driver.get('p', { onProgress: boom })).length).to.be.greaterThan(0);
        expect((await collect(driver.diff('p', undefined, { onProgress: boom }))).equals(tar)).to.equal(true);
        expect(calls).to.be.greaterThan(0);
      });
    }

    it('rebuilds the worker error with its code, and leaves no layer', async () => {
      const driver = await openDriver();
      const bad = await buildLayerTar([{ type: 'file', name: 'Files/../escape', data: 'x' } as BuilderEntry]).catch(() => undefined);
      const tar = bad ?? (await buildLayerTar([{ type: 'raw', header: { name: 'Files/../escape', typeflag: '0', size: 0, mode: 0o100644, mtime: 0n, format: 'pax' } }]));
      expect(await rejectionCode(() => driver.applyDiff('bad', undefined, Readable.from([tar])))).to.equal('ERR_PATH_ESCAPE');
      expect(driver.exists('bad')).to.equal(false);
      expect(listTree(driver.home).filter((n) => n.startsWith('bad'))).to.deep.equal([]);
    });

    it('a source that is not a tar source, or a chunk that is not bytes, is ERR_ARGUMENT_INVALID in a worker and in process alike', async () => {
      const tar = await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        { type: 'file', name: 'Files/big.bin', data: Buffer.alloc(3 << 20, 1), securityDescriptor: sd },
      ]);
      for (const inProcess of [false, true]) {
        const driver = await openDriver();
        const d = inProcess ? await WindowsFilterDriver.open({ home: driver.home, inProcess: true }) : driver;
        // What a caller may get wrong, as the type system would not see it from JavaScript.
        for (const source of [[tar], null, 5, 'layer.tar', { fd: -1 }, tar]) {
          expect(await rejectionCode(() => d.applyDiff('x', undefined, source as unknown as Readable))).to.equal('ERR_ARGUMENT_INVALID');
        }
        expect(await rejectionCode(() => d.applyDiff('x', undefined, Readable.from([{ not: 'bytes' }])))).to.equal('ERR_ARGUMENT_INVALID');
        // A bad chunk after the first 2 MiB: the worker has started and read them; what is
        // reported is the chunk, not the cut tar the worker saw.
        async function* late(): AsyncGenerator<unknown> {
          yield tar.subarray(0, 2 << 20);
          await new Promise((resolve) => setTimeout(resolve, 150));
          yield 'a string';
        }
        expect(await rejectionCode(() => d.applyDiff('x', undefined, late() as AsyncIterable<Uint8Array>))).to.equal('ERR_ARGUMENT_INVALID');
        expect(listTree(d.home).filter((n) => n.startsWith('x'))).to.deep.equal([]);
        expect((await d.applyDiff('x', undefined, Readable.from([tar]))).size).to.equal(3 << 20);
      }
    });

    it('a source stream that fails mid-way is reported as its own failure (ERR_IO), not as a cut tar; nothing is left', async () => {
      const driver = await openDriver();
      const tar = await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        { type: 'file', name: 'Files/big.bin', data: Buffer.alloc(3 << 20, 1), securityDescriptor: sd },
      ]);
      async function* failing(): AsyncGenerator<Buffer> {
        yield tar.subarray(0, 2 << 20);
        await new Promise((resolve) => setTimeout(resolve, 150));
        throw Object.assign(new Error('connection reset by registry'), { code: 'ECONNRESET' });
      }
      const e = await rejection(() => driver.applyDiff('x', undefined, Readable.from(failing())));
      expect(e.code).to.equal('ERR_IO');
      expect(e.message).to.include('connection reset by registry');
      expect(listTree(driver.home).filter((n) => n.startsWith('x'))).to.deep.equal([]);
      expect((await driver.applyDiff('x', undefined, Readable.from([tar]))).size).to.equal(3 << 20);
    });

    it('refuses an unknown parent and an existing layer', async () => {
      const driver = await openDriver();
      const tar = await buildLayerTar(baseLayer);
      expect(await rejectionCode(() => driver.applyDiff('x', 'nope', Readable.from([tar])))).to.equal('ERR_PARENT_NOT_FOUND');
      await driver.applyDiff('x', undefined, Readable.from([tar]));
      expect(await rejectionCode(() => driver.applyDiff('x', undefined, Readable.from([tar])))).to.equal('ERR_LAYER_EXISTS');
      expect(await rejectionCode(() => driver.applyDiff('../x', undefined, Readable.from([tar])))).to.equal('ERR_ID_INVALID');
    });

    it('refuses a parent chain holding a layer with a damaged layer.json, writing nothing', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('mid', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const summary = path.join(driver.store.layerPath('base'), '.winlayer', 'layer.json');
      const good = fs.readFileSync(summary);
      fs.writeFileSync(summary, 'garbage{');
      const tar = await buildLayerTar(deltaLayer);
      // The parent itself, and a layer further down its chain.
      for (const parent of ['base', 'mid']) {
        const e = await rejection(() => driver.applyDiff(`on-${parent}`, parent, Readable.from([tar])));
        expect(e.code).to.equal('ERR_LAYER_CORRUPT');
        expect(e.data['path']).to.equal(driver.store.layerPath('base'));
        expect(await rejectionCode(() => driver.create(`empty-${parent}`, parent))).to.equal('ERR_LAYER_CORRUPT');
        expect(await rejectionCode(() => driver.createReadWrite(`rw-${parent}`, parent))).to.equal('ERR_LAYER_CORRUPT');
      }
      expect(fs.readdirSync(driver.home).filter((n) => !n.startsWith('.')).sort()).to.deep.equal(['base', 'mid']);
      // Mended, the same imports go through.
      fs.writeFileSync(summary, good);
      await driver.applyDiff('on-mid', 'mid', Readable.from([tar]));
      expect(driver.exists('on-mid')).to.equal(true);
    });

    it('runs in process when asked (WINLAYER_NOREEXEC)', async () => {
      const driver = await openDriver({ inProcess: true });
      const tar = await buildLayerTar(baseLayer);
      await driver.applyDiff('inproc', undefined, Readable.from([tar]));
      expect((await collect(driver.diff('inproc'))).equals(tar)).to.equal(true);
      expect(Object.fromEntries(driver.status())['Workers']).to.equal('in process');
      // As the environment asks: set to anything but empty or 0.
      expect([undefined, '', '0', '1', 'yes'].map((v) => noReexecAsked(v === undefined ? {} : { WINLAYER_NOREEXEC: v }))).to.deep.equal([false, false, false, true, true]);
    });
  });

  describe('create, exists, getMetadata, status', () => {
    it('creates an empty layer that applyDiff then fills', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('l2', 'base');
      expect(driver.exists('l2')).to.equal(true);
      expect(await driver.changes('l2')).to.deep.equal([]);
      const delta = await buildLayerTar(deltaLayer);
      await driver.applyDiff('l2', 'base', Readable.from([delta]));
      expect((await collect(driver.diff('l2'))).equals(delta)).to.equal(true);
      expect(driver.getMetadata('l2')).to.deep.equal({ dir: path.join(driver.home, 'l2') });
      expect(Object.fromEntries(driver.status())['Read-only layers']).to.equal('2');
      expect(await rejectionCode(async () => driver.create('l2', 'base'))).to.equal('ERR_LAYER_EXISTS');
      expect(await rejectionCode(async () => driver.getMetadata('missing'))).to.equal('ERR_LAYER_NOT_FOUND');
    });

    it('refuses to fill a layer create() made once layers are made on it (ERR_LAYER_IN_USE), leaving it and them as they were', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('empty', 'base');
      const delta = await buildLayerTar(deltaLayer);
      for (const child of ['rw-child', 'ro-child']) {
        if (child === 'rw-child') await driver.createReadWrite(child, 'empty');
        else await driver.create(child, 'empty');
        const before = await driver.changes(child);
        const err = await rejection(() => driver.applyDiff('empty', 'base', Readable.from([delta])));
        expect([err.code, err.data['child']]).to.deep.equal(['ERR_LAYER_IN_USE', child]);
        expect(await driver.changes('empty')).to.deep.equal([]);
        expect(await driver.changes(child)).to.deep.equal(before);
        await driver.remove(child);
      }
      // With no child left it fills as before.
      await driver.applyDiff('empty', 'base', Readable.from([delta]));
      expect((await collect(driver.diff('empty'))).equals(delta)).to.equal(true);
    });

    it('parses storage options like go-units RAMInBytes', async () => {
      expect(parseRamSize('20GB')).to.equal(20 * 2 ** 30);
      expect(parseRamSize('1.5g')).to.equal(1.5 * 2 ** 30);
      expect(parseRamSize('512m')).to.equal(512 * 2 ** 20);
      expect(parseRamSize('512 MiB')).to.equal(512 * 2 ** 20);
      expect(parseRamSize('4096')).to.equal(4096);
      for (const junk of ['', 'big', '-1g', '1x', '1.2.3g', '20 GBs']) {
        expect(await rejectionCode(async () => parseRamSize(junk)), junk).to.equal('ERR_ARGUMENT_INVALID');
      }
      expect(parseStorageOptions(['SIZE=1g'])).to.deep.equal({ size: 2 ** 30 });
      expect(await rejectionCode(async () => parseStorageOptions(['color=blue']))).to.equal('ERR_ARGUMENT_INVALID');
      const driver = await openDriver();
      expect(await rejectionCode(() => driver.createReadWrite('c', undefined, { storageOpt: { size: 'lots' } }))).to.equal('ERR_ARGUMENT_INVALID');
      expect(driver.exists('c')).to.equal(false);
      await driver.createReadWrite('c', undefined, { storageOpt: { size: '20GB' } });
      expect(driver.list().find((l) => l.id === 'c')?.kind).to.equal('read-write');
    });
  });

  describe('the backend option', () => {
    it('refuses a backend that is neither a known name nor a backend of one, before making the store', async () => {
      for (const backend of ['nope', '', 5, null, {}, { name: 'edge' }, { ...portableBackend, name: 'other' }]) {
        const home = path.join(tempDir(), 'home');
        expect(await rejectionCode(() => WindowsFilterDriver.open({ home, backend: backend as never })), String(backend)).to.equal('ERR_ARGUMENT_INVALID');
        expect(fs.existsSync(home)).to.equal(false);
      }
    });

    it('runs the backend it was given, by name or as an object, in its workers whatever WINLAYER_NATIVE says', async () => {
      const saved = process.env[NATIVE_BACKEND_ENV];
      // A worker that went by this would fail every job (ERR_ARGUMENT_INVALID).
      process.env[NATIVE_BACKEND_ENV] = 'no-such-backend';
      try {
        for (const backend of ['portable', portableBackend] as const) {
          const driver = await openDriver({ backend });
          expect(Object.fromEntries(driver.status())['Backend']).to.equal('portable');
          const tar = await buildLayerTar(baseLayer);
          await driver.applyDiff('base', undefined, Readable.from([tar]));
          expect((await collect(driver.diff('base'))).equals(tar)).to.equal(true);
          expect((await driver.changes('base')).length).to.be.greaterThan(0);
          await driver.get('base');
          await driver.put('base');
        }
      } finally {
        if (saved === undefined) delete process.env[NATIVE_BACKEND_ENV];
        else process.env[NATIVE_BACKEND_ENV] = saved;
      }
    });
  });

  describe('remove', () => {
    it('removes a layer; a missing one is not an error; a parent or a mounted layer is', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      await driver.remove('never-was');
      expect(await rejectionCode(() => driver.remove('base'))).to.equal('ERR_LAYER_IN_USE');
      await driver.get('delta');
      expect(await rejectionCode(() => driver.remove('delta'))).to.equal('ERR_LAYER_IN_USE');
      await driver.put('delta');
      await driver.remove('delta');
      expect(driver.exists('delta')).to.equal(false);
      await driver.remove('base');
      expect(listTree(driver.home).filter((n) => !n.startsWith('.mounts'))).to.deep.equal([]);
    });

    it('refuses to remove the parent of an import in progress, and an import whose parent went during it commits nothing', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const tar = await buildLayerTar(deltaLayer);
      // The child's tar arrives in two parts; the parent is removed in between.
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield tar.subarray(0, 512);
        await gate;
        yield tar.subarray(512);
      }
      const importing = driver.applyDiff('delta', 'base', slow());
      try {
        // Started, and its chain written: before that, the commit is what refuses the gone parent (below).
        const staging = (): boolean => storeEntries(driver.home).some((n) => n.startsWith('delta-importing-') && fs.existsSync(path.join(driver.home, n, 'layerchain.json')));
        for (let i = 0; i < 500 && !staging(); i++) await new Promise((r) => setTimeout(r, 10));
        expect(staging(), 'the import started').to.equal(true);
        expect(await rejectionCode(() => driver.remove('base'))).to.equal('ERR_LAYER_IN_USE');
      } finally {
        release();
      }
      await importing;
      expect(await rejectionCode(() => driver.remove('base'))).to.equal('ERR_LAYER_IN_USE');
      await driver.remove('delta');
      // A parent that goes before the import could be seen (here: by hand) fails the commit.
      const store = driver.store;
      const stage = await store.beginImport('orphan', [store.layerPath('base')]);
      fs.renameSync(store.layerPath('base'), path.join(driver.home, 'gone'));
      expect(await rejectionCode(() => store.commit(stage, [store.layerPath('base')]))).to.equal('ERR_PARENT_NOT_FOUND');
      await store.abort(stage);
      expect(driver.exists('orphan')).to.equal(false);
    });

    it("a layer that create() made and applyDiff is replacing is in use: neither it nor its parent can be removed until the import ends", async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('child', 'base');
      const tar = await buildLayerTar(deltaLayer);
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      async function* slow(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
        await gate;
        yield bytes;
      }
      const setAside = (): boolean => storeEntries(driver.home).some((n) => n.startsWith('child-replacing-'));
      let importing = driver.applyDiff('child', 'base', slow(tar));
      for (let i = 0; i < 500 && !setAside(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(setAside(), 'the empty layer is set aside').to.equal(true);
      try {
        expect(await rejectionCode(() => driver.remove('base'))).to.equal('ERR_LAYER_IN_USE');
        expect(await rejectionCode(() => driver.remove('child'))).to.equal('ERR_LAYER_IN_USE');
        // Nor can the id be made again meanwhile, by this driver or another process's: the
        // import would fail at its commit and the set-aside layer be lost.
        const other = await WindowsFilterDriver.open({ home: driver.home });
        expect(await rejectionCode(() => other.create('child'))).to.equal('ERR_LAYER_EXISTS');
        expect(await rejectionCode(() => other.createReadWrite('child', 'base'))).to.equal('ERR_LAYER_EXISTS');
        expect(await rejectionCode(() => other.applyDiff('child', undefined, Readable.from([tar])))).to.equal('ERR_LAYER_EXISTS');
      } finally {
        release();
      }
      await importing;
      expect(driver.store.readChain('child')).to.deep.equal([driver.store.layerPath('base')]);
      expect(driver.list().find((l) => l.id === 'child')?.entries).to.be.greaterThan(0);
      // An import that fails puts the empty layer back; the removal asked for meanwhile was refused, not lost.
      await driver.remove('child');
      await driver.create('child', 'base');
      let fail: () => void = () => undefined;
      const failGate = new Promise<void>((resolve) => (fail = resolve));
      async function* bad(): AsyncGenerator<Uint8Array> {
        await failGate;
        yield Buffer.alloc(512, 0x41);
      }
      importing = driver.applyDiff('child', 'base', bad());
      for (let i = 0; i < 500 && !setAside(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await rejectionCode(() => driver.remove('child'))).to.equal('ERR_LAYER_IN_USE');
      fail();
      expect(await rejectionCode(() => importing)).to.equal('ERR_TAR_HEADER_INVALID');
      expect(driver.exists('child')).to.equal(true);
      // Set aside by an importer that died: it is the layer, and remove() removes it.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      fs.renameSync(driver.store.layerPath('child'), path.join(driver.home, `child-replacing-${dead}-000000000000`));
      // It is the layer: not made again beside it (the next open puts it back).
      expect(await rejectionCode(() => driver.create('child'))).to.equal('ERR_LAYER_EXISTS');
      await driver.remove('child');
      expect(storeEntries(driver.home).filter((n) => !n.startsWith('.'))).to.deep.equal(['base']);
      // Beside its layer (an importer killed after its commit), it is a leftover: it holds no
      // parent, and goes with the layer instead of coming back at the next open.
      await driver.applyDiff('child', 'base', Readable.from([tar]));
      // (One of a live process too: an import that lost to another's commit, or has yet to delete its copy.)
      for (const [owner, nonce] of [[dead, '111111111111'], [String(process.pid), '222222222222']]) {
        await driver.create('stale', 'base');
        fs.renameSync(driver.store.layerPath('stale'), path.join(driver.home, `child-replacing-${owner}-${nonce}`));
      }
      expect(driver.store.dependentOf(driver.store.layerPath('base'))).to.equal('child');
      await driver.remove('child');
      await driver.remove('base');
      await WindowsFilterDriver.open({ home: driver.home });
      expect(storeEntries(driver.home).filter((n) => !n.startsWith('.'))).to.deep.equal([]);
    });

    /** Runs `fn` with fs.promises.rename failing (EPERM) for the renames `fails` picks. */
    async function withFailingRename<T>(fails: (from: string, to: string) => boolean, fn: () => Promise<T>): Promise<T> {
      const rename = fs.promises.rename;
      fs.promises.rename = async (from: fs.PathLike, to: fs.PathLike) => {
        if (fails(String(from), String(to))) throw Object.assign(new Error('EPERM: operation not permitted, rename'), { code: 'EPERM' });
        return rename(from, to);
      };
      syncBuiltinESMExports();
      try {
        return await fn();
      } finally {
        fs.promises.rename = rename;
        syncBuiltinESMExports();
      }
    }
    const visible = (home: string): string[] => storeEntries(home).filter((n) => !n.startsWith('.'));

    it('a removal that fails after the layer went out of sight puts the layer back (a typed error, and a retry works)', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const e = await withFailingRename((_, to) => to.endsWith('base-removing'), () => rejection(() => driver.remove('base')));
      expect([e.code, e.data['id']]).to.deep.equal(['ERR_IO', 'base']);
      expect(visible(driver.home)).to.deep.equal(['base']);
      expect(driver.exists('base')).to.equal(true);
      // And when putting it back fails too, the copy this process left is no work of its: a retry takes it.
      const again = await withFailingRename((_, to) => to.endsWith('base-removing') || to.endsWith('/base'), () => rejection(() => driver.remove('base')));
      expect(again.code).to.equal('ERR_IO');
      expect(visible(driver.home)).to.have.length(1).and.to.satisfy((names: string[]) => names[0]?.startsWith(`base-replacing-${process.pid}-`));
      await driver.remove('base');
      expect(visible(driver.home)).to.deep.equal([]);
    });

    it('a replacing applyDiff that fails keeps the set-aside layer when it cannot put it back; a failed set-aside is a typed error', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('child', 'base');
      const bad = Readable.from([Buffer.alloc(512, 0x41)]);
      const e = await withFailingRename((from, to) => from.includes('child-replacing-') && to.endsWith('/child'), () => rejection(() => driver.applyDiff('child', 'base', bad)));
      expect(e.code).to.equal('ERR_TAR_HEADER_INVALID');
      expect(visible(driver.home).sort()).to.satisfy((names: string[]) => names[0] === 'base' && names[1]?.startsWith('child-replacing-') && names.length === 2);
      // Not lost: remove() (or the next open, once this process is gone) puts it back.
      expect(await rejectionCode(() => driver.remove('base'))).to.equal('ERR_LAYER_IN_USE');
      await driver.remove('child');
      await driver.create('child', 'base');
      const set = await withFailingRename((from, to) => from.endsWith('/child') && to.includes('child-replacing-'), () => rejection(() => driver.applyDiff('child', 'base', Readable.from([Buffer.alloc(1024)]))));
      expect(set.code).to.equal('ERR_IO');
      expect(visible(driver.home).sort()).to.deep.equal(['base', 'child']);
    });

    it('puts a parent back, and refuses its removal, when a child committed between the look for children and the rename', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const before = await collect(driver.diff('base'));
      // The first look misses the child, as it would had the child committed just after it.
      const store = driver.store;
      const look = store.dependentOf.bind(store);
      let looks = 0;
      let during: string[] = [];
      store.dependentOf = (layerPath: string) => {
        if (looks++ === 0) return undefined;
        during = storeEntries(driver.home);
        return look(layerPath);
      };
      const e = await rejection(() => driver.remove('base'));
      expect([e.code, e.data['child'], looks]).to.deep.equal(['ERR_LAYER_IN_USE', 'delta', 2]);
      // Meanwhile the layer was under a name with this process's pid, which no other process's sweep takes.
      expect(during.filter((n) => n.startsWith('base'))).to.have.length(1);
      expect(during.find((n) => n.startsWith('base'))).to.match(new RegExp(`^base-replacing-${process.pid}-[0-9a-f]{12}$`));
      expect(listTree(driver.home).filter((n) => !n.includes('/') && !n.startsWith('.'))).to.deep.equal(['base', 'delta']);
      expect((await collect(driver.diff('base'))).equals(before), 'the parent is whole').to.equal(true);
      expect((await collect(driver.diff('delta'))).length).to.be.greaterThan(1024);
    });
  });

  describe('get and put: the merged view', () => {
    it("a delta's hard link that comes before the layer's own file of its target's name is the parent's file, as hcsshim resolves it", async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        { type: 'link', name: 'Files/early-link.txt', target: 'Files/Windows/keep.txt' },
        { type: 'directory', name: 'Files/Windows', securityDescriptor: sd },
        { type: 'file', name: 'Files/Windows/keep.txt', data: 'PATCHED', securityDescriptor: sd },
        { type: 'link', name: 'Files/late-link.txt', target: 'Files/Windows/keep.txt' },
      ]);
      await driver.applyDiff('delta', 'base', Readable.from([delta]));
      const view = await driver.get('delta');
      expect(['early-link.txt', 'Windows/keep.txt', 'late-link.txt'].map((n) => fs.readFileSync(path.join(view, n), 'utf8'))).to.deep.equal(['keep', 'PATCHED', 'PATCHED']);
      const g = driver.diffGetter('delta');
      expect((await collect(g.get('Files/early-link.txt'))).toString()).to.equal('keep');
      expect((await collect(g.get('Files/late-link.txt'))).toString()).to.equal('PATCHED');
      g.close();
      expect((await collect(driver.diff('delta'))).equals(delta), 'the layer exports as it came').to.equal(true);
      // A target that no parent has and the layer adds only after the link: hcsshim finds none either.
      const forward = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'link', name: 'Files/forward-link.txt', target: 'Files/later.txt' },
        { type: 'file', name: 'Files/later.txt', data: 'later' },
      ]);
      expect(await rejectionCode(() => driver.applyDiff('forward', 'base', Readable.from([forward])))).to.equal('ERR_LINK_TARGET_NOT_FOUND');
      expect(driver.exists('forward')).to.equal(false);
      // A name that shares the target's name hash: test/layer/file-thread.test.ts (the hash is seeded in each process).
    });

    it('never hands out a view nobody counts (a mount that ended between writing its view and counting it): get makes it again, put and cleanup remove it', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('child', 'base');
      // The empty layer's view, left with no count, as by a `mount` killed just after it was written.
      const view = path.join(driver.home, '.mounts', 'child');
      const leave = async (id: string): Promise<void> => {
        const dir = await driver.get(id);
        fs.writeFileSync(path.join(dir, 'stale-marker'), 'from before');
        fs.rmSync(path.join(driver.home, '.mounts', `${id}.refs`));
      };
      await leave('child');
      await driver.applyDiff('child', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const dir = await driver.get('child');
      expect(dir).to.equal(view);
      expect(fs.existsSync(path.join(dir, 'stale-marker'))).to.equal(false);
      expect(fs.readFileSync(path.join(dir, 'Windows/added.txt'), 'utf8')).to.equal('added');
      expect(driver.mountCount('child')).to.equal(1);
      await driver.put('child');
      // put of what is not counted removes such a view; so do cleanup and the next open.
      await leave('child');
      await driver.put('child');
      expect(fs.existsSync(view)).to.equal(false);
      await leave('child');
      expect(await driver.cleanup()).to.deep.equal([path.join('.mounts', 'child')]);
      expect(fs.existsSync(view)).to.equal(false);
      await leave('child');
      // A command at work on that id holds its lock: an open does not wait for it (every command opens), and leaves the view.
      const lock = path.join(driver.home, '.mounts', 'child.lock');
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'owner'), `${process.pid} at work`);
      const t = Date.now();
      await WindowsFilterDriver.open({ home: driver.home });
      expect(Date.now() - t).to.be.lessThan(2_000);
      expect(fs.existsSync(view)).to.equal(true);
      fs.rmSync(lock, { recursive: true });
      await WindowsFilterDriver.open({ home: driver.home });
      expect(fs.existsSync(view)).to.equal(false);
      // A counted view is no leftover.
      await driver.get('child');
      expect(await driver.cleanup()).to.deep.equal([]);
      expect(fs.existsSync(view)).to.equal(true);
    });

    it('materializes the chain with deletions applied, refcounted, removed at zero', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const reports: { entries: number; bytes: number }[] = [];
      const dir = await driver.get('delta', { onProgress: (p) => reports.push(p) });
      // The worker reported progress, last what it wrote: every entry, the bytes of each file once.
      const inodes = new Map<number, number>();
      const entries: string[] = [];
      const walk = (d: string): void => {
        for (const n of fs.readdirSync(d)) {
          const p = path.join(d, n);
          const st = fs.lstatSync(p);
          entries.push(p);
          if (st.isFile()) inodes.set(st.ino, st.size);
          if (st.isDirectory()) walk(p);
        }
      };
      walk(dir);
      expect(reports.at(-1)).to.deep.equal({ entries: entries.length + 1, bytes: [...inodes.values()].reduce((a, b) => a + b, 0) });
      expect(fs.readFileSync(path.join(dir, 'Windows/win.ini'), 'utf8')).to.equal('[fonts]\r\nnew\r\n');
      expect(fs.readFileSync(path.join(dir, 'Windows/keep.txt'), 'utf8')).to.equal('keep');
      expect(fs.existsSync(path.join(dir, 'Program Files'))).to.equal(false);
      expect(fs.readlinkSync(path.join(dir, 'Windows/link.ini'))).to.equal('win.ini');
      expect(fs.statSync(path.join(dir, 'Windows/added-link.txt')).ino).to.equal(fs.statSync(path.join(dir, 'Windows/added.txt')).ino);
      expect(await driver.get('delta')).to.equal(dir);
      expect(driver.mountCount('delta')).to.equal(2);
      await driver.put('delta');
      expect(fs.existsSync(dir)).to.equal(true);
      await driver.put('delta');
      expect(fs.existsSync(dir)).to.equal(false);
      await driver.put('delta'); // not mounted: nothing to do
      expect(driver.mountCount('delta')).to.equal(0);
      const baseDir = await driver.get('base');
      expect(fs.readFileSync(path.join(baseDir, 'Program Files/app.exe')).length).to.equal(3000);
      expect(fs.statSync(path.join(baseDir, 'Windows/win.ini')).mtimeMs).to.equal(1_600_000_000_000);
    });
  });

  it('mounts links whose directories no layer names (implicit parents), a link target spelled in another case', async () => {
    const driver = await openDriver();
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/A', data: 'content of A' },
      { type: 'symlink', name: 'Files/Windows/x', target: 'A' },
    ])]));
    await driver.applyDiff('child', 'base', Readable.from([await buildLayerTar([
      { type: 'link', name: 'Files/WINDOWS/Win.ini', target: 'Files/a' },
      { type: 'file', name: 'Files/windows/system32/new.dll', data: 'new' },
      { type: 'directory', name: 'Files/WINDOWS/System32' },
    ])]));
    const dir = await driver.get('child');
    // One directory, however each layer spells it, as on NTFS: the first spelling, or its own entry's.
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['A', 'Windows']);
    expect(fs.readdirSync(path.join(dir, 'Windows')).sort()).to.deep.equal(['System32', 'Win.ini', 'x']);
    expect(fs.lstatSync(path.join(dir, 'Windows/x')).isSymbolicLink()).to.equal(true);
    expect(fs.readlinkSync(path.join(dir, 'Windows/x'))).to.equal('A');
    expect(fs.statSync(path.join(dir, 'Windows/Win.ini')).ino).to.equal(fs.statSync(path.join(dir, 'A')).ino);
    expect(fs.readFileSync(path.join(dir, 'Windows/Win.ini'), 'utf8')).to.equal('content of A');
    expect(fs.readFileSync(path.join(dir, 'Windows/System32/new.dll'), 'utf8')).to.equal('new');
    await driver.put('child');
  });

  it('mounts directories with their own times, whatever their place in the index (after their children, repeated)', async () => {
    const driver = await openDriver();
    const at = (unixS: number): { lastWriteTime: bigint; lastAccessTime: bigint } => ({
      lastWriteTime: filetimeFromUnixNs(BigInt(unixS) * 1_000_000_000n),
      lastAccessTime: filetimeFromUnixNs(BigInt(unixS) * 1_000_000_000n),
    });
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/d/sub/f.txt', data: 'f', times: at(1_500_000_001) },
      { type: 'directory', name: 'Files/d/sub', times: at(1_500_000_002) },
      { type: 'directory', name: 'Files/d', times: at(1_500_000_003) },
      { type: 'directory', name: 'Files/e', times: at(1_500_000_004) },
      { type: 'file', name: 'Files/e/g.txt', data: 'g', times: at(1_500_000_005) },
      // A repeated directory: its later metadata wins (a merged record, kept in layer.json).
      { type: 'directory', name: 'Files/e', times: at(1_500_000_006) },
    ])]));
    await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/d/h.txt', data: 'h', times: at(1_500_000_007) },
    ])]));
    for (const id of ['base', 'delta']) {
      const dir = await driver.get(id);
      expect(fs.statSync(path.join(dir, 'd/sub/f.txt')).mtimeMs, id).to.equal(1_500_000_001_000);
      expect(fs.statSync(path.join(dir, 'd/sub')).mtimeMs, id).to.equal(1_500_000_002_000);
      expect(fs.statSync(path.join(dir, 'd')).mtimeMs, id).to.equal(1_500_000_003_000);
      expect(fs.statSync(path.join(dir, 'e')).mtimeMs, id).to.equal(1_500_000_006_000);
      expect(fs.readFileSync(path.join(dir, 'e/g.txt'), 'utf8'), id).to.equal('g');
      expect(fs.existsSync(path.join(dir, 'd/h.txt')), id).to.equal(id === 'delta');
      await driver.put(id);
    }
  });

  it('a view that fails in its worker rejects with the error code and leaves no view and no count', async () => {
    const driver = await openDriver();
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
    // A hard link whose target no layer of the chain holds: the worker cannot resolve the view.
    const index = path.join(driver.home, 'base', '.winlayer', 'entries.jsonl');
    fs.appendFileSync(index, JSON.stringify({ kind: 'link', name: 'Files/dangling.txt', target: 'Files/nowhere.txt', times: ['0', '0', '0', '0'], attributes: 32 }) + '\n');
    expect(await rejectionCode(() => driver.get('base'))).to.equal('ERR_LAYER_CORRUPT');
    expect(driver.mountCount('base')).to.equal(0);
    expect(fs.readdirSync(path.join(driver.home, '.mounts')).filter((n) => n.startsWith('base') && !n.endsWith('.refs'))).to.deep.equal([]);
  });

  it('mounts, unmounts and removes a layer with a directory 1,900 levels deep', async () => {
    const driver = await openDriver();
    const deep = 'Files/' + 'd/'.repeat(1900) + 'f.txt';
    await driver.applyDiff('deep', undefined, Readable.from([await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: deep, data: 'x' }])]));
    const dir = await driver.get('deep');
    expect(fs.readFileSync(path.join(dir, deep.slice('Files/'.length)), 'utf8')).to.equal('x');
    await driver.put('deep');
    expect(fs.existsSync(dir)).to.equal(false);
    await driver.get('deep');
    await driver.put('deep');
    await driver.remove('deep');
    expect(driver.exists('deep')).to.equal(false);
    expect(fs.existsSync(dir)).to.equal(false);
  });

  it('unmounts a view and removes a read-write layer in which a name that is not UTF-8 was written', async function () {
    if (process.platform !== 'linux') this.skip(); // such names exist on Linux file systems
    const driver = await openDriver();
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
    await driver.createReadWrite('rw', 'base');
    const bad = (dir: string): Buffer => Buffer.concat([Buffer.from(`${dir}/bad`), Buffer.from([0xff])]);
    const view = await driver.get('base');
    fs.writeFileSync(bad(view), 'x');
    fs.mkdirSync(bad(path.join(view, 'Windows')));
    await driver.put('base');
    expect(fs.existsSync(view)).to.equal(false);
    const rw = await driver.get('rw');
    fs.writeFileSync(bad(rw), 'x');
    await driver.put('rw');
    await driver.remove('rw');
    expect(driver.exists('rw')).to.equal(false);
    // Nothing left behind to fail the next open.
    expect(storeEntries(driver.home).sort()).to.deep.equal(['.mounts', 'base']);
    expect(fs.readdirSync(path.join(driver.home, '.mounts'))).to.deep.equal([]);
    const reopened = await WindowsFilterDriver.open({ home: driver.home });
    expect(reopened.list().map((l) => l.id)).to.deep.equal(['base']);
  });

  it('removes a read-write layer in which a tree deeper than PATH_MAX was made with relative paths', async () => {
    const driver = await openDriver();
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
    await driver.createReadWrite('rw', 'base');
    const rw = await driver.get('rw');
    // 1,100 levels of `dddd/`: 5,500 bytes, past PATH_MAX (Linux 4,096, macOS 1,024).
    const make = "const fs = require('node:fs'); process.chdir(process.argv[1]); for (let i = 0; i < 1100; i++) { fs.mkdirSync('dddd'); process.chdir('dddd'); } fs.writeFileSync('f', 'x');";
    execFileSync(process.execPath, ['-e', make, rw]);
    await driver.put('rw');
    await driver.remove('rw');
    expect(driver.exists('rw')).to.equal(false);
    expect(storeEntries(driver.home).sort()).to.deep.equal(['.mounts', 'base']);
    expect((await WindowsFilterDriver.open({ home: driver.home })).list().map((l) => l.id)).to.deep.equal(['base']);
  });

  it("mounts a directory a layer named twice (kept merged) with its nearest layer's record: spelling and times", async () => {
    const driver = await openDriver();
    const at = (seconds: bigint) => {
      const t = filetimeFromUnixNs(seconds * 1_000_000_000n);
      return { creationTime: t, lastAccessTime: t, lastWriteTime: t, changeTime: t };
    };
    // As crane writes a base: Files twice.
    await applyEntries(driver, 'base', undefined, [
      { type: 'directory', name: 'Files', times: at(1_000_000_000n) },
      { type: 'directory', name: 'Files', times: at(1_000_000_000n) },
      { type: 'directory', name: 'Files/x' },
      { type: 'directory', name: 'Files/x' },
    ]);
    await applyEntries(driver, 'child', 'base', [{ type: 'directory', name: 'Files', times: at(1_600_000_000n) }, { type: 'directory', name: 'Files/X' }]);
    const view = await driver.get('child');
    expect(fs.readdirSync(view)).to.deep.equal(['X']);
    expect(fs.statSync(view).mtimeMs).to.equal(1_600_000_000_000);
  });

  it('a view that cannot be written (a full disk) is ERR_IO naming the entry it came at; nothing stays, and the layer mounts again', async () => {
    const driver = await openDriver({ inProcess: true });
    await driver.applyDiff('v', undefined, Readable.from([await buildLayerTar(filesLayer(5, 8))]));
    const cjs = createRequire(import.meta.url)('node:fs') as { openSync: (...a: unknown[]) => number };
    const openSync = cjs.openSync;
    cjs.openSync = (...a: unknown[]) => {
      if (String(a[0]).endsWith(`${path.sep}f2.bin`) && String(a[0]).includes('.mounts')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      return openSync(...a);
    };
    syncBuiltinESMExports();
    let e: WinLayerError;
    try {
      e = await rejection(() => driver.get('v'));
    } finally {
      cjs.openSync = openSync;
      syncBuiltinESMExports();
    }
    expect([e.code, e.data['entry'], e.data['errno']]).to.deep.equal(['ERR_IO', 'Files/f2.bin', 'ENOSPC']);
    expect(fs.readdirSync(path.join(driver.home, '.mounts')).filter((n) => n.startsWith('v'))).to.deep.equal([]);
    expect(fs.readdirSync(await driver.get('v')).length).to.equal(5);
  });

  it('get with a signal aborted while its view is written: ERR_CANCELED, no view, no leftover, the layer mounts again', async () => {
    const driver = await openDriver();
    await driver.applyDiff('many', undefined, Readable.from([await buildLayerTar(filesLayer(20_000, 16))]));
    const ac = new AbortController();
    // The first progress comes while the worker writes (every 100 ms at most).
    const e = await rejection(() => driver.get('many', { signal: ac.signal, onProgress: () => ac.abort() }));
    expect(e.code).to.equal('ERR_CANCELED');
    expect(listTree(path.join(driver.home, '.mounts')).filter((n) => n.startsWith('many'))).to.deep.equal([]);
    expect(fs.readdirSync(await driver.get('many')).length).to.equal(20_000);
  });

  it("get waits for another process's mount of the layer rather than failing, and its signal ends that wait", async () => {
    const driver = await openDriver();
    await applyEntries(driver, 'base', undefined, [{ type: 'file', name: 'Files/a.txt', data: 'a' }]);
    // Another process's mount in progress: the layer's lock held by a live process.
    const lock = path.join(driver.home, '.mounts', 'base.lock');
    fs.mkdirSync(lock, { recursive: true });
    fs.writeFileSync(path.join(lock, 'owner'), `${process.pid} 0123456789abcdef`);
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 300);
    expect(await rejectionCode(() => driver.get('base', { signal: ac.signal }))).to.equal('ERR_CANCELED');
    expect(Date.now() - started).to.be.below(5_000);
    const mounted = driver.get('base');
    setTimeout(() => fs.rmSync(lock, { recursive: true }), 300);
    expect(fs.readdirSync(await mounted)).to.deep.equal(['a.txt']);
    await driver.put('base');
  });

  describe('changes, diffSize, diffGetter', () => {
    it('lists the directories a layer holds without naming them, as its export (and that export imported again) does', async () => {
      const driver = await openDriver();
      await applyEntries(driver, 'base', undefined, [{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Files/Windows' }]);
      // Files/WINDOWS (the parent's) and Files/WINDOWS/new are not named: Windows makes them.
      await applyEntries(driver, 'delta', 'base', [{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/WINDOWS/new/f.txt', data: 'x' }]);
      const want = [
        { path: 'Files', kind: 'modify' },
        { path: 'Files/WINDOWS', kind: 'modify' },
        { path: 'Files/WINDOWS/new', kind: 'add' },
        { path: 'Files/WINDOWS/new/f.txt', kind: 'add' },
      ];
      expect(await driver.changes('delta')).to.deep.equal(want);
      await driver.applyDiff('again', 'base', driver.diff('delta'));
      expect(await driver.changes('again')).to.deep.equal(want);
    });

    it('tells additions, modifications and deletions apart', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      expect(await driver.changes('delta')).to.deep.equal([
        { path: 'Files', kind: 'modify' },
        { path: 'Files/Windows', kind: 'modify' },
        { path: 'Files/Windows/win.ini', kind: 'modify' },
        { path: 'Files/Windows/added.txt', kind: 'add' },
        { path: 'Files/Program Files', kind: 'delete' },
        { path: 'Files/Windows/added-link.txt', kind: 'add' },
      ]);
      expect((await driver.changes('base')).every((c) => c.kind === 'add')).to.equal(true);
      expect(await driver.diffSize('delta')).to.equal(19);
      // One at a time, each waited for, in a worker and in process alike.
      for (const d of [driver, await WindowsFilterDriver.open({ home: driver.home, inProcess: true })]) {
        const seen: unknown[] = [];
        await d.forEachChange('delta', async (c) => {
          await new Promise((r) => setTimeout(r, 1));
          seen.push(c);
        });
        expect(seen).to.deep.equal(await driver.changes('delta'));
      }
    });

    it('forEachChange whose callback throws settles with that failure and stops the worker, however much it had left to print', async () => {
      const driver = await openDriver();
      // 20,000 changes: more output than a pipe and the line reader's queue hold, so the
      // worker blocks if nobody reads.
      await applyEntries(driver, 'many', undefined, filesLayer(20_000, 0));
      const started = Date.now();
      const inProcess = await WindowsFilterDriver.open({ home: driver.home, inProcess: true });
      for (const d of [driver, inProcess]) {
        let calls = 0;
        const mine = new Error('the consumer gave up');
        const e = await d
          .forEachChange('many', () => {
            if (++calls === 2) throw mine;
          })
          .then(
            () => undefined,
            (error: unknown) => error,
          );
        // The callback's own error, as it threw it.
        expect([e === mine, calls]).to.deep.equal([true, 2]);
      }
      expect(Date.now() - started).to.be.below(10_000);
      // Aborted from the callback: a cancellation, not a failed read (in a worker and in process).
      for (const d of [driver, await WindowsFilterDriver.open({ home: driver.home, inProcess: true })]) {
        const abort = new AbortController();
        const canceled = await rejection(() =>
          d.forEachChange(
            'many',
            () => {
              abort.abort();
              abort.signal.throwIfAborted();
            },
            { signal: abort.signal },
          ),
        );
        expect(canceled.code).to.equal('ERR_CANCELED');
      }
    });

    it('serves every stream of files with thousands of them, asked for in any order and spelling', async () => {
      const driver = await openDriver();
      const streams = (tag: string, n: number) => Array.from({ length: n }, (_, i) => ({ name: `s${i}`, data: `${tag}${i}`.repeat(1 + (i % 7)) }));
      const a = streams('a', 3000);
      const b = streams('b', 40);
      await driver.applyDiff(
        'many',
        undefined,
        Readable.from([
          await buildLayerTar([
            { type: 'directory', name: 'Files' },
            { type: 'file', name: 'Files/a.bin', data: 'A', streams: a },
            { type: 'file', name: 'Files/b.bin', data: 'B', streams: b },
            { type: 'link', name: 'Files/l.bin', target: 'Files/b.bin' },
          ]),
        ]),
      );
      const g = driver.diffGetter('many');
      const text = async (name: string): Promise<string> => (await collect(g.get(name))).toString();
      for (const s of a) expect(await text(`Files/a.bin:${s.name}`), s.name).to.equal(s.data);
      // Another file, a hard link to it, and back: each answers with its own streams.
      expect(await text('Files/b.bin:s39')).to.equal(b[39]?.data);
      expect(await text('Files/L.BIN:S7:$DATA')).to.equal(b[7]?.data);
      expect(await text('Files/A.bin:S2999')).to.equal(a[2999]?.data);
      expect(await text('Files/a.bin')).to.equal('A');
      expect(await text('Files/a.bin::$DATA')).to.equal('A');
      expect(await rejectionCode(async () => g.get('Files/a.bin:s3000'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await rejectionCode(async () => g.get('Files/b.bin:s40'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await text('Files/b.bin:s0')).to.equal(b[0]?.data);
      g.close();
    });

    it('serves file data, alternate streams and original BCD bytes by tar name', async () => {
      const driver = await openDriver();
      const uvm: BuilderEntry[] = [
        ...baseLayer,
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        { type: 'directory', name: 'UtilityVM/Files/EFI' },
        { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
        { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
        { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'original bcd' },
        { type: 'file', name: 'Files/empty-nodata.txt', noDataStream: true },
        { type: 'directory', name: 'Files/dir', streams: [{ name: 'on-dir', data: 'a directory stream' }] },
        { type: 'symlink', name: 'Files/dir/link', target: 'x', streams: [{ name: 'on-link', data: 'a link stream' }] },
      ];
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(uvm)]));
      fs.writeFileSync(path.join(driver.home, 'base/UtilityVM/Files/EFI/Microsoft/Boot/BCD'), 'rewritten by ProcessUtilityVMImage');
      const g = driver.diffGetter('base');
      expect((await collect(g.get('Files/Windows/win.ini'))).toString()).to.equal('[fonts]\r\n');
      expect((await collect(g.get('Files/Windows/win.ini:Zone.Identifier'))).toString()).to.equal('zone');
      // The stream's full NTFS name, as a tar entry may spell it and Windows opens it, in any case.
      expect((await collect(g.get('Files/Windows/win.ini:Zone.Identifier:$DATA'))).toString()).to.equal('zone');
      expect((await collect(g.get('Files/Windows/win.ini:Zone.Identifier:$data'))).toString()).to.equal('zone');
      expect((await collect(g.get('Files/Windows/win.ini::$DATA'))).toString()).to.equal('[fonts]\r\n');
      expect(await rejectionCode(async () => g.get('Files/Windows/win.ini:'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await rejectionCode(async () => g.get('Files/Windows/win.ini:Zone.Identifier:$INDEX_ALLOCATION'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect((await collect(g.get('Hives/System_Delta'))).toString()).to.equal('regf');
      expect((await collect(g.get('UtilityVM/Files/EFI/Microsoft/Boot/BCD'))).toString()).to.equal('original bcd');
      // An empty file backed up without a DATA stream is served empty, as its tar entry is.
      expect((await collect(g.get('Files/empty-nodata.txt'))).length).to.equal(0);
      expect(await rejectionCode(async () => g.get('Files/empty-nodata.txt:nope'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await rejectionCode(async () => g.get('Files/nope'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await rejectionCode(async () => g.get('Files/../../etc/passwd'))).to.equal('ERR_PATH_ESCAPE');
      // Directories and symbolic links have streams too (their tar entries `Files/dir:on-dir`); they have no data.
      expect((await collect(g.get('Files/DIR:on-dir'))).toString()).to.equal('a directory stream');
      expect((await collect(g.get('Files/dir/link:on-link'))).toString()).to.equal('a link stream');
      expect(await rejectionCode(async () => g.get('Files/dir'))).to.equal('ERR_LAYER_NOT_FOUND');
      expect(await rejectionCode(async () => g.get('Files/dir/link'))).to.equal('ERR_LAYER_NOT_FOUND');
      g.close();
    });

    it('a getter whose layer is removed meanwhile says the layer is not found, not corrupt', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const g = driver.diffGetter('base');
      await driver.remove('base');
      expect(await rejectionCode(async () => g.get('Files/Windows/win.ini'))).to.equal('ERR_LAYER_NOT_FOUND');
    });
  });

  describe('read-write layers', () => {
    it('a read-write layer with a file system still mounted in it is not removed: what the mount holds is not the layer\'s (Linux)', async function () {
      if (process.platform !== 'linux') this.skip();
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      const volume = path.join(tempDir(), 'a volume');
      fs.mkdirSync(volume);
      fs.writeFileSync(path.join(volume, 'data.txt'), 'kept');
      fs.mkdirSync(path.join(dir, 'vol 1'));
      // A container's volume, left mounted; the mount point's name has a space (escaped in mountinfo).
      const bound = spawnSync('mount', ['--bind', volume, path.join(dir, 'vol 1')]);
      if (bound.status !== 0) this.skip(); // no privilege to mount here
      try {
        await driver.put('rw');
        const e = await rejection(() => driver.remove('rw'));
        expect([e.code, e.data['mountPoint']]).to.deep.equal(['ERR_LAYER_IN_USE', path.join(fs.realpathSync(dir), 'vol 1')]);
        expect(driver.exists('rw')).to.equal(true);
        // Nor does a removal of such a tree through any other way go into it.
        const { removeTreeGuarded } = await import('../../src/util/remove-tree.js');
        const e2 = (await removeTreeGuarded(dir).then(() => undefined, (error: unknown) => error)) as NodeJS.ErrnoException | undefined;
        expect(e2?.code).to.equal('EBUSY');
        expect(fs.readFileSync(path.join(volume, 'data.txt'), 'utf8')).to.equal('kept');
      } finally {
        spawnSync('umount', [path.join(dir, 'vol 1')]);
      }
      await driver.remove('rw');
      expect(driver.exists('rw')).to.equal(false);
      expect(fs.readFileSync(path.join(volume, 'data.txt'), 'utf8')).to.equal('kept');
    });

    it('gives a writable copy of the parent view whose changes export as a Windows layer', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      expect(fs.readFileSync(path.join(dir, 'Windows/keep.txt'), 'utf8')).to.equal('keep');
      fs.writeFileSync(path.join(dir, 'Windows/new.txt'), 'new file');
      fs.mkdirSync(path.join(dir, 'NewDir'));
      fs.writeFileSync(path.join(dir, 'NewDir/inner.bin'), Buffer.alloc(100, 1));
      fs.writeFileSync(path.join(dir, 'Windows/keep.txt'), 'changed!');
      fs.rmSync(path.join(dir, 'Program Files'), { recursive: true });
      fs.symlinkSync('../Windows/new.txt', path.join(dir, 'NewDir/link.txt'));
      expect(await driver.changes('rw')).to.deep.equal([
        { path: 'Files/NewDir', kind: 'add' },
        { path: 'Files/NewDir/inner.bin', kind: 'add' },
        { path: 'Files/NewDir/link.txt', kind: 'add' },
        { path: 'Files/Program Files', kind: 'delete' },
        { path: 'Files/Windows/keep.txt', kind: 'modify' },
        { path: 'Files/Windows/new.txt', kind: 'add' },
      ]);
      expect(await driver.diffSize('rw')).to.equal(100 + 8 + 8);
      const reports: { entries: number; bytes: number }[] = [];
      const tar = await collect(driver.diff('rw', undefined, { onProgress: (p) => reports.push(p) }));
      // The export worker reported the entries it wrote and their data bytes, last all of them.
      expect(reports.at(-1)).to.deep.equal({ entries: 9, bytes: 100 + 8 + 8 });
      // The changes, each after the directories above it (Windows' import makes an entry
      // inside its parent), and Hives, as Windows' exports have them.
      expect(await entryNames(tar)).to.deep.equal([
        'Files',
        'Files/NewDir',
        'Files/NewDir/inner.bin',
        'Files/NewDir/link.txt',
        'Files/.wh.Program Files',
        'Files/Windows',
        'Files/Windows/keep.txt',
        'Files/Windows/new.txt',
        'Hives',
      ]);
      // An unchanged directory goes in as the parent has it, times included; exporting again gives the same bytes.
      const parentHeaders = new Map<string, Record<string, string>>();
      for await (const e of readTar(feedInChunks(await collect(driver.diff('base')), 1 << 20))) {
        parentHeaders.set(e.header.name, e.header.pax);
        for await (const _ of e.body) void _;
      }
      for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
        if (e.header.name === 'Files' || e.header.name === 'Files/Windows') expect(e.header.pax, e.header.name).to.deep.equal(parentHeaders.get(e.header.name));
        for await (const _ of e.body) void _;
      }
      expect((await collect(driver.diff('rw'))).equals(tar), 'a second export is byte-identical').to.equal(true);
      // The worker made it; a driver that works in process makes the same entries.
      const inProcess = await WindowsFilterDriver.open({ home: driver.home, inProcess: true });
      expect(await entryNames(await collect(inProcess.diff('rw')))).to.deep.equal(await entryNames(tar));
      // The tar is a valid delta layer: importing it on the parent gives the edited view.
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const view = await driver.get('built');
      expect(fs.readFileSync(path.join(view, 'Windows/keep.txt'), 'utf8')).to.equal('changed!');
      expect(fs.readFileSync(path.join(view, 'Windows/new.txt'), 'utf8')).to.equal('new file');
      expect(fs.readlinkSync(path.join(view, 'NewDir/link.txt'))).to.equal('../Windows/new.txt');
      expect(fs.existsSync(path.join(view, 'Program Files'))).to.equal(false);
      expect((await driver.changes('built')).map((c) => c.kind)).to.include.members(['add', 'modify', 'delete']);
      // A modified file keeps its own metadata; a new one inherits its directory's descriptor.
      const exported = await collect(driver.diff('built'));
      for await (const e of readTar(feedInChunks(exported, 1 << 20))) {
        if (e.header.name === 'Files/NewDir') expect(Number(e.header.pax['MSWINDOWS.fileattr']) & FILE_ATTRIBUTE_DIRECTORY).to.equal(FILE_ATTRIBUTE_DIRECTORY);
        if (e.header.name.startsWith('Files/') && !e.header.name.includes('.wh.')) expect(e.header.pax['MSWINDOWS.rawsd']).to.equal(sd.toString('base64'));
        for await (const _ of e.body) void _;
      }
      await driver.put('rw');
      expect(fs.existsSync(dir), 'a read-write layer keeps its directory').to.equal(true);
    });

    it('refuses to export a symbolic link whose target Windows would read as another (a backslash, a drive): ERR_PATH_INVALID naming the link and its target', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      for (const target of ['a\\b', 'C:/Windows', 'c:x']) {
        fs.symlinkSync(target, path.join(dir, 'odd'));
        const e = await rejection(() => collect(driver.diff('rw')));
        expect([e.code, e.data['entry'], e.data['target']], target).to.deep.equal(['ERR_PATH_INVALID', 'Files/odd', target]);
        fs.rmSync(path.join(dir, 'odd'));
      }
      fs.symlinkSync('Windows/win.ini', path.join(dir, 'fine'));
      expect(await entryNames(await collect(driver.diff('rw')))).to.deep.equal(['Files', 'Files/fine', 'Hives']);
    });

    it('sees a write that kept the size and set the time back, links a renamed name of a parent file to its other name, counts a file once', async () => {
      const driver = await openDriver();
      await applyEntries(driver, 'base', undefined, [
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/a' },
        { type: 'file', name: 'Files/a/doc.txt', data: 'original' },
        { type: 'file', name: 'Files/a/one.dll', data: 'dll' },
        { type: 'directory', name: 'Files/b' },
        { type: 'link', name: 'Files/b/one.dll', target: 'Files/a/one.dll' },
      ]);
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      expect(await driver.changes('rw')).to.deep.equal([]);
      // As `cp -p` or `tar x` leave a file: new bytes, the old size and time.
      rewriteKeepingTimes(path.join(dir, 'a/doc.txt'), 'MODIFIED');
      fs.renameSync(path.join(dir, 'a/one.dll'), path.join(dir, 'a/renamed.dll'));
      fs.writeFileSync(path.join(dir, 'n.bin'), Buffer.alloc(1000, 7));
      fs.linkSync(path.join(dir, 'n.bin'), path.join(dir, 'n2.bin'));
      expect(await driver.changes('rw')).to.deep.equal([
        { path: 'Files/a/doc.txt', kind: 'modify' },
        { path: 'Files/a/one.dll', kind: 'delete' },
        { path: 'Files/a/renamed.dll', kind: 'add' },
        { path: 'Files/n.bin', kind: 'add' },
        { path: 'Files/n2.bin', kind: 'add' },
      ]);
      expect(await driver.diffSize('rw')).to.equal(8 + 3 + 1000);
      const links: [string, string][] = [];
      for await (const e of readTar(feedInChunks(await collect(driver.diff('rw')), 1 << 20))) {
        if (e.header.typeflag === '1') links.push([e.header.name, e.header.linkname]);
        for await (const _ of e.body) void _;
      }
      expect(links).to.deep.equal([
        ['Files/a/renamed.dll', 'Files/b/one.dll'],
        ['Files/n2.bin', 'Files/n.bin'],
      ]);
      await driver.applyDiff('built', 'base', Readable.from([await collect(driver.diff('rw'))]));
      const view = await driver.get('built');
      expect(fs.readFileSync(path.join(view, 'a/doc.txt'), 'utf8')).to.equal('MODIFIED');
      expect(fs.statSync(path.join(view, 'a/renamed.dll')).ino).to.equal(fs.statSync(path.join(view, 'b/one.dll')).ino);
    });

    it("a mount killed before it marked the writable directory leaves the mark to the next mount", async () => {
      const driver = await openDriver();
      await applyEntries(driver, 'base', undefined, [{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/doc.txt', data: 'original' }]);
      await driver.createReadWrite('rw', 'base');
      await driver.get('rw');
      await driver.put('rw');
      // As a mount killed between the writable directory's rename and its mark leaves it.
      fs.rmSync(path.join(driver.store.layerPath('rw'), '.winlayer', 'rw-made'));
      const dir = await driver.get('rw');
      rewriteKeepingTimes(path.join(dir, 'doc.txt'), 'MODIFIED');
      expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/doc.txt', kind: 'modify' }]);
    });

    it('a read-write layer never mounted exports as one mounted and left as it was', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('never', 'base');
      const never = await collect(driver.diff('never'));
      expect(await entryNames(never)).to.deep.equal(['Files', 'Hives']);
      await driver.createReadWrite('left', 'base');
      await driver.get('left');
      expect((await collect(driver.diff('left'))).equals(never)).to.equal(true);
    });

    it("exports a container symbolic link as a directory link exactly when it leads to a directory inside the container, never through the host's files", async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      fs.mkdirSync(path.join(dir, 'links'));
      const links: [string, string, boolean][] = [
        ['rel-dir', '../Windows', true],
        ['rel-file', '../Windows/win.ini', false],
        ['abs-dir', '/Program Files', true], // the container's root, which the host does not have
        ['host-dir', '/etc', false], // a directory on the host, nothing in the container
        ['above-root', '../../../../../Windows', true], // `..` stops at the container's root
        ['chain', 'abs-dir', true],
        ['through', 'rel-dir/../only-here', true], // lexical, as on Windows: `rel-dir/..` is links/, not the root
        ['dotted', './/rel-dir/.', true],
        ['other-case', '/program files', true], // Windows compares names without case
        ['other-case-up', '../WINDOWS/WIN.INI', false],
        ['below-a-file', '../Windows/win.ini/x', false], // ENOTDIR on the host
        ['too-long', 'n'.repeat(300), false], // ENAMETOOLONG on the host
        ['root', '/', true],
        ['dangling', 'nothing-here', false],
        ['loop-a', 'loop-b', false],
        ['loop-b', 'loop-a', false],
      ];
      fs.mkdirSync(path.join(dir, 'links/only-here'));
      for (const [name, target] of links) fs.symlinkSync(target, path.join(dir, 'links', name));
      const directoryLink = new Map<string, boolean>();
      const targets = new Map<string, string>();
      for await (const e of readTar(feedInChunks(await collect(driver.diff('rw')), 1 << 20))) {
        const name = e.header.name.slice('Files/links/'.length);
        if (e.header.typeflag === '2') {
          directoryLink.set(name, (Number(e.header.pax['MSWINDOWS.fileattr']) & FILE_ATTRIBUTE_DIRECTORY) !== 0);
          targets.set(name, e.header.linkname);
        }
        for await (const _ of e.body) void _;
      }
      expect(Object.fromEntries(directoryLink)).to.deep.equal(Object.fromEntries(links.map(([name, , isDirectory]) => [name, isDirectory])));
      // Targets in Windows' form: backslashes, and no `.` or empty component (Windows refuses `.\x`).
      expect([targets.get('abs-dir'), targets.get('through'), targets.get('dotted'), targets.get('root')]).to.deep.equal(['\\Program Files', 'rel-dir\\..\\only-here', 'rel-dir', '\\']);
    });

    for (const [title, name] of [
      ['named like a whiteout (it would delete ok.txt on import)', '.wh.ok.txt'],
      ['with a colon (it would read as a stream)', 'a:b'],
      ['with a backslash (it would read as a separator)', 'back\\slash'],
    ] as const) {
      it(`refuses to export a container file ${title}: ERR_PATH_INVALID`, async () => {
        const driver = await openDriver();
        await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        await driver.createReadWrite('rw', 'base');
        const dir = await driver.get('rw');
        fs.writeFileSync(path.join(dir, name), 'data');
        expect(await rejectionCode(async () => collect(driver.diff('rw')))).to.equal('ERR_PATH_INVALID');
        fs.rmSync(path.join(dir, name));
        fs.writeFileSync(path.join(dir, 'ok.txt'), 'data');
        expect(await entryNames(await collect(driver.diff('rw')))).to.deep.equal(['Files', 'Files/ok.txt', 'Hives']);
      });
    }
  });

  describe('read-write layers: what a Windows layer cannot carry is refused, never dropped', () => {
    /** A mounted read-write layer on `baseLayer`, and its directory. */
    async function mountedReadWrite(): Promise<{ driver: WindowsFilterDriver; dir: string }> {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      return { driver, dir: await driver.get('rw') };
    }

    it('refuses names that differ only in case (two new files; a new file beside the parent\'s): ERR_ENTRY_DUPLICATE naming both', async () => {
      const { driver, dir } = await mountedReadWrite();
      fs.writeFileSync(path.join(dir, 'Q'), 'upper');
      fs.writeFileSync(path.join(dir, 'q'), 'lower');
      for (const e of [await rejection(() => driver.changes('rw')), await rejection(() => collect(driver.diff('rw')))]) {
        expect(e.code).to.equal('ERR_ENTRY_DUPLICATE');
        expect([e.data['other'], e.data['entry']]).to.deep.equal(['Files/Q', 'Files/q']);
      }
      fs.rmSync(path.join(dir, 'Q'));
      // The parent's Windows/keep.txt is in the directory too.
      fs.writeFileSync(path.join(dir, 'Windows/KEEP.TXT'), 'a second file');
      for (const e of [await rejection(() => driver.changes('rw')), await rejection(() => collect(driver.diff('rw')))]) {
        expect(e.code).to.equal('ERR_ENTRY_DUPLICATE');
        expect([e.data['other'], e.data['entry']]).to.deep.equal(['Files/Windows/KEEP.TXT', 'Files/Windows/keep.txt']);
      }
      fs.rmSync(path.join(dir, 'Windows/KEEP.TXT'));
      expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/q', kind: 'add' }]);
    });

    it('a name whose case changed is a modified entry under its new name; what is below a renamed directory is not', async () => {
      const { driver, dir } = await mountedReadWrite();
      fs.renameSync(path.join(dir, 'Windows/keep.txt'), path.join(dir, 'Windows/Keep.TXT'));
      fs.renameSync(path.join(dir, 'Program Files'), path.join(dir, 'PROGRAM FILES'));
      expect(await driver.changes('rw')).to.deep.equal([
        { path: 'Files/PROGRAM FILES', kind: 'modify' },
        { path: 'Files/Windows/Keep.TXT', kind: 'modify' },
      ]);
      const tar = await collect(driver.diff('rw'));
      const seen: Record<string, string | undefined> = {};
      for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
        seen[e.header.name] = e.header.pax['MSWINDOWS.rawsd'];
        for await (const _ of e.body) void _;
      }
      // Under the new names, with the parent's security descriptors.
      const b64 = sd.toString('base64');
      expect(seen).to.deep.equal({ Files: b64, 'Files/PROGRAM FILES': b64, 'Files/Windows': b64, 'Files/Windows/Keep.TXT': b64, Hives: b64 });
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const view = await driver.get('built');
      expect(fs.readdirSync(path.join(view, 'Windows')).sort()).to.deep.equal(['Keep.TXT', 'link.ini', 'win.ini']);
      expect(fs.readFileSync(path.join(view, 'Windows/Keep.TXT'), 'utf8')).to.equal('keep');
      expect(fs.readdirSync(view).sort()).to.deep.equal(['PROGRAM FILES', 'Windows']);
      expect(fs.readdirSync(path.join(view, 'PROGRAM FILES'))).to.deep.equal(['app.exe']);
    });

    it('an untouched read-write layer has no changes, whatever its parent\'s times (µs-aligned, before 1970, beyond what the host holds) and implicit directories', async () => {
      const driver = await openDriver();
      const at = (ns: bigint) => ({ lastWriteTime: filetimeFromUnixNs(ns), lastAccessTime: filetimeFromUnixNs(ns), creationTime: filetimeFromUnixNs(ns), changeTime: filetimeFromUnixNs(ns) });
      const files: [string, bigint][] = [
        ['us-aligned', 1_600_000_000_000_001_000n],
        ['us-aligned-2', 1_700_000_000_000_999_000n],
        ['hundred-ns', 1_700_000_000_123_456_700n],
        ['y1969', -1_000_000_000n],
        ['y1950', -631_152_000_123_456_700n],
        ['y1601', -11_644_473_600_000_000_000n],
        ['y30000', 884_541_340_800_000_000_000n],
      ];
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        ...files.map(([name, ns]): BuilderEntry => ({ type: 'file', name: `Files/${name}`, data: 'x', times: at(ns), securityDescriptor: sd })),
        // No entries for deep/ and deep/er/: Windows makes them.
        { type: 'file', name: 'Files/deep/er/file', data: 'y', securityDescriptor: sd },
      ])]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      // The view holds a time before 1970 as itself (Node's utimes takes a negative number for now).
      expect(fs.statSync(path.join(dir, 'y1969')).mtimeMs).to.equal(-1000);
      expect(await driver.changes('rw')).to.deep.equal([]);
      expect(await entryNames(await collect(driver.diff('rw')))).to.deep.equal(['Files', 'Hives']);
      // A directory no layer names stays when what was in it is deleted, in the container and in a layer built from it.
      fs.rmSync(path.join(dir, 'deep/er/file'));
      expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/deep/er/file', kind: 'delete' }]);
      await driver.applyDiff('emptied', 'base', Readable.from([await collect(driver.diff('rw'))]));
      const emptied = await driver.get('emptied');
      expect(fs.readdirSync(path.join(emptied, 'deep/er'))).to.deep.equal([]);
      // And it is deleted like any other.
      fs.rmSync(path.join(dir, 'deep'), { recursive: true });
      expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/deep', kind: 'delete' }]);
      await driver.applyDiff('built', 'base', Readable.from([await collect(driver.diff('rw'))]));
      expect(fs.readdirSync(await driver.get('built')).sort()).to.deep.equal(files.map(([name]) => name).sort());
    });

    it('a file edited in place or renamed in case keeps its parent\'s alternate data streams; one replaced by a directory does not', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        { type: 'file', name: 'Files/edited.txt', data: 'old', securityDescriptor: sd, streams: [{ name: 'Zone.Identifier', data: 'zone 1' }, { name: 'empty', data: '' }] },
        { type: 'file', name: 'Files/renamed.txt', data: 'same', securityDescriptor: sd, streams: [{ name: 'Zone.Identifier', data: 'zone 2' }] },
        { type: 'file', name: 'Files/replaced', data: 'file', securityDescriptor: sd, streams: [{ name: 'Zone.Identifier', data: 'zone 3' }] },
        { type: 'directory', name: 'Files/dir', securityDescriptor: sd, streams: [{ name: 'dirstream', data: 'on a directory' }] },
      ])]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      fs.writeFileSync(path.join(dir, 'edited.txt'), 'new content');
      fs.renameSync(path.join(dir, 'renamed.txt'), path.join(dir, 'RENAMED.txt'));
      fs.rmSync(path.join(dir, 'replaced'));
      fs.mkdirSync(path.join(dir, 'replaced'));
      fs.renameSync(path.join(dir, 'dir'), path.join(dir, 'Dir'));
      const tar = await collect(driver.diff('rw'));
      expect(await entryNames(tar)).to.deep.equal([
        'Files',
        'Files/Dir',
        'Files/Dir:dirstream',
        'Files/RENAMED.txt',
        'Files/RENAMED.txt:Zone.Identifier',
        'Files/edited.txt',
        'Files/edited.txt:Zone.Identifier',
        'Files/edited.txt:empty',
        'Files/replaced',
        'Hives',
      ]);
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const g = driver.diffGetter('built');
      expect((await collect(g.get('Files/edited.txt'))).toString()).to.equal('new content');
      expect((await collect(g.get('Files/edited.txt:Zone.Identifier'))).toString()).to.equal('zone 1');
      expect((await collect(g.get('Files/RENAMED.txt:Zone.Identifier'))).toString()).to.equal('zone 2');
      expect(await rejectionCode(async () => g.get('Files/replaced:Zone.Identifier'))).to.equal('ERR_LAYER_NOT_FOUND');
      g.close();
    });

    it('a parent\'s file edited in place keeps its streams and metadata when a new name of it sorts first (the file is one, whichever name comes first)', async () => {
      const driver = await openDriver();
      const created = filetimeFromUnixNs(1_000_000_000_123_456_700n);
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar([
        { type: 'directory', name: 'Files', securityDescriptor: sd },
        { type: 'directory', name: 'Files/d', securityDescriptor: sd },
        { type: 'file', name: 'Files/d/x.txt', data: 'old', securityDescriptor: CRANE_SECURITY_DESCRIPTOR, attributes: 0x21, times: { creationTime: created }, streams: [{ name: 'Zone.Identifier', data: 'zone' }] },
        { type: 'file', name: 'Files/d/y.txt', data: 'old y', securityDescriptor: CRANE_SECURITY_DESCRIPTOR, streams: [{ name: 'Zone.Identifier', data: 'zone y' }] },
        { type: 'file', name: 'Files/d/z.txt', data: 'old z', attributes: 0x21, streams: [{ name: 'Zone.Identifier', data: 'zone z' }] },
      ])]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      // The writable directory's mark comes after every file the view made, past the file
      // system's clock tick: a file born at it or after is the container's.
      const mark = fs.statSync(path.join(driver.store.layerPath('rw'), '.winlayer', 'rw-made'), { bigint: true }).ctimeNs;
      for (const name of ['d/x.txt', 'd/y.txt', 'd/z.txt', 'd']) {
        const born = fs.statSync(path.join(dir, name), { bigint: true }).birthtimeNs;
        if (born > 0n) expect(born < mark, name).to.equal(true);
      }
      // A new name that sorts before the edited one, and a case rename with a new name too.
      fs.linkSync(path.join(dir, 'd/x.txt'), path.join(dir, 'A.txt'));
      fs.appendFileSync(path.join(dir, 'd/x.txt'), ' and more');
      fs.renameSync(path.join(dir, 'd/y.txt'), path.join(dir, 'd/Y.TXT'));
      fs.linkSync(path.join(dir, 'd/Y.TXT'), path.join(dir, 'B.txt'));
      // But a file the container made, linked over a parent's name, is a new object (the
      // parent's file of that name is gone), whichever name sorts first.
      fs.writeFileSync(path.join(dir, 'C.txt'), 'brand new');
      fs.rmSync(path.join(dir, 'd/z.txt'));
      fs.linkSync(path.join(dir, 'C.txt'), path.join(dir, 'd/z.txt'));
      const tar = await collect(driver.diff('rw'));
      const headers: Record<string, { link: string; pax: Record<string, string> }> = {};
      for await (const e of readTar(feedInChunks(tar, 1 << 20))) headers[e.header.name] = { link: e.header.linkname, pax: e.header.pax };
      expect(headers['Files/d/x.txt']?.link).to.equal('Files/A.txt');
      expect(headers['Files/A.txt']?.pax['MSWINDOWS.fileattr']).to.equal(String(0x21));
      expect(headers['Files/A.txt']?.pax['MSWINDOWS.rawsd']).to.equal(Buffer.from(CRANE_SECURITY_DESCRIPTOR).toString('base64'));
      expect([headers['Files/d/z.txt']?.link, headers['Files/C.txt']?.pax['MSWINDOWS.fileattr'], headers['Files/C.txt:Zone.Identifier']]).to.deep.equal(['Files/C.txt', '32', undefined]);
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const g = driver.diffGetter('built');
      expect((await collect(g.get('Files/d/x.txt'))).toString()).to.equal('old and more');
      expect((await collect(g.get('Files/d/x.txt:Zone.Identifier'))).toString()).to.equal('zone');
      expect((await collect(g.get('Files/A.txt:Zone.Identifier'))).toString()).to.equal('zone');
      expect((await collect(g.get('Files/d/Y.TXT:Zone.Identifier'))).toString()).to.equal('zone y');
      g.close();
      const built = readIndexEntriesSync(driver.store.layerPath('built'));
      expect(built.find((r) => r.name === 'Files/A.txt')?.times?.[0]).to.equal(String(created));
    });

    it('hard links made in the container export as hard links: to a name written before, or to the parent\'s file left as it was', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      const dir = await driver.get('rw');
      fs.writeFileSync(path.join(dir, 'h1'), 'shared');
      fs.linkSync(path.join(dir, 'h1'), path.join(dir, 'h2'));
      fs.linkSync(path.join(dir, 'Windows/keep.txt'), path.join(dir, 'keep-link.txt'));
      const tar = await collect(driver.diff('rw'));
      const kinds: Record<string, string> = {};
      const info: Record<string, string[]> = {};
      const infoOf = (pax: Record<string, string>): string[] => ['mtime', 'atime', 'ctime', 'LIBARCHIVE.creationtime', 'MSWINDOWS.fileattr'].map((k) => pax[k] ?? '');
      for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
        kinds[e.header.name] = e.header.typeflag === '1' ? `link to ${e.header.linkname}` : e.header.typeflag;
        info[e.header.name] = infoOf(e.header.pax);
        for await (const _ of e.body) void _;
      }
      expect(kinds).to.deep.equal({ Files: '5', 'Files/h1': '0', 'Files/h2': 'link to Files/h1', 'Files/keep-link.txt': 'link to Files/Windows/keep.txt', Hives: '5' });
      // A link carries its file's times and attributes (one file, as on NTFS), not made-up ones.
      expect(info['Files/h2']).to.deep.equal(info['Files/h1']);
      for await (const e of readTar(feedInChunks(await collect(driver.diff('base')), 1 << 20))) {
        if (e.header.name === 'Files/Windows/keep.txt') expect(info['Files/keep-link.txt']).to.deep.equal(infoOf(e.header.pax));
        for await (const _ of e.body) void _;
      }
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const view = await driver.get('built');
      expect(fs.statSync(path.join(view, 'h2')).ino).to.equal(fs.statSync(path.join(view, 'h1')).ino);
      expect(fs.readFileSync(path.join(view, 'h2'), 'utf8')).to.equal('shared');
      expect(fs.readFileSync(path.join(view, 'keep-link.txt'), 'utf8')).to.equal('keep');
    });

    it('a directory replaced by a file or a symbolic link is one change: no deletions below it', async () => {
      const { driver, dir } = await mountedReadWrite();
      fs.rmSync(path.join(dir, 'Program Files'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'Program Files'), 'now a file');
      fs.rmSync(path.join(dir, 'Windows'), { recursive: true });
      fs.symlinkSync('Program Files', path.join(dir, 'Windows'));
      expect(await driver.changes('rw')).to.deep.equal([
        { path: 'Files/Program Files', kind: 'modify' },
        { path: 'Files/Windows', kind: 'modify' },
      ]);
      const tar = await collect(driver.diff('rw'));
      expect(await entryNames(tar)).to.deep.equal(['Files', 'Files/Program Files', 'Files/Windows', 'Hives']);
      await driver.applyDiff('built', 'base', Readable.from([tar]));
      const view = await driver.get('built');
      expect(fs.readFileSync(path.join(view, 'Program Files'), 'utf8')).to.equal('now a file');
      expect(fs.readlinkSync(path.join(view, 'Windows'))).to.equal('Program Files');
    });

    it('spells a deletion below a directory as the container sees it, where a later layer spells the parent\'s directory otherwise', async () => {
      const driver = await openDriver();
      await driver.applyDiff('lower', undefined, Readable.from([await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/Windows' },
        { type: 'directory', name: 'Files/Windows/System32' },
        { type: 'file', name: 'Files/Windows/System32/a.dll', data: 'a' },
        { type: 'file', name: 'Files/Windows/System32/b.dll', data: 'b' },
      ])]));
      await driver.applyDiff('upper', 'lower', Readable.from([await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/WINDOWS' },
        { type: 'directory', name: 'Files/WINDOWS/SYSTEM32' },
        { type: 'file', name: 'Files/WINDOWS/SYSTEM32/c.dll', data: 'c' },
      ])]));
      await driver.createReadWrite('spelled', 'upper');
      const dir = await driver.get('spelled');
      fs.rmSync(path.join(dir, 'WINDOWS', 'SYSTEM32', 'a.dll'));
      fs.writeFileSync(path.join(dir, 'WINDOWS', 'SYSTEM32', 'b.dll'), 'changed');
      expect(await driver.changes('spelled')).to.deep.equal([
        { path: 'Files/WINDOWS/SYSTEM32/a.dll', kind: 'delete' },
        { path: 'Files/WINDOWS/SYSTEM32/b.dll', kind: 'modify' },
      ]);
      expect(await entryNames(await collect(driver.diff('spelled')))).to.include('Files/WINDOWS/SYSTEM32/.wh.a.dll');
      await driver.put('spelled');
    });

    it('refuses, before any byte, a symbolic link whose target is not UTF-8 and a directory whose name leaves no room for its .$wcidirs$ sidecar', async () => {
      const { driver, dir } = await mountedReadWrite();
      const bad = path.join(dir, 'bad-link');
      fs.symlinkSync(Buffer.from('target\xff', 'latin1'), bad);
      const written: Buffer[] = [];
      const e = await rejection(async () => {
        for await (const c of driver.diff('rw')) written.push(c as Buffer);
      });
      expect([e.code, e.data['entry'], e.data['bytes']]).to.deep.equal(['ERR_PATH_INVALID', 'Files/bad-link', Buffer.from('target\xff', 'latin1').toString('hex')]);
      expect(Buffer.concat(written).length).to.equal(0);
      fs.unlinkSync(bad);
      const long = 'd'.repeat(246);
      fs.mkdirSync(path.join(dir, long));
      expect([(await rejection(() => collect(driver.diff('rw')))).code]).to.deep.equal(['ERR_PATH_TOO_LONG']);
      fs.rmdirSync(path.join(dir, long));
      // 245 fits: exported, and imported back.
      fs.mkdirSync(path.join(dir, 'd'.repeat(245)));
      const tar = await collect(driver.diff('rw'));
      await driver.applyDiff('long-dir', 'base', Readable.from([tar]));
      expect(fs.existsSync(path.join(await driver.get('long-dir'), 'd'.repeat(245)))).to.equal(true);
    });

    it('lists a FIFO and a socket as changes; the export refuses them with ERR_ENTRY_TYPE_UNSUPPORTED before writing anything', async () => {
      const { driver, dir } = await mountedReadWrite();
      fs.writeFileSync(path.join(dir, 'new.txt'), 'new');
      expect(spawnSync('mkfifo', [path.join(dir, 'fifo')]).status).to.equal(0);
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(path.join(dir, 'sock'), resolve));
      try {
        expect(await driver.changes('rw')).to.deep.equal([
          { path: 'Files/fifo', kind: 'add' },
          { path: 'Files/new.txt', kind: 'add' },
          { path: 'Files/sock', kind: 'add' },
        ]);
        const written: Buffer[] = [];
        const e = await rejection(async () => {
          for await (const c of driver.diff('rw')) written.push(c as Buffer);
        });
        expect(e.code).to.equal('ERR_ENTRY_TYPE_UNSUPPORTED');
        expect(e.data['entry']).to.equal('Files/fifo');
        expect(Buffer.concat(written).length, 'no part of a tar').to.equal(0);
        fs.rmSync(path.join(dir, 'fifo'));
        expect((await rejection(() => collect(driver.diff('rw')))).data['entry']).to.equal('Files/sock');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      fs.rmSync(path.join(dir, 'sock'), { force: true });
      expect(await entryNames(await collect(driver.diff('rw')))).to.deep.equal(['Files', 'Files/new.txt', 'Hives']);
    });

    it('refuses a file name that is not UTF-8 with ERR_PATH_INVALID naming it (its bad bytes as \\xNN); a name holding U+FFFD is a name', async () => {
      const { driver, dir } = await mountedReadWrite();
      fs.writeFileSync(path.join(dir, 'Windows', 'replacement-\uFFFD.txt'), 'valid UTF-8');
      expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/Windows/replacement-\uFFFD.txt', kind: 'add' }]);
      const bad = Buffer.concat([Buffer.from(path.join(dir, 'Windows', 'bad')), Buffer.from([0xff, 0x41])]);
      fs.writeFileSync(bad, 'x');
      try {
        for (const e of [await rejection(() => driver.changes('rw')), await rejection(() => collect(driver.diff('rw')))]) {
          expect(e.code).to.equal('ERR_PATH_INVALID');
          expect(e.data['entry']).to.equal('Files/Windows/bad\\xffA');
          expect(e.data['bytes']).to.equal('626164ff41');
        }
      } finally {
        fs.rmSync(bad);
      }
      expect(await entryNames(await collect(driver.diff('rw')))).to.deep.equal(['Files', 'Files/Windows', 'Files/Windows/replacement-\uFFFD.txt', 'Hives']);
    });

    it('refuses a tree deeper than the host\'s PATH_MAX with ERR_PATH_TOO_LONG naming the entry (changes and export)', async function () {
      if (process.platform !== 'linux') this.skip();
      const { driver, dir } = await mountedReadWrite();
      // Made with relative paths, as a container's process can: no absolute path reaches the bottom.
      const made = spawnSync(process.execPath, ['-e', `const fs = require('fs'); process.chdir(${JSON.stringify(dir)}); for (let i = 0; i < 1100; i++) { fs.mkdirSync('dddd'); process.chdir('dddd'); }`]);
      expect(made.status, made.stderr.toString()).to.equal(0);
      try {
        for (const e of [await rejection(() => driver.changes('rw')), await rejection(() => collect(driver.diff('rw')))]) {
          expect(e.code).to.equal('ERR_PATH_TOO_LONG');
          expect(e.data['entry']).to.match(/^Files(\/dddd)+$/);
          expect(Buffer.byteLength(path.join(dir, String(e.data['entry']).slice('Files/'.length)))).to.be.at.least(4096);
        }
      } finally {
        // rm walks by descriptors; a walk by paths cannot reach the bottom either.
        expect(spawnSync('rm', ['-rf', path.join(dir, 'dddd')]).status).to.equal(0);
      }
    });
  });

  it('mounts a layer whose paths fit in its own directory but not in the view\'s: ERR_PATH_TOO_LONG naming the entry, nothing left behind', async function () {
    if (process.platform !== 'linux') this.skip();
    const driver = await openDriver();
    // The view's directory (.mounts/<128-character id>-tmp-<pid>-<hex>) is ~150 bytes longer than the layer's.
    let deep = 'Files';
    while (Buffer.byteLength(path.join(driver.home, 'p-importing-1234567-0123456789ab', deep, 'd', 'leaf')) < 4000) deep += '/d';
    const leaf = `${deep}/leaf`;
    await driver.applyDiff('p', undefined, Readable.from([await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: leaf, data: 'x' }])]));
    const child = 'c'.repeat(128);
    await driver.applyDiff(child, 'p', Readable.from([await buildLayerTar([{ type: 'directory', name: 'Files' }])]));
    const e = await rejection(() => driver.get(child));
    expect(e.code).to.equal('ERR_PATH_TOO_LONG');
    expect(String(e.data['entry'])).to.match(/^Files(\/d)+(\/leaf)?$/);
    expect(driver.mountCount(child)).to.equal(0);
    expect(fs.readdirSync(path.join(driver.home, '.mounts')).filter((n) => n.startsWith(child))).to.deep.equal([]);
    // The layer itself mounts: its id is short.
    expect(fs.readFileSync(path.join(await driver.get('p'), leaf.slice('Files/'.length)), 'utf8')).to.equal('x');
    await driver.put('p');
  });

  it('mounts hard links to a symbolic link, and to a file an intermediate layer deleted (hcsshim finds both)', async () => {
    const driver = await openDriver();
    await applyEntries(driver, 'l0', undefined, [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/x.txt', data: 'x data' },
      { type: 'symlink', name: 'Files/s', target: 'x.txt' },
      { type: 'link', name: 'Files/a', target: 'Files/s' },
    ]);
    await applyEntries(driver, 'l1', 'l0', [{ type: 'whiteout', name: 'Files/x.txt' }]);
    await applyEntries(driver, 'l2', 'l1', [{ type: 'link', name: 'Files/y.txt', target: 'Files/x.txt' }]);
    const first = await driver.get('l0');
    expect(fs.readlinkSync(path.join(first, 'a'))).to.equal('x.txt');
    // diffGetter: a hard link to a symbolic link is no file, as the symbolic link is not.
    const g = driver.diffGetter('l0');
    expect([await rejectionCode(async () => g.get('Files/s')), await rejectionCode(async () => g.get('Files/a'))]).to.deep.equal(['ERR_LAYER_NOT_FOUND', 'ERR_LAYER_NOT_FOUND']);
    g.close();
    const top = await driver.get('l2');
    expect(fs.readFileSync(path.join(top, 'y.txt'), 'utf8')).to.equal('x data');
    expect(fs.existsSync(path.join(top, 'x.txt'))).to.equal(false);
    await driver.put('l0');
    await driver.put('l2');
  });

  it('keeps the names of one file one file in a view where a later layer deleted the first; symbolic links keep their times', async () => {
    const driver = await openDriver();
    const linkTime = filetimeFromUnixNs(1_600_000_100n * 1_000_000_000n);
    await applyEntries(driver, 'l0', undefined, [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/x.txt', data: 'x data' },
      { type: 'link', name: 'Files/x-link.txt', target: 'Files/x.txt' },
      { type: 'symlink', name: 'Files/s', target: 'x.txt', times: { lastAccessTime: linkTime, lastWriteTime: linkTime } },
    ]);
    await applyEntries(driver, 'l1', 'l0', [{ type: 'directory', name: 'Files' }, { type: 'link', name: 'Files/x-link2.txt', target: 'Files/x.txt' }]);
    await applyEntries(driver, 'l2', 'l1', [{ type: 'directory', name: 'Files' }, { type: 'whiteout', name: 'Files/x.txt' }]);
    const top = await driver.get('l2');
    const [one, two] = ['x-link.txt', 'x-link2.txt'].map((n) => fs.statSync(path.join(top, n)));
    expect([one?.ino === two?.ino, one?.nlink, fs.readFileSync(path.join(top, 'x-link2.txt'), 'utf8')]).to.deep.equal([true, 2, 'x data']);
    expect(fs.lstatSync(path.join(top, 's')).mtimeMs).to.equal(1_600_000_100_000);
    await driver.put('l2');
  });

  it('keeps a hard link\'s content when a later layer deletes the path it named', async () => {
    const driver = await openDriver();
    await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
    await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
    await driver.applyDiff('top', 'delta', Readable.from([await buildLayerTar([{ type: 'whiteout', name: 'Files/Windows/added.txt' }])]));
    const dir = await driver.get('top');
    expect(fs.existsSync(path.join(dir, 'Windows/added.txt'))).to.equal(false);
    expect(fs.readFileSync(path.join(dir, 'Windows/added-link.txt'), 'utf8')).to.equal('added');
    await driver.createReadWrite('rw', 'top');
    await driver.get('rw');
    expect(await driver.changes('rw')).to.deep.equal([]);
  });

  it("mounts a base layer's files that are hard links to a UtilityVM file as one file with that file's data; diffGetter serves it", async () => {
    const driver = await openDriver();
    const base = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/own.txt', data: 'own' },
      { type: 'directory', name: 'UtilityVM' },
      { type: 'directory', name: 'UtilityVM/Files' },
      { type: 'file', name: 'UtilityVM/Files/shared.dll', data: 'shared with the container' },
      { type: 'link', name: 'Files/shared.dll', target: 'UtilityVM/Files/shared.dll' },
      { type: 'link', name: 'Files/shared-too.dll', target: 'UtilityVM/Files/shared.dll' },
      { type: 'link', name: 'UtilityVM/Files/own-too.txt', target: 'Files/own.txt' },
    ]);
    await driver.applyDiff('base', undefined, Readable.from([base]));
    expect(await collect(await driver.diff('base'))).to.deep.equal(base);
    const dir = await driver.get('base');
    expect(fs.readFileSync(path.join(dir, 'shared.dll'), 'utf8')).to.equal('shared with the container');
    // Two names of one file, in the view too.
    expect(fs.statSync(path.join(dir, 'shared-too.dll')).ino).to.equal(fs.statSync(path.join(dir, 'shared.dll')).ino);
    expect(fs.readFileSync(path.join(dir, 'own.txt'), 'utf8')).to.equal('own');
    await driver.put('base');
    const getter = driver.diffGetter('base');
    expect((await collect(getter.get('Files/shared.dll'))).toString()).to.equal('shared with the container');
    expect((await collect(getter.get('UtilityVM/Files/own-too.txt'))).toString()).to.equal('own');
    getter.close();
  });

  describe('arguments of the wrong type', () => {
    it('open refuses a wrong option before it makes the store: nothing is left behind', async () => {
      const home = path.join(tempDir(), 'not-made');
      const wrong: Record<string, unknown>[] = [{ concurrency: 0 }, { concurrency: 1.5 }, { timeout: -1 }, { startTimeout: 2 ** 31 }, { workerPath: '' }, { cleanup: 'yes' }, { inProcess: 1 }];
      for (const extra of wrong) {
        expect(await rejectionCode(() => WindowsFilterDriver.open({ home, ...extra } as never)), JSON.stringify(extra)).to.equal('ERR_ARGUMENT_INVALID');
        expect(fs.existsSync(home), JSON.stringify(extra)).to.equal(false);
      }
    });

    /**
     * Every public method that takes options, a signal or a callback, with each of them
     * wrong as a JavaScript caller (or a cast) may pass it: one rule for all, options may
     * be undefined and anything else that is not an object is ERR_ARGUMENT_INVALID.
     */
    const bad: [string, (d: WindowsFilterDriver, fd: number) => Promise<unknown>][] = [
      ['create: options null', (d) => d.create('x', undefined, null as never)],
      ['create: options a string', (d) => d.create('x', undefined, 'size=1GB' as never)],
      ['create: storageOpt 5', (d) => d.create('x', undefined, { storageOpt: 5 as never })],
      ['createReadWrite: options null', (d) => d.createReadWrite('x', 'l1', null as never)],
      ['createReadWrite: storageOpt null', (d) => d.createReadWrite('x', 'l1', { storageOpt: null as never })],
      ['createReadWrite: storageOpt 5', (d) => d.createReadWrite('x', 'l1', { storageOpt: 5 as never })],
      ['createReadWrite: storageOpt a string', (d) => d.createReadWrite('x', 'l1', { storageOpt: 'size=1GB' as never })],
      ['createReadWrite: storageOpt [5]', (d) => d.createReadWrite('x', 'l1', { storageOpt: [5] as never })],
      ['applyDiff: options null', async (d) => d.applyDiff('x', undefined, Readable.from([await buildLayerTar(baseLayer)]), null as never)],
      ['applyDiff: options an array', async (d) => d.applyDiff('x', undefined, Readable.from([await buildLayerTar(baseLayer)]), [] as never)],
      ['applyDiff: signal a string', async (d) => d.applyDiff('x', undefined, Readable.from([await buildLayerTar(baseLayer)]), { signal: 'abc' as never })],
      ['applyDiff: onProgress 5', async (d) => d.applyDiff('x', undefined, Readable.from([await buildLayerTar(baseLayer)]), { onProgress: 5 as never })],
      ['diff: options null', (d) => collect(d.diff('l1', undefined, null as never))],
      ['diff: signal an object', (d) => collect(d.diff('l1', undefined, { signal: {} as never }))],
      ['diffTo: options null', (d, fd) => d.diffTo('l1', fd, null as never)],
      ['diffTo: onProgress a string', (d, fd) => d.diffTo('l1', fd, { onProgress: 'x' as never })],
      // Past a C int, a descriptor would wrap to another one (2^32 + 2 is stderr) in the worker's stdio.
      ['diffTo: descriptor 2^31', (d) => d.diffTo('l1', 2 ** 31)],
      ['diffTo: descriptor 2^32 + 2', (d) => d.diffTo('l1', 2 ** 32 + 2)],
      ['applyDiff: descriptor 2^32', (d) => d.applyDiff('x', undefined, { fd: 2 ** 32 })],
      ['forEachChange: each 5', (d) => d.forEachChange('l1', 5 as never)],
      ['forEachChange: each missing', (d) => (d.forEachChange as (id: string) => Promise<void>)('l1')],
      ['forEachChange: options null', (d) => d.forEachChange('l1', () => undefined, null as never)],
      ['forEachChange: signal a string', (d) => d.forEachChange('l1', () => undefined, { signal: 'abc' as never })],
      ['get: options null', (d) => d.get('l1', null as never)],
      ['get: onProgress 5', (d) => d.get('l1', { onProgress: 5 as never })],
      ['diffGetter().get: name 5', async (d) => d.diffGetter('l1').get(5 as never)],
    ];

    for (const inProcess of [false, true]) {
      it(`refuses options, signals and callbacks of the wrong type with ERR_ARGUMENT_INVALID, doing nothing (${inProcess ? 'in process' : 'workers'})`, async () => {
        const driver = await openDriver({ inProcess });
        await driver.applyDiff('l1', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        const fd = fs.openSync('/dev/null', 'w');
        try {
          for (const [title, call] of bad) {
            expect(await rejectionCode(() => call(driver, fd)), title).to.equal('ERR_ARGUMENT_INVALID');
          }
        } finally {
          fs.closeSync(fd);
        }
        expect(driver.list().map((l) => [l.id, l.mounted])).to.deep.equal([['l1', 0]]);
        // Undefined is no options, wherever options are taken.
        await driver.create('c', undefined, undefined);
        await driver.createReadWrite('rw', 'l1', undefined);
        await driver.applyDiff('a', undefined, Readable.from([await buildLayerTar(baseLayer)]), undefined);
        expect((await collect(driver.diff('a', undefined, undefined))).length).to.be.greaterThan(0);
        await driver.forEachChange('l1', () => undefined, undefined);
        await driver.forEachChange('l1', () => undefined, { signal: undefined });
        await driver.get('l1', undefined);
        await driver.put('l1');
      });
    }
  });

  describe('layers removed by another process while they are read', () => {
    it('list leaves out, and diffSize and changes say ERR_LAYER_NOT_FOUND for, a layer removed between the look and the read; a file gone since changes counts nothing', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('x', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const cjs = createRequire(import.meta.url)('node:fs') as { openSync: (...a: unknown[]) => number; lstatSync: (...a: unknown[]) => unknown };
      const { openSync, lstatSync } = cjs;
      // Another process's remove renames the layer away just as this one opens its summary.
      cjs.openSync = (p: unknown, ...rest: unknown[]) => {
        if (String(p).endsWith(path.join('x', '.winlayer', 'layer.json')) && fs.existsSync(path.join(driver.home, 'x'))) {
          fs.renameSync(path.join(driver.home, 'x'), path.join(driver.home, 'x-removing'));
        }
        return openSync(p, ...rest);
      };
      syncBuiltinESMExports();
      try {
        expect(driver.list().map((l) => l.id)).to.deep.equal(['base']);
        fs.renameSync(path.join(driver.home, 'x-removing'), path.join(driver.home, 'x'));
        expect(await rejectionCode(() => driver.diffSize('x'))).to.equal('ERR_LAYER_NOT_FOUND');
      } finally {
        cjs.openSync = openSync;
        syncBuiltinESMExports();
      }
      fs.renameSync(path.join(driver.home, 'x-removing'), path.join(driver.home, 'x'));
      // A read-write layer: a file the container removes between changes and its stat.
      await driver.createReadWrite('c', 'x');
      const dir = await driver.get('c');
      fs.writeFileSync(path.join(dir, 'kept.bin'), Buffer.alloc(100));
      fs.writeFileSync(path.join(dir, 'gone.bin'), Buffer.alloc(1000));
      cjs.lstatSync = (p: unknown, ...rest: unknown[]) => {
        if (String(p).endsWith('gone.bin') && fs.existsSync(String(p))) fs.unlinkSync(String(p));
        return lstatSync(p, ...rest);
      };
      syncBuiltinESMExports();
      try {
        expect(await driver.diffSize('c')).to.equal(100);
      } finally {
        cjs.lstatSync = lstatSync;
        syncBuiltinESMExports();
      }
      await driver.put('c');
    });
  });

  describe('forEachChange on a layer removed by another process while it runs', () => {
    it('says ERR_LAYER_NOT_FOUND (not a corrupt layer or a failed read), in a worker and in process, and passes the callback\'s own error on as it is', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const inProcess = await WindowsFilterDriver.open({ home: driver.home, inProcess: true });
      const cjs = createRequire(import.meta.url)('node:fs') as { readFileSync: (...a: unknown[]) => unknown; openSync: (...a: unknown[]) => number };
      const { readFileSync, openSync } = cjs;
      /** The path each descriptor was opened with: a layer's files are read through one. */
      const opened = new Map<number, string>();
      for (const [title, d] of [['worker', driver], ['in process', inProcess]] as const) {
        for (const id of ['ro', 'rw']) {
          if (id === 'ro') await driver.applyDiff(id, 'base', Readable.from([await buildLayerTar(deltaLayer)]));
          else {
            await driver.createReadWrite(id, 'base');
            fs.writeFileSync(path.join(await driver.get(id), 'new.txt'), 'new');
            await driver.put(id);
          }
          const layer = path.join(driver.home, id);
          // Another process's remove renames the layer away once its chain was read.
          cjs.openSync = (p: unknown, ...rest: unknown[]) => {
            const fd = openSync(p, ...rest);
            opened.set(fd, String(p));
            return fd;
          };
          cjs.readFileSync = (p: unknown, ...rest: unknown[]) => {
            const out = readFileSync(p, ...rest);
            const name = typeof p === 'number' ? opened.get(p) : String(p);
            if (name === path.join(layer, 'layerchain.json') && fs.existsSync(layer)) fs.renameSync(layer, `${layer}-removing`);
            return out;
          };
          syncBuiltinESMExports();
          try {
            expect(await rejectionCode(() => d.forEachChange(id, () => undefined)), `${title} ${id}`).to.equal('ERR_LAYER_NOT_FOUND');
          } finally {
            cjs.readFileSync = readFileSync;
            cjs.openSync = openSync;
            syncBuiltinESMExports();
          }
          fs.renameSync(`${layer}-removing`, layer);
          // The callback's own failure, thrown once the layer went: its own, not ERR_LAYER_NOT_FOUND.
          const mine = new Error('the consumer gave up');
          const e = await d
            .forEachChange(id, () => {
              if (fs.existsSync(layer)) fs.renameSync(layer, `${layer}-removing`);
              throw mine;
            })
            .then(
              () => undefined,
              (error: unknown) => error,
            );
          expect(e === mine, `${title} ${id}`).to.equal(true);
          fs.renameSync(`${layer}-removing`, layer);
          await driver.remove(id);
        }
      }
    });
  });

  describe('a store edited by hand', () => {
    it('refuses a parent chain that names a directory outside the store, and a writable directory that is a link (ERR_LAYER_CORRUPT)', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      const chainFile = path.join(driver.home, 'delta', 'layerchain.json');
      const good = fs.readFileSync(chainFile, 'utf8');
      const outside = tempDir();
      for (const chain of [['/'], ['base'], [outside], [path.join(driver.home, 'base', '..', 'base', 'Files')]]) {
        fs.writeFileSync(chainFile, JSON.stringify(chain));
        expect(await rejectionCode(() => driver.get('delta')), JSON.stringify(chain)).to.equal('ERR_LAYER_CORRUPT');
        expect(await rejectionCode(() => driver.changes('delta')), JSON.stringify(chain)).to.equal('ERR_LAYER_CORRUPT');
      }
      fs.writeFileSync(chainFile, good);
      expect(await driver.changes('delta')).to.not.deep.equal([]);
      // Opened through a link to it, the store's chains still name its layers.
      const linked = path.join(tempDir(), 'link');
      fs.symlinkSync(driver.home, linked);
      expect(await (await WindowsFilterDriver.open({ home: linked })).changes('delta')).to.deep.equal(await driver.changes('delta'));
      await driver.createReadWrite('rw', 'delta');
      await driver.get('rw');
      await driver.put('rw');
      fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside');
      const rw = path.join(driver.home, 'rw', 'rw');
      fs.renameSync(rw, `${rw}.aside`);
      fs.symlinkSync(outside, rw);
      expect(await rejectionCode(() => driver.changes('rw'))).to.equal('ERR_LAYER_CORRUPT');
      expect(await rejectionCode(() => collect(driver.diff('rw')))).to.equal('ERR_LAYER_CORRUPT');
    });

    it('list shows a layer whose parent chain cannot be used as corrupt, not as a base layer', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      await driver.createReadWrite('rw', 'delta');
      const rows = (): unknown[] => driver.list().map((l) => [l.id, l.parent, l.corrupt]);
      expect(rows()).to.deep.equal([['base', null, false], ['delta', 'base', false], ['rw', 'delta', false]]);
      for (const id of ['delta', 'rw']) {
        const chainFile = path.join(driver.home, id, 'layerchain.json');
        const good = fs.readFileSync(chainFile, 'utf8');
        for (const bad of ['garbage', '{}', JSON.stringify(['/'])]) {
          fs.writeFileSync(chainFile, bad);
          expect(driver.list().find((l) => l.id === id), bad).to.include({ parent: null, corrupt: true });
          expect(await rejectionCode(() => driver.changes(id)), bad).to.equal('ERR_LAYER_CORRUPT');
        }
        fs.writeFileSync(chainFile, good);
      }
      expect(rows()).to.deep.equal([['base', null, false], ['delta', 'base', false], ['rw', 'delta', false]]);
    });

    it('a store opened through a symbolic link names its real directory in chains: the link can go; a chain through a gone link still guards its parent', async () => {
      const root = tempDir();
      fs.mkdirSync(path.join(root, 'real'));
      fs.symlinkSync('real', path.join(root, 'link'));
      const driver = await WindowsFilterDriver.open({ home: path.join(root, 'link') });
      expect(driver.home).to.equal(fs.realpathSync(path.join(root, 'real')));
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
      fs.rmSync(path.join(root, 'link'));
      const real = await WindowsFilterDriver.open({ home: path.join(root, 'real') });
      expect(real.list().map((l) => [l.id, l.parent, l.corrupt])).to.deep.equal([
        ['base', null, false],
        ['delta', 'base', false],
      ]);
      // A chain written through a link that is gone (by an older store, or a moved one).
      await real.createReadWrite('rw', 'base');
      fs.writeFileSync(path.join(real.home, 'rw', 'layerchain.json'), JSON.stringify([path.join(root, 'gone', 'base')]));
      fs.writeFileSync(path.join(real.home, 'delta', 'layerchain.json'), JSON.stringify([path.join(root, 'gone', 'base')]));
      expect(await rejectionCode(() => real.remove('base'))).to.equal('ERR_LAYER_IN_USE');
      expect(real.exists('base')).to.equal(true);
    });

    it('a store reached through a bind mount is one store by either path: chains resolve, a parent is guarded', async function () {
      const root = tempDir();
      fs.mkdirSync(path.join(root, 'real'));
      fs.mkdirSync(path.join(root, 'mnt'));
      if (spawnSync('mount', ['--bind', path.join(root, 'real'), path.join(root, 'mnt')]).status !== 0) this.skip();
      try {
        const bound = await WindowsFilterDriver.open({ home: path.join(root, 'mnt') });
        await bound.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        await bound.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
        const real = await WindowsFilterDriver.open({ home: path.join(root, 'real') });
        expect(real.list().map((l) => [l.id, l.parent, l.corrupt])).to.deep.equal([
          ['base', null, false],
          ['delta', 'base', false],
        ]);
        expect(await real.changes('delta')).to.not.deep.equal([]);
        expect(await rejectionCode(() => real.remove('base'))).to.equal('ERR_LAYER_IN_USE');
        expect(real.exists('base')).to.equal(true);
      } finally {
        spawnSync('umount', [path.join(root, 'mnt')]);
      }
    });

    it('refuses a layer named as its own parent (ERR_ARGUMENT_INVALID), and a layer create made stays as it was', async () => {
      const driver = await openDriver();
      await driver.create('cr');
      expect(await rejectionCode(() => driver.applyDiff('cr', 'cr', Readable.from([Buffer.alloc(1024)])))).to.equal('ERR_ARGUMENT_INVALID');
      expect(await rejectionCode(() => driver.create('self', 'self'))).to.equal('ERR_ARGUMENT_INVALID');
      expect(await rejectionCode(() => driver.createReadWrite('self', 'self'))).to.equal('ERR_ARGUMENT_INVALID');
      expect(driver.list().map((l) => l.id)).to.deep.equal(['cr']);
      expect(driver.exists('cr')).to.equal(true);
    });

    it('list shows a read-only layer whose layer.json cannot be read or used as corrupt, and the other layers', async () => {
      const driver = await openDriver();
      await driver.applyDiff('a', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('b', 'a', Readable.from([await buildLayerTar(deltaLayer)]));
      const info = path.join(driver.home, 'b', '.winlayer', 'layer.json');
      const summary = fs.readFileSync(info, 'utf8');
      const edited = (change: Record<string, unknown>) => () => fs.writeFileSync(info, JSON.stringify({ ...(JSON.parse(summary) as object), ...change }));
      for (const damage of [
        () => fs.writeFileSync(info, 'garbage'),
        () => fs.mkdirSync(info),
        () => fs.writeFileSync(info, '{"version":1}'),
        edited({ size: 'x' }),
        edited({ entries: -1 }),
        edited({ digest: 5 }),
        edited({ version: 99 }),
      ]) {
        fs.rmSync(info, { recursive: true, force: true });
        damage();
        const listed = driver.list();
        expect(listed.map((l) => l.id)).to.deep.equal(['a', 'b']);
        expect(listed[0]).to.include({ corrupt: false });
        expect(listed[1]).to.include({ parent: 'a', corrupt: true, size: null, entries: null, digest: null });
        expect(await rejectionCode(() => collect(driver.diff('b')))).to.be.oneOf(['ERR_LAYER_CORRUPT', 'ERR_INDEX_VERSION']);
        expect(await rejectionCode(async () => driver.diffSize('b'))).to.be.oneOf(['ERR_LAYER_CORRUPT', 'ERR_INDEX_VERSION']);
      }
    });

    it('status counts a layer it may not read as exists and list do: ERR_IO (EACCES), not left out', async () => {
      const driver = await openDriver();
      await driver.applyDiff('a', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.applyDiff('b', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      expect(Object.fromEntries(driver.status())['Read-only layers']).to.equal('2');
      // What a non-root user sees of a layer directory of mode 000.
      const cjs = createRequire(import.meta.url)('node:fs') as { statSync: (...a: unknown[]) => unknown; existsSync: (...a: unknown[]) => unknown };
      const { statSync, existsSync } = cjs;
      const unreadable = (p: unknown): boolean => String(p).startsWith(path.join(driver.home, 'a') + path.sep);
      cjs.statSync = (p: unknown, ...rest: unknown[]) => {
        if (unreadable(p)) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        return statSync(p, ...rest);
      };
      cjs.existsSync = (p: unknown) => !unreadable(p) && existsSync(p);
      syncBuiltinESMExports();
      try {
        for (const call of [(): unknown => driver.status(), (): unknown => driver.exists('a'), (): unknown => driver.list()]) {
          const e = await rejection(async () => call());
          expect([e.code, e.data['errno']]).to.deep.equal(['ERR_IO', 'EACCES']);
        }
      } finally {
        cjs.statSync = statSync;
        cjs.existsSync = existsSync;
        syncBuiltinESMExports();
      }
      expect(Object.fromEntries(driver.status())['Read-only layers']).to.equal('2');
    });
  });

  describe('a full or read-only store', () => {
    it('create and createReadWrite fail with ERR_IO and leave no staging directory when the parent chain cannot be written', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const cjs = createRequire(import.meta.url)('node:fs') as { openSync: (...a: unknown[]) => unknown };
      const { openSync } = cjs;
      cjs.openSync = (p: unknown, ...rest: unknown[]) => {
        if (String(p).endsWith('layerchain.json')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return openSync(p, ...rest);
      };
      syncBuiltinESMExports();
      try {
        for (const make of [() => driver.create('c', 'base'), () => driver.createReadWrite('r', 'base')]) {
          const err = await rejection(make);
          expect([err.code, err.data['errno']]).to.deep.equal(['ERR_IO', 'ENOSPC']);
        }
      } finally {
        cjs.openSync = openSync;
        syncBuiltinESMExports();
      }
      expect(storeEntries(driver.home).filter((n) => !n.startsWith('.')).sort()).to.deep.equal(['base']);
    });
  });

  describe('cleanup', () => {
    it('removes staging, removing and half-made mount directories', async () => {
      const driver = await openDriver();
      for (const d of ['x-importing-999999999-abc123', 'y-removing', '.mounts/z-tmp-999999999-0123abcd']) fs.mkdirSync(path.join(driver.home, d), { recursive: true });
      const removed = await driver.cleanup();
      expect(removed.sort()).to.deep.equal(['.mounts/z-tmp-999999999-0123abcd', 'x-importing-999999999-abc123', 'y-removing']);
      expect(listTree(driver.home)).to.deep.equal(['.mounts']);
    });

    it('puts back an empty layer whose replacing import died before committing, and drops it after a commit', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.create('l2', 'base');
      await driver.create('l3', 'base');
      // What a controller killed in applyDiff leaves: the created layer set aside under its
      // (now dead) pid, and its worker's staging directory.
      fs.renameSync(path.join(driver.home, 'l2'), path.join(driver.home, 'l2-replacing-999999999-abcdef'));
      fs.mkdirSync(path.join(driver.home, 'l2-importing-999999998-abcdef'));
      // l3's import committed just before the crash: the set-aside copy is stale.
      fs.cpSync(path.join(driver.home, 'l3'), path.join(driver.home, 'l3-replacing-999999999-abcdef'), { recursive: true });
      expect(driver.exists('l2')).to.equal(false);
      expect(driver.list().map((l) => l.id).sort()).to.deep.equal(['base', 'l3']);
      const reopened = await WindowsFilterDriver.open({ home: driver.home });
      expect(reopened.exists('l2')).to.equal(true);
      expect(reopened.exists('l3')).to.equal(true);
      expect(listTree(driver.home).filter((n) => !n.includes('/') && !n.startsWith('.'))).to.deep.equal(['base', 'l2', 'l3']);
      // The layer is the empty one create() made: an import can fill it.
      const delta = await buildLayerTar(deltaLayer);
      await reopened.applyDiff('l2', 'base', Readable.from([delta]));
      expect((await collect(reopened.diff('l2'))).equals(delta)).to.equal(true);
      expect(await rejectionCode(async () => reopened.create('x-replacing-1-ab'))).to.equal('ERR_ID_INVALID');
    });

    it('a cleanup whose leftover another process put back first counts it as handled, not as one it could not remove', async () => {
      const driver = await openDriver();
      await driver.create('l');
      fs.renameSync(driver.store.layerPath('l'), path.join(driver.home, 'l-replacing-999999999-abcdef'));
      // Another process's sweep puts the copy back between this sweep's look and its rename.
      const rename = fs.promises.rename;
      fs.promises.rename = async (from: fs.PathLike, to: fs.PathLike) => {
        if (String(from).endsWith('l-replacing-999999999-abcdef')) await rename(from, to);
        return rename(from, to);
      };
      syncBuiltinESMExports();
      try {
        expect(await driver.store.cleanup()).to.deep.equal([]);
      } finally {
        fs.promises.rename = rename;
        syncBuiltinESMExports();
      }
      expect(storeEntries(driver.home).filter((n) => !n.startsWith('.'))).to.deep.equal(['l']);
    });

    it('an export whose layer is removed under it fails with ERR_LAYER_NOT_FOUND, not as a damaged layer', async () => {
      for (const inProcess of [false, true]) {
        const driver = await openDriver();
        const d = inProcess ? await WindowsFilterDriver.open({ home: driver.home, inProcess: true }) : driver;
        await d.applyDiff('big', undefined, Readable.from([await buildLayerTar(filesLayer(400, 64 * 1024))]));
        const stream = d.diff('big');
        const it = stream[Symbol.asyncIterator]();
        await it.next();
        await d.remove('big');
        const e = await rejection(async () => {
          for (let r = await it.next(); r.done !== true; r = await it.next());
        });
        expect(e.code, inProcess ? 'in process' : 'worker').to.equal('ERR_LAYER_NOT_FOUND');
      }
    });

    it('an export or diffGetter whose layer is removed and made again under its id meanwhile fails with ERR_LAYER_NOT_FOUND, not as a damaged layer', async () => {
      for (const inProcess of [false, true]) {
        const driver = await openDriver();
        const d = inProcess ? await WindowsFilterDriver.open({ home: driver.home, inProcess: true }) : driver;
        await d.applyDiff('again', undefined, Readable.from([await buildLayerTar(filesLayer(400, 64 * 1024))]));
        const getter = d.diffGetter('again');
        const stream = d.diff('again');
        const it = stream[Symbol.asyncIterator]();
        await it.next();
        await d.remove('again');
        // Another layer of that id, whole, without the files the export has still to read.
        await d.applyDiff('again', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        const e = await rejection(async () => {
          for (let r = await it.next(); r.done !== true; r = await it.next());
        });
        expect(e.code, inProcess ? 'in process' : 'worker').to.equal('ERR_LAYER_NOT_FOUND');
        expect(await rejectionCode(async () => getter.get('Files/f100.bin')), inProcess ? 'in process' : 'worker').to.equal('ERR_LAYER_NOT_FOUND');
        getter.close();
      }
    });

    it('two removes of one layer at once both succeed; a store opened through a symbolic link still protects parents', async () => {
      const driver = await openDriver();
      const tar = await buildLayerTar(baseLayer);
      for (const inProcess of [false, true]) {
        const d = inProcess ? await WindowsFilterDriver.open({ home: driver.home, inProcess: true }) : driver;
        await d.applyDiff('twice', undefined, Readable.from([tar]));
        await Promise.all([d.remove('twice'), d.remove('twice'), d.remove('twice')]);
        expect(d.exists('twice')).to.equal(false);
      }
      await driver.applyDiff('p', undefined, Readable.from([tar]));
      await driver.applyDiff('c', 'p', Readable.from([await buildLayerTar(deltaLayer)]));
      const link = path.join(tempDir(), 'link-to-home');
      fs.symlinkSync(driver.home, link);
      const viaLink = await WindowsFilterDriver.open({ home: link });
      expect(await rejectionCode(() => viaLink.remove('p'))).to.equal('ERR_LAYER_IN_USE');
      // And the other way round: a child imported through the link, the parent removed by the real path.
      await viaLink.applyDiff('c2', 'p', Readable.from([await buildLayerTar(deltaLayer)]));
      await driver.remove('c');
      expect(await rejectionCode(() => driver.remove('p'))).to.equal('ERR_LAYER_IN_USE');
      await viaLink.remove('c2');
      await driver.remove('p');
      expect(driver.exists('p')).to.equal(false);
    });

    it('applyDiff onto a layer create() made waits for a mount of it in progress (ERR_LAYER_IN_USE after); two at once: one layer, the other ERR_LAYER_EXISTS', async () => {
      const driver = await openDriver();
      const tar = await buildLayerTar(baseLayer);
      await driver.create('e');
      const mounting = driver.get('e');
      expect(await rejectionCode(() => driver.applyDiff('e', undefined, Readable.from([tar])))).to.equal('ERR_LAYER_IN_USE');
      await mounting;
      await driver.put('e');
      for (const inProcess of [false, true]) {
        const d = inProcess ? await WindowsFilterDriver.open({ home: driver.home, inProcess: true }) : driver;
        const id = `made-${String(inProcess)}`;
        await d.create(id);
        const outcomes = await Promise.allSettled([d.applyDiff(id, undefined, Readable.from([tar])), d.applyDiff(id, undefined, Readable.from([tar]))]);
        const codes = outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : (o.reason as WinLayerError).code)).sort();
        expect(codes).to.deep.equal(['ERR_LAYER_EXISTS', 'ok']);
        expect((await collect(d.diff(id))).equals(tar)).to.equal(true);
      }
      expect(listTree(driver.home).filter((n) => n.includes('-replacing-') || n.includes('-importing-'))).to.deep.equal([]);
    });

    it('a leftover that cannot be removed fails no other command; cleanup removes the rest and names it', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const stuck = ['stuck-removing', '.mounts/v-tmp-999999999-0123abcd', 'w-importing-999999999-abcdef'];
      for (const d of [...stuck, 'gone-removing']) fs.mkdirSync(path.join(driver.home, d, 'sub'), { recursive: true });
      await withUnremovable(stuck, async () => {
        const reopened = await WindowsFilterDriver.open({ home: driver.home, concurrency: 2 });
        // The open removed what it could and went on.
        expect(fs.existsSync(path.join(driver.home, 'gone-removing'))).to.equal(false);
        expect(reopened.list().map((l) => l.id)).to.deep.equal(['base']);
        expect(reopened.exists('base')).to.equal(true);
        await reopened.applyDiff('delta', 'base', Readable.from([await buildLayerTar(deltaLayer)]));
        const view = await reopened.get('delta');
        expect(fs.readFileSync(path.join(view, 'Windows/keep.txt'), 'utf8')).to.equal('keep');
        await reopened.put('delta');
        await reopened.remove('delta');
        expect(reopened.list().map((l) => l.id)).to.deep.equal(['base']);
        // An explicit cleanup tries every leftover, and reports those that stay.
        fs.mkdirSync(path.join(driver.home, 'again-removing'));
        let error: unknown;
        try {
          await reopened.cleanup();
        } catch (e) {
          error = e;
        }
        expect((error as WinLayerError).code).to.equal('ERR_CLEANUP_INCOMPLETE');
        const data = (error as WinLayerError).data;
        expect([...(data['remaining'] as string[])].sort()).to.deep.equal([...stuck].sort());
        expect(data['removed']).to.deep.equal(['again-removing']);
        expect(data['errno']).to.equal('EBUSY');
        expect(await rejectionCode(() => reopened.store.cleanup())).to.equal('ERR_CLEANUP_INCOMPLETE');
      });
      // Once they can go, they do.
      expect((await driver.cleanup()).sort()).to.deep.equal([...stuck].sort());
      expect(storeEntries(driver.home).sort()).to.deep.equal(['.mounts', 'base']);
    });

    it('removes and unmounts a layer whose deletion fails: the layer is gone, its directory a leftover', async () => {
      const driver = await openDriver();
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      await driver.createReadWrite('rw', 'base');
      await withUnremovable(['rw-removing', '/Windows'], async () => {
        await driver.get('rw');
        await driver.put('rw');
        await driver.remove('rw');
        expect(driver.exists('rw')).to.equal(false);
        expect(fs.existsSync(path.join(driver.home, 'rw-removing'))).to.equal(true);
        // A layer of the same id again: its removal does not stop at that leftover.
        await driver.createReadWrite('rw', 'base');
        await driver.remove('rw');
        expect(driver.exists('rw')).to.equal(false);
        // An unmount whose view cannot be deleted: unmounted all the same, and mountable again.
        const view = await driver.get('base');
        await driver.put('base');
        expect(driver.mountCount('base')).to.equal(0);
        expect(fs.existsSync(view)).to.equal(false);
        expect(fs.readFileSync(path.join(await driver.get('base'), 'Windows/win.ini'), 'utf8')).to.equal('[fonts]\r\n');
      });
      await driver.put('base');
      expect(driver.list().map((l) => l.id)).to.deep.equal(['base']);
      // The views set aside are this process's (`-tmp-<pid>-`): a later process removes them.
      expect(await driver.cleanup()).to.deep.equal(['rw-removing']);
      expect(storeEntries(driver.home).sort()).to.deep.equal(['.mounts', 'base']);
    });

    it('leaves the staging directory of a live import alone (another process may be importing)', async () => {
      const driver = await openDriver();
      const live = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        const name = `busy-importing-${live.pid}-abcdef`;
        fs.mkdirSync(path.join(driver.home, name));
        expect(await driver.cleanup()).to.deep.equal([]);
        await WindowsFilterDriver.open({ home: driver.home });
        expect(fs.existsSync(path.join(driver.home, name))).to.equal(true);
        live.kill('SIGKILL');
        await new Promise((r) => live.once('exit', r));
        expect(await driver.cleanup()).to.deep.equal([name]);
      } finally {
        live.kill('SIGKILL');
      }
    });
  });
});

describe('driver: ReFS check (Windows)', () => {
  const ntfs = 'Volume Name : \r\nVolume Serial Number : 0x1234\r\nFile System Name : NTFS\r\nSupports Case-sensitive filenames\r\n';
  const refs = ntfs.replace('NTFS', 'ReFS');
  it('reads the file system name from fsutil volumeinfo', () => {
    expect(fileSystemNameFromFsutil(ntfs)).to.equal('NTFS');
    expect(fileSystemNameFromFsutil(refs)).to.equal('ReFS');
    expect(fileSystemNameFromFsutil('Nom du système de fichiers : NTFS')).to.equal(undefined);
  });
  it('refuses ReFS on Windows with ERR_UNSUPPORTED_PLATFORM, and checks nothing elsewhere', async () => {
    const volumes: string[] = [];
    expect(await rejectionCode(async () => refuseReFS('D:\\docker', 'win32', (v) => (volumes.push(v), refs)))).to.equal('ERR_UNSUPPORTED_PLATFORM');
    expect(volumes).to.deep.equal(['D:\\']);
    expect(() => refuseReFS('C:\\docker', 'win32', () => ntfs)).to.not.throw();
    expect(() => refuseReFS('C:\\docker', 'win32', () => undefined)).to.not.throw();
    expect(() => refuseReFS('/var/lib/winlayer', 'linux', () => refs)).to.not.throw();
  });
});
