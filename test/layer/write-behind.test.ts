/**
 * Write-behind of large files' data: bytes land at their positions, the bytes in flight
 * are bounded, a failure comes back typed and naming its entry, a file's times are set
 * after its last write, and no descriptor is closed (or left open) under a write.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { BackupStreamId } from '../../src/backup/constants.js';
import { encodeBackupHeader } from '../../src/backup/header.js';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { WORKER_ENTRY, workerEnv } from '../../src/controller/spawn-worker.js';
import { isWinLayerError } from '../../src/errors.js';
import { TransportLayerWriter } from '../../src/layer/layer-writer.js';
import { readIndexEntriesSync } from '../../src/layer/metadata-index.js';
import { FLUSH_EVERY_BYTES, WRITE_BEHIND_BYTES, WriteBehind, WriteBehindFile } from '../../src/layer/write-behind.js';
import { parseLayerPath } from '../../src/util/safe-path.js';
import { filetimeFromUnixNs, FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_DIRECTORY, type FileBasicInfo } from '../../src/util/windows.js';
import { cleanupTemp, exportTar, importTar, openStore, rejection, storeEntries, tempDir } from '../helpers/store.js';

const MiB = 1024 * 1024;

/** Resolves once `file` has nothing in flight. */
function idle(file: WriteBehindFile): Promise<void> {
  return new Promise((resolve) => file.afterWrites(resolve));
}

/** This process's open descriptors on files below `dir` (others may come and go meanwhile). */
function openFdsUnder(dir: string): number {
  const real = fs.realpathSync(dir) + path.sep;
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(real)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) expect.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A backup stream header for a data stream of `size` bytes. */
function dataHeader(size: number): Buffer {
  return encodeBackupHeader({ id: BackupStreamId.Data, size });
}

function info(seconds: number, attributes: number): FileBasicInfo {
  const t = filetimeFromUnixNs(BigInt(seconds) * 1_000_000_000n);
  return { creationTime: t, lastAccessTime: t, lastWriteTime: t, changeTime: t, fileAttributes: attributes };
}

describe('layer/write-behind', function () {
  this.timeout(60_000);
  after(cleanupTemp);

  it('writes every chunk at its position, whatever order the thread pool runs them in', async () => {
    const file = path.join(tempDir(), 'f');
    const fd = fs.openSync(file, 'w');
    const writes = new WriteBehind();
    const wf = new WriteBehindFile(fd, 'Files/f');
    try {
      // 40 chunks of 256 KiB and 1 odd byte each, written last to first.
      const chunk = (i: number): Buffer => Buffer.alloc(256 * 1024 + 1, i);
      const size = 256 * 1024 + 1;
      for (let i = 39; i >= 0; i--) writes.write(wf, chunk(i), i * size);
      await idle(wf);
      writes.check();
      expect(writes.bytesInFlight).to.equal(0);
      const back = fs.readFileSync(file);
      expect(back.length).to.equal(40 * size);
      for (let i = 0; i < 40; i++) expect(back[i * size], `chunk ${i}`).to.equal(i);
      expect(back[40 * size - 1]).to.equal(39);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('makes the writer wait while more than its bound is in flight, and lets it go on below half of it', async () => {
    const fd = fs.openSync(path.join(tempDir(), 'f'), 'w');
    const writes = new WriteBehind();
    const wf = new WriteBehindFile(fd, 'Files/f');
    try {
      expect(writes.whenWritable()).to.equal(undefined);
      const chunk = Buffer.alloc(MiB, 1);
      let position = 0;
      while (writes.bytesInFlight <= WRITE_BEHIND_BYTES) {
        writes.write(wf, chunk, position);
        position += MiB;
      }
      const wait = writes.whenWritable();
      expect(wait).to.be.instanceOf(Promise);
      // Every caller waits on the same promise.
      expect(writes.whenWritable()).to.equal(wait);
      await wait;
      expect(writes.bytesInFlight).to.be.at.most(WRITE_BEHIND_BYTES / 2);
      await idle(wf);
      expect(fs.fstatSync(fd).size).to.equal(position);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('keeps the first failure and throws it, typed and naming the entry, from the next write and from check()', async () => {
    const file = path.join(tempDir(), 'ro');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r'); // writes fail with EBADF
    const writes = new WriteBehind();
    const wf = new WriteBehindFile(fd, 'Files/dir/big.bin');
    try {
      writes.write(wf, Buffer.alloc(128 * 1024), 0);
      await idle(wf);
      for (const fn of [() => writes.check(), () => writes.write(wf, Buffer.alloc(1), 0), () => writes.whenWritable()]) {
        let caught: unknown;
        try {
          fn();
        } catch (error) {
          caught = error;
        }
        expect(isWinLayerError(caught), String(caught)).to.equal(true);
        expect((caught as { code: string }).code).to.equal('ERR_IO');
        expect((caught as { data: { entry: string; errno: string } }).data).to.include({ entry: 'Files/dir/big.bin', errno: 'EBADF' });
      }
      expect(writes.bytesInFlight).to.equal(0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('starts a flush to disk each time a file grows by the flush interval, and counts it as in flight', async () => {
    const fd = fs.openSync(path.join(tempDir(), 'f'), 'w');
    const writes = new WriteBehind();
    const wf = new WriteBehindFile(fd, 'Files/f');
    try {
      expect(wf.flushDue(FLUSH_EVERY_BYTES - 1)).to.equal(false);
      expect(wf.flushDue(FLUSH_EVERY_BYTES)).to.equal(true);
      // One flush at a time, and the next one an interval later.
      expect(wf.flushDue(3 * FLUSH_EVERY_BYTES)).to.equal(false);
      wf.flushDone();
      expect(wf.flushDue(FLUSH_EVERY_BYTES + 1)).to.equal(false);
      expect(wf.flushDue(2 * FLUSH_EVERY_BYTES)).to.equal(true);
      wf.flushDone();
      // Through write(): the chunk that crosses the next interval starts one (the file is sparse below it).
      writes.write(wf, Buffer.alloc(64 * 1024), 3 * FLUSH_EVERY_BYTES - 64 * 1024);
      expect(wf.flushDue(4 * FLUSH_EVERY_BYTES), 'a flush is in flight').to.equal(false);
      await idle(wf);
      expect(wf.flushDue(4 * FLUSH_EVERY_BYTES), 'the flush ended').to.equal(true);
      writes.check();
    } finally {
      fs.closeSync(fd);
    }
  });

  it('imports files larger than the bound and the flush interval with their bytes and host times, and no descriptor left open', async function () {
    if (!fs.existsSync('/proc/self/fd')) this.skip();
    const sd = CRANE_SECURITY_DESCRIPTOR;
    const mtime = new Date('2021-03-04T05:06:07Z');
    const ft = filetimeFromUnixNs(BigInt(mtime.getTime()) * 1_000_000n);
    const times = { lastWriteTime: ft, lastAccessTime: ft };
    const big = Buffer.alloc(FLUSH_EVERY_BYTES + WRITE_BEHIND_BYTES + 12_345);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    const entries: BuilderEntry[] = [
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Hives' },
      { type: 'file', name: 'Files/big.bin', securityDescriptor: sd, data: big, times },
      { type: 'file', name: 'Files/after.txt', securityDescriptor: sd, data: 'after', times },
      { type: 'file', name: 'Hives/Big_Delta', data: big.subarray(0, 3 * MiB), times },
      { type: 'link', name: 'Files/big-link.bin', target: 'Files/big.bin' },
    ];
    const tar = await buildLayerTar(entries);
    const store = await openStore();
    for (const chunk of [MiB, 777_777]) {
      const id = `big-${chunk}`;
      await importTar(store, id, tar, undefined, chunk);
      expect(openFdsUnder(store.home), 'files left open').to.equal(0);
      const root = store.layerPath(id);
      for (const f of ['Files/big.bin', 'Hives/Big_Delta']) expect(fs.statSync(path.join(root, f)).mtimeMs, f).to.equal(mtime.getTime());
      expect(fs.readFileSync(path.join(root, 'Hives/Big_Delta')).equals(big.subarray(0, 3 * MiB))).to.equal(true);
      expect(fs.statSync(path.join(root, 'Files/big-link.bin')).ino).to.equal(fs.statSync(path.join(root, 'Files/big.bin')).ino);
      expect(readIndexEntriesSync(root).find((e) => e.name === 'Files/big.bin')?.size).to.equal(big.length);
      expect((await exportTar(store, id)).equals(tar), 'round trip').to.equal(true);
    }
  });

  it('fails an import whose write behind fails with ERR_IO naming the entry, and leaves no layer', async function () {
    if (process.platform !== 'linux') this.skip();
    // A file size limit (RLIMIT_FSIZE) makes the kernel refuse the write past it (EFBIG).
    const sd = CRANE_SECURITY_DESCRIPTOR;
    const tar = await buildLayerTar([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'file', name: 'Files/small.txt', securityDescriptor: sd, data: 'fits' },
      { type: 'file', name: 'Files/big.bin', securityDescriptor: sd, data: Buffer.alloc(24 * MiB, 3) },
    ]);
    const home = path.join(tempDir(), 'home');
    fs.mkdirSync(home);
    const limitKiB = 8 * 1024; // dash counts 512-byte blocks, bash KiB: 4 or 8 MiB
    const r = spawnSync('sh', ['-c', `ulimit -f ${limitKiB} && exec "$0" "$@"`, process.execPath, WORKER_ENTRY, 'write-layer', home, 'big'], {
      input: tar,
      env: workerEnv(),
    });
    expect(r.signal, r.stderr.toString()).to.equal(null);
    expect(r.status).to.not.equal(0);
    const error = JSON.parse(r.stderr.toString().trimEnd().split('\n').pop() as string) as { code: string; data: { entry: string; errno: string } };
    expect(error.code).to.equal('ERR_IO');
    expect(error.data).to.include({ entry: 'Files/big.bin', errno: 'EFBIG' });
    expect(storeEntries(home)).to.deep.equal([]);
  });

  it('tells the first failure once the writes in flight are done, and none when they succeeded', async () => {
    const dir = tempDir();
    const good = fs.openSync(path.join(dir, 'good'), 'w');
    const ro = path.join(dir, 'ro');
    fs.writeFileSync(ro, '');
    const bad = fs.openSync(ro, 'r'); // writes fail with EBADF
    try {
      const fine = new WriteBehind();
      fine.write(new WriteBehindFile(good, 'Files/good.bin'), Buffer.alloc(256 * 1024, 1), 0);
      expect(await fine.failureOnceDone()).to.equal(undefined);
      expect(fs.fstatSync(good).size).to.equal(256 * 1024);
      const failing = new WriteBehind();
      failing.write(new WriteBehindFile(bad, 'Files/bad.bin'), Buffer.alloc(128 * 1024), 0);
      // Asked while the write is still in flight: the answer waits for it.
      const failure = await failing.failureOnceDone();
      expect([failure?.code, failure?.data['entry'], failure?.data['errno']]).to.deep.equal(['ERR_IO', 'Files/bad.bin', 'EBADF']);
      expect(failing.bytesInFlight).to.equal(0);
    } finally {
      fs.closeSync(good);
      fs.closeSync(bad);
    }
  });

  it('names the file whose data came first when a full disk fails its writes behind and the next entry alike', async () => {
    const sd = CRANE_SECURITY_DESCRIPTOR;
    const tar = await buildLayerTar([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'file', name: 'Files/big.bin', securityDescriptor: sd, data: Buffer.alloc(4 * MiB, 5) },
      { type: 'file', name: 'Files/next.txt', securityDescriptor: sd, data: 'next' },
    ]);
    const store = await openStore();
    const full = (syscall: string): Error => Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });
    // The disk fills up under the big file's writes, which report late; the next entry's
    // file cannot even be made, and says so first.
    const cjs = createRequire(import.meta.url)('node:fs') as { write: (...a: unknown[]) => void; openSync: (...a: unknown[]) => number };
    const { write, openSync } = cjs;
    cjs.write = (...a: unknown[]) => {
      const done = a[a.length - 1] as (error: Error) => void;
      setTimeout(() => done(full('write')), 50);
    };
    cjs.openSync = (...a: unknown[]) => {
      if (String(a[0]).endsWith(`${path.sep}next.txt`)) throw full('open');
      return openSync(...a);
    };
    syncBuiltinESMExports();
    let e;
    try {
      e = await rejection(() => importTar(store, 'full', tar, undefined, MiB));
    } finally {
      cjs.write = write;
      cjs.openSync = openSync;
      syncBuiltinESMExports();
    }
    expect([e.code, e.data['entry'], e.data['errno']]).to.deep.equal(['ERR_IO', 'Files/big.bin', 'ENOSPC']);
    expect(storeEntries(store.home)).to.deep.equal([]);
  });

  it('names the entry when creating or writing its file fails on the import thread', () => {
    const root = tempDir();
    const writer = new TransportLayerWriter({ root, parents: [], durable: false });
    try {
      writer.add(parseLayerPath('Files'), info(1_600_000_000, FILE_ATTRIBUTE_DIRECTORY), 'directory');
      writer.add(parseLayerPath('Files/a.bin'), info(1_600_000_000, FILE_ATTRIBUTE_ARCHIVE), 'file');
      // Planted after add(): the file is created at its first large write, exclusively.
      fs.writeFileSync(path.join(root, 'Files/a.bin'), 'planted');
      writer.write(dataHeader(MiB));
      let caught: unknown;
      try {
        writer.write(Buffer.alloc(MiB));
      } catch (error) {
        caught = error;
      }
      expect(isWinLayerError(caught), String(caught)).to.equal(true);
      expect((caught as { code: string }).code).to.equal('ERR_IO');
      expect((caught as { data: object }).data).to.include({ entry: 'Files/a.bin', errno: 'EEXIST' });
    } finally {
      writer.abort();
    }
  });

  it("sets a file's host times only after its last write behind has landed", async function () {
    if (process.platform !== 'linux') this.skip();
    // Every thread-pool thread waits in the open of a FIFO, so the writes stay queued
    // until the file is finished (the pool takes requests in order, and the opens came
    // first); the FIFOs are then opened for writing, which frees them.
    const dir = tempDir();
    const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
    const fifos = Array.from({ length: threads }, (_, i) => path.join(dir, `fifo-${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const readers = fifos.map((f) => new Promise<number>((resolve, reject) => fs.open(f, 'r', (error, fd) => (error === null ? resolve(fd) : reject(error)))));
    const root = path.join(dir, 'layer');
    fs.mkdirSync(root);
    const writer = new TransportLayerWriter({ root, parents: [], durable: false });
    try {
      writer.add(parseLayerPath('Files'), info(1_600_000_000, FILE_ATTRIBUTE_DIRECTORY), 'directory');
      writer.add(parseLayerPath('Files/a.bin'), info(1_500_000_000, FILE_ATTRIBUTE_ARCHIVE), 'file');
      writer.write(dataHeader(2 * MiB));
      writer.write(Buffer.alloc(2 * MiB, 9));
      writer.add(parseLayerPath('Files/b.txt'), info(1_600_000_000, FILE_ATTRIBUTE_ARCHIVE), 'file'); // a.bin is finished here
    } finally {
      // A reader still queued behind other work is not in open() yet (ENXIO): try again.
      for (const f of fifos) {
        for (const end = Date.now() + 10_000; ; ) {
          try {
            fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
            break;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > end) throw error;
            await new Promise((r) => setTimeout(r, 5));
          }
        }
      }
      for (const fd of await Promise.all(readers)) fs.closeSync(fd);
    }
    await writer.settled();
    writer.close({ id: 'x', size: 2 * MiB, entries: 3, digest: 'sha256:' });
    await writer.flushed();
    expect(fs.statSync(path.join(root, 'Files/a.bin')).mtimeMs).to.equal(1_500_000_000_000);
    expect(fs.statSync(path.join(root, 'Files/a.bin')).size).to.equal(4 + 20 + 2 * MiB);
  });

  it('refuses close() before settled() while data is in flight, and closes nothing under a write on abort', async function () {
    if (!fs.existsSync('/proc/self/fd')) this.skip();
    const root = tempDir();
    const writer = new TransportLayerWriter({ root, parents: [], durable: false });
    writer.add(parseLayerPath('Files'), info(1_600_000_000, FILE_ATTRIBUTE_DIRECTORY), 'directory');
    writer.add(parseLayerPath('Files/a.bin'), info(1_600_000_000, FILE_ATTRIBUTE_ARCHIVE), 'file');
    const header = dataHeader(4 * MiB);
    writer.write(header);
    writer.write(Buffer.alloc(4 * MiB, 9));
    writer.add(parseLayerPath('Files/b.bin'), info(1_600_000_000, FILE_ATTRIBUTE_ARCHIVE), 'file');
    writer.write(header);
    writer.write(Buffer.alloc(4 * MiB, 8));
    let code: string | undefined;
    try {
      writer.close({ id: 'x', size: 0, entries: 0, digest: 'sha256:' });
    } catch (error) {
      code = (error as { code?: string }).code;
    }
    expect(code).to.equal('ERR_ARGUMENT_INVALID');
    writer.abort();
    // Every descriptor is closed once its writes are done.
    expect(openFdsUnder(root), 'a descriptor under a write').to.be.greaterThan(0);
    await until(() => openFdsUnder(root) === 0);
    expect(fs.readFileSync(path.join(root, 'Files/a.bin')).length).to.equal(4 + 20 + 4 * MiB);
  });
});
