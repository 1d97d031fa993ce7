/**
 * The file thread on its own, and the layer writer handing it small files: contents and
 * times land as queued, a failure comes back naming its entry, cancel leaves no file behind,
 * and a layer of many small files round-trips byte for byte.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { buildLayerTar, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { isWinLayerError } from '../../src/errors.js';
import { BATCH_BYTES, FileThread, HASH_SLOT_BYTES } from '../../src/layer/file-thread.js';
import { FILE_THREAD_AFTER } from '../../src/layer/layer-writer.js';
import { caseFoldKey } from '../../src/util/safe-path.js';
import { DigestingSource, HOLD_BYTES } from '../../src/native/portable.js';
import { FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_HIDDEN } from '../../src/util/windows.js';
import { namesSharingHash32 } from '../helpers/hash-collisions.js';
import { cleanupTemp, exportTar, importTar, listTree, openStore, tempDir } from '../helpers/store.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return expect.fail('expected a throw');
}

describe('layer/file-thread', function () {
  this.timeout(60_000);
  after(cleanupTemp);

  it('writes every queued file with its content and times, across many batches', () => {
    const dir = tempDir();
    const files = new FileThread();
    try {
      // 600 files of 2 KiB and a few of 64 KiB: more batches than may be in flight at once.
      for (let i = 0; i < 600; i++) {
        const size = i % 100 === 0 ? 64 * 1024 : 2048;
        files.write(path.join(dir, `f${i}`), `Files/f${i}`, Buffer.alloc(size, i & 0xff), 1_000_000 + i, 2_000_000 + i);
      }
      files.drain();
    } finally {
      files.stop();
    }
    expect(fs.readdirSync(dir)).to.have.length(600);
    for (const i of [0, 1, 299, 599]) {
      const file = path.join(dir, `f${i}`);
      const st = fs.statSync(file); // before reading, which may move atime
      expect([st.atimeMs, st.mtimeMs]).to.deep.equal([(1_000_000 + i) * 1000, (2_000_000 + i) * 1000]);
      expect(fs.readFileSync(file).equals(Buffer.alloc(i % 100 === 0 ? 64 * 1024 : 2048, i & 0xff))).to.equal(true);
    }
  });

  it('takes files up to a whole batch', () => {
    const dir = tempDir();
    const files = new FileThread();
    try {
      files.write(path.join(dir, 'a'), 'Files/a', Buffer.alloc(BATCH_BYTES, 1), 0, 0);
      files.write(path.join(dir, 'b'), 'Files/b', Buffer.alloc(10, 2), 0, 0);
      files.drain();
    } finally {
      files.stop();
    }
    expect(fs.statSync(path.join(dir, 'a')).size).to.equal(BATCH_BYTES);
    expect(fs.readFileSync(path.join(dir, 'b')).equals(Buffer.alloc(10, 2))).to.equal(true);
  });

  it('reports the first failure with its entry and skips what follows', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'taken'), 'already here');
    const files = new FileThread();
    try {
      files.write(path.join(dir, 'one'), 'Files/one', Buffer.from('1'), 0, 0);
      files.write(path.join(dir, 'taken'), 'Files/taken', Buffer.from('2'), 0, 0); // O_EXCL: EEXIST
      files.write(path.join(dir, 'three'), 'Files/three', Buffer.from('3'), 0, 0);
      const err = thrown(() => files.drain());
      expect(isWinLayerError(err) && [err.code, err.data['entry'], err.data['errno']]).to.deep.equal(['ERR_IO', 'Files/taken', 'EEXIST']);
      // The same failure again, also for later writes.
      expect(thrown(() => files.drain())).to.equal(err);
      expect(thrown(() => files.write(path.join(dir, 'four'), 'Files/four', Buffer.from('4'), 0, 0))).to.equal(err);
    } finally {
      files.stop();
    }
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['one', 'taken']);
    expect(fs.readFileSync(path.join(dir, 'taken'), 'utf8')).to.equal('already here');
  });

  it('never follows a symbolic link planted where a file goes', () => {
    const dir = tempDir();
    const outside = tempDir();
    fs.symlinkSync(path.join(outside, 'victim'), path.join(dir, 'link'));
    const files = new FileThread();
    try {
      files.write(path.join(dir, 'link'), 'Files/link', Buffer.from('x'), 0, 0);
      const err = thrown(() => files.drain());
      expect(isWinLayerError(err) && err.code).to.equal('ERR_IO');
    } finally {
      files.stop();
    }
    expect(fs.readdirSync(outside)).to.deep.equal([]);
  });

  it('hashes what it is handed, in order, across slots and turns of its ring, between batches', () => {
    const dir = tempDir();
    const original = randomBytes(5 * 1024 * 1024 + 123); // 20 slots and a part: the ring turns twice
    const bytes = Buffer.from(original);
    // Odd sizes: chunks that fill a slot exactly, end inside one, and span several.
    const sizes = [1, HASH_SLOT_BYTES - 1, HASH_SLOT_BYTES, 3 * HASH_SLOT_BYTES + 7, 65_536, 0, 511];
    const files = new FileThread();
    let digest: string;
    let written = 0;
    try {
      let at = 0;
      for (let i = 0; at < bytes.length; i++) {
        const n = Math.min(sizes[i % sizes.length] as number, bytes.length - at);
        const chunk = bytes.subarray(at, at + n);
        files.hash(chunk);
        chunk.fill(0); // copied before hash() returned: changing it now changes nothing
        at += n;
        files.write(path.join(dir, `f${i}`), `Files/f${i}`, Buffer.from(`file ${i}`), 0, 0);
        written++;
      }
      digest = files.digest();
      expect(files.digest()).to.equal(digest); // asked again: the same answer, no second request
      files.drain();
    } finally {
      files.stop();
    }
    expect(digest).to.equal(`sha256:${createHash('sha256').update(original).digest('hex')}`);
    expect(fs.readdirSync(dir)).to.have.length(written);
    expect(fs.readFileSync(path.join(dir, 'f3'), 'utf8')).to.equal('file 3');
  });

  it('hashes slots that ride with batches of files, and slots posted on their own, in one order', () => {
    const dir = tempDir();
    const original = randomBytes(3 * 1024 * 1024 + 5); // 12 slots and a part
    const files = new FileThread();
    let digest: string;
    let written = 0;
    try {
      for (let at = 0, round = 0; at < original.length; round++) {
        // Even rounds: a slot and a half, then a full batch of files (which takes the filled
        // slots along); odd rounds: three slots and no files (their slots wait for the ring
        // to need them back, or for the digest).
        const n = Math.min(round % 2 === 0 ? HASH_SLOT_BYTES * 1.5 : HASH_SLOT_BYTES * 3, original.length - at);
        files.hash(original.subarray(at, at + n));
        at += n;
        if (round % 2 === 0) {
          for (let i = 0; i < 300; i++) files.write(path.join(dir, `r${round}-${i}`), `Files/r${round}-${i}`, Buffer.from(`${round}/${i}`), 0, 0);
          written += 300;
        }
      }
      digest = files.digest();
      files.drain();
    } finally {
      files.stop();
    }
    expect(digest).to.equal(`sha256:${createHash('sha256').update(original).digest('hex')}`);
    expect(fs.readdirSync(dir)).to.have.length(written);
    expect(fs.readFileSync(path.join(dir, 'r2-299'), 'utf8')).to.equal('2/299');
  });

  it('gives the digest of nothing when handed nothing, and refuses bytes after the digest', () => {
    const files = new FileThread();
    try {
      expect(files.digest()).to.equal(`sha256:${createHash('sha256').digest('hex')}`);
      expect((thrown(() => files.hash(Buffer.from('late'))) as { code?: string }).code).to.equal('ERR_ARGUMENT_INVALID');
    } finally {
      files.stop();
    }
  });

  it('cancel returns once nothing more can be written', () => {
    const dir = tempDir();
    const files = new FileThread();
    for (let i = 0; i < 2000; i++) files.write(path.join(dir, `f${i}`), `Files/f${i}`, Buffer.alloc(100, 1), 0, 0);
    files.cancel();
    const count = fs.readdirSync(dir).length;
    expect(count).to.be.below(2000); // the batch being filled was never handed over
    return new Promise((resolve) => setTimeout(resolve, 100)).then(() => {
      expect(fs.readdirSync(dir)).to.have.length(count);
    });
  });
});

describe('layer writer: small files through the file thread', function () {
  this.timeout(60_000);
  after(cleanupTemp);

  const many = (n: number): BuilderEntry[] => [
    { type: 'directory', name: 'Files' },
    { type: 'directory', name: 'Files/d' },
    ...Array.from({ length: n }, (_, i): BuilderEntry => ({
      type: 'file',
      name: `Files/d/f${i}.txt`,
      data: Buffer.alloc(i % 7 === 0 ? 70_000 : (i * 37) % 3000, i & 0xff), // some too large for the thread
      streams: i % 50 === 0 ? [{ name: 'ads', data: `stream ${i}` }] : [],
    })),
    { type: 'link', name: 'Files/link-to-last', target: `Files/d/f${n - 1}.txt` },
  ];

  it('imports and exports a layer of many small files byte for byte', async () => {
    const store = await openStore();
    const tar = await buildLayerTar(many(FILE_THREAD_AFTER * 5));
    await importTar(store, 'many', tar);
    expect((await exportTar(store, 'many')).equals(tar)).to.equal(true);
  });

  it('finds duplicates, parents that are files and link targets among files it no longer names', async () => {
    const store = await openStore();
    const base = many(FILE_THREAD_AFTER * 3).slice(0, -1);
    const duplicate = await buildLayerTar([...base, { type: 'file', name: `Files/D/F${FILE_THREAD_AFTER * 3 - 1}.TXT`, data: 'again' }]);
    expect(await importTar(store, 'dup', duplicate).then(() => 'imported', (e: unknown) => isWinLayerError(e) && e.code)).to.equal('ERR_ENTRY_DUPLICATE');
    const below = await buildLayerTar([...base, { type: 'file', name: 'Files/d/f5.txt/below', data: 'x' }]);
    expect(await importTar(store, 'below', below).then(() => 'imported', (e: unknown) => isWinLayerError(e) && e.code)).to.equal('ERR_PARENT_NOT_DIRECTORY');
    // A link spelled in another case than its target (names are case-insensitive).
    const linked = await buildLayerTar([...base, { type: 'link', name: 'Files/other-case', target: 'Files/D/F7.TXT' }]);
    await importTar(store, 'linked', linked);
    const layer = store.layerPath('linked');
    expect(fs.statSync(path.join(layer, 'Files/other-case')).ino).to.equal(fs.statSync(path.join(layer, 'Files/d/f7.txt')).ino);
    expect(store.exists('dup') || store.exists('below')).to.equal(false);
  });

  it('imports two files whose names share a hash (each a hit to confirm), and still refuses a true duplicate of either', async () => {
    const store = await openStore();
    // File names in one directory whose case-folded names share the file table's 32-bit hash.
    const pair = namesSharingHash32((i) => `Files/d/f${i}.txt`, caseFoldKey);
    const files = (names: string[]): BuilderEntry[] => names.map((name, i) => ({ type: 'file', name, data: `file ${i}` }));
    const fill = Array.from({ length: FILE_THREAD_AFTER * 2 }, (_, i) => `Files/d/fill-${i}.txt`); // the file thread runs
    const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Files/d' }, ...files([pair[0], ...fill, pair[1]])];
    const tar = await buildLayerTar(entries);
    // The hit is confirmed by reading the directory through, not by listing it whole into
    // memory (a directory of 400,000 files, listed at each such hit, took 191 MiB).
    const cjs = createRequire(import.meta.url)('node:fs') as { readdirSync: (...a: unknown[]) => unknown };
    const readdirSync = cjs.readdirSync;
    const listed: string[] = [];
    cjs.readdirSync = (...a: unknown[]) => {
      if (String(a[0]).endsWith(`${path.sep}Files${path.sep}d`)) listed.push(String(a[0]));
      return readdirSync(...a);
    };
    syncBuiltinESMExports();
    try {
      await importTar(store, 'shared-hash', tar);
    } finally {
      cjs.readdirSync = readdirSync;
      syncBuiltinESMExports();
    }
    expect(listed).to.deep.equal([]);
    expect((await exportTar(store, 'shared-hash')).equals(tar)).to.equal(true);
    for (const name of pair) {
      const again = await buildLayerTar([...entries, { type: 'file', name: name.replace('Files/d/f', 'Files/D/F'), data: 'again' }]);
      expect(await importTar(store, 'dup', again).then(() => 'imported', (e: unknown) => isWinLayerError(e) && e.code), name).to.equal('ERR_ENTRY_DUPLICATE');
    }
  });

  it("resolves a delta's link to the parents' file, not to a file of the layer whose name shares the target's hash", async () => {
    const store = await openStore();
    const [other, target] = namesSharingHash32((i) => `Files/c${i}.txt`, caseFoldKey);
    await importTar(store, 'base', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: target, data: 'PARENT' }]));
    const collide = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: other, data: 'x' },
      { type: 'link', name: 'Files/early.txt', target },
      { type: 'file', name: target, data: 'CHILD' },
    ]);
    await importTar(store, 'collide', collide, 'base');
    // Each file holds its data after its backup-stream headers.
    const layer = store.layerPath('collide');
    const data = (name: string): string => fs.readFileSync(path.join(layer, name), 'latin1');
    expect([data('Files/early.txt').endsWith('PARENT'), data(target).endsWith('CHILD'), data(other).endsWith('x')]).to.deep.equal([true, true, true]);
  });

  it('merges a repeated directory only when spelled as its first entry, also where its host path is spelled otherwise', async () => {
    const store = await openStore();
    const dirs: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'directory', name: 'Files/A' },
      { type: 'directory', name: 'Files/a/B' }, // created on disk as Files/A/B
      { type: 'file', name: 'Files/a/B/x.txt', data: 'x' },
    ];
    await importTar(store, 'merged', await buildLayerTar([...dirs, { type: 'directory', name: 'Files/a/B' }]));
    expect(fs.readdirSync(path.join(store.layerPath('merged'), 'Files/A/B'))).to.deep.equal(['x.txt']);
    const respelled = await buildLayerTar([...dirs, { type: 'directory', name: 'Files/A/b' }]);
    expect(await importTar(store, 'respelled', respelled).then(() => 'imported', (e: unknown) => isWinLayerError(e) && e.code)).to.equal('ERR_ENTRY_DUPLICATE');
    const fileOverDir = await buildLayerTar([...dirs, { type: 'file', name: 'Files/A/B', data: 'no' }]);
    expect(await importTar(store, 'file-over-dir', fileOverDir).then(() => 'imported', (e: unknown) => isWinLayerError(e) && e.code)).to.equal('ERR_ENTRY_DUPLICATE');
  });

  it('rewrites a directory sidecar that may still be queued when the directory comes again', async () => {
    const store = await openStore();
    const hidden = FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN;
    // Files/d's sidecar is created on the thread (after FILE_THREAD_AFTER files), then Files/d is repeated.
    const files = many(FILE_THREAD_AFTER * 2).slice(0, -1);
    const at = 2 + FILE_THREAD_AFTER + 10;
    const entries: BuilderEntry[] = [
      ...files.slice(0, at),
      { type: 'directory', name: 'Files/e' },
      ...files.slice(at),
      { type: 'directory', name: 'Files/e', attributes: hidden },
    ];
    await importTar(store, 'again', await buildLayerTar(entries));
    const sidecar = fs.readFileSync(path.join(store.layerPath('again'), 'Files/e.$wcidirs$'));
    expect(sidecar.readUInt32LE(0)).to.equal(hidden);
  });

  it('creates directories on the file thread, in order with what goes in them and with what this thread writes there', async () => {
    const store = await openStore();
    const entries: BuilderEntry[] = many(FILE_THREAD_AFTER * 2).slice(0, -1);
    for (let i = 0; i < 10; i++) {
      const dir = `Files/q${i}`;
      entries.push(
        { type: 'directory', name: dir },
        { type: 'file', name: `${dir}/small.txt`, data: `small ${i}` },
        // Too large for the thread: created here, once the queued directory exists.
        { type: 'file', name: `${dir}/large.bin`, data: Buffer.alloc(70_000, i) },
        { type: 'directory', name: `${dir}/sub` },
        // Below a queued directory, through directories that are not entries.
        { type: 'file', name: `${dir}/sub/implicit/deeper/x.txt`, data: 'x' },
        // To the directory before (a base layer links only to what it added before).
        { type: 'link', name: `${dir}/sub/link.txt`, target: `Files/q${Math.max(0, i - 1)}/small.txt` },
      );
    }
    const tar = await buildLayerTar(entries);
    await importTar(store, 'dirs', tar);
    const root = store.layerPath('dirs');
    expect(fs.readFileSync(path.join(root, 'Files/q4/sub/implicit/deeper/x.txt')).subarray(-1).toString()).to.equal('x');
    expect(fs.statSync(path.join(root, 'Files/q4/sub/link.txt')).ino).to.equal(fs.statSync(path.join(root, 'Files/q3/small.txt')).ino);
    // The export puts the directories the tar left out before the entry below them (as
    // plain directories with that entry's times, which here are the builder's default).
    const withDirectories = entries.flatMap((e): BuilderEntry[] => {
      if (e.type !== 'file' || !e.name.endsWith('/implicit/deeper/x.txt')) return [e];
      const implicit = e.name.slice(0, -'/deeper/x.txt'.length);
      return [{ type: 'directory', name: implicit }, { type: 'directory', name: `${implicit}/deeper` }, e];
    });
    expect((await exportTar(store, 'dirs')).equals(await buildLayerTar(withDirectories))).to.equal(true);
    // A directory given again rewrites its sidecar, which the thread may still hold.
    const again: BuilderEntry[] = [...entries, { type: 'directory', name: 'Files/q3', attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN }];
    await importTar(store, 'dirs-again', await buildLayerTar(again));
    expect(fs.readFileSync(path.join(store.layerPath('dirs-again'), 'Files/q3.$wcidirs$')).readUInt32LE(0)).to.equal(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN);

    // Hives/ (and UtilityVM/) files are written on this thread: their directories are not queued.
    const withHives: BuilderEntry[] = [
      ...entries,
      { type: 'directory', name: 'Hives' },
      { type: 'file', name: 'Hives/SYSTEM_Delta', data: Buffer.alloc(5000, 7) },
      { type: 'file', name: 'Hives/DefaultUser_Delta', data: 'user hive' },
    ];
    await importTar(store, 'dirs-hives', await buildLayerTar(withHives));
    expect((await exportTar(store, 'dirs-hives')).equals(await buildLayerTar([...withDirectories, ...withHives.slice(entries.length)]))).to.equal(true);

    // A directory the host cannot hold, made on the thread: the error names that directory.
    const deepDir = 'Files/' + Array.from({ length: 19 }, (_, i) => `${i}`.padStart(3, '0') + 'd'.repeat(197)).join('/');
    const tooDeep = `${deepDir}/${'g'.repeat(250)}`;
    const failing = [...entries, { type: 'file', name: `${deepDir}/ok.txt`, data: 'fits' }, { type: 'directory', name: tooDeep }, { type: 'file', name: 'Files/after.txt', data: 'x' }] as BuilderEntry[];
    const err = await importTar(store, 'deep-dir', await buildLayerTar(failing)).then(() => expect.fail('imported'), (e: unknown) => e);
    expect(isWinLayerError(err) && [err.code, err.data['entry']]).to.deep.equal(['ERR_PATH_TOO_LONG', tooDeep]);
    expect(store.exists('deep-dir')).to.equal(false);
  });

  for (const [where, files] of [['on the file thread', FILE_THREAD_AFTER * 2], ['before the thread starts', 3]] as const) {
    it(`fails an import whose file cannot be created ${where}, naming the entry, and leaves nothing`, async () => {
      const outside = tempDir();
      const store = await openStore(path.join(outside, 'home'));
      // The parent directories fit PATH_MAX (4,096 bytes here), the file's own path does not.
      const deepDir = 'Files/' + Array.from({ length: 19 }, (_, i) => `${i}`.padStart(3, '0') + 'd'.repeat(197)).join('/');
      const deepFile = `${deepDir}/${'f'.repeat(250)}`;
      const entries: BuilderEntry[] = [...many(files).slice(0, -1), { type: 'file', name: deepFile, data: 'deep' }, { type: 'file', name: 'Files/after.txt', data: 'x' }];
      const tar = await buildLayerTar(entries);
      const before = listTree(outside);
      const err = await importTar(store, 'deep', tar).then(() => expect.fail('imported'), (e: unknown) => e);
      expect(isWinLayerError(err) && [err.code, err.data['entry']]).to.deep.equal(['ERR_PATH_TOO_LONG', deepFile]);
      expect(listTree(outside)).to.deep.equal(before);
      expect(store.exists('deep')).to.equal(false);
    });
  }
});

describe('the import digest, hashed here or on the file thread', function () {
  this.timeout(60_000);

  async function* chunksOf(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
  }

  /** Reads `source` to its end, offering it the file thread after `offerAfter` bytes (never when undefined). */
  async function digestOf(bytes: Buffer, options: { offloadable: boolean; offerAfter?: number }): Promise<{ digest: string; offloaded: boolean }> {
    const source = new DigestingSource(chunksOf(bytes, 100_000), { offloadable: options.offloadable });
    const files = new FileThread();
    try {
      for await (const chunk of source) {
        expect(chunk.length).to.be.above(0);
        if (options.offerAfter !== undefined && source.bytes >= options.offerAfter) source.offload(files);
      }
      expect(source.bytes).to.equal(bytes.length);
      return { digest: source.digest(), offloaded: source.offloaded };
    } finally {
      files.stop();
    }
  }

  const bytes = randomBytes(HOLD_BYTES + 3 * 100_000);
  const expected = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  it('moves to the file thread when it starts within the held bytes, the held bytes first', async () => {
    expect(await digestOf(bytes, { offloadable: true, offerAfter: 250_000 })).to.deep.equal({ digest: expected, offloaded: true });
  });

  it('stays here when the thread starts after the held bytes, or never, or the source is not offloadable', async () => {
    expect(await digestOf(bytes, { offloadable: true, offerAfter: HOLD_BYTES + 200_000 })).to.deep.equal({ digest: expected, offloaded: false });
    expect(await digestOf(bytes, { offloadable: true })).to.deep.equal({ digest: expected, offloaded: false });
    expect(await digestOf(bytes, { offloadable: false, offerAfter: 0 })).to.deep.equal({ digest: expected, offloaded: false });
    const short = bytes.subarray(0, 1000);
    expect(await digestOf(short, { offloadable: true })).to.deep.equal({ digest: `sha256:${createHash('sha256').update(short).digest('hex')}`, offloaded: false });
  });

  it('is the tar\'s sha256 for an import of many small files, which hashes on the file thread', async () => {
    const store = await openStore();
    const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files' }];
    for (let i = 0; i < FILE_THREAD_AFTER * 8; i++) entries.push({ type: 'file', name: `Files/f${i}`, data: randomBytes(3000) });
    const tar = await buildLayerTar(entries);
    const result = await importTar(store, 'hashed', tar, undefined, 10_000);
    expect(result.digest).to.equal(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
    expect((await exportTar(store, 'hashed')).equals(tar)).to.equal(true);
  });
});
