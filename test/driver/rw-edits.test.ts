/**
 * Read-write layers: container edits that the comparison or the export once got wrong.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { oneJsonLine, oneTextLine, shownPath } from '../../src/cli/cli.js';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { WindowsFilterDriver } from '../../src/driver/driver.js';
import { View } from '../../src/driver/view.js';
import { securityDescriptorFromSddl } from '../../src/security/sddl-parse.js';
import { readTar } from '../../src/tar/reader.js';
import { filetimeFromUnixNs } from '../../src/util/windows.js';
import { feedInChunks } from '../helpers/chunks.js';
import { baseLayer } from '../helpers/layers.js';
import { cleanupTemp, rejection, tempDir } from '../helpers/store.js';

const sd = CRANE_SECURITY_DESCRIPTOR;
/** Another descriptor, for a file whose own must not pass to what replaces it. */
const fileSd = securityDescriptorFromSddl('O:SYG:SYD:P(A;;FR;;;WD)');

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Each entry of `tar` by name: its PAX records and type flag. */
async function entries(tar: Buffer): Promise<Map<string, { pax: Record<string, string>; type: string }>> {
  const out = new Map<string, { pax: Record<string, string>; type: string }>();
  for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
    out.set(e.header.name, { pax: e.header.pax, type: e.header.typeflag });
    for await (const _ of e.body) void _;
  }
  return out;
}

async function mounted(parent: BuilderEntry[], inProcess = false, home = path.join(tempDir(), 'home')): Promise<{ driver: WindowsFilterDriver; dir: string }> {
  const driver = await WindowsFilterDriver.open({ home, concurrency: 2, inProcess });
  await driver.applyDiff('base', undefined, Readable.from([await buildLayerTar(parent)]));
  await driver.createReadWrite('rw', 'base');
  return { driver, dir: await driver.get('rw') };
}

describe('driver: read-write layer edits', function () {
  this.timeout(120_000);
  after(cleanupTemp);

  it('a file replaced by a directory takes its directory\'s descriptor, not the file\'s, and passes that on', async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Files/d', securityDescriptor: sd },
      { type: 'file', name: 'Files/d/f', data: 'file', securityDescriptor: fileSd, extendedAttributes: [{ name: 'EA1', value: Buffer.from('v') }] },
    ]);
    fs.rmSync(path.join(dir, 'd/f'));
    fs.mkdirSync(path.join(dir, 'd/f'));
    fs.writeFileSync(path.join(dir, 'd/f/child'), 'new');
    const got = await entries(await collect(driver.diff('rw')));
    const b64 = sd.toString('base64');
    expect(got.get('Files/d/f')?.pax['MSWINDOWS.rawsd']).to.equal(b64);
    expect(got.get('Files/d/f/child')?.pax['MSWINDOWS.rawsd']).to.equal(b64);
    expect(Object.keys(got.get('Files/d/f')?.pax ?? {}).filter((k) => k.startsWith('MSWINDOWS.xattr.'))).to.deep.equal([]);
  });

  it('a file whose data changed loses the $Kernel.Purge. EAs NTFS purges, and keeps its others; a case rename keeps them all', async () => {
    const purge = { name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from('cache') };
    const purgeMixed = { name: '$Kernel.Purge.AppxFiCache', value: Buffer.from('appx') };
    const other = { name: 'EA1', value: Buffer.from('v') };
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd, extendedAttributes: [purge] },
      { type: 'file', name: 'Files/edited.dll', data: 'old', securityDescriptor: sd, extendedAttributes: [purge, other, purgeMixed] },
      { type: 'file', name: 'Files/touched.dll', data: 'same', securityDescriptor: sd, extendedAttributes: [purge] },
      { type: 'file', name: 'Files/renamed.dll', data: 'kept', securityDescriptor: sd, extendedAttributes: [purge, other] },
      { type: 'directory', name: 'Files/dir', securityDescriptor: sd, extendedAttributes: [purge] },
    ]);
    fs.appendFileSync(path.join(dir, 'edited.dll'), ' and new');
    // Same bytes, a new last write time: maybe a write of the same bytes, which purges; a cache dropped is only made again.
    fs.utimesSync(path.join(dir, 'touched.dll'), new Date(Date.UTC(2030, 0, 1)), new Date(Date.UTC(2030, 0, 1)));
    fs.renameSync(path.join(dir, 'renamed.dll'), path.join(dir, 'RENAMED.dll'));
    fs.writeFileSync(path.join(dir, 'dir/new.txt'), 'new');
    const got = await entries(await collect(driver.diff('rw')));
    const eas = (name: string): string[] => Object.keys(got.get(name)?.pax ?? {}).filter((k) => k.startsWith('MSWINDOWS.xattr.')).sort();
    expect(eas('Files/edited.dll')).to.deep.equal(['MSWINDOWS.xattr.EA1']);
    expect(eas('Files/touched.dll')).to.deep.equal([]);
    expect(eas('Files/RENAMED.dll')).to.deep.equal(['MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE', 'MSWINDOWS.xattr.EA1']);
    expect(eas('Files/dir')).to.deep.equal(['MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE']);
    expect(got.get('Files/edited.dll')?.pax['MSWINDOWS.xattr.EA1']).to.equal(Buffer.from('v').toString('base64'));
  });

  it('an entry renamed in case keeps its parent\'s times to 100 ns and its descriptor, none included', async () => {
    // 2001-09-09T01:46:40.1234567Z: past what utimes gives the host (1 µs).
    const t = filetimeFromUnixNs(1_000_000_000_123_456_700n);
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'file', name: 'Files/a.txt', data: 'a', securityDescriptor: sd, times: { lastWriteTime: t, lastAccessTime: t } },
      { type: 'directory', name: 'Files/Users', securityDescriptor: sd, times: { lastWriteTime: t, lastAccessTime: t } },
      { type: 'directory', name: 'Files/ProgramData' },
      { type: 'file', name: 'Files/ProgramData/cfg.ini', data: 'x' },
    ]);
    fs.renameSync(path.join(dir, 'a.txt'), path.join(dir, 'A.TXT'));
    fs.renameSync(path.join(dir, 'Users'), path.join(dir, 'USERS'));
    fs.appendFileSync(path.join(dir, 'ProgramData/cfg.ini'), 'more');
    const got = await entries(await collect(driver.diff('rw')));
    for (const name of ['Files/A.TXT', 'Files/USERS']) {
      expect([got.get(name)?.pax['mtime'], got.get(name)?.pax['atime']], name).to.deep.equal(['1000000000.1234567', '1000000000.1234567']);
    }
    expect(got.get('Files/ProgramData/cfg.ini')?.pax['MSWINDOWS.rawsd'], 'no descriptor of its own, none inherited').to.equal(undefined);
    expect(got.get('Files/A.TXT')?.pax['MSWINDOWS.rawsd']).to.equal(sd.toString('base64'));
  });

  it('a parent file moved to a new name keeps its streams, attributes, EAs, descriptor and times; one that cannot be told apart is a new file', async () => {
    const t = filetimeFromUnixNs(1_000_000_000_123_456_700n);
    const made = filetimeFromUnixNs(900_000_000_000_000_000n);
    const times = { creationTime: made, lastWriteTime: t, lastAccessTime: t };
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Files/sub', securityDescriptor: sd },
      { type: 'file', name: 'Files/b.dll', data: 'bbbbbb', securityDescriptor: fileSd, attributes: 0x21, times, streams: [{ name: 'Zone.Identifier', data: 'zone' }], extendedAttributes: [{ name: 'EA1', value: Buffer.from('v') }] },
      // Two of one size and time, both moved: which is which cannot be told.
      { type: 'file', name: 'Files/twin1', data: 'tttt', securityDescriptor: fileSd, times, streams: [{ name: 's', data: '1' }] },
      { type: 'file', name: 'Files/twin2', data: 'uuuu', securityDescriptor: fileSd, times, streams: [{ name: 's', data: '2' }] },
    ]);
    fs.renameSync(path.join(dir, 'b.dll'), path.join(dir, 'sub/c.dll'));
    fs.renameSync(path.join(dir, 'twin1'), path.join(dir, 'sub/t1'));
    fs.renameSync(path.join(dir, 'twin2'), path.join(dir, 'sub/t2'));
    const tar = await collect(driver.diff('rw'));
    const got = await entries(tar);
    const c = got.get('Files/sub/c.dll')?.pax ?? {};
    expect([c['MSWINDOWS.fileattr'], c['MSWINDOWS.rawsd'], c['MSWINDOWS.xattr.EA1'], c['mtime'], c['LIBARCHIVE.creationtime']]).to.deep.equal(['33', fileSd.toString('base64'), Buffer.from('v').toString('base64'), '1000000000.1234567', '900000000']);
    expect(got.has('Files/sub/c.dll:Zone.Identifier')).to.equal(true);
    expect(got.has('Files/b.dll') || got.has('Files/.wh.b.dll')).to.equal(true);
    for (const twin of ['Files/sub/t1', 'Files/sub/t2']) {
      expect(got.get(twin)?.pax['MSWINDOWS.rawsd'], twin).to.equal(sd.toString('base64'));
      expect(got.has(`${twin}:s`), twin).to.equal(false);
    }
    // Imported on the parent, the moved file is the parent's file under its new name.
    await driver.applyDiff('built', 'base', Readable.from([tar]));
    const getter = driver.diffGetter('built');
    expect((await collect(getter.get('Files/sub/c.dll:Zone.Identifier'))).toString()).to.equal('zone');
    getter.close();
  });

  it('moves told only where they can be: a moved directory\'s files and both names of a linked file keep theirs; a file whose name was taken again is not another\'s', async () => {
    const t = filetimeFromUnixNs(1_000_000_000_123_456_700n);
    const times = { creationTime: filetimeFromUnixNs(800_000_000_000_000_000n), lastWriteTime: t, lastAccessTime: t };
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Files/d', securityDescriptor: sd },
      { type: 'file', name: 'Files/d/f.dll', data: 'FFFFF', securityDescriptor: fileSd, attributes: 0x21, times, streams: [{ name: 'zone', data: 'z' }] },
      { type: 'file', name: 'Files/h1', data: 'HHHHHHH', securityDescriptor: fileSd, attributes: 0x21, times, streams: [{ name: 'hs', data: 'h' }] },
      { type: 'link', name: 'Files/h2', target: 'Files/h1' },
      // Alike in size and time: a.txt moved away and made again, b.txt deleted.
      { type: 'file', name: 'Files/a.txt', data: 'AAAA', securityDescriptor: sd, times, streams: [{ name: 'fromA', data: 'a' }] },
      { type: 'file', name: 'Files/b.txt', data: 'BBBB', securityDescriptor: fileSd, attributes: 0x21, times, streams: [{ name: 'fromB', data: 'b' }] },
    ]);
    fs.renameSync(path.join(dir, 'd'), path.join(dir, 'e'));
    fs.renameSync(path.join(dir, 'h1'), path.join(dir, 'm1'));
    fs.renameSync(path.join(dir, 'h2'), path.join(dir, 'm2'));
    fs.renameSync(path.join(dir, 'a.txt'), path.join(dir, 'x.txt'));
    fs.writeFileSync(path.join(dir, 'a.txt'), 'new a');
    fs.rmSync(path.join(dir, 'b.txt'));
    const got = await entries(await collect(driver.diff('rw')));
    for (const name of ['Files/e/f.dll', 'Files/m1']) {
      expect([got.get(name)?.pax['MSWINDOWS.fileattr'], got.get(name)?.pax['MSWINDOWS.rawsd']], name).to.deep.equal(['33', fileSd.toString('base64')]);
    }
    expect([got.has('Files/e/f.dll:zone'), got.has('Files/m1:hs'), got.get('Files/m2')?.type]).to.deep.equal([true, true, '1']);
    const x = got.get('Files/x.txt')?.pax ?? {};
    expect([x['MSWINDOWS.fileattr'], x['MSWINDOWS.rawsd'], got.has('Files/x.txt:fromB')], 'never b.txt\'s').to.deep.equal(['32', sd.toString('base64'), false]);
  });

  it('a file whose bytes changed under the same size and time loses its $Kernel.Purge. EAs', async () => {
    const t = filetimeFromUnixNs(1_000_000_000_123_456_000n);
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'file', name: 'Files/k.dll', data: 'OLDBYTES', securityDescriptor: sd, times: { lastWriteTime: t }, extendedAttributes: [{ name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from('c') }, { name: 'KEEP', value: Buffer.from('k') }] },
      { type: 'file', name: 'Files/r.dll', data: 'SAME', securityDescriptor: sd, times: { lastWriteTime: t }, extendedAttributes: [{ name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from('c') }] },
    ]);
    const k = path.join(dir, 'k.dll');
    const seconds = Number(fs.statSync(k, { bigint: true }).mtimeNs / 1000n) / 1e6;
    fs.writeFileSync(k, 'NEWBYTES');
    fs.utimesSync(k, seconds, seconds); // as tar x, rsync -t or cp -p leave it
    fs.renameSync(path.join(dir, 'r.dll'), path.join(dir, 'R.DLL'));
    const got = await entries(await collect(driver.diff('rw')));
    expect(Object.keys(got.get('Files/k.dll')?.pax ?? {}).filter((key) => key.startsWith('MSWINDOWS.xattr.'))).to.deep.equal(['MSWINDOWS.xattr.KEEP']);
    expect(got.get('Files/R.DLL')?.pax['MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE'], 'renamed in case, its bytes as they were').to.equal(Buffer.from('c').toString('base64'));
  });

  it('walks a parent 1,900 directories deep without running out of stack: changes and export', async () => {
    const deep: BuilderEntry[] = [{ type: 'directory', name: 'Files', securityDescriptor: sd }];
    let name = 'Files';
    for (let i = 0; i < 1900; i++) deep.push({ type: 'directory', name: (name += '/d') });
    deep.push({ type: 'file', name: `${name}/leaf.txt`, data: 'leaf' });
    const { driver, dir } = await mounted(deep);
    fs.writeFileSync(path.join(dir, 'new.txt'), 'new');
    fs.writeFileSync(path.join(dir, name.slice('Files/'.length), 'leaf.txt'), 'edited');
    expect(await driver.changes('rw')).to.deep.equal([
      { path: `${name}/leaf.txt`, kind: 'modify' },
      { path: 'Files/new.txt', kind: 'add' },
    ]);
    const got = await entries(await collect(driver.diff('rw')));
    expect([got.has('Files/new.txt'), got.has(`${name}/leaf.txt`)]).to.deep.equal([true, true]);
  });

  it('a directory no layer names, renamed in case or replaced by a file, is modified', async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      // No entries for implicit/ and other/: Windows makes them.
      { type: 'file', name: 'Files/implicit/x/y.txt', data: 'y', securityDescriptor: sd },
      { type: 'file', name: 'Files/other/z.txt', data: 'z', securityDescriptor: sd },
    ]);
    fs.renameSync(path.join(dir, 'implicit'), path.join(dir, 'IMPLICIT'));
    fs.rmSync(path.join(dir, 'other'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'other'), 'a file now');
    expect(await driver.changes('rw')).to.deep.equal([
      { path: 'Files/IMPLICIT', kind: 'modify' },
      { path: 'Files/other', kind: 'modify' },
    ]);
    await driver.applyDiff('built', 'base', driver.diff('rw'));
    const view = await driver.get('built');
    expect(fs.readdirSync(view).sort()).to.deep.equal(['IMPLICIT', 'other']);
    expect(fs.readFileSync(path.join(view, 'IMPLICIT/x/y.txt'), 'utf8')).to.equal('y');
    expect(fs.readFileSync(path.join(view, 'other'), 'utf8')).to.equal('a file now');
  });

  it('refuses before any byte what a Windows import would refuse: a time outside 1601–30828, a link target too long for a reparse point', async function () {
    // 1500-01-01: tmpfs keeps it (ext4 holds 1901 to 2446).
    if (!fs.existsSync('/dev/shm')) this.skip();
    const shm = fs.mkdtempSync('/dev/shm/winlayer-test-');
    try {
      const { driver, dir } = await mounted(baseLayer, false, path.join(shm, 'home'));
      const file = path.join(dir, 'old.txt');
      fs.writeFileSync(file, 'x');
      fs.utimesSync(file, new Date(Date.UTC(1500, 0, 1)), new Date(Date.UTC(1500, 0, 1)));
      expect(fs.statSync(file).mtime.getUTCFullYear()).to.equal(1500);
      let e = await rejection(() => collect(driver.diff('rw')));
      expect([e.code, e.data['entry']]).to.deep.equal(['ERR_PAX_RECORD_INVALID', 'Files/old.txt']);
      fs.rmSync(file);
      fs.symlinkSync('t'.repeat(4095), path.join(dir, 'long'));
      e = await rejection(() => collect(driver.diff('rw')));
      expect([e.code, e.data['entry']]).to.deep.equal(['ERR_REPARSE_INVALID', 'Files/long']);
      fs.rmSync(path.join(dir, 'long'));
      fs.symlinkSync('t'.repeat(4000), path.join(dir, 'long'));
      expect((await entries(await collect(driver.diff('rw')))).has('Files/long')).to.equal(true);
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });

  it('a link through a parent\'s junction to C:\\… leads where it leads in the container: a directory link', async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Files/Users', securityDescriptor: sd },
      { type: 'directory', name: 'Files/Users/Public', securityDescriptor: sd },
      { type: 'symlink', name: 'Files/Documents and Settings', target: 'C:\\Users', isMountPoint: true, isDirectory: true, securityDescriptor: sd },
    ]);
    fs.symlinkSync('Documents and Settings/Public', path.join(dir, 'pub'));
    fs.symlinkSync('Users/Public', path.join(dir, 'pub2'));
    const got = await entries(await collect(driver.diff('rw')));
    // FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT
    expect([got.get('Files/pub')?.pax['MSWINDOWS.fileattr'], got.get('Files/pub2')?.pax['MSWINDOWS.fileattr']]).to.deep.equal(['1040', '1040']);
  });

  it('a parent\'s junction to C:\\… moved or copied in the container keeps its target, as the view spells it: a directory link', async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files', securityDescriptor: sd },
      { type: 'directory', name: 'Files/Users', securityDescriptor: sd },
      { type: 'symlink', name: 'Files/Documents and Settings', target: 'C:\\Users', isMountPoint: true, isDirectory: true, securityDescriptor: sd },
      { type: 'symlink', name: 'Files/share', target: '\\\\server\\share', isDirectory: true, securityDescriptor: sd },
      // As real base images have it: hidden, system, not content-indexed.
      { type: 'symlink', name: 'Files/Junction', target: 'C:\\Users', isMountPoint: true, isDirectory: true, attributes: 0x2416, securityDescriptor: sd },
      { type: 'symlink', name: 'Files/unc', target: '\\\\server\\share', isDirectory: true, securityDescriptor: sd },
    ]);
    fs.renameSync(path.join(dir, 'Documents and Settings'), path.join(dir, 'moved'));
    fs.renameSync(path.join(dir, 'share'), path.join(dir, 'share2'));
    fs.renameSync(path.join(dir, 'Junction'), path.join(dir, 'JUNCTION'));
    fs.renameSync(path.join(dir, 'unc'), path.join(dir, 'UNC'));
    const tar = await collect(driver.diff('rw'));
    const targets = new Map<string, string>();
    for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
      targets.set(e.header.name, e.header.linkname);
      for await (const _ of e.body) void _;
    }
    expect([targets.get('Files/moved'), targets.get('Files/share2')]).to.deep.equal(['C:\\Users', '\\\\server\\share']);
    const got = await entries(tar);
    // FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT: C:\Users is the container's Users.
    expect(got.get('Files/moved')?.pax['MSWINDOWS.fileattr']).to.equal('1040');
    // Moved, it is a link the container made; renamed in case, still the parent's junction.
    expect([got.get('Files/moved')?.pax['MSWINDOWS.mountpoint'], got.get('Files/JUNCTION')?.pax['MSWINDOWS.mountpoint']]).to.deep.equal([undefined, '1']);
    // Renamed in case, a link keeps its attributes, a directory link to what the container
    // cannot see included (moved, the container's own resolution decides: a file link here).
    expect([got.get('Files/JUNCTION')?.pax['MSWINDOWS.fileattr'], got.get('Files/UNC')?.pax['MSWINDOWS.fileattr']]).to.deep.equal([String(0x2416), '1040']);
    await driver.applyDiff('built', 'base', Readable.from([tar]));
    expect(fs.readlinkSync(path.join(await driver.get('built'), 'moved'))).to.equal('C:\\Users');
  });

  it('refuses a file with more names than NTFS gives one (1,024)', async () => {
    const { driver, dir } = await mounted(baseLayer);
    fs.mkdirSync(path.join(dir, 'many'));
    fs.writeFileSync(path.join(dir, 'many/0'), 'x');
    for (let i = 1; i < 1025; i++) fs.linkSync(path.join(dir, 'many/0'), path.join(dir, `many/${i}`));
    const e = await rejection(() => collect(driver.diff('rw')));
    expect(e.code).to.equal('ERR_LINK_TARGET_INVALID');
    fs.rmSync(path.join(dir, 'many/1024'));
    expect((await entries(await collect(driver.diff('rw')))).get('Files/many/1023')?.type).to.equal('1');
  });

  it('a file rewritten with its size and time kept and then made a FIFO or unreadable is modified', async function () {
    if (process.platform === 'win32') this.skip();
    const { driver, dir } = await mounted(baseLayer);
    // Rewritten with its size and time kept: compared byte for byte, so opened.
    const keep = path.join(dir, 'Windows/keep.txt');
    const st = fs.statSync(keep);
    fs.rmSync(keep);
    execFileSync('mkfifo', [keep]);
    fs.utimesSync(keep, st.atime, st.mtime);
    expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/Windows/keep.txt', kind: 'modify' }]);
    fs.rmSync(keep);
    fs.writeFileSync(keep, 'KEEP');
    fs.utimesSync(keep, st.atime, st.mtime);
    fs.chmodSync(keep, 0o000);
    // As root the file can be read anyway; as another user it cannot: a change either way.
    expect(await driver.changes('rw')).to.deep.equal([{ path: 'Files/Windows/keep.txt', kind: 'modify' }]);
  });

  it("compares the container's untouched files with the parent's index records alone, without opening the parent's files", async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files' },
      { type: 'directory', name: 'Files/d' },
      ...Array.from({ length: 20 }, (_, i): BuilderEntry => ({ type: 'file', name: `Files/d/f${i}.txt`, data: `file ${i}` })),
    ]);
    // Were the parent's files opened (one per file: 35 s of 50 over a base layer not in the
    // page cache), a missing one would fail the comparison.
    for (let i = 0; i < 20; i++) fs.rmSync(path.join(driver.home, 'base', `Files/d/f${i}.txt`));
    expect(await driver.changes('rw')).to.deep.equal([]);
    fs.appendFileSync(path.join(dir, 'd/f3.txt'), '!');
    const st = fs.statSync(path.join(dir, 'd/f4.txt'));
    fs.utimesSync(path.join(dir, 'd/f4.txt'), st.atime, new Date(st.mtimeMs + 5_000));
    expect(await driver.changes('rw')).to.deep.equal([
      { path: 'Files/d/f3.txt', kind: 'modify' },
      { path: 'Files/d/f4.txt', kind: 'modify' },
    ]);
  });

  it('compares a deep chain of directories by the tree alone: an entry (and its whole path) is made only for files', async () => {
    const depth = 300;
    const dirs = Array.from({ length: depth }, (_, i): BuilderEntry => ({ type: 'directory', name: `Files/${'d/'.repeat(i)}d` }));
    const { driver } = await mounted([{ type: 'directory', name: 'Files' }, ...dirs, { type: 'file', name: `Files/${'d/'.repeat(depth)}f.txt`, data: 'deep' }], true);
    const entry = View.prototype.entry;
    let made = 0;
    View.prototype.entry = function (this: View, ...a: Parameters<typeof entry>) {
      made++;
      return entry.apply(this, a);
    };
    try {
      expect(await driver.changes('rw')).to.deep.equal([]);
    } finally {
      View.prototype.entry = entry;
    }
    expect(made).to.be.at.most(2);
  });

  it('gives changes in path order as it walks: a name, then names that sort between it and its own, then what is below it', async () => {
    const { driver, dir } = await mounted([
      { type: 'directory', name: 'Files' },
      { type: 'directory', name: 'Files/a' },
      { type: 'file', name: 'Files/a/old', data: 'x' },
      { type: 'file', name: 'Files/a-gone', data: 'x' },
      { type: 'directory', name: 'Files/a.d' },
      { type: 'file', name: 'Files/a.d/x', data: 'x' },
      { type: 'file', name: 'Files/b', data: 'x' },
    ]);
    fs.rmSync(path.join(dir, 'a-gone'));
    fs.rmSync(path.join(dir, 'a.d'), { recursive: true });
    fs.rmSync(path.join(dir, 'a/old'));
    fs.writeFileSync(path.join(dir, 'a/new'), 'n');
    fs.mkdirSync(path.join(dir, 'a-c/e'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a0'), 'n');
    fs.writeFileSync(path.join(dir, 'a/~'), 'n');
    fs.writeFileSync(path.join(dir, 'A-é'), 'n');
    const got = await driver.changes('rw');
    const paths = got.map((c) => c.path);
    expect(paths).to.deep.equal([...paths].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    expect(got).to.deep.include.members([
      { path: 'Files/A-é', kind: 'add' },
      { path: 'Files/a-c', kind: 'add' },
      { path: 'Files/a-c/e', kind: 'add' },
      { path: 'Files/a-gone', kind: 'delete' },
      { path: 'Files/a.d', kind: 'delete' },
      { path: 'Files/a/new', kind: 'add' },
      { path: 'Files/a/old', kind: 'delete' },
      { path: 'Files/a/~', kind: 'add' },
      { path: 'Files/a0', kind: 'add' },
    ]);
    // The export lists them in the same order (with the directory above `a/new` before it).
    const names = [...(await entries(await collect(driver.diff('rw')))).keys()].filter((n) => n !== 'Files' && n !== 'Hives' && n !== 'Files/a');
    expect(names.map((n) => n.replace('/.wh.', '/'))).to.deep.equal(paths);
  });

  it('a read-write layer removed while it is exported is ERR_LAYER_NOT_FOUND', async () => {
    // In this process: the worker's export runs the same code, and reports what it throws.
    const { driver, dir } = await mounted(baseLayer, true);
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(dir, `f${i}`), Buffer.alloc(4 << 20, i));
    await driver.put('rw');
    const stream = driver.diff('rw');
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    // What remove does first: the layer is renamed away.
    const root = path.join(driver.home, 'rw');
    fs.renameSync(root, `${root}-gone`);
    let code: string | undefined;
    try {
      for (;;) if ((await it.next()).done === true) break;
    } catch (error) {
      code = (error as { code?: string }).code;
    }
    expect(code).to.equal('ERR_LAYER_NOT_FOUND');
  });

  it('changes lines show a name with a line break, a backslash or a leading quote as JSON, so no line can be forged', () => {
    expect(shownPath('Files/plain name.txt')).to.equal('Files/plain name.txt');
    expect(shownPath('Files/x\nD Files')).to.equal('"Files/x\\nD Files"');
    expect(shownPath('Files/a\\b')).to.equal('"Files/a\\\\b"');
    expect(shownPath('"Files/q"')).to.equal('"\\"Files/q\\""');
    // Line ends for Python's splitlines and Unicode: C1 controls (NEL) and U+2028/U+2029, escaped in the JSON.
    for (const c of ['\u007f', '\u0085', '\u2028', '\u2029', '\u009b']) {
      const shown = shownPath(`Files/x${c}D Files`);
      expect(shown).to.equal(`"Files/x\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}D Files"`);
      expect(JSON.parse(shown)).to.equal(`Files/x${c}D Files`);
      expect(/[\u007f-\u009f\u2028\u2029]/.test(shown)).to.equal(false);
    }
    expect(shownPath('Files/é 𝄞')).to.equal('Files/é 𝄞');
    // Invisible format characters: interlinear annotation marks, and tag characters (astral: two UTF-16 units).
    for (const c of ['\ufff9', '\ufffb', '\u{E0041}', '\u{E007F}', '\u{E0000}']) {
      const shown = shownPath(`Files/ok${c}x`);
      expect(JSON.parse(shown), c).to.equal(`Files/ok${c}x`);
      expect(shown.includes(c), c).to.equal(false);
      expect(oneTextLine(`Files/ok${c}x`).includes(c), c).to.equal(false);
      expect(JSON.parse(oneJsonLine(`Files/ok${c}x`)), c).to.equal(`Files/ok${c}x`);
    }
    expect(shownPath('Files/\u{E0100}')).to.equal('Files/\u{E0100}'); // a variation selector past the tags: shown
  });
});
