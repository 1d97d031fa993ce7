/**
 * The re-exec boundary for real: the worker protocol, workers that misbehave, cancellation,
 * timeouts, SIGKILL at several points of an import, and imports and removes in parallel.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { getEventListeners } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { Controller } from '../../src/controller/controller.js';
import { MANY_EXPORT_RECORDS, MANY_HEADER_BLOCKS, MANY_INDEX_BYTES, SMALL_COMPRESSED_BYTES, SMALL_TAR_BYTES, untouchedFileOf, WORKER_BUNDLE, WORKER_BUNDLE_ENTRY, WORKER_ENTRY, WORKER_MODULE_ENTRY, workerEnv, type TarSource } from '../../src/controller/spawn-worker.js';
import { EXPORT_NODE_OPTIONS, MANY_ENTRIES_NODE_OPTIONS } from '../../src/controller/protocol.js';
import { codeCacheFile, compileBundle, decodeCodeCache, encodeCodeCache, readCodeCache } from '../../src/util/start-bundle.cjs';
import { WindowsFilterDriver } from '../../src/driver/driver.js';
import { isWinLayerError } from '../../src/errors.js';
import { FILE_THREAD_AFTER } from '../../src/layer/layer-writer.js';
import { splitChunks } from '../helpers/chunks.js';
import { baseLayer, deltaLayer, filesLayer } from '../helpers/layers.js';
import { cleanupTemp, layerSummary, listTree, rejectionCode, storeEntries, tempDir } from '../helpers/store.js';
import { LayerStore } from '../../src/store/layer-store.js';
import { requireHelperOrSkip, skipNote } from '../native/native-backends.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string): string => path.join(here, '..', '..', '..', 'test', 'fixtures', 'workers', name);

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function caught(fn: () => Promise<unknown>): Promise<Record<string, unknown> & { code: string; data: Record<string, unknown> }> {
  try {
    await fn();
  } catch (e) {
    if (isWinLayerError(e)) return e as unknown as Record<string, unknown> & { code: string; data: Record<string, unknown> };
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('controller: worker processes', function () {
  this.timeout(120_000);
  after(cleanupTemp);

  describe('the protocol, spoken directly', () => {
    it('write-layer prints the decimal size and a newline; export-layer writes the tar', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const tar = await buildLayerTar(baseLayer);
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: tar });
      expect(w.status).to.equal(0);
      expect(w.stdout.toString()).to.equal(`${9 + 4 + 3000 + 4}\n`);
      const e = spawnSync(process.execPath, [WORKER_ENTRY, 'export-layer', home, 'l1'], { maxBuffer: 1 << 26 });
      expect(e.status).to.equal(0);
      expect(Buffer.compare(e.stdout, tar)).to.equal(0);
    });

    it('an import worker whose controller is not its parent (it died before the worker started) commits nothing: ERR_CANCELED', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const tar = await buildLayerTar(baseLayer);
      // pid 1 stands for the controller that spawned this worker and is gone: its parent is this test.
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: tar, env: { ...process.env, WINLAYER_CONTROLLER_PID: '1' } });
      expect(w.status).to.equal(1);
      expect((JSON.parse(w.stderr.toString().trim().split('\n').pop() as string) as { code: string }).code).to.equal('ERR_CANCELED');
      expect(storeEntries(home)).to.deep.equal([]);
      const ok = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: tar, env: { ...process.env, WINLAYER_CONTROLLER_PID: String(process.pid) } });
      expect(ok.status).to.equal(0);
    });

    it('runs the bundle the build made, with its code cache, and it speaks the same protocol as the compiled modules', async function () {
      if (!fs.existsSync(WORKER_BUNDLE)) {
        // A build without esbuild (no dev dependencies) makes no bundle; the test command always has it.
        if (process.env.CI === 'true') throw new Error(`${WORKER_BUNDLE} was not built`);
        this.skip();
      }
      expect(WORKER_ENTRY).to.equal(WORKER_BUNDLE_ENTRY);
      // The build's code cache is for this bundle and this Node: V8 accepts it.
      const source = fs.readFileSync(WORKER_BUNDLE, 'utf8');
      const cache = readCodeCache(WORKER_BUNDLE, []);
      expect(cache, 'an intact code cache').to.not.equal(undefined);
      expect(compileBundle(WORKER_BUNDLE, source, cache).cachedDataRejected).to.equal(false);
      // An import worker started with heap options has a cache of its own, which V8 takes
      // under those options and rejects without them (and back for the plain one).
      const flagged = readCodeCache(WORKER_BUNDLE, MANY_ENTRIES_NODE_OPTIONS);
      expect(codeCacheFile(WORKER_BUNDLE, MANY_ENTRIES_NODE_OPTIONS)).to.not.equal(codeCacheFile(WORKER_BUNDLE, []));
      expect(flagged, 'an intact code cache for the heap options').to.not.equal(undefined);
      const probe = (options: readonly string[], flags: readonly string[]): string => {
        const script =
          `const s = require(${JSON.stringify(path.join(path.dirname(WORKER_BUNDLE), '..', '..', 'src', 'util', 'start-bundle.cjs'))});` +
          `const f = ${JSON.stringify(WORKER_BUNDLE)};` +
          `process.stdout.write(String(s.compileBundle(f, require('fs').readFileSync(f, 'utf8'), s.readCodeCache(f, ${JSON.stringify(flags)})).cachedDataRejected));`;
        return spawnSync(process.execPath, [...options, '-e', script]).stdout.toString();
      };
      expect(probe(MANY_ENTRIES_NODE_OPTIONS, MANY_ENTRIES_NODE_OPTIONS)).to.equal('false');
      expect(probe([], MANY_ENTRIES_NODE_OPTIONS)).to.equal('true');
      expect(probe(MANY_ENTRIES_NODE_OPTIONS, [])).to.equal('true');
      // And an export worker of many records, under its own semi-spaces.
      expect(readCodeCache(WORKER_BUNDLE, EXPORT_NODE_OPTIONS), 'an intact code cache for the export options').to.not.equal(undefined);
      expect(probe(EXPORT_NODE_OPTIONS, EXPORT_NODE_OPTIONS)).to.equal('false');
      // A damaged cache file is no cache: V8 itself would take a flipped byte of compiled code.
      const file = encodeCodeCache(cache as Buffer);
      expect(decodeCodeCache(file)?.equals(cache as Buffer)).to.equal(true);
      const flipped = Buffer.from(file);
      const middle = flipped.length >> 1;
      flipped[middle] = (flipped[middle] as number) ^ 0x40;
      for (const bad of [flipped, file.subarray(0, file.length - 1), file.subarray(0, 20), Buffer.alloc(0)]) expect(decodeCodeCache(bad)).to.equal(undefined);
      const tar = await buildLayerTar(baseLayer);
      const outputs = [WORKER_MODULE_ENTRY, WORKER_BUNDLE_ENTRY].map((entry) => {
        const home = path.join(tempDir(), 'home');
        fs.mkdirSync(home);
        const w = spawnSync(process.execPath, [entry, 'write-layer', home, 'l1'], { input: tar });
        const e = spawnSync(process.execPath, [entry, 'export-layer', home, 'l1'], { maxBuffer: 1 << 26 });
        const bad = spawnSync(process.execPath, [entry, 'write-layer', home, 'l2'], { input: Buffer.from('not a tar at all') });
        const error = JSON.parse(bad.stderr.toString().trimEnd().split('\n').pop() as string) as { name: string; code: string };
        return { status: [w.status, e.status, bad.status], size: w.stdout.toString(), same: e.stdout.equals(tar), error: [error.name, error.code] };
      });
      expect(outputs[1]).to.deep.equal(outputs[0]);
      expect(outputs[0]).to.deep.equal({ status: [0, 0, 1], size: `${9 + 4 + 3000 + 4}\n`, same: true, error: ['InvalidArchiveError', 'ERR_TAR_TRUNCATED'] });
    });

    it('an import worker started with heap options gives its file thread the small young generation the thread asks for', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const report = path.join(tempDir(), 'thread-heap.txt');
      const tar = await buildLayerTar(filesLayer(FILE_THREAD_AFTER + 100, 100));
      // --max-semi-space-size (4 MiB of new space) would otherwise hold for the thread too.
      const w = spawnSync(process.execPath, [...MANY_ENTRIES_NODE_OPTIONS, '--require', fixture('thread-heap.cjs'), WORKER_ENTRY, 'write-layer', home, 'l1'], {
        input: tar,
        env: { ...process.env, WINLAYER_TEST_THREAD_HEAP: report },
      });
      expect(w.status, w.stderr.toString()).to.equal(0);
      const sizes = fs.readFileSync(report, 'utf8').trim().split('\n').map(Number);
      expect(sizes).to.have.length(1);
      expect(sizes[0]).to.be.above(0).and.at.most(2 * 1024 * 1024);
    });

    it('an import worker changes no flag the optimizing compiler reads while it runs: only the semi-space size, once', async () => {
      // TurboFan's background jobs read --max-inlined-bytecode-size twice per inlined call
      // and abort the process (SIGTRAP) when the two readings disagree.
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const log = path.join(tempDir(), 'flags.txt');
      fs.writeFileSync(log, '');
      const tar = await buildLayerTar(filesLayer(FILE_THREAD_AFTER + 100, 100));
      for (const options of [MANY_ENTRIES_NODE_OPTIONS, []]) {
        fs.rmSync(path.join(home, 'l1'), { recursive: true, force: true });
        const w = spawnSync(process.execPath, [...options, '--require', fixture('flag-log.cjs'), WORKER_ENTRY, 'write-layer', home, 'l1'], {
          input: tar,
          env: { ...process.env, WINLAYER_TEST_FLAG_LOG: log },
        });
        expect(w.status, w.stderr.toString()).to.equal(0);
      }
      expect(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)).to.deep.equal(['--max-semi-space-size=0']);
    });

    it('on failure exits non-zero with one JSON error as the last stderr line', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: Buffer.from('not a tar at all') });
      expect(w.status).to.not.equal(0);
      const last = JSON.parse(w.stderr.toString().trimEnd().split('\n').pop() as string) as Record<string, unknown>;
      expect(Object.keys(last).sort()).to.deep.equal(['code', 'data', 'message', 'name']);
      expect(last['code']).to.equal('ERR_TAR_TRUNCATED');
      const bad = spawnSync(process.execPath, [WORKER_ENTRY, 'frobnicate', home, 'l1'], { input: '' });
      expect(JSON.parse(bad.stderr.toString().trimEnd().split('\n').pop() as string).code).to.equal('ERR_ARGUMENT_INVALID');
    });
  });

  describe('view', () => {
    it('writes the merged view of the layers into a new directory inside HOME', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: await buildLayerTar(baseLayer) });
      expect(w.status).to.equal(0);
      const dest = path.join(home, 'view-1');
      const v = spawnSync(process.execPath, [WORKER_ENTRY, 'view', home, 'l1', dest, path.join(home, 'l1')], { input: '' });
      expect(v.status, v.stderr.toString()).to.equal(0);
      expect(fs.readFileSync(path.join(dest, 'Windows/win.ini'), 'utf8')).to.equal('[fonts]\r\n');
      expect(fs.readFileSync(path.join(dest, 'Program Files/app.exe')).length).to.equal(3000);
      // Written beside DEST under the worker's own name, then renamed: nothing else is left.
      expect(storeEntries(home).sort()).to.deep.equal(['l1', 'view-1']);
    });

    it('a view, changes or export worker whose controller is not its parent (it died) does nothing: ERR_CANCELED', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      expect(spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: await buildLayerTar(baseLayer) }).status).to.equal(0);
      const l1 = path.join(home, 'l1');
      // pid 1 stands for the controller that spawned this worker and is gone: its parent is this test.
      const env = { ...process.env, WINLAYER_CONTROLLER_PID: '1' };
      for (const args of [['view', home, 'l1', path.join(home, 'v'), l1], ['changes', home, 'l1'], ['export-layer', home, 'l1']]) {
        const w = spawnSync(process.execPath, [WORKER_ENTRY, ...args], { input: '', env, maxBuffer: 1 << 26 });
        expect(w.status, args[0]).to.equal(1);
        expect((JSON.parse(w.stderr.toString().trim().split('\n').pop() as string) as { code: string }).code, args[0]).to.equal('ERR_CANCELED');
        expect(w.stdout.length, args[0]).to.equal(0);
      }
      expect(storeEntries(home)).to.deep.equal(['l1']);
    });

    it('refuses a destination outside HOME or one that exists, and removes what a failed view wrote', async () => {
      const base = tempDir();
      const home = path.join(base, 'home');
      fs.mkdirSync(home);
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: await buildLayerTar(baseLayer) });
      expect(w.status).to.equal(0);
      const lastCode = (r: ReturnType<typeof spawnSync>): string => (JSON.parse(r.stderr.toString().trimEnd().split('\n').pop() as string) as { code: string }).code;
      const outside = spawnSync(process.execPath, [WORKER_ENTRY, 'view', home, 'l1', path.join(base, 'elsewhere'), path.join(home, 'l1')], { input: '' });
      expect(outside.status).to.not.equal(0);
      expect(lastCode(outside)).to.equal('ERR_ARGUMENT_INVALID');
      expect(fs.existsSync(path.join(base, 'elsewhere'))).to.equal(false);
      const existing = path.join(home, 'l1');
      const onLayer = spawnSync(process.execPath, [WORKER_ENTRY, 'view', home, 'l1', existing, existing], { input: '' });
      expect(onLayer.status).to.not.equal(0);
      expect(lastCode(onLayer)).to.equal('ERR_ARGUMENT_INVALID');
      expect(listTree(existing)).to.include('Files');
      // A layer that is not one: the view fails, and its directory is gone.
      const dest = path.join(home, 'view-2');
      const broken = spawnSync(process.execPath, [WORKER_ENTRY, 'view', home, 'l1', dest, path.join(base, 'no-such-layer')], { input: '' });
      expect(broken.status).to.not.equal(0);
      expect(lastCode(broken)).to.equal('ERR_LAYER_CORRUPT');
      expect(fs.existsSync(dest)).to.equal(false);
      expect(storeEntries(home).filter((n) => n.startsWith('view-2'))).to.deep.equal([]);
    });
  });

  describe('changes', () => {
    it('prints the changes against the parents as JSON lines, additions told from modifications', async () => {
      const home = path.join(tempDir(), 'home');
      fs.mkdirSync(home);
      expect(spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l1'], { input: await buildLayerTar(baseLayer) }).status).to.equal(0);
      const l1 = path.join(home, 'l1');
      expect(spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l2', l1], { input: await buildLayerTar(deltaLayer) }).status).to.equal(0);
      const w = spawnSync(process.execPath, [WORKER_ENTRY, 'changes', home, 'l2', l1], { input: '' });
      expect(w.status, w.stderr.toString()).to.equal(0);
      const changes = w.stdout.toString().trimEnd().split('\n').map((l) => JSON.parse(l) as { path: string; kind: string });
      expect(changes).to.deep.include({ path: 'Files/Windows/win.ini', kind: 'modify' });
      expect(changes).to.deep.include({ path: 'Files/Program Files', kind: 'delete' });
      expect(changes.some((c) => c.kind === 'add')).to.equal(true);
      for (const c of changes) expect(Object.keys(c).sort()).to.deep.equal(['kind', 'path']);
    });
  });

  describe('file streams', () => {
    it('hands the file of an untouched file stream to the worker: the controller reads none of it', async () => {
      const tar = await buildLayerTar(baseLayer);
      const file = path.join(tempDir(), 'layer.tar');
      fs.writeFileSync(file, tar);
      const stream = fs.createReadStream(file);
      expect(untouchedFileOf(stream)).to.equal(file);
      const home = tempDir();
      const c = new Controller();
      expect(await c.writeLayer({ home, id: 'l', parents: [] }, stream)).to.equal(9 + 4 + 3000 + 4);
      expect({ bytesRead: stream.bytesRead, destroyed: stream.destroyed }).to.deep.equal({ bytesRead: 0, destroyed: true });
      const exported = await collect(await c.exportLayer({ home, id: 'l', parents: [] }));
      expect(exported.equals(tar)).to.equal(true);
    });

    it('streams a file stream that starts past 0, ends early or was read from, as any stream', async () => {
      const tar = await buildLayerTar(baseLayer);
      const file = path.join(tempDir(), 'prefixed.tar');
      fs.writeFileSync(file, Buffer.concat([Buffer.alloc(512, 0x41), tar]));
      expect(untouchedFileOf(fs.createReadStream(file, { start: 512 }))).to.equal(undefined);
      expect(untouchedFileOf(fs.createReadStream(file, { end: 100 }))).to.equal(undefined);
      const read = fs.createReadStream(file);
      await new Promise<void>((resolve) => read.once('readable', () => resolve()));
      read.read(10);
      expect(untouchedFileOf(read)).to.equal(undefined);
      read.destroy();
      expect(untouchedFileOf(Readable.from([tar]))).to.equal(undefined);
      const stream = fs.createReadStream(file, { start: 512 });
      const c = new Controller();
      expect(await c.writeLayer({ home: tempDir(), id: 'l', parents: [] }, stream)).to.equal(9 + 4 + 3000 + 4);
      expect(stream.bytesRead, 'read by the controller').to.equal(tar.length);
    });
  });

  describe('how a worker is started: V8 heap options, environment', () => {
    const job = () => ({ home: tempDir(), id: 'x', parents: [] as string[] });
    const argvOf = async (c: Controller, source: TarSource): Promise<unknown> => (await caught(() => c.writeLayer(job(), source))).data;
    const big = Buffer.alloc(SMALL_TAR_BYTES + 1);

    it('starts an import worker with small semi-spaces (bounded RSS) unless its tar is known to be small or to hold few entries', async () => {
      const c = new Controller({ workerPath: fixture('report-argv.mjs') });
      const small = { execArgv: '', command: 'write-layer' };
      const large = { execArgv: MANY_ENTRIES_NODE_OPTIONS.join(' '), command: 'write-layer' };
      expect(MANY_ENTRIES_NODE_OPTIONS).to.include('--max-semi-space-size=2');
      expect(await argvOf(c, Readable.from([Buffer.alloc(10)])), 'a stream that ends within the limit').to.deep.equal(small);
      expect(await argvOf(c, Readable.from([big])), 'a stream past the limit').to.deep.equal(large);
      const dir = tempDir();
      // Files are counted ahead: over SMALL_TAR_BYTES, few entries keep the default heap, many do not.
      const fewLarge = await buildLayerTar(filesLayer(2, SMALL_TAR_BYTES));
      const manySmall = await buildLayerTar(filesLayer(MANY_HEADER_BLOCKS / 2, 600));
      expect(manySmall.length).to.be.greaterThan(SMALL_TAR_BYTES);
      const noise = randomBytes(SMALL_TAR_BYTES + 1);
      // Under SMALL_TAR_BYTES compressed, but what it holds is unknown until inflated.
      const compressedMany = gzipSync(await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/random.bin', data: randomBytes(200_000) }]));
      expect(await argvOf(c, Readable.from([compressedMany])), 'a compressed stream over SMALL_COMPRESSED_BYTES').to.deep.equal(large);
      expect(await argvOf(c, Readable.from([gzipSync(fewLarge)])), 'a small compressed stream').to.deep.equal(small);
      const files = [
        ['small.tar', Buffer.alloc(SMALL_TAR_BYTES), small],
        ['few-large.tar', fewLarge, small],
        ['many-small.tar', manySmall, large],
        ['not-a-tar', noise, large],
        ['small.tar.gz', gzipSync(fewLarge), small],
        ['compressed.tar.gz', compressedMany, large],
      ] as const;
      expect(gzipSync(fewLarge).length).to.be.at.most(SMALL_COMPRESSED_BYTES);
      expect(compressedMany.length).to.be.within(SMALL_COMPRESSED_BYTES + 1, SMALL_TAR_BYTES);
      for (const [name, bytes, want] of files) {
        fs.writeFileSync(path.join(dir, name), bytes);
        const fd = fs.openSync(path.join(dir, name), 'r');
        try {
          expect(await argvOf(c, { fd }), `a file descriptor, ${name}`).to.deep.equal(want);
        } finally {
          fs.closeSync(fd);
        }
      }
      // A stream too slow to tell: the worker starts without waiting for it, as for a large one.
      async function* slow(): AsyncGenerator<Uint8Array> {
        await new Promise((resolve) => setTimeout(resolve, 400));
        yield Buffer.alloc(10);
      }
      expect(await argvOf(c, slow()), 'a slow stream').to.deep.equal(large);
      // A small tar on a chain of many records: the worker may read much of the chain.
      const parent = path.join(tempDir(), 'p');
      fs.mkdirSync(path.join(parent, '.winlayer'), { recursive: true });
      for (const [records, want] of [[MANY_EXPORT_RECORDS - 1, small], [MANY_EXPORT_RECORDS, large]] as const) {
        fs.writeFileSync(path.join(parent, '.winlayer', 'layer.json'), JSON.stringify(layerSummary(records)));
        const onChain = (await caught(() => c.writeLayer({ ...job(), parents: [parent] }, Readable.from([Buffer.alloc(10)])))).data;
        expect(onChain, `a small tar on ${records} parent records`).to.deep.equal(want);
      }
      // Or few records holding much (long names): told by the bytes of the parents' index.
      fs.writeFileSync(path.join(parent, '.winlayer', 'layer.json'), JSON.stringify(layerSummary(100)));
      for (const [bytes, want] of [[MANY_INDEX_BYTES - 1, small], [MANY_INDEX_BYTES, large]] as const) {
        fs.writeFileSync(path.join(parent, '.winlayer', 'entries.jsonl'), Buffer.alloc(bytes, 0x20));
        const onChain = (await caught(() => c.writeLayer({ ...job(), parents: [parent] }, Readable.from([Buffer.alloc(10)])))).data;
        expect(onChain, `a small tar on a parent index of ${bytes} bytes`).to.deep.equal(want);
      }
    });

    it('imports through a slow stream and a stream of many small chunks alike (the bytes read before the start are replayed)', async () => {
      const tar = await buildLayerTar(filesLayer(3, 700_000));
      const c = new Controller();
      async function* slowly(): AsyncGenerator<Uint8Array> {
        await new Promise((resolve) => setTimeout(resolve, 300));
        for (let at = 0; at < tar.length; at += 4096) yield tar.subarray(at, at + 4096);
      }
      const homes = [tempDir(), tempDir()];
      const sizes = [await c.writeLayer({ home: homes[0] as string, id: 'l', parents: [] }, slowly()), await c.writeLayer({ home: homes[1] as string, id: 'l', parents: [] }, Readable.from(splitChunks(tar, 1000)))];
      expect(sizes).to.deep.equal([2_100_000, 2_100_000]);
      for (const home of homes) expect((await collect(await c.exportLayer({ home, id: 'l', parents: [] }))).equals(tar)).to.equal(true);
    });

    it('starts a worker with the environment of the controller less NODE_EXTRA_CA_CERTS (certificates a worker never uses cost it ~50 ms)', async () => {
      expect(workerEnv({ PATH: '/bin', NODE_EXTRA_CA_CERTS: '/etc/ca.pem', LANG: 'C' })).to.deep.equal({ PATH: '/bin', LANG: 'C', WINLAYER_CONTROLLER_PID: String(process.pid) });
      // A worker of many entries also gets glibc's fixed mmap threshold, unless the caller chose one.
      expect(workerEnv({ PATH: '/bin' }, true)).to.deep.equal({ PATH: '/bin', MALLOC_MMAP_THRESHOLD_: '524288', WINLAYER_CONTROLLER_PID: String(process.pid) });
      expect(workerEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }, true)['MALLOC_MMAP_THRESHOLD_']).to.equal('65536');
      const saved = { certs: process.env['NODE_EXTRA_CA_CERTS'], probe: process.env['WINLAYER_TEST_PROBE'] };
      process.env['NODE_EXTRA_CA_CERTS'] = path.join(tempDir(), 'no-such-ca.pem');
      process.env['WINLAYER_TEST_PROBE'] = 'kept';
      try {
        const c = new Controller({ workerPath: fixture('report-env.mjs') });
        const e = await caught(() => c.writeLayer(job(), Readable.from([Buffer.alloc(10)])));
        expect(e.code).to.equal('ERR_ARGUMENT_INVALID');
        expect(e.data).to.deep.equal({ NODE_EXTRA_CA_CERTS: null, WINLAYER_TEST_PROBE: 'kept' });
      } finally {
        for (const [name, value] of [['NODE_EXTRA_CA_CERTS', saved.certs], ['WINLAYER_TEST_PROBE', saved.probe]] as const) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      }
    });

    it("starts a read-only layer's export worker with its own heap options, whatever its size", async () => {
      const c = new Controller({ workerPath: fixture('report-argv.mjs') });
      const argvOfExport = async (records: number | undefined, where?: string): Promise<unknown> => {
        const j = job();
        const dir = path.join(j.home, j.id, '.winlayer');
        fs.mkdirSync(dir, { recursive: true });
        if (records !== undefined) fs.writeFileSync(path.join(dir, 'layer.json'), JSON.stringify(layerSummary(records)));
        if (where === 'garbage') fs.writeFileSync(path.join(dir, 'layer.json'), '{not json');
        const toFile = path.join(tempDir(), 'out.tar');
        const fd = fs.openSync(toFile, 'w');
        try {
          const viaStream = (await caught(async () => collect(await c.exportLayer(j)))).data;
          const viaFd = (await caught(() => c.exportLayerTo(j, fd))).data;
          expect(viaFd).to.deep.equal(viaStream);
          return viaStream;
        } finally {
          fs.closeSync(fd);
        }
      };
      // No summary (a read-write layer's, or a damaged one): what it holds is not told ahead
      // (a container may have written 200,000 files over a parent of ten), small semi-spaces.
      const unknown = { execArgv: MANY_ENTRIES_NODE_OPTIONS.join(' '), command: 'export-layer' };
      expect(await argvOfExport(undefined)).to.deep.equal(unknown);
      expect(await argvOfExport(undefined, 'garbage')).to.deep.equal(unknown);
      // A read-only layer's, whatever its size.
      const exportOptions = { execArgv: EXPORT_NODE_OPTIONS.join(' '), command: 'export-layer' };
      expect(await argvOfExport(10)).to.deep.equal(exportOptions);
      expect(await argvOfExport(MANY_EXPORT_RECORDS)).to.deep.equal(exportOptions);
    });
  });

  it('a worker that cannot be started for want of file descriptors is ERR_IO (EMFILE), and the controller lives on', () => {
    const index = pathToFileURL(path.join(here, '..', '..', 'src', 'index.js')).href;
    for (const free of [2, 7]) {
      const r = spawnSync(process.execPath, [fixture('spawn-without-descriptors.mjs'), index, tempDir(), String(free)], { encoding: 'utf8' });
      expect({ status: r.status, outcome: JSON.parse(r.stdout.trim() || '{}') as unknown }, `${free} free: ${r.stderr}`).to.deep.equal({
        status: 0,
        outcome: { code: 'ERR_IO', errno: 'EMFILE', alive: true },
      });
    }
  });

  describe('misbehaving workers give clear errors, never a hang', () => {
    const job = (home: string) => ({ home, id: 'x', parents: [] as string[] });
    it('stdout that is not a size → ERR_WORKER_PROTOCOL', async () => {
      const c = new Controller({ workerPath: fixture('garbage.mjs') });
      expect((await caught(() => c.writeLayer(job(tempDir()), Readable.from([Buffer.alloc(10)])))).code).to.equal('ERR_WORKER_PROTOCOL');
    });
    it('changes that are not JSON change lines → ERR_WORKER_PROTOCOL; a view worker that hangs is killed at the timeout', async () => {
      const c = new Controller({ workerPath: fixture('garbage.mjs') });
      expect((await caught(() => c.changes(job(tempDir())))).code).to.equal('ERR_WORKER_PROTOCOL');
      const home = tempDir();
      const slow = new Controller({ workerPath: fixture('hang.mjs'), timeout: 300 });
      expect((await caught(() => slow.materializeView({ ...job(home), dest: path.join(home, 'v') }))).code).to.equal('ERR_WORKER_TIMEOUT');
    });
    it('a list of changes longer than any output buffer arrives whole; a worker that dies after part of it → ERR_WORKER_EXITED', async () => {
      // 110 MB of change lines: past execa's 100 MB buffer for a command's output.
      const env = { WINLAYER_TEST_CHANGES: '3700', WINLAYER_TEST_PATH_CHARS: '30000' };
      const withEnv = async <T>(vars: Record<string, string>, call: () => Promise<T>): Promise<T> => {
        Object.assign(process.env, vars);
        try {
          return await call();
        } finally {
          for (const name of Object.keys(vars)) delete process.env[name];
        }
      };
      const c = new Controller({ workerPath: fixture('many-changes.mjs') });
      const changes = await withEnv(env, () => c.changes(job(tempDir())));
      expect(changes).to.have.length(3700);
      expect(changes.map((x) => Number(x.path.split('/').pop()))).to.deep.equal([...Array(3700).keys()]);
      expect([changes[0]?.kind, changes[1]?.kind]).to.deep.equal(['add', 'modify']);
      const e = await withEnv({ ...env, WINLAYER_TEST_CHANGES: '100', WINLAYER_TEST_DIE: '1' }, () => caught(() => c.changes(job(tempDir()))));
      expect(e.code).to.equal('ERR_WORKER_EXITED');
      expect(e.data['exitCode']).to.equal(5);
    });
    it('nothing on stdout → ERR_WORKER_PROTOCOL', async () => {
      const c = new Controller({ workerPath: fixture('nothing.mjs') });
      expect((await caught(() => c.writeLayer(job(tempDir()), Readable.from([Buffer.alloc(10)])))).code).to.equal('ERR_WORKER_PROTOCOL');
    });
    it('death without the JSON line → ERR_WORKER_EXITED with exit code and stderr tail', async () => {
      const c = new Controller({ workerPath: fixture('silent-exit.mjs') });
      const e = await caught(() => c.writeLayer(job(tempDir()), Readable.from([Buffer.alloc(10)])));
      expect(e.code).to.equal('ERR_WORKER_EXITED');
      expect(e.data['exitCode']).to.equal(3);
      expect(String(e.data['stderr'])).to.include('something went wrong');
    });
    it('a worker that does not say it started in time (hung before its code ran) is killed → ERR_WORKER_TIMEOUT; one that did runs on', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), startTimeout: 300 });
      const started = Date.now();
      const e = await caught(() => c.writeLayer(job(tempDir()), Readable.from([Buffer.alloc(10)])));
      expect([e.code, e.data['signal']]).to.deep.equal(['ERR_WORKER_TIMEOUT', 'SIGKILL']);
      expect(Date.now() - started).to.be.below(10_000);
      // A real worker says so at once: an import fed for longer than that goes through.
      const real = new Controller({ startTimeout: 300 });
      const tar = await buildLayerTar(filesLayer(20, 1024));
      async function* slow(): AsyncGenerator<Buffer> {
        for (let i = 0; i < tar.length; i += 4096) {
          yield tar.subarray(i, i + 4096);
          await new Promise((r) => setTimeout(r, 40));
        }
      }
      const home = path.join(tempDir(), 'home');
      await LayerStore.open(home);
      expect(await real.writeLayer({ home, id: 'slow', parents: [] }, slow())).to.equal(20 * 1024);
      expect(() => new Controller({ startTimeout: 0 })).to.throw().with.property('code', 'ERR_ARGUMENT_INVALID');
    });

    it('a worker past its timeout is killed → ERR_WORKER_TIMEOUT', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), timeout: 300 });
      expect((await caught(() => c.writeLayer(job(tempDir()), Readable.from([Buffer.alloc(10)])))).code).to.equal('ERR_WORKER_TIMEOUT');
    });
  });

  describe('cancellation', () => {
    it('a cancellation that reaches the worker after its commit (its size printed) leaves the import a success: ERR_CANCELED means nothing was committed', async () => {
      const ac = new AbortController();
      const c = new Controller({ workerPath: fixture('size-then-hang.mjs') });
      const writing = c.writeLayer({ home: tempDir(), id: 'x', parents: [], signal: ac.signal }, Readable.from([Buffer.alloc(10)]));
      setTimeout(() => ac.abort(), 400);
      expect(await writing).to.equal(42);
      // Before the size, a cancellation is one.
      const early = new AbortController();
      const hung = new Controller({ workerPath: fixture('hang.mjs') });
      const pending = hung.writeLayer({ home: tempDir(), id: 'y', parents: [], signal: early.signal }, Readable.from([Buffer.alloc(10)]));
      setTimeout(() => early.abort(), 200);
      expect((await caught(() => pending)).code).to.equal('ERR_CANCELED');
    });

    it('an AbortSignal kills a running worker and its staging directory goes', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home') });
      const ac = new AbortController();
      const tar = await buildLayerTar(filesLayer(200, 64 * 1024));
      // Feed slowly so the worker is mid-import when canceled.
      async function* slow(): AsyncGenerator<Buffer> {
        for (let i = 0; i < tar.length; i += 64 * 1024) {
          yield tar.subarray(i, i + 64 * 1024);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      setTimeout(() => ac.abort(), 300);
      expect((await caught(() => driver.applyDiff('c', undefined, slow(), { signal: ac.signal }))).code).to.equal('ERR_CANCELED');
      expect(driver.exists('c')).to.equal(false);
      expect(listTree(driver.home).filter((n) => n.startsWith('c'))).to.deep.equal([]);
    });

    it('a cancellation as the layer is renamed into place is either a success with the layer or ERR_CANCELED without it, never ERR_CANCELED with it', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home') });
      const tar = await buildLayerTar(filesLayer(2000, 100));
      for (let i = 0; i < 4; i++) {
        const id = `race${i}`;
        const ac = new AbortController();
        // The worker has renamed its staging directory into place and not yet printed its size.
        const watcher = fs.watch(driver.home, (_event, name) => {
          if (name === id) ac.abort();
        });
        let outcome: string;
        try {
          await driver.applyDiff(id, undefined, Readable.from([tar]), { signal: ac.signal });
          outcome = 'committed';
        } catch (error) {
          outcome = isWinLayerError(error) ? error.code : String(error);
        } finally {
          watcher.close();
        }
        expect([outcome, driver.exists(id)], id).to.deep.oneOf([
          ['committed', true],
          ['ERR_CANCELED', false],
        ]);
      }
    });

    for (const [signal, stalled] of [
      ['SIGTERM', false],
      ['SIGINT', false],
      ['SIGHUP', false],
      ['SIGTERM', true],
    ] as const) {
      it(`an import worker sent ${signal} mid-import${stalled ? ' while its input stalls' : ''} stops with ERR_CANCELED and removes its staging directory itself`, async () => {
        const home = path.join(tempDir(), 'home');
        fs.mkdirSync(home);
        const tar = await buildLayerTar(filesLayer(400, 16 * 1024));
        const child = spawn(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'sig'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, WINLAYER_CONTROLLER_PID: String(process.pid) } });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        child.stdin.on('error', () => undefined);
        let feeding = true;
        const feed = (async () => {
          // Stalled: half the tar, then nothing. Else a chunk every 10 ms until the worker stops.
          const end = stalled ? tar.length >> 1 : tar.length;
          for (let at = 0; at < end && feeding; at += 64 * 1024) {
            child.stdin.write(tar.subarray(at, Math.min(end, at + 64 * 1024)));
            if (!stalled) await new Promise((r) => setTimeout(r, 10));
          }
        })();
        for (let i = 0; i < 200 && !storeEntries(home).some((n) => n.includes('-importing-')); i++) await new Promise((r) => setTimeout(r, 20));
        expect(storeEntries(home).some((n) => n.includes('-importing-'))).to.equal(true);
        await new Promise((r) => setTimeout(r, 100));
        child.kill(signal);
        const code = await exited;
        feeding = false;
        await feed;
        // A worker that can stop at a check of its own exits 1; one blocked in a read is ended.
        if (!stalled) expect(code).to.equal(1);
        expect((JSON.parse(stderr.trim().split('\n').pop() as string) as { code: string }).code).to.equal('ERR_CANCELED');
        expect(storeEntries(home)).to.deep.equal([]);
      });
    }

    it('an import whose source stalls is canceled at once, in a worker and in process, and the source is released', async () => {
      const home = path.join(tempDir(), 'home');
      const tar = await buildLayerTar(filesLayer(20, 4096));
      for (const inProcess of [false, true]) {
        const driver = await WindowsFilterDriver.open({ home, inProcess });
        // A download that sends the first KiB and then nothing, never ending.
        const source = new PassThrough();
        source.write(tar.subarray(0, 1024));
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 300);
        const started = Date.now();
        expect((await caught(() => driver.applyDiff('stalled', undefined, source, { signal: ac.signal }))).code, `inProcess ${inProcess}`).to.equal('ERR_CANCELED');
        expect(Date.now() - started, `inProcess ${inProcess}`).to.be.below(5000);
        expect(source.destroyed, `inProcess ${inProcess}`).to.equal(true);
        expect(storeEntries(home).filter((n) => n.startsWith('stalled')), `inProcess ${inProcess}`).to.deep.equal([]);
      }
      // A web stream (a fetch() body) that stalls is canceled, its connection let go.
      for (const inProcess of [false, true]) {
        const driver = await WindowsFilterDriver.open({ home, inProcess });
        let canceled = false;
        const web = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(tar.subarray(0, 1024));
          },
          cancel() {
            canceled = true;
          },
        });
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 300);
        expect((await caught(() => driver.applyDiff('stalled', undefined, web, { signal: ac.signal }))).code, `inProcess ${inProcess}`).to.equal('ERR_CANCELED');
        await new Promise((r) => setTimeout(r, 50));
        expect(canceled, `inProcess ${inProcess}`).to.equal(true);
      }
      // And past the driver's timeout: the worker killed, the source released too.
      const timed = await WindowsFilterDriver.open({ home, timeout: 1000 });
      const source = new PassThrough();
      source.write(tar.subarray(0, 1024));
      expect((await caught(() => timed.applyDiff('stalled', undefined, source))).code).to.equal('ERR_WORKER_TIMEOUT');
      expect(source.destroyed).to.equal(true);
    });

    it('an import refused before it read anything (bad id, missing parent, existing layer, canceled while queued) still lets go of its source', async () => {
      const home = path.join(tempDir(), 'home');
      const missing = path.join(tempDir(), 'missing.tar');
      for (const inProcess of [false, true]) {
        const driver = await WindowsFilterDriver.open({ home, inProcess, concurrency: 1 });
        if (!driver.exists('base')) await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        // A file stream that will fail to open: unreleased, its ENOENT was thrown where nobody listened.
        const refusals: [string, string | undefined, string][] = [
          ['x', 'no-such-parent', 'ERR_PARENT_NOT_FOUND'],
          ['bad/id', undefined, 'ERR_ID_INVALID'],
          ['base', undefined, 'ERR_LAYER_EXISTS'],
        ];
        for (const [id, parent, code] of refusals) {
          const file = fs.createReadStream(missing);
          expect((await caught(() => driver.applyDiff(id, parent, file))).code, `${id} inProcess ${inProcess}`).to.equal(code);
          expect(file.destroyed, `${id} inProcess ${inProcess}`).to.equal(true);
          let canceled = false;
          const web = new ReadableStream<Uint8Array>({ cancel: () => void (canceled = true) });
          expect((await caught(() => driver.applyDiff(id, parent, web))).code, `web ${id} inProcess ${inProcess}`).to.equal(code);
          await new Promise((r) => setTimeout(r, 10));
          expect(canceled, `web ${id} inProcess ${inProcess}`).to.equal(true);
          let returned = false;
          const iterable: AsyncIterable<Uint8Array> = {
            [Symbol.asyncIterator]: () => ({
              next: () => Promise.resolve({ done: true, value: undefined }),
              return: () => {
                returned = true;
                return Promise.resolve({ done: true, value: undefined });
              },
            }),
          };
          expect((await caught(() => driver.applyDiff(id, parent, iterable))).code, `iterable ${id} inProcess ${inProcess}`).to.equal(code);
          expect(returned, `iterable ${id} inProcess ${inProcess}`).to.equal(true);
        }
        // Canceled while a job holds the one slot: never started, its source released too.
        if (!inProcess) {
          const stall = new PassThrough();
          const first = driver.applyDiff('first', undefined, stall);
          const ac = new AbortController();
          const queued = fs.createReadStream(missing);
          const second = driver.applyDiff('second', undefined, queued, { signal: ac.signal });
          ac.abort();
          expect((await caught(() => second)).code).to.equal('ERR_CANCELED');
          expect(queued.destroyed).to.equal(true);
          stall.end(await buildLayerTar(baseLayer));
          await first;
        }
        // What it did not release: a descriptor, the caller's.
        const fd = fs.openSync(process.execPath, 'r');
        try {
          expect((await caught(() => driver.applyDiff('y', 'no-such-parent', { fd }))).code).to.equal('ERR_PARENT_NOT_FOUND');
          expect(() => fs.fstatSync(fd)).to.not.throw();
        } finally {
          fs.closeSync(fd);
        }
      }
    });

    it('a source that fails or is canceled while its import waits in the queue never reaches the process as an uncaught error, and is let go of', async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home, concurrency: 1 });
      const uncaught: unknown[] = [];
      const listener = (error: unknown): void => void uncaught.push(error);
      process.on('uncaughtException', listener);
      try {
        // The one slot held by an import whose source has not ended.
        const stall = new PassThrough();
        const first = driver.applyDiff('first', undefined, stall);
        // A file stream that fails to open while queued.
        const missing = caught(() => driver.applyDiff('second', undefined, fs.createReadStream(path.join(tempDir(), 'missing.tar'))));
        // A web stream canceled while queued, whose body fails after.
        let canceled = false;
        let fail: ((e: Error) => void) | undefined;
        const web = new ReadableStream<Uint8Array>({
          start: (controller) => void (fail = (e) => controller.error(e)),
          cancel: () => void (canceled = true),
        });
        const ac = new AbortController();
        const third = driver.applyDiff('third', undefined, web, { signal: ac.signal });
        ac.abort();
        expect((await caught(() => third)).code).to.equal('ERR_CANCELED');
        // And one aborted before the call.
        const early = new ReadableStream<Uint8Array>({ cancel: () => void (canceled &&= true) });
        expect((await caught(() => driver.applyDiff('fourth', undefined, early, { signal: AbortSignal.abort() }))).code).to.equal('ERR_CANCELED');
        await new Promise((r) => setTimeout(r, 100));
        fail?.(new Error('connection reset'));
        await new Promise((r) => setTimeout(r, 100));
        expect(canceled, 'the web stream canceled').to.equal(true);
        stall.end(await buildLayerTar(baseLayer));
        await first;
        expect((await missing).code).to.equal('ERR_IO');
        expect(uncaught).to.deep.equal([]);
      } finally {
        process.off('uncaughtException', listener);
      }
    });

    it('an export stream destroyed while its job is queued drops the job: no worker starts for it', async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home, concurrency: 1 });
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(filesLayer(200, 64 * 1024))]));
      const unhandled: unknown[] = [];
      const onUnhandled = (e: unknown): void => void unhandled.push(e);
      process.on('unhandledRejection', onUnhandled);
      let holder: Readable | undefined;
      const queued: Readable[] = [];
      try {
        // The one slot held by an export nobody reads yet.
        holder = driver.diff('base');
        holder.once('readable', () => undefined);
        for (let i = 0; i < 100 && driver.workers.running < 1; i++) await new Promise((r) => setTimeout(r, 10));
        queued.push(...Array.from({ length: 5 }, () => driver.diff('base')));
        for (const q of queued) q.on('error', () => undefined).resume();
        await new Promise((r) => setTimeout(r, 50));
        expect(driver.workers).to.deep.equal({ running: 1, queued: 5 });
        for (const q of queued) q.destroy();
        await new Promise((r) => setTimeout(r, 50));
        expect(driver.workers).to.deep.equal({ running: 1, queued: 0 });
        expect((await collect(holder)).length).to.be.above(200 * 64 * 1024);
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        holder?.destroy();
        for (const q of queued) q.destroy();
      }
    });

    it('a web stream already being read is ERR_ARGUMENT_INVALID; a caller\'s signal shared by exports keeps no listener once they close, and still cancels one', async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home });
      const web = new ReadableStream<Uint8Array>();
      web.getReader();
      expect((await caught(() => driver.applyDiff('locked', undefined, web))).code).to.equal('ERR_ARGUMENT_INVALID');
      await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const shared = new AbortController();
      for (let i = 0; i < 20; i++) driver.diff('base', undefined, { signal: shared.signal }).destroy();
      expect((await collect(driver.diff('base', undefined, { signal: shared.signal }))).length).to.be.above(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(getEventListeners(shared.signal, 'abort')).to.deep.equal([]);
      const running = driver.diff('base', undefined, { signal: shared.signal });
      shared.abort();
      expect((await caught(() => collect(running))).code).to.equal('ERR_CANCELED');
    });

    it('a mount canceled or timed out once its worker put the view in place leaves no view nobody counts', async () => {
      const home = path.join(tempDir(), 'home');
      const real = await WindowsFilterDriver.open({ home });
      await real.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
      const driver = await WindowsFilterDriver.open({ home, workerPath: fixture('view-then-hang.mjs') });
      const view = path.join(home, '.mounts', 'base');
      const ac = new AbortController();
      const mounting = driver.get('base', { signal: ac.signal });
      for (let i = 0; i < 500 && !fs.existsSync(path.join(view, 'file.txt')); i++) await new Promise((r) => setTimeout(r, 10));
      expect(fs.existsSync(path.join(view, 'file.txt')), 'the view in place').to.equal(true);
      ac.abort();
      expect((await caught(() => mounting)).code).to.equal('ERR_CANCELED');
      expect(fs.existsSync(view)).to.equal(false);
      const timed = await WindowsFilterDriver.open({ home, workerPath: fixture('view-then-hang.mjs'), timeout: 1000 });
      expect((await caught(() => timed.get('base'))).code).to.equal('ERR_WORKER_TIMEOUT');
      expect(fs.existsSync(view)).to.equal(false);
      // The store's own mount still works, counted once.
      expect(fs.readFileSync(path.join(await real.get('base'), 'Windows', 'keep.txt'), 'utf8')).to.equal('keep');
      expect(await real.put('base')).to.equal(true);
    });

    it("leaves the caller's descriptor open when an import from it or an export to it fails, in process as in a worker", async () => {
      const home = path.join(tempDir(), 'home');
      const bad = path.join(tempDir(), 'bad.tar');
      fs.writeFileSync(bad, Buffer.alloc(5000, 7));
      for (const inProcess of [false, true]) {
        const driver = await WindowsFilterDriver.open({ home, inProcess });
        const fd = fs.openSync(bad, 'r');
        try {
          expect((await caught(() => driver.applyDiff('bad', undefined, { fd }))).code, `inProcess ${inProcess}`).to.not.equal(undefined);
          expect(() => fs.fstatSync(fd), `inProcess ${inProcess}`).to.not.throw();
        } finally {
          fs.closeSync(fd);
        }
        if (!driver.exists('ok')) await driver.applyDiff('ok', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        // Opened for reading: every write to it fails (EBADF).
        const readOnly = fs.openSync(bad, 'r');
        try {
          expect((await caught(() => driver.diffTo('ok', readOnly))).code, `inProcess ${inProcess}`).to.equal('ERR_IO');
          expect(() => fs.fstatSync(readOnly), `inProcess ${inProcess}`).to.not.throw();
        } finally {
          fs.closeSync(readOnly);
        }
      }
    });

    it("exports in process to a pipe in non-blocking mode, ends at an abort inside an entry, and tells the export's failure from the pipe's", async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home, inProcess: true });
      await driver.applyDiff('big', undefined, Readable.from([await buildLayerTar(filesLayer(1, 48 << 20))]));
      const want = await collect(driver.diff('big'));
      const fifo = path.join(tempDir(), 'out.fifo');
      expect(spawnSync('mkfifo', [fifo]).status).to.equal(0);
      const readAll = async (slowly: boolean): Promise<number> => {
        let bytes = 0;
        for await (const chunk of fs.createReadStream(fifo)) {
          bytes += (chunk as Buffer).length;
          if (slowly) await new Promise((r) => setTimeout(r, 5));
        }
        return bytes;
      };
      // Non-blocking (opened so, as Node makes its own stdout): a full pipe answers EAGAIN.
      let reading = readAll(false);
      let fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      try {
        await driver.diffTo('big', fd);
      } finally {
        fs.closeSync(fd);
      }
      expect(await reading).to.equal(want.length);
      // Aborted while a 48 MiB file is being copied: ERR_CANCELED, at once.
      reading = readAll(true);
      fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      try {
        const e = await caught(() => driver.diffTo('big', fd, { signal: ac.signal }));
        expect(e.code).to.equal('ERR_CANCELED');
      } finally {
        fs.closeSync(fd);
      }
      expect(await reading).to.be.below(want.length);
      // A failure of the export itself is that failure, not one of writing (data.stream): a
      // container file named with a character Windows forbids.
      await driver.createReadWrite('rw', 'big');
      fs.writeFileSync(path.join(await driver.get('rw'), '"quoted'), 'x');
      await driver.put('rw');
      fd = fs.openSync(path.join(tempDir(), 'out.tar'), 'w');
      try {
        const e = await caught(() => driver.diffTo('rw', fd));
        expect([e.code, e.data['stream']]).to.deep.equal(['ERR_PATH_INVALID', undefined]);
      } finally {
        fs.closeSync(fd);
      }
    });

    it('takes an async iterable whose next() answers with a plain result, as for await does, with a signal too', async () => {
      const tar = await buildLayerTar(baseLayer);
      const plain = (): AsyncIterable<Uint8Array> => ({
        [Symbol.asyncIterator]() {
          let done = false;
          return {
            next: (() => {
              if (done) return { value: undefined, done: true };
              done = true;
              return { value: tar, done: false };
            }) as unknown as () => Promise<IteratorResult<Uint8Array>>,
          };
        },
      });
      const home = path.join(tempDir(), 'home');
      for (const inProcess of [false, true]) {
        const driver = await WindowsFilterDriver.open({ home, inProcess });
        const id = inProcess ? 'in-process' : 'worker';
        await driver.applyDiff(id, undefined, plain(), { signal: new AbortController().signal });
        expect((await collect(driver.diff(id))).equals(tar), id).to.equal(true);
      }
    });

    it('runs the compiled modules through winlayer/worker where the build made no bundle', () => {
      // A copy of the build without the bundles (an install whose build had no esbuild).
      const root = tempDir();
      const dist = path.join(here, '..', '..');
      fs.cpSync(dist, path.join(root, 'dist'), { recursive: true, filter: (src) => !src.includes(`${path.sep}bundle`) && !src.endsWith('.map') });
      fs.symlinkSync(path.join(dist, '..', 'node_modules'), path.join(root, 'node_modules'));
      fs.copyFileSync(path.join(dist, '..', 'package.json'), path.join(root, 'package.json'));
      const entry = path.join(root, 'dist', 'worker', 'start.cjs');
      expect(fs.existsSync(path.join(root, 'dist', 'worker', 'bundle'))).to.equal(false);
      const home = path.join(tempDir(), 'home');
      return buildLayerTar(baseLayer).then((tar) => {
        const r = spawnSync(process.execPath, [entry, 'write-layer', home, 'l'], { input: tar });
        expect(r.status, r.stderr.toString()).to.equal(0);
        expect(r.stdout.toString()).to.match(/^\d+\n$/);
        expect(fs.existsSync(path.join(home, 'l', '.winlayer', 'layer.json'))).to.equal(true);
      });
    });

    it('an async onProgress that rejects is ignored as a throwing one is, in a worker and in process', async () => {
      const home = path.join(tempDir(), 'home');
      const tar = await buildLayerTar(filesLayer(300, 64 * 1024));
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => {
        unhandled.push(reason);
      };
      process.on('unhandledRejection', onUnhandled);
      try {
        for (const inProcess of [false, true]) {
          const driver = await WindowsFilterDriver.open({ home, inProcess });
          let calls = 0;
          const id = inProcess ? 'in-process' : 'worker';
          // Fed in pieces, so that progress is reported more than once.
          async function* slow(): AsyncGenerator<Buffer> {
            for (let i = 0; i < tar.length; i += 256 * 1024) {
              yield tar.subarray(i, i + 256 * 1024);
              await new Promise((r) => setTimeout(r, 2));
            }
          }
          const r = await driver.applyDiff(id, undefined, slow(), {
            onProgress: async () => {
              calls++;
              throw new Error('the progress bar broke');
            },
          });
          expect(r.entries, id).to.be.above(300);
          expect(calls, id).to.be.above(0);
          for (const d of [await collect(driver.diff(id, undefined, { onProgress: async () => Promise.reject(new Error('again')) }))]) expect(d.length).to.be.above(0);
        }
        await new Promise((r) => setTimeout(r, 50));
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    it('one signal shared by many running jobs has two listeners however many workers run, and no leak warning', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 12 });
      const home = tempDir();
      const shutdown = new AbortController();
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(w.name);
      process.on('warning', onWarning);
      try {
        const jobs = Array.from({ length: 12 }, (_, i) => c.writeLayer({ home, id: `r${i}`, parents: [], signal: shutdown.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e));
        for (let i = 0; i < 100 && c.pending.running < 12; i++) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 300));
        expect(c.pending.running).to.equal(12);
        // The controller's one, and the one every worker's signal is derived from.
        expect(getEventListeners(shutdown.signal, 'abort').length).to.be.at.most(2);
        shutdown.abort();
        for (const e of await Promise.all(jobs)) expect((e as { code?: string }).code).to.equal('ERR_CANCELED');
        await new Promise((r) => setImmediate(r));
        expect(warnings.filter((w) => w === 'MaxListenersExceededWarning')).to.deep.equal([]);
      } finally {
        process.off('warning', onWarning);
      }
    });

    it('one signal shared by many queued jobs has one listener of this controller, and no leak warning', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 1 });
      const home = tempDir();
      const shutdown = new AbortController();
      const warnings: string[] = [];
      const onWarning = (w: Error): void => {
        warnings.push(w.name);
      };
      process.on('warning', onWarning);
      try {
        const jobs = Array.from({ length: 15 }, (_, i) => c.writeLayer({ home, id: `j${i}`, parents: [], signal: shutdown.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e));
        expect(c.pending).to.deep.equal({ running: 1, queued: 14 });
        // This controller's one, and the running worker's (execa's).
        expect(getEventListeners(shutdown.signal, 'abort').length).to.be.at.most(2);
        shutdown.abort();
        for (const e of await Promise.all(jobs)) expect((e as { code?: string }).code).to.equal('ERR_CANCELED');
        expect(getEventListeners(shutdown.signal, 'abort')).to.deep.equal([]);
        await new Promise((r) => setImmediate(r));
        expect(warnings.filter((w) => w === 'MaxListenersExceededWarning')).to.deep.equal([]);
        // A signal whose jobs all ended keeps no listener of this controller.
        const later = new AbortController();
        const one = c.writeLayer({ home, id: 'k', parents: [], signal: later.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e);
        const two = c.writeLayer({ home, id: 'l', parents: [], signal: later.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e);
        later.abort();
        await Promise.all([one, two]);
        expect(getEventListeners(later.signal, 'abort')).to.deep.equal([]);
      } finally {
        process.off('warning', onWarning);
      }
    });

    it('a queued job is canceled before it starts, at once, while the running job keeps its slot', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 1 });
      const home = tempDir();
      const acFirst = new AbortController();
      const first = c.writeLayer({ home, id: 'a', parents: [], signal: acFirst.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e);
      const ac = new AbortController();
      const second = c.writeLayer({ home, id: 'b', parents: [], signal: ac.signal }, Readable.from([Buffer.alloc(1)]));
      expect(c.pending).to.deep.equal({ running: 1, queued: 1 });
      ac.abort();
      // The first job hangs until it is canceled below: the second is settled before that.
      expect((await caught(() => second)).code).to.equal('ERR_CANCELED');
      expect(c.pending).to.deep.equal({ running: 1, queued: 0 });
      acFirst.abort();
      expect(((await first) as { code?: string }).code).to.equal('ERR_CANCELED');
    });
  });

  describe('crash safety: SIGKILL during an import', () => {
    /** Runs `fn` with the workers it starts killing themselves at `point` (src/util/crash-point.ts). */
    async function crashingAt<T>(point: string, fn: () => Promise<T>): Promise<T> {
      process.env['WINLAYER_CRASH_AT'] = point;
      try {
        return await fn();
      } finally {
        delete process.env['WINLAYER_CRASH_AT'];
      }
    }

    for (const point of ['data', 'index', 'rename'] as const) {
      it(`killed at "${point}": no layer is visible, the next open removes the leftovers, re-import works`, async () => {
        const home = path.join(tempDir(), 'home');
        const driver = await WindowsFilterDriver.open({ home });
        await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(baseLayer)]));
        const tar = await buildLayerTar(deltaLayer);
        // The worker alone, as after a controller crash: nobody cleans up but the next open.
        const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'delta', path.join(home, 'base')], {
          input: tar,
          env: { ...process.env, WINLAYER_CRASH_AT: point },
        });
        expect(w.signal).to.equal('SIGKILL');
        expect(driver.exists('delta')).to.equal(false);
        expect(driver.list().map((l) => l.id)).to.deep.equal(['base']);
        expect(storeEntries(home).filter((n) => n.startsWith('delta-importing-'))).to.have.length(1);
        const reopened = await WindowsFilterDriver.open({ home });
        expect(storeEntries(home).filter((n) => n !== '.mounts')).to.deep.equal(['base']);
        await reopened.applyDiff('delta', 'base', Readable.from([tar]));
        expect((await collect(reopened.diff('delta'))).equals(tar)).to.equal(true);
      });

      it(`killed at "${point}" under the controller: a worker error, and the controller removes the staging directory`, async () => {
        const home = path.join(tempDir(), 'home');
        const driver = await WindowsFilterDriver.open({ home });
        const tar = await buildLayerTar(baseLayer);
        const e = await crashingAt(point, () => caught(() => driver.applyDiff('l', undefined, Readable.from([tar]))));
        expect(e.code).to.equal('ERR_WORKER_EXITED');
        expect(e.data['signal']).to.equal('SIGKILL');
        expect(storeEntries(home).filter((n) => n !== '.mounts')).to.deep.equal([]);
        await driver.applyDiff('l', undefined, Readable.from([tar]));
      });
    }

    it('killed after its commit rename, before it printed the size: the import succeeded, and says so', async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home });
      const tar = await buildLayerTar(baseLayer);
      const expected = await driver.applyDiff('reference', undefined, Readable.from([tar]));
      await driver.create('l');
      for (const id of ['new', 'l']) {
        // A new id, and one an import replaces (set aside, then made anew).
        const r = await crashingAt('committed', () => driver.applyDiff(id, undefined, Readable.from([tar])));
        expect(r.size).to.equal(expected.size);
        expect((await collect(driver.diff(id))).equals(tar)).to.equal(true);
      }
      expect(storeEntries(home).filter((n) => n !== '.mounts').sort()).to.deep.equal(['l', 'new', 'reference']);
    });

    it('killed just before its commit rename, where a layer of that id is back (the one it was to replace): a failure, and that layer stays', async () => {
      const home = path.join(tempDir(), 'home');
      const driver = await WindowsFilterDriver.open({ home });
      const tar = await buildLayerTar(baseLayer);
      await driver.create('l');
      // The worker named its staging directory and died; the layer there now is the one put
      // back, not that directory.
      const e = await crashingAt('rename', () => caught(() => driver.applyDiff('l', undefined, Readable.from([tar]))));
      expect(e.code).to.equal('ERR_WORKER_EXITED');
      expect(driver.list().map((l) => [l.id, l.entries])).to.deep.equal([['l', 0]]);
    });
  });

  it('a file-writing thread that ends with an error fails its import at once with ERR_IO, not after a stall; nothing stays', async () => {
    const home = path.join(tempDir(), 'home');
    const driver = await WindowsFilterDriver.open({ home });
    const tar = await buildLayerTar(filesLayer(300, 100)); // past FILE_THREAD_AFTER small files: the thread starts
    const t = Date.now();
    const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'l'], { input: tar, env: { ...process.env, WINLAYER_CRASH_AT: 'file-thread' } });
    expect(Date.now() - t, 'the 60 s stall check is not what noticed').to.be.lessThan(20_000);
    expect(w.status).to.equal(1);
    const last = w.stderr.toString().trim().split('\n').at(-1) ?? '';
    expect((JSON.parse(last) as { code: string }).code).to.equal('ERR_IO');
    expect(storeEntries(home).filter((n) => n !== '.mounts')).to.deep.equal([]);
    await driver.applyDiff('l', undefined, Readable.from([tar]));
  });

  describe('backend choice in the worker (WINLAYER_NATIVE)', () => {
    async function withEnv<T>(value: string, fn: () => Promise<T>): Promise<T> {
      process.env['WINLAYER_NATIVE'] = value;
      try {
        return await fn();
      } finally {
        delete process.env['WINLAYER_NATIVE'];
      }
    }

    it(`imports through the edge backend in the worker, giving the same layer${skipNote()}`, async function () {
      requireHelperOrSkip(this);
      const tar = await buildLayerTar(baseLayer);
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home') });
      const r = await withEnv('edge', () => driver.applyDiff('e', undefined, Readable.from([tar])));
      expect(r.size).to.equal(3017);
      expect((await collect(driver.diff('e'))).equals(tar)).to.equal(true);
    });

    it('an unknown backend name fails the worker with ERR_ARGUMENT_INVALID', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home') });
      const tar = await buildLayerTar(baseLayer);
      const e = await withEnv('bogus', () => caught(() => driver.applyDiff('b', undefined, Readable.from([tar]))));
      expect(e.code).to.equal('ERR_ARGUMENT_INVALID');
      expect(driver.exists('b')).to.equal(false);
    });
  });

  describe('concurrency', () => {
    it('runs imports and removes of different layers in parallel', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 4 });
      const tar = await buildLayerTar(baseLayer);
      await Promise.all(['old1', 'old2'].map((id) => driver.applyDiff(id, undefined, Readable.from([tar]))));
      const results = await Promise.all([
        ...['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => driver.applyDiff(id, undefined, Readable.from([tar]))),
        driver.remove('old1'),
        driver.remove('old2'),
      ]);
      expect(results.slice(0, 5).every((r) => r !== undefined && r.size === 3017)).to.equal(true);
      expect(driver.list().map((l) => l.id)).to.deep.equal(['n1', 'n2', 'n3', 'n4', 'n5']);
      for (const id of ['n1', 'n5']) expect((await collect(driver.diff(id))).equals(tar)).to.equal(true);
    });

    it('two imports of the same id at once: one succeeds, the other fails with ERR_LAYER_EXISTS', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 2 });
      const tar = await buildLayerTar(filesLayer(50, 16 * 1024));
      const settled = await Promise.allSettled([driver.applyDiff('same', undefined, Readable.from([tar])), driver.applyDiff('same', undefined, Readable.from([tar]))]);
      const codes = settled.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as { code: string }).code)).sort();
      expect(codes).to.deep.equal(['ERR_LAYER_EXISTS', 'ok']);
      expect(listTree(driver.home).filter((n) => n.includes('-importing-'))).to.deep.equal([]);
      expect((await collect(driver.diff('same'))).equals(tar)).to.equal(true);
    });

    it('bounds the workers that run at once', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 2, timeout: 1500 });
      const jobs = [1, 2, 3].map((i) => c.writeLayer({ home: tempDir(), id: `j${i}`, parents: [] }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e));
      await new Promise((r) => setTimeout(r, 200));
      expect(c.pending).to.deep.equal({ running: 2, queued: 1 });
      await Promise.all(jobs);
    });

    // Without the rule that lets a queued job start beside jobs that all wait on their
    // caller, each of these waits for ever: the mocha timeout is the guard.
    it('copies a layer, applyDiff(b, diff(a)), with one worker at a time', async function () {
      this.timeout(20_000);
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 1 });
      const tar = await buildLayerTar(filesLayer(40, 64 * 1024));
      await driver.applyDiff('a', undefined, Readable.from([tar]));
      expect((await driver.applyDiff('b', undefined, driver.diff('a'))).size).to.equal(40 * 64 * 1024);
      // Through a stream of the caller's too, which nothing can tell from any other input.
      async function* through(r: Readable): AsyncGenerator<Uint8Array> {
        for await (const chunk of r) yield chunk as Uint8Array;
      }
      await driver.applyDiff('c', undefined, through(driver.diff('b')));
      expect((await collect(driver.diff('c'))).equals(tar)).to.equal(true);
      expect(driver.workers).to.deep.equal({ running: 0, queued: 0 });
    });

    it('with one worker at a time, an import whose source first awaits another call runs', async function () {
      this.timeout(20_000);
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 1 });
      const tar = await buildLayerTar(filesLayer(20, 4096));
      await driver.applyDiff('a', undefined, Readable.from([tar]));
      async function* afterChanges(): AsyncGenerator<Uint8Array> {
        // The import holds the only slot, waiting for this source, which waits for a worker.
        expect((await driver.changes('a')).length).to.be.above(0);
        yield tar;
      }
      expect((await driver.applyDiff('b', undefined, afterChanges())).size).to.equal(20 * 4096);
      expect(driver.workers).to.deep.equal({ running: 0, queued: 0 });
    });

    it('forEachChange aborted from its callback calls it no more and rejects ERR_CANCELED, though the worker wrote every change', async () => {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 1 });
      await driver.applyDiff('a', undefined, Readable.from([await buildLayerTar(filesLayer(40, 16))]));
      const ac = new AbortController();
      let calls = 0;
      const e = await caught(() =>
        driver.forEachChange(
          'a',
          async () => {
            calls++;
            // The 41 changes are in the pipe by now.
            await new Promise((r) => setTimeout(r, 200));
            ac.abort();
          },
          { signal: ac.signal },
        ),
      );
      expect([e.code, calls]).to.deep.equal(['ERR_CANCELED', 1]);
      expect(driver.workers).to.deep.equal({ running: 0, queued: 0 });
    });

    it('a job whose signal is aborted already is canceled at once, never queued', async () => {
      const c = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 1 });
      const acFirst = new AbortController();
      const first = c.writeLayer({ home: tempDir(), id: 'a', parents: [], signal: acFirst.signal }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e);
      const aborted = AbortSignal.abort();
      expect((await caught(() => c.writeLayer({ home: tempDir(), id: 'b', parents: [], signal: aborted }, Readable.from([Buffer.alloc(1)])))).code).to.equal('ERR_CANCELED');
      expect(c.pending).to.deep.equal({ running: 1, queued: 0 });
      acFirst.abort();
      expect(((await first) as { code?: string }).code).to.equal('ERR_CANCELED');
    });

    it('with one worker at a time, a call awaited in a forEachChange callback, or while a diff() stream is unread, runs', async function () {
      this.timeout(20_000);
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), concurrency: 1 });
      const tar = await buildLayerTar(filesLayer(200, 4096));
      await driver.applyDiff('a', undefined, Readable.from([tar]));
      const listed = (await driver.changes('a')).length;
      let inner = 0;
      let seen = 0;
      await driver.forEachChange('a', async () => {
        if (seen++ === 0) inner = (await driver.changes('a')).length;
      });
      expect([inner, seen]).to.deep.equal([listed, listed]);
      // The export holds its slot until its stream closes: here, after the changes.
      const stream = driver.diff('a');
      const chunks = stream[Symbol.asyncIterator]();
      const first = await chunks.next();
      expect((await driver.changes('a')).length).to.equal(listed);
      const rest = [first.value as Buffer];
      for (let r = await chunks.next(); r.done !== true; r = await chunks.next()) rest.push(r.value as Buffer);
      expect(Buffer.concat(rest).equals(tar)).to.equal(true);
    });

    it('the limit holds for jobs that wait on nothing of the caller, and bends by at most the limit (or 2) for jobs that wait', async () => {
      const home = path.join(tempDir(), 'home');
      await LayerStore.open(home);
      const c = new Controller({ concurrency: 1 });
      const tar = await buildLayerTar(filesLayer(4, 1024));
      let release = (): void => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      // Imports whose input is slow to come (downloads, or a source waiting for another call):
      // two more start beside the first, no more.
      async function* slow(): AsyncGenerator<Uint8Array> {
        await gate;
        yield tar;
      }
      const imports = [1, 2, 3, 4, 5].map((i) => c.writeLayer({ home, id: `slow${i}`, parents: [] }, slow()));
      await new Promise((r) => setTimeout(r, 600));
      expect(c.pending).to.deep.equal({ running: 3, queued: 2 });
      release();
      expect(await Promise.all(imports)).to.deep.equal([4096, 4096, 4096, 4096, 4096]);
      // Workers that work: one at a time.
      const hung = new Controller({ workerPath: fixture('hang.mjs'), concurrency: 1, timeout: 1000 });
      const jobs = [1, 2].map((i) => hung.writeLayer({ home: tempDir(), id: `j${i}`, parents: [] }, Readable.from([Buffer.alloc(1)])).catch((e: unknown) => e));
      await new Promise((r) => setTimeout(r, 400));
      expect(hung.pending).to.deep.equal({ running: 1, queued: 1 });
      await Promise.all(jobs);
    });
  });

  it('rejects a bad concurrency or timeout with ERR_ARGUMENT_INVALID', async () => {
    expect(await rejectionCode(async () => new Controller({ concurrency: 0 }))).to.equal('ERR_ARGUMENT_INVALID');
    expect(await rejectionCode(async () => new Controller({ timeout: -1 }))).to.equal('ERR_ARGUMENT_INVALID');
    // Node would fire a longer timer after 1 ms, killing every worker at once.
    for (const name of ['timeout', 'startTimeout']) {
      expect(await rejectionCode(async () => new Controller({ [name]: 2 ** 31 })), name).to.equal('ERR_ARGUMENT_INVALID');
      expect(await rejectionCode(async () => new Controller({ [name]: Infinity })), name).to.equal('ERR_ARGUMENT_INVALID');
    }
    const longest = new Controller({ timeout: 2 ** 31 - 1, startTimeout: 2 ** 31 - 1 });
    const home = path.join(tempDir(), 'home');
    await LayerStore.open(home);
    expect(await longest.writeLayer({ home, id: 'a', parents: [] }, Readable.from([await buildLayerTar(filesLayer(2, 10))]))).to.equal(20);
  });

  it('diffTo refuses what is not a file descriptor with ERR_ARGUMENT_INVALID, in a worker or in process', async () => {
    const tar = await buildLayerTar(filesLayer(2, 10));
    for (const inProcess of [false, true]) {
      const driver = await WindowsFilterDriver.open({ home: path.join(tempDir(), 'home'), inProcess });
      await driver.applyDiff('a', undefined, Readable.from([tar]));
      for (const fd of [-1, null, 1.5, '1', undefined]) {
        expect(await rejectionCode(() => driver.diffTo('a', fd as number)), `${String(fd)}, in process: ${inProcess}`).to.equal('ERR_ARGUMENT_INVALID');
      }
    }
  });

  it('starts its workers where they are not disturbed by a removed current directory', () => {
    const index = pathToFileURL(path.join(here, '..', '..', 'src', 'index.js')).href;
    const cwd = tempDir();
    const home = path.join(tempDir(), 'home');
    const script = `
      import { WindowsFilterDriver, buildLayerTar } from ${JSON.stringify(index)};
      import * as fs from 'node:fs';
      import { Readable } from 'node:stream';
      fs.rmdirSync(${JSON.stringify(cwd)});
      const driver = await WindowsFilterDriver.open({ home: ${JSON.stringify(home)} });
      const tar = await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/a', data: 'abc' }]);
      try {
        console.log(JSON.stringify({ size: (await driver.applyDiff('a', undefined, Readable.from([tar]))).size, changes: (await driver.changes('a')).length }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code }));
      }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd, encoding: 'utf8' });
    expect({ status: r.status, outcome: JSON.parse(r.stdout.trim() || '{}') as unknown }, r.stderr).to.deep.equal({ status: 0, outcome: { size: 3, changes: 2 } });
  });

  it('a worker script that is not there is ERR_IO (ENOENT) naming it, not a worker that exits without a word', async () => {
    const missing = path.join(tempDir(), 'bundle', 'worker', 'main.js');
    const c = new Controller({ workerPath: missing });
    const home = path.join(tempDir(), 'home');
    await LayerStore.open(home);
    const e = await caught(() => c.writeLayer({ home, id: 'a', parents: [] }, Readable.from([Buffer.alloc(1024)])));
    expect([e.code, e.data['errno'], e.data['path']]).to.deep.equal(['ERR_IO', 'ENOENT', missing]);
    expect((await caught(() => c.changes({ home, id: 'a', parents: [] }))).code).to.equal('ERR_IO');
    // What the error tells a tool that bundles winlayer to pass: the worker the build makes.
    const pkg = JSON.parse(fs.readFileSync(path.join(here, '..', '..', '..', 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(path.join(here, '..', '..', '..', String(pkg.exports['./worker']))).to.equal(WORKER_BUNDLE_ENTRY);
    // And the package's own description, which tools read for its version.
    expect((createRequire(import.meta.url)('winlayer/package.json') as { name: string }).name).to.equal('winlayer');
  });

  it('the worker entry runs only as a program: a module that loads it gets no worker in its own process', () => {
    // As a worker with no command it would print its usage and set exit status 2.
    const asProgram = spawnSync(process.execPath, [WORKER_BUNDLE_ENTRY], { encoding: 'utf8' });
    expect(asProgram.status).to.not.equal(0);
    const loaded = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(WORKER_BUNDLE_ENTRY)})`], { encoding: 'utf8' });
    expect([loaded.status, loaded.stderr, loaded.stdout]).to.deep.equal([0, '', '']);
  });
});
