/**
 * Fidelity (DESIGN.md §7): tar → layer → tar over generated layers covering every
 * entry kind and attribute. The generator encodes entries exactly as go-winio does,
 * so an export must reproduce the imported bytes.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { readTar, type TarHeader } from '../../src/tar/reader.js';
import { isWinLayerError } from '../../src/errors.js';
import { readTombstones } from '../../src/layer/tombstones.js';
import { readIndexEntriesSync } from '../../src/layer/metadata-index.js';
import { EARLY_FLUSH_BYTES } from '../../src/layer/layer-writer.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_DIRECTORY,
  FILE_ATTRIBUTE_HIDDEN,
  FILE_ATTRIBUTE_READONLY,
  FILE_ATTRIBUTE_SYSTEM,
  filetimeFromUnixNs,
} from '../../src/util/windows.js';
import { CHUNKINGS, feedInChunks } from '../helpers/chunks.js';
import { cleanupTemp, exportTar, firstDifference, importTar, openStore, rejectionCode } from '../helpers/store.js';

const sd = CRANE_SECURITY_DESCRIPTOR;
const longDir = 'Files/' + Array.from({ length: 12 }, (_, i) => `directory-number-${i}-with-a-long-name`).join('/');

/** A base layer with every entry kind and attribute the format carries. */
export const everythingLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Hives' },
  {
    type: 'directory',
    name: 'Files/dir',
    securityDescriptor: sd,
    extendedAttributes: [{ name: 'DIR.EA', value: Buffer.from('on a directory') }],
    streams: [{ name: 'dirstream', data: 'a directory ADS' }],
    attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN,
  },
  {
    type: 'file',
    name: 'Files/dir/all.bin',
    data: Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251)),
    securityDescriptor: sd,
    attributes: FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_SYSTEM,
    extendedAttributes: [
      { name: 'A.EA', value: Buffer.from([0, 1, 2, 255]) },
      { name: 'EMPTY', value: Buffer.alloc(0) },
    ],
    streams: [
      { name: 'Zone.Identifier', data: '[ZoneTransfer]\r\nZoneId=3\r\n' },
      { name: 'empty', data: '' },
      { name: 'big', data: Buffer.alloc(10_000, 0x5a) },
    ],
    times: {
      creationTime: filetimeFromUnixNs(-2_208_988_800_000_000_000n), // 1900-01-01: before 1970
      lastAccessTime: filetimeFromUnixNs(1_600_000_000_000_000_100n), // 100 ns
      lastWriteTime: filetimeFromUnixNs(1_700_000_000_000_000_000n), // whole second
      changeTime: filetimeFromUnixNs(-1_500_000_000n), // -1.5 s
    },
  },
  { type: 'file', name: 'Files/dir/empty.txt', data: '' },
  { type: 'file', name: 'Files/dir/Ünïcødé 𝄞 名前.txt', data: 'non-BMP', streams: [{ name: 'strøm 𝄞', data: 'x' }] },
  { type: 'symlink', name: 'Files/dir/link-rel.txt', target: '..\\dir\\empty.txt' },
  { type: 'symlink', name: 'Files/dir/link-abs', target: 'C:\\Windows\\System32', isDirectory: true },
  { type: 'symlink', name: 'Files/junction', target: 'C:\\ProgramData', isMountPoint: true, securityDescriptor: sd },
  ...longDir
    .split('/')
    .slice(1)
    .map((_, i, all): BuilderEntry => ({ type: 'directory', name: 'Files/' + all.slice(0, i + 1).join('/') })),
  { type: 'file', name: `${longDir}/deep-file.txt`, data: 'a path longer than 260 characters' },
  { type: 'link', name: 'Files/dir/hardlink.bin', target: 'Files/dir/all.bin' },
  { type: 'file', name: 'Hives/System_Delta', data: 'regf', securityDescriptor: sd, streams: [{ name: 'hive-ads', data: 'kept' }] },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI', securityDescriptor: sd },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'bcd store', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG', data: 'bcd log' },
  { type: 'file', name: 'UtilityVM/Files/kernel', data: Buffer.alloc(5000, 3), extendedAttributes: [{ name: 'UVM', value: Buffer.from('ea') }] },
  { type: 'symlink', name: 'UtilityVM/Files/kernel-link', target: 'kernel' },
  { type: 'link', name: 'UtilityVM/Files/kernel-hardlink', target: 'UtilityVM/Files/kernel' },
  // A base layer may share files between the UtilityVM and the container, both ways.
  { type: 'link', name: 'UtilityVM/Files/all-from-files.bin', target: 'Files/dir/all.bin' },
  { type: 'link', name: 'Files/dir/kernel-from-uvm', target: 'UtilityVM/Files/kernel' },
];

/** Imports `exported` on `parent` as `again`, whose export must be the same bytes. */
async function expectReimportedAlike(store: Awaited<ReturnType<typeof openStore>>, exported: Buffer, parent: string): Promise<void> {
  await importTar(store, 'again', exported, parent);
  expect((await exportTar(store, 'again')).equals(exported), 'the export of the re-imported layer').to.equal(true);
}

/** An opaque whiteout of `dir` (`dir/.wh..wh..opq`), as overlay-based builders write it. */
function opaque(dir: string): BuilderEntry {
  return { type: 'raw', header: { name: `${dir}/.wh..wh..opq`, typeflag: '0', mode: 0, size: 0, mtime: 0n, format: 'unknown' } };
}

async function headersOf(tar: Buffer): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const e of readTar(feedInChunks(tar, 1 << 20))) {
    out.push(e.header);
    for await (const _ of e.body) void _;
  }
  return out;
}

describe('store: round trip tar → layer → tar', function () {
  this.timeout(120_000);
  after(cleanupTemp);

  it('reproduces a layer with every entry kind byte for byte, and exports deterministically', async () => {
    const tar = await buildLayerTar(everythingLayer);
    const store = await openStore();
    const r = await importTar(store, 'everything', tar);
    expect(r.digest).to.equal('sha256:' + createHash('sha256').update(tar).digest('hex'));
    expect(r.size).to.equal(70_000 + 0 + 7 + 33 + 4 + 9 + 7 + 5000);
    const first = await exportTar(store, 'everything');
    expect(firstDifference(first, tar), 'first differing byte').to.equal(-1);
    const second = await exportTar(store, 'everything');
    expect(second.equals(first)).to.equal(true);
  });

  for (const c of CHUNKINGS.filter((k) => k.size !== 1)) {
    it(`gives the same layer when the tar arrives ${c.title}`, async () => {
      const tar = await buildLayerTar(everythingLayer);
      const store = await openStore();
      const chunk = Number.isFinite(c.size) ? c.size : tar.length;
      await importTar(store, 'l', tar, undefined, chunk);
      expect((await exportTar(store, 'l')).equals(tar)).to.equal(true);
    });
  }

  it('keeps Windows times that Unix nanoseconds in an int64 cannot hold (1601, 2286, 30828) and exports them again', async () => {
    const earliest = 0n; // 1601-01-01
    const in2286 = filetimeFromUnixNs(10_000_000_000n * 1_000_000_000n + 100n);
    const latest = 2n ** 63n - 1n; // 30828
    const odd: BuilderEntry[] = [
      { type: 'directory', name: 'Files', times: { creationTime: earliest } },
      { type: 'file', name: 'Files/old-and-new.txt', data: 'times', times: { creationTime: earliest, lastAccessTime: latest, lastWriteTime: in2286, changeTime: in2286 } },
    ];
    const tar = await buildLayerTar(odd);
    const store = await openStore();
    await importTar(store, 'times', tar);
    expect((await exportTar(store, 'times')).equals(tar)).to.equal(true);
    const records = readIndexEntriesSync(store.layerPath('times'));
    const file = records.find((r) => r.name === 'Files/old-and-new.txt');
    expect(file?.times).to.deep.equal([String(earliest), String(latest), String(in2286), String(in2286)]);
  });

  it('keeps whether an empty file had a DATA stream (Windows builds differ) in Files, Hives and UtilityVM, and exports hard links with mode 0644', async () => {
    const layer: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/empty-nodata.txt', noDataStream: true, streams: [{ name: 'ads', data: 'after a dataless file' }] },
      { type: 'file', name: 'Files/empty.txt', data: '' },
      { type: 'link', name: 'Files/empty-link.txt', target: 'Files/empty-nodata.txt' },
      { type: 'directory', name: 'Hives' },
      { type: 'file', name: 'Hives/Empty_Delta', noDataStream: true },
      { type: 'file', name: 'Hives/Zero_Delta', data: '' },
      { type: 'directory', name: 'UtilityVM' },
      { type: 'directory', name: 'UtilityVM/Files' },
      { type: 'file', name: 'UtilityVM/Files/empty-nodata', noDataStream: true },
      { type: 'file', name: 'UtilityVM/Files/empty', data: '' },
    ];
    const tar = await buildLayerTar(layer);
    const store = await openStore();
    await importTar(store, 'empty', tar);
    // Files/ holds what hcsshim's writer hands ImportLayer: go-winio's writer gives every
    // file a DATA stream, an empty one here; the index keeps the tar's mode.
    const stored = fs.readFileSync(path.join(store.layerPath('empty'), 'Files', 'empty-nodata.txt'));
    expect([stored.readUInt32LE(4), stored.readUInt32LE(8), Number(stored.readBigUInt64LE(12)), stored.readUInt32LE(20)]).to.deep.equal([1, 0, 0, 0]);
    expect(stored.subarray(4, 24)).to.deep.equal(fs.readFileSync(path.join(store.layerPath('empty'), 'Files', 'empty.txt')).subarray(4));
    const exported = await exportTar(store, 'empty');
    expect(firstDifference(exported, tar), 'first differing byte').to.equal(-1);
    const modes = Object.fromEntries((await headersOf(exported)).map((h) => [h.name, h.mode]));
    expect(modes).to.deep.equal({
      Files: 0o40000,
      'Files/empty-nodata.txt': 0,
      'Files/empty-nodata.txt:ads': 0,
      'Files/empty.txt': 0o100000,
      'Files/empty-link.txt': 0o644,
      Hives: 0o40000,
      'Hives/Empty_Delta': 0,
      'Hives/Zero_Delta': 0o100000,
      UtilityVM: 0o40000,
      'UtilityVM/Files': 0o40000,
      'UtilityVM/Files/empty-nodata': 0,
      'UtilityVM/Files/empty': 0o100000,
    });
    // A file with data always has a DATA stream, whatever its mode says.
    expect(await rejectionCode(() => buildLayerTar([{ type: 'file', name: 'Files/x', data: 'x', noDataStream: true }]))).to.equal('ERR_ARGUMENT_INVALID');
  });

  it('makes hard links in tar order, as Windows does: a link to an earlier link links to its file', async () => {
    const chain: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/data.bin', data: 'chained' },
      { type: 'link', name: 'Files/first', target: 'Files/data.bin' },
      { type: 'link', name: 'Files/second', target: 'Files/first' },
    ];
    const tar = await buildLayerTar(chain);
    const store = await openStore();
    await importTar(store, 'chain', tar);
    const root = store.layerPath('chain');
    const inode = (name: string): number => fs.statSync(path.join(root, name)).ino;
    expect(inode('Files/second')).to.equal(inode('Files/data.bin'));
    expect(fs.statSync(path.join(root, 'Files/data.bin')).nlink).to.equal(3);
    expect((await exportTar(store, 'chain')).equals(tar)).to.equal(true);
  });

  it('keeps two names that differ only in the case of a character outside the BMP, as NTFS does', async () => {
    const layer: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/\u{10400}', data: 'Deseret capital' },
      { type: 'file', name: 'Files/\u{10428}', data: 'Deseret small' },
      { type: 'directory', name: 'Files/\u{1E900}' },
      { type: 'file', name: 'Files/\u{1E922}/x', data: 'below the small Adlam letter' },
    ];
    const tar = await buildLayerTar(layer);
    const store = await openStore();
    await importTar(store, 'nonbmp', tar);
    // `Files/\u{1E922}` is not the directory `Files/\u{1E900}`: the export puts it before its entry.
    const exported = await buildLayerTar([...layer.slice(0, -1), { type: 'directory', name: 'Files/\u{1E922}' }, ...layer.slice(-1)]);
    expect((await exportTar(store, 'nonbmp')).equals(exported)).to.equal(true);
  });

  it('finds a hard link target in a parent spelled in another case, as NTFS would', async () => {
    const store = await openStore();
    await importTar(store, 'case-parent', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/pcase.txt', data: 'parent data' }]));
    const child = await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'link', name: 'Files/linked.txt', target: 'Files/PCase.TXT' }]);
    await importTar(store, 'case-child', child, 'case-parent');
    const inode = (id: string, name: string): number => fs.statSync(path.join(store.layerPath(id), name)).ino;
    expect(inode('case-child', 'Files/linked.txt')).to.equal(inode('case-parent', 'Files/pcase.txt'));
    expect((await exportTar(store, 'case-child')).equals(child)).to.equal(true);
    const missing = await buildLayerTar([{ type: 'link', name: 'Files/linked.txt', target: 'Files/other.txt' }]);
    expect(await rejectionCode(() => importTar(store, 'case-missing', missing, 'case-parent'))).to.equal('ERR_LINK_TARGET_NOT_FOUND');
  });

  it('links to the nearest parent that holds the target in any spelling, not to a farther one that spells it exactly', async () => {
    const store = await openStore();
    await importTar(store, 'l1', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Files/Windows' }, { type: 'file', name: 'Files/Windows/foo.dll', data: 'old' }]));
    await importTar(store, 'l2', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Files/WINDOWS' }, { type: 'file', name: 'Files/WINDOWS/FOO.DLL', data: 'new' }]), 'l1');
    await importTar(store, 'l3', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'link', name: 'Files/app.dll', target: 'Files/Windows/foo.dll' }]), 'l2');
    const inode = (id: string, name: string): number => fs.statSync(path.join(store.layerPath(id), name)).ino;
    expect(inode('l3', 'Files/app.dll')).to.equal(inode('l2', 'Files/WINDOWS/FOO.DLL'));
  });

  it('probes the parents a bounded number of times per implicit directory, however deep (it took time cubic in the depth)', async () => {
    const depth = 200;
    const store = await openStore();
    await importTar(store, 'deep-parent', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: `Files/${'D/'.repeat(depth)}f`, data: 'p' }]));
    const parentRoot = store.layerPath('deep-parent') + path.sep;
    const cjs = createRequire(import.meta.url)('node:fs') as { lstatSync: (...a: unknown[]) => unknown; readdirSync: (...a: unknown[]) => unknown };
    const { lstatSync, readdirSync } = cjs;
    let probes = 0;
    cjs.lstatSync = (p: unknown, ...rest: unknown[]) => {
      if (String(p).startsWith(parentRoot)) probes++;
      return lstatSync(p, ...rest);
    };
    cjs.readdirSync = (p: unknown, ...rest: unknown[]) => {
      if (String(p).startsWith(parentRoot)) probes++;
      return readdirSync(p, ...rest);
    };
    syncBuiltinESMExports();
    try {
      // Spelled in another case: each directory is found by a listing.
      await importTar(store, 'deep-child', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: `Files/${'d/'.repeat(depth)}g`, data: 'c' }]), 'deep-parent');
    } finally {
      Object.assign(cjs, { lstatSync, readdirSync });
      syncBuiltinESMExports();
    }
    expect(probes).to.be.below(5 * depth);
  });

  it('refuses an implicit directory where the parents show a file or a directory link, unless a deletion hides it', async () => {
    const store = await openStore();
    await importTar(
      store,
      'shapes',
      await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'file', name: 'Files/f', data: 'a file' },
        { type: 'symlink', name: 'Files/s', target: 'C:\\Windows', isDirectory: true },
        { type: 'directory', name: 'Files/d' },
        { type: 'symlink', name: 'Files/fsl', target: 'f' },
      ]),
    );
    const below = async (id: string, entries: BuilderEntry[], parent = 'shapes'): Promise<string> =>
      importTar(store, id, await buildLayerTar(entries), parent).then(() => 'imported', (e: unknown) => (isWinLayerError(e) ? e.code : String(e)));
    expect(await below('under-file', [{ type: 'file', name: 'Files/f/x', data: 'x' }])).to.equal('ERR_PARENT_NOT_DIRECTORY');
    expect(await below('under-link', [{ type: 'file', name: 'Files/s/evil', data: 'x' }])).to.equal('ERR_PATH_THROUGH_LINK');
    expect(await below('under-dir', [{ type: 'file', name: 'Files/d/new/x', data: 'x' }])).to.equal('imported');
    // Deleted first, in this layer or a nearer parent: the directory is new.
    expect(await below('replaced', [{ type: 'whiteout', name: 'Files/f' }, { type: 'file', name: 'Files/f/x', data: 'x' }])).to.equal('imported');
    expect(await below('deleted', [{ type: 'whiteout', name: 'Files/f' }, { type: 'whiteout', name: 'Files/s' }])).to.equal('imported');
    expect(await below('over-deleted', [{ type: 'file', name: 'Files/f/x', data: 'x' }, { type: 'file', name: 'Files/s/y', data: 'y' }], 'deleted')).to.equal('imported');
    expect(store.exists('under-file') || store.exists('under-link')).to.equal(false);
    // Names are compared as NTFS compares them: another spelling is the same file or link.
    expect(await below('under-file-case', [{ type: 'file', name: 'Files/F/x', data: 'x' }])).to.equal('ERR_PARENT_NOT_DIRECTORY');
    expect(await below('under-link-case', [{ type: 'file', name: 'Files/S/evil', data: 'x' }])).to.equal('ERR_PATH_THROUGH_LINK');
    expect(await below('dir-case', [{ type: 'file', name: 'Files/D/new.txt', data: 'x' }])).to.equal('imported');
    // A hard link to the parent's file symbolic link, spelled otherwise (a directory link is a directory: none).
    expect(await below('link-to-link-case', [{ type: 'link', name: 'Files/l', target: 'Files/FSL' }])).to.equal('imported');
    expect(await below('link-to-dir-link', [{ type: 'link', name: 'Files/l', target: 'Files/S' }])).to.equal('ERR_LINK_TARGET_INVALID');
  });

  it("takes an EA set up to NTFS's packed cap, which its backup-stream form passes, and refuses one byte more", async () => {
    // One EA of 65,535 bytes packed (4 + name + NUL + value); 4,000 small ones, 52,000
    // packed and 80,000 as FILE_FULL_EA_INFORMATION. NTFS holds both.
    const many = Array.from({ length: 4000 }, (_, i) => ({ name: `E${String(i).padStart(5, '0')}`, value: Buffer.from([i & 255, i >> 8]) }));
    const layer: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/one.bin', data: 'x', extendedAttributes: [{ name: 'X', value: Buffer.alloc(65_529, 7) }] },
      { type: 'file', name: 'Files/many.bin', data: 'y', extendedAttributes: many },
      { type: 'directory', name: 'Files/dir', extendedAttributes: many },
    ];
    const tar = await buildLayerTar(layer);
    const store = await openStore();
    await importTar(store, 'eas', tar);
    expect(firstDifference(await exportTar(store, 'eas'), tar)).to.equal(-1);
    const over = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/over.bin', data: 'z', extendedAttributes: [{ name: 'XY', value: Buffer.alloc(65_529, 7) }] },
    ]);
    expect(await rejectionCode(() => importTar(store, 'over', over))).to.equal('ERR_METADATA_TOO_LARGE');
    expect(fs.existsSync(store.layerPath('over'))).to.equal(false);
  });

  it('gives host files and directories their write times from before 1970, not the time of the import', async () => {
    const ns = (iso: string) => BigInt(Date.parse(iso)) * 1_000_000n;
    const t1969 = filetimeFromUnixNs(ns('1969-07-20T20:17:40.123Z'));
    const t1965 = filetimeFromUnixNs(ns('1965-03-18T07:34:00Z'));
    const t1980 = filetimeFromUnixNs(ns('1980-01-01T00:00:00Z'));
    const names = Array.from({ length: 100 }, (_, i) => `Files/many/f${i}.txt`);
    const files = names.map((name): BuilderEntry => ({ type: 'file', name, data: 'small', times: { lastWriteTime: t1969, lastAccessTime: t1969 } }));
    const tar = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'directory', name: 'Files/olddir', times: { lastWriteTime: t1965, lastAccessTime: t1965 } },
      { type: 'file', name: 'Files/olddir/old1969.txt', data: 'moon', times: { lastWriteTime: t1969, lastAccessTime: t1969 } },
      { type: 'file', name: 'Files/old1980.txt', data: 'pc', times: { lastWriteTime: t1980, lastAccessTime: t1980 } },
      { type: 'directory', name: 'Files/many', times: { lastWriteTime: t1965, lastAccessTime: t1965 } },
      // Past the first few small files, they are written on the file thread.
      ...files,
      { type: 'directory', name: 'Hives' },
      { type: 'file', name: 'Hives/old_Delta', data: 'hive', times: { lastWriteTime: t1969, lastAccessTime: t1969 } },
    ]);
    const store = await openStore();
    await importTar(store, 'old', tar);
    const root = store.layerPath('old');
    const mtimeMs = (p: string) => fs.statSync(path.join(root, p)).mtimeMs;
    expect(mtimeMs('Files/olddir/old1969.txt')).to.equal(Date.parse('1969-07-20T20:17:40.123Z'));
    expect(mtimeMs('Files/olddir')).to.equal(Date.parse('1965-03-18T07:34:00Z'));
    expect(mtimeMs('Files/olddir.$wcidirs$')).to.equal(Date.parse('1965-03-18T07:34:00Z'));
    expect(mtimeMs('Files/old1980.txt')).to.equal(Date.parse('1980-01-01T00:00:00Z'));
    expect(mtimeMs('Hives/old_Delta')).to.equal(Date.parse('1969-07-20T20:17:40.123Z'));
    expect(new Set(names.map((name) => mtimeMs(name)))).to.deep.equal(new Set([Date.parse('1969-07-20T20:17:40.123Z')]));
    expect(mtimeMs('Files/many')).to.equal(Date.parse('1965-03-18T07:34:00Z'));
    expect(firstDifference(await exportTar(store, 'old'), tar)).to.equal(-1);
  });

  it('gives the same layer when the tar arrives one byte at a time', async () => {
    const small: BuilderEntry[] = everythingLayer.filter((e) => e.type !== 'file' || e.name !== 'Files/dir/all.bin').filter((e) => e.type !== 'link' || e.target !== 'Files/dir/all.bin');
    const tar = await buildLayerTar(small);
    const store = await openStore();
    await importTar(store, 'bytewise', tar, undefined, 1);
    expect((await exportTar(store, 'bytewise')).equals(tar)).to.equal(true);
  });

  it('flushes large files early (on the thread pool) and closes every file before the import resolves', async function () {
    if (!fs.existsSync('/proc/self/fd')) this.skip();
    const big = (n: number, byte: number): BuilderEntry => ({ type: 'file', name: `Files/big-${n}.bin`, securityDescriptor: sd, data: Buffer.alloc(EARLY_FLUSH_BYTES + n * 4099, byte) });
    // Five large files (more than the early flushes allowed in flight), small ones between, and a large Hives/ file.
    const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files', securityDescriptor: sd }, { type: 'directory', name: 'Hives' }];
    for (let n = 0; n < 5; n++) entries.push(big(n, 0x41 + n), { type: 'file', name: `Files/small-${n}.txt`, securityDescriptor: sd, data: `small ${n}` });
    entries.push({ type: 'file', name: 'Hives/Big_Delta', data: Buffer.alloc(EARLY_FLUSH_BYTES, 7) });
    const tar = await buildLayerTar(entries);
    const store = await openStore();
    const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = openFds();
    const r = await importTar(store, 'big', tar, undefined, 1024 * 1024);
    expect(openFds(), 'files left open').to.equal(before);
    expect(r.size).to.equal(5 * EARLY_FLUSH_BYTES + 4099 * 10 + 5 * 'small n'.length + EARLY_FLUSH_BYTES);
    expect((await exportTar(store, 'big')).equals(tar)).to.equal(true);
  });

  it('stores Files/ entries in the transport format: u32 attributes then the backup stream', async () => {
    const store = await openStore();
    await importTar(store, 'base', await buildLayerTar(everythingLayer));
    const root = store.layerPath('base');
    const content = fs.readFileSync(path.join(root, 'Files/dir/empty.txt'));
    // attributes ARCHIVE, then one DATA stream of size 0
    expect(content.toString('hex')).to.equal('20000000' + '01000000' + '00000000' + '0000000000000000' + '00000000');
    const sidecar = fs.readFileSync(path.join(root, 'Files/dir.$wcidirs$'));
    expect(sidecar.readUInt32LE(0)).to.equal(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN);
    expect(fs.statSync(path.join(root, 'Files/dir')).isDirectory()).to.equal(true);
    // outside Files/, the data stream itself
    expect(fs.readFileSync(path.join(root, 'Hives/System_Delta'), 'utf8')).to.equal('regf');
    expect(fs.readFileSync(path.join(root, 'UtilityVM/Files/EFI/Microsoft/Boot/BCD'), 'utf8')).to.equal('bcd store');
    // the BCD backups keep the tar bytes
    expect(fs.readFileSync(path.join(root, 'bcd.bak'), 'utf8')).to.equal('bcd store');
    expect(fs.readFileSync(path.join(root, 'bcd.log.bak'), 'utf8')).to.equal('bcd log');
    // hard links are real hard links
    expect(fs.statSync(path.join(root, 'Files/dir/hardlink.bin')).ino).to.equal(fs.statSync(path.join(root, 'Files/dir/all.bin')).ino);
    // across the two formats, a link is a copy in its own format: the data stream alone
    // under UtilityVM/, attributes and a DATA stream under Files/
    const allData = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    expect(fs.readFileSync(path.join(root, 'UtilityVM/Files/all-from-files.bin')).equals(allData)).to.equal(true);
    const fromUvm = fs.readFileSync(path.join(root, 'Files/dir/kernel-from-uvm'));
    expect(fromUvm.subarray(0, 24).toString('hex')).to.equal('20000000' + '01000000' + '00000000' + '8813000000000000' + '00000000');
    expect(fromUvm.subarray(24).equals(Buffer.alloc(5000, 3))).to.equal(true);
    // no symbolic link is ever created on disk
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        expect(e.isSymbolicLink(), path.join(d, e.name)).to.equal(false);
        if (e.isDirectory()) walk(path.join(d, e.name));
      }
    };
    walk(root);
    expect(readTombstones(root)).to.deep.equal([]);
  });

  describe('delta layers', () => {
    const parentLayer: BuilderEntry[] = [
      { type: 'directory', name: 'Files' },
      { type: 'directory', name: 'Files/d' },
      { type: 'file', name: 'Files/d/a', data: 'a' },
      { type: 'file', name: 'Files/d/b', data: 'b' },
      { type: 'directory', name: 'Files/d/sub' },
      { type: 'file', name: 'Files/d/sub/c', data: 'c' },
      { type: 'file', name: 'Files/keep', data: 'keep' },
      { type: 'directory', name: 'UtilityVM' },
      { type: 'directory', name: 'UtilityVM/Files' },
      { type: 'directory', name: 'UtilityVM/Files/EFI' },
      { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
      { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
      { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'parent bcd' },
      { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1', data: 'parent log1' },
      { type: 'file', name: 'UtilityVM/Files/big.bin', data: Buffer.alloc(3000, 1) },
      { type: 'file', name: 'UtilityVM/Files/gone.bin', data: 'to be deleted' },
    ];

    it('keeps a deletion of a name that a repeated directory takes afterwards (the repeat merged)', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'whiteout', name: 'Files/d' },
        { type: 'directory', name: 'Files/d', attributes: FILE_ATTRIBUTE_DIRECTORY },
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/d', attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN },
        { type: 'file', name: 'Files/d/new', data: 'new' },
      ]);
      await importTar(store, 'c', delta, 'p');
      const exported = await exportTar(store, 'c');
      const headers = await headersOf(exported);
      // The deletion stays a deletion; the repeated directory is one entry, with the later attributes.
      // `Files` moves before `Files/d`, the first entry below it.
      expect(headers.map((h) => h.name)).to.deep.equal(['Files/.wh.d', 'Files', 'Files/d', 'Files/d/new']);
      expect(headers[2]?.pax['MSWINDOWS.fileattr']).to.equal(String(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN));
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\d']);
      await expectReimportedAlike(store, exported, 'p');
    });

    it('round-trips whiteouts and hard links into the parent, byte for byte', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/d' },
        { type: 'whiteout', name: 'Files/d/a' },
        { type: 'link', name: 'Files/d/a-again', target: 'Files/d/b' },
        { type: 'file', name: 'Files/d/new', data: 'new' },
        { type: 'link', name: 'Files/d/new-link', target: 'Files/d/new' },
      ]);
      const r = await importTar(store, 'c', delta, 'p');
      expect(r.size).to.equal(3);
      expect((await exportTar(store, 'c')).equals(delta)).to.equal(true);
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\d\\a']);
      const linked = fs.statSync(path.join(store.layerPath('c'), 'Files/d/a-again'));
      expect(linked.ino).to.equal(fs.statSync(path.join(store.layerPath('p'), 'Files/d/b')).ino);
      expect(JSON.parse(fs.readFileSync(path.join(store.layerPath('c'), 'layerchain.json'), 'utf8'))).to.deep.equal([store.layerPath('p')]);
    });

    it('expands an opaque whiteout into deletions of what the parent chain holds there', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      await importTar(store, 'mid', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'whiteout', name: 'Files/d/b' }]), 'p');
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'Files/d' },
        opaque('Files/d'),
        { type: 'file', name: 'Files/d/fresh', data: 'fresh' },
      ]);
      await importTar(store, 'top', delta, 'mid');
      expect(readTombstones(store.layerPath('top'))).to.deep.equal(['\\d\\a', '\\d\\sub']);
      const names = (await headersOf(await exportTar(store, 'top'))).map((h) => h.name);
      // The deletions are made once the layer's own names are known: their whiteouts come last.
      expect(names).to.deep.equal(['Files', 'Files/d', 'Files/d/fresh', 'Files/d/.wh.a', 'Files/d/.wh.sub']);
    });

    it('keeps what the layer adds again out of an opaque whiteout, and deletes what the parents hold below a directory it adds again', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'file', name: 'Files/d/B', data: 'before the whiteout' },
        opaque('Files/d'),
        { type: 'directory', name: 'Files/d/sub' },
        { type: 'file', name: 'Files/d/sub/new', data: 'new' },
        opaque('Files/keep'),
      ]);
      await importTar(store, 'c', delta, 'p');
      // Not `\d\b` (this layer's `B`) nor `\d\sub` (Windows would delete the new one, or
      // fail to, since it holds a file); `keep` is a file: nothing below it to delete.
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\d\\a', '\\d\\sub\\c']);
      const exported = await exportTar(store, 'c');
      expect((await headersOf(exported)).map((h) => h.name).filter((n) => n.includes('.wh.'))).to.deep.equal(['Files/d/.wh.a', 'Files/d/sub/.wh.c']);
      await expectReimportedAlike(store, exported, 'p');
      expect(readTombstones(store.layerPath('again'))).to.deep.equal(readTombstones(store.layerPath('c')));
    });

    it('deletes what the parents hold at every level of a tree the layer fills again below an opaque whiteout, and nothing below a link it puts there', async () => {
      const store = await openStore();
      const level = (depth: number): string => 'Files/t' + '/L'.repeat(depth);
      const parent: BuilderEntry[] = [{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Files/t' }];
      for (let depth = 0; depth < 6; depth++) {
        if (depth > 0) parent.push({ type: 'directory', name: level(depth) });
        parent.push({ type: 'file', name: `${level(depth)}/old${depth}`, data: 'x' });
      }
      parent.push({ type: 'directory', name: `${level(2)}/j` }, { type: 'file', name: `${level(2)}/j/under`, data: 'x' });
      await importTar(store, 'p', await buildLayerTar(parent));
      const delta: BuilderEntry[] = [{ type: 'directory', name: 'Files' }, opaque('Files/t')];
      // Filled again 4 levels deep (spelled in another case on the way), the old files not.
      for (let depth = 1; depth <= 4; depth++) delta.push({ type: 'directory', name: depth === 2 ? level(depth).toUpperCase().replace('FILES', 'Files') : level(depth) });
      delta.push({ type: 'symlink', name: `${level(2)}/j`, target: 'elsewhere', isDirectory: true });
      await importTar(store, 'c', await buildLayerTar(delta), 'p');
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\t\\L\\L\\L\\L\\L', '\\t\\L\\L\\L\\L\\old4', '\\t\\L\\L\\L\\old3', '\\t\\L\\L\\old2', '\\t\\L\\old1', '\\t\\old0']);
      await expectReimportedAlike(store, await exportTar(store, 'c'), 'p');
    });

    it('keeps what the layer adds to the cloned UtilityVM out of an opaque whiteout there', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'child bcd' },
        opaque('UtilityVM/Files'),
        { type: 'file', name: 'UtilityVM/Files/added.bin', data: 'added' },
      ]);
      await importTar(store, 'c', delta, 'p');
      const c = store.layerPath('c');
      expect(fs.readFileSync(path.join(c, 'UtilityVM/Files/EFI/Microsoft/Boot/BCD'), 'utf8')).to.equal('child bcd');
      for (const gone of ['EFI/Microsoft/Boot/BCD.LOG1', 'big.bin', 'gone.bin']) expect(fs.existsSync(path.join(c, 'UtilityVM/Files', gone)), gone).to.equal(false);
      const exported = await exportTar(store, 'c');
      expect((await headersOf(exported)).map((h) => h.name).filter((n) => n.includes('.wh.'))).to.deep.equal([
        'UtilityVM/Files/EFI/Microsoft/Boot/.wh.BCD.LOG1',
        'UtilityVM/Files/.wh.big.bin',
        'UtilityVM/Files/.wh.gone.bin',
      ]);
      await expectReimportedAlike(store, exported, 'p');
    });

    it('below an opaque whiteout, refuses an implicit directory where a parent holds a file, whatever the order; an explicit one replaces the file', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const opq = opaque('Files/d');
      const inside: BuilderEntry = { type: 'file', name: 'Files/d/a/inside', data: 'a is a directory now' };
      // The layer holds `d/a` (so the whiteout keeps it), but has no entry for it: the
      // parent's file would stay below the directory, as without the opaque whiteout.
      for (const order of [[opq, inside], [inside, opq]]) {
        expect(await rejectionCode(async () => importTar(store, 'c', await buildLayerTar([{ type: 'directory', name: 'Files' }, ...order]), 'p'))).to.equal('ERR_PARENT_NOT_DIRECTORY');
        expect(store.exists('c')).to.equal(false);
      }
      await importTar(store, 'c', await buildLayerTar([{ type: 'directory', name: 'Files' }, opq, { type: 'directory', name: 'Files/d/a' }, inside]), 'p');
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\d\\b', '\\d\\sub']);
      expect(fs.readFileSync(path.join(store.layerPath('c'), 'Files/d/a/inside')).subarray(4).includes('a is a directory now')).to.equal(true);
    });

    it('keeps one deletion of a name deleted twice (an opaque whiteout and an explicit one, or a whiteout repeated)', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        opaque('Files/d'),
        { type: 'whiteout', name: 'Files/d/A' },
        { type: 'whiteout', name: 'Files/keep' },
        { type: 'whiteout', name: 'Files/KEEP' },
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        opaque('UtilityVM/Files/EFI'),
        { type: 'whiteout', name: 'UtilityVM/Files/EFI/Microsoft' },
        { type: 'whiteout', name: 'UtilityVM/Files/gone.bin' },
        { type: 'whiteout', name: 'UtilityVM/Files/gone.bin' },
      ]);
      await importTar(store, 'c', delta, 'p');
      expect(readTombstones(store.layerPath('c'))).to.deep.equal(['\\d\\A', '\\keep', '\\d\\b', '\\d\\sub']);
      const names = (await headersOf(await exportTar(store, 'c'))).map((h) => h.name);
      expect(names.filter((n) => n.includes('.wh.'))).to.deep.equal([
        'Files/d/.wh.A',
        'Files/.wh.keep',
        'UtilityVM/Files/EFI/.wh.Microsoft',
        'UtilityVM/Files/.wh.gone.bin',
        'Files/d/.wh.b',
        'Files/d/.wh.sub',
      ]);
      expect(fs.existsSync(path.join(store.layerPath('c'), 'UtilityVM/Files/EFI/Microsoft'))).to.equal(false);
    });

    it('deletes a UtilityVM directory with its subtree only, however many are deleted (a name it begins stays)', async () => {
      const store = await openStore();
      const dirs = ['Dir', 'Dir/sub', 'Dir2', 'Dir.x', 'Dir-', 'Dirt', 'E'];
      const parent: BuilderEntry[] = [...parentLayer];
      for (const d of dirs) parent.push({ type: 'directory', name: `UtilityVM/Files/${d}` }, { type: 'file', name: `UtilityVM/Files/${d}/f.bin`, data: d });
      for (let i = 0; i < 300; i++) parent.push({ type: 'directory', name: `UtilityVM/Files/E/m${i}` }, { type: 'file', name: `UtilityVM/Files/E/m${i}/f.bin`, data: `m${i}` });
      await importTar(store, 'p', await buildLayerTar(parent));
      const delta: BuilderEntry[] = [
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        // Spelled in another case, as NTFS matches it; and one deleted after another.
        { type: 'whiteout', name: 'UtilityVM/Files/dir' },
        { type: 'whiteout', name: 'UtilityVM/Files/Dir-' },
      ];
      for (let i = 0; i < 300; i += 2) delta.push({ type: 'whiteout', name: `UtilityVM/Files/E/m${i}` });
      await importTar(store, 'c', await buildLayerTar(delta), 'p');
      const uvm = readIndexEntriesSync(store.layerPath('c'))
        .filter((r) => r.kind !== 'whiteout' && r.name.startsWith('UtilityVM/Files/') && !r.name.startsWith('UtilityVM/Files/EFI'))
        .map((r) => r.name);
      const kept = ['Dir2', 'Dir.x', 'Dirt'].flatMap((d) => [`UtilityVM/Files/${d}`, `UtilityVM/Files/${d}/f.bin`]);
      for (let i = 1; i < 300; i += 2) kept.push(`UtilityVM/Files/E/m${i}`, `UtilityVM/Files/E/m${i}/f.bin`);
      const want = [...kept, 'UtilityVM/Files/E', 'UtilityVM/Files/E/f.bin', 'UtilityVM/Files/big.bin', 'UtilityVM/Files/gone.bin'].sort();
      expect([...uvm].sort()).to.deep.equal(want);
      for (const gone of ['Dir', 'Dir-', 'E/m0']) expect(fs.existsSync(path.join(store.layerPath('c'), 'UtilityVM/Files', gone)), gone).to.equal(false);
      for (const there of ['Dir2/f.bin', 'Dir.x/f.bin', 'Dirt/f.bin', 'E/m1/f.bin']) expect(fs.existsSync(path.join(store.layerPath('c'), 'UtilityVM/Files', there)), there).to.equal(true);
    });

    it('clones the parent UtilityVM: links files, copies the mutated BCD files, applies deletions', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        { type: 'whiteout', name: 'UtilityVM/Files/gone.bin' },
        { type: 'file', name: 'UtilityVM/Files/added.bin', data: 'added' },
      ]);
      await importTar(store, 'c', delta, 'p');
      const p = store.layerPath('p');
      const c = store.layerPath('c');
      const ino = (root: string, rel: string): number => fs.statSync(path.join(root, rel)).ino;
      expect(ino(c, 'UtilityVM/Files/big.bin')).to.equal(ino(p, 'UtilityVM/Files/big.bin'));
      for (const bcd of ['UtilityVM/Files/EFI/Microsoft/Boot/BCD', 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1']) {
        expect(ino(c, bcd), bcd).to.not.equal(ino(p, bcd));
        expect(fs.readFileSync(path.join(c, bcd)).equals(fs.readFileSync(path.join(p, bcd)))).to.equal(true);
      }
      expect(fs.existsSync(path.join(c, 'UtilityVM/Files/gone.bin'))).to.equal(false);
      expect(fs.existsSync(path.join(p, 'UtilityVM/Files/gone.bin'))).to.equal(true);
      expect((await exportTar(store, 'c')).equals(delta)).to.equal(true);
    });

    it('refuses a hard link between Files/ and UtilityVM/Files in a delta layer (only a base layer may have one), leaving no layer', async () => {
      for (const link of [
        { type: 'link' as const, name: 'UtilityVM/Files/k', target: 'Files/keep' },
        { type: 'link' as const, name: 'Files/k', target: 'UtilityVM/Files/big.bin' },
      ]) {
        const store = await openStore();
        await importTar(store, 'p', await buildLayerTar(parentLayer));
        const delta = await buildLayerTar([
          { type: 'directory', name: 'Files' },
          { type: 'file', name: 'Files/keep2', data: 'k' },
          { type: 'directory', name: 'UtilityVM' },
          { type: 'directory', name: 'UtilityVM/Files' },
          link,
        ]);
        expect(await rejectionCode(() => importTar(store, 'c', delta, 'p')), link.name).to.equal('ERR_LINK_TARGET_INVALID');
        expect(store.exists('c')).to.equal(false);
      }
    });

    it('refuses a deletion or replacement in the cloned UtilityVM of what the layer wrote there before it, leaving no layer', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const uvm: BuilderEntry[] = [
        { type: 'directory', name: 'Files' },
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
      ];
      const newFile: BuilderEntry = { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/new', data: 'new' };
      const cases: [string, BuilderEntry[], string][] = [
        ['a new file, then its directory deleted', [newFile, { type: 'whiteout', name: 'UtilityVM/Files/EFI' }], 'ERR_WHITEOUT_INVALID'],
        ['a replaced file, then its directory deleted', [{ type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'child bcd' }, { type: 'whiteout', name: 'UtilityVM/Files/EFI/Microsoft' }], 'ERR_WHITEOUT_INVALID'],
        ['a new directory, then its parent deleted', [{ type: 'directory', name: 'UtilityVM/Files/EFI/nd' }, { type: 'whiteout', name: 'UtilityVM/Files/EFI' }], 'ERR_WHITEOUT_INVALID'],
        ['a new symbolic link, then its directory deleted', [{ type: 'symlink', name: 'UtilityVM/Files/EFI/s', target: 'x' }, { type: 'whiteout', name: 'UtilityVM/Files/EFI' }], 'ERR_WHITEOUT_INVALID'],
        ['a replaced file, then deleted', [{ type: 'file', name: 'UtilityVM/Files/big.bin', data: 'child' }, { type: 'whiteout', name: 'UtilityVM/Files/big.bin' }], 'ERR_WHITEOUT_INVALID'],
        ['a new file, then its directory replaced by a file', [newFile, { type: 'file', name: 'UtilityVM/Files/EFI', data: 'a file' }], 'ERR_ENTRY_DUPLICATE'],
        ['a new file, then its directory replaced by a hard link', [newFile, { type: 'link', name: 'UtilityVM/Files/EFI', target: 'UtilityVM/Files/big.bin' }], 'ERR_ENTRY_DUPLICATE'],
      ];
      for (const [title, entries, code] of cases) {
        expect(await rejectionCode(async () => importTar(store, 'c', await buildLayerTar([...uvm, ...entries]), 'p')), title).to.equal(code);
        expect(store.exists('c'), title).to.equal(false);
      }
      // Deletions first, then what the layer writes: the layer holds both.
      const delta = await buildLayerTar([
        ...uvm,
        { type: 'whiteout', name: 'UtilityVM/Files/big.bin' },
        { type: 'file', name: 'UtilityVM/Files/big.bin', data: 'child' },
        { type: 'whiteout', name: 'UtilityVM/Files/EFI' },
        { type: 'file', name: 'UtilityVM/Files/EFI/new', data: 'new' },
      ]);
      await importTar(store, 'c', delta, 'p');
      const c = store.layerPath('c');
      expect(fs.readFileSync(path.join(c, 'UtilityVM/Files/big.bin'), 'utf8')).to.equal('child');
      expect(fs.readdirSync(path.join(c, 'UtilityVM/Files/EFI'))).to.deep.equal(['new']);
      await expectReimportedAlike(store, await exportTar(store, 'c'), 'p');
    });

    it('replaces a cloned UtilityVM directory by a directory link with its clone emptied, and refuses one the layer wrote into', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const uvm: BuilderEntry[] = [{ type: 'directory', name: 'UtilityVM' }, { type: 'directory', name: 'UtilityVM/Files' }];
      const link: BuilderEntry = { type: 'symlink', name: 'UtilityVM/Files/EFI', target: 'C:\\EFI', isDirectory: true };
      const written = await buildLayerTar([...uvm, { type: 'file', name: 'UtilityVM/Files/EFI/new', data: 'new' }, link]);
      expect(await rejectionCode(() => importTar(store, 'c', written, 'p'))).to.equal('ERR_PATH_THROUGH_LINK');
      expect(store.exists('c')).to.equal(false);
      await importTar(store, 'c', await buildLayerTar([...uvm, link]), 'p');
      expect(fs.readdirSync(path.join(store.layerPath('c'), 'UtilityVM/Files/EFI'))).to.deep.equal([]);
      const records = readIndexEntriesSync(store.layerPath('c')).map((r) => r.name);
      expect(records.filter((n) => n.startsWith('UtilityVM/Files/EFI/'))).to.deep.equal([]);
      await expectReimportedAlike(store, await exportTar(store, 'c'), 'p');
    });

    it('refuses a hard link to a directory of the cloned UtilityVM as a link to a directory (ERR_LINK_TARGET_INVALID)', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      const delta = await buildLayerTar([
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        { type: 'link', name: 'UtilityVM/Files/l', target: 'UtilityVM/Files/EFI/Microsoft' },
      ]);
      expect(await rejectionCode(() => importTar(store, 'c', delta, 'p'))).to.equal('ERR_LINK_TARGET_INVALID');
      expect(store.exists('c')).to.equal(false);
    });

    it('rewrites a cloned BCD without touching the parent copy', async () => {
      const store = await openStore();
      await importTar(store, 'p', await buildLayerTar(parentLayer));
      await importTar(
        store,
        'c',
        await buildLayerTar([
          { type: 'directory', name: 'UtilityVM' },
          { type: 'directory', name: 'UtilityVM/Files' },
          { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'child bcd' },
        ]),
        'p',
      );
      expect(fs.readFileSync(path.join(store.layerPath('p'), 'UtilityVM/Files/EFI/Microsoft/Boot/BCD'), 'utf8')).to.equal('parent bcd');
      expect(fs.readFileSync(path.join(store.layerPath('c'), 'UtilityVM/Files/EFI/Microsoft/Boot/BCD'), 'utf8')).to.equal('child bcd');
      expect(fs.readFileSync(path.join(store.layerPath('c'), 'bcd.bak'), 'utf8')).to.equal('child bcd');
    });
  });

  describe('producers that omit records', () => {
    it('applies the reference defaults: DIRECTORY for dirs, 0 for files, mtime for the other times', async () => {
      const mtime = 1_600_000_000_500_000_000n;
      const tar = await buildLayerTar([
        { type: 'raw', header: { name: 'Files', typeflag: '5', mode: 0o555, size: 0, mtime, format: 'pax', paxRecords: {} } },
        { type: 'raw', header: { name: 'Files', typeflag: '5', mode: 0o555, size: 0, mtime, format: 'pax', paxRecords: {} } },
        {
          type: 'raw',
          header: { name: 'Files/a.txt', typeflag: '0', mode: 0o644, size: 2, mtime, format: 'pax', paxRecords: { 'MSWINDOWS.rawsd': sd.toString('base64') } },
          data: 'hi',
        },
      ]);
      const store = await openStore();
      await importTar(store, 'crane', tar);
      const headers = await headersOf(await exportTar(store, 'crane'));
      expect(headers.map((h) => h.name)).to.deep.equal(['Files', 'Files/a.txt']);
      const [dir, file] = headers as [TarHeader, TarHeader];
      expect(dir.pax['MSWINDOWS.fileattr']).to.equal('16');
      expect(file.pax['MSWINDOWS.fileattr']).to.equal('0');
      expect(file.pax['LIBARCHIVE.creationtime']).to.equal('1600000000.5');
      expect(file.atime).to.equal(mtime);
      expect(file.ctime).to.equal(mtime);
      expect(file.pax['MSWINDOWS.rawsd']).to.equal(sd.toString('base64'));
      expect(file.mode).to.equal(0o100000);
    });

    it('exports every entry after the directories above it, as Windows imports need: named ones moved up, unnamed ones made plain', async () => {
      const mtime = 1_600_000_000_000_000_000n;
      const file = (name: string, t: bigint): BuilderEntry => ({
        type: 'raw',
        header: { name, typeflag: '0', mode: 0o644, size: 1, mtime: t, format: 'pax', paxRecords: {} },
        data: 'x',
      });
      const tar = await buildLayerTar([
        file('Files/tools/bin/tool.exe', mtime),
        file('Files/tools/bin/other.exe', mtime + 7n),
        // Named only after an entry below it: keeps its own record, moved before that entry.
        { type: 'directory', name: 'Files/tools', securityDescriptor: sd, attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN },
        { type: 'raw', header: { name: 'Files/tools/.wh.gone', typeflag: '0', mode: 0, size: 0, mtime, format: 'pax', paxRecords: {} } },
        { type: 'link', name: 'Files/deep/er/link.exe', target: 'Files/tools/bin/tool.exe' },
        { type: 'directory', name: 'Hives' },
        { type: 'file', name: 'Hives/System_Delta', data: 'regf' },
      ]);
      const store = await openStore();
      await importTar(store, 'parent', await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'directory', name: 'Hives' }]));
      await importTar(store, 'flat', tar, 'parent');
      const exported = await exportTar(store, 'flat');
      const headers = await headersOf(exported);
      expect(headers.map((h) => h.name)).to.deep.equal([
        'Files',
        'Files/tools',
        'Files/tools/bin',
        'Files/tools/bin/tool.exe',
        'Files/tools/bin/other.exe',
        'Files/tools/.wh.gone',
        'Files/deep',
        'Files/deep/er',
        'Files/deep/er/link.exe',
        'Hives',
        'Hives/System_Delta',
      ]);
      const byName = new Map(headers.map((h) => [h.name, h]));
      for (const plain of ['Files', 'Files/tools/bin']) {
        const h = byName.get(plain) as TarHeader;
        expect(h.typeflag, plain).to.equal('5');
        expect(h.pax['MSWINDOWS.fileattr'], plain).to.equal('16');
        expect(h.pax['MSWINDOWS.rawsd'], plain).to.equal(undefined);
        expect(h.mtime, plain).to.equal(mtime); // the first entry below it
      }
      const tools = byName.get('Files/tools') as TarHeader;
      expect(tools.pax['MSWINDOWS.rawsd']).to.equal(sd.toString('base64'));
      expect(tools.pax['MSWINDOWS.fileattr']).to.equal(String(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN));
      expect(headers.filter((h) => h.name === 'Files/tools')).to.have.length(1);
      // Exported twice alike; imported again, the export is that export.
      expect(firstDifference(await exportTar(store, 'flat'), exported)).to.equal(-1);
      await importTar(store, 'again', exported, 'parent');
      expect(firstDifference(await exportTar(store, 'again'), exported)).to.equal(-1);
    });

    it('reads a legacy SDDL record (MSWINDOWS.sd) into the binary descriptor', async () => {
      const tar = await buildLayerTar([
        { type: 'raw', header: { name: 'Files', typeflag: '5', mode: 0, size: 0, mtime: 0n, format: 'pax', paxRecords: { 'MSWINDOWS.sd': 'O:BUG:BU' } } },
      ]);
      const store = await openStore();
      await importTar(store, 'sddl', tar);
      const [dir] = await headersOf(await exportTar(store, 'sddl'));
      expect(dir?.pax['MSWINDOWS.rawsd']).to.equal(sd.toString('base64'));
    });
  });
});
