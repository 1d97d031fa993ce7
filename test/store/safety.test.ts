/**
 * Safety (DESIGN.md §8): every rule has its own case. Each hostile import must fail with
 * its code, leave no layer and no staging directory, write nothing outside HOME, and
 * the same id must import cleanly afterwards.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { buildLayerTar, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { isWinLayerError } from '../../src/errors.js';
import type { TarHeaderInput } from '../../src/tar/encode.js';
import { cleanupTemp, exportTar, importTar, listTree, openStore, rejection, rejectionCode, storeEntries, tempDir, withUnremovable } from '../helpers/store.js';
import { MAX_STREAMS_PER_FILE } from '../../src/convert/import-tar.js';
import { LayerStore, processAlive, STORE_MARKER } from '../../src/store/layer-store.js';
import { importLayer } from '../../src/store/layer-ops.js';
import { portableBackend } from '../../src/native/portable.js';
import { baseLayer } from '../helpers/layers.js';
import { feedInChunks } from '../helpers/chunks.js';
import { readTar } from '../../src/tar/reader.js';
import { FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT } from '../../src/util/windows.js';

const good: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'file', name: 'Files/ok.txt', data: 'ok' },
];

function raw(h: Partial<TarHeaderInput> & { name: string }, data?: string): BuilderEntry {
  return {
    type: 'raw',
    header: { typeflag: '0', mode: 0, size: data === undefined ? 0 : Buffer.byteLength(data), mtime: 0n, format: 'pax', ...h },
    ...(data === undefined ? {} : { data }),
  };
}

const cases: { title: string; code: string; entries: BuilderEntry[]; parent?: boolean }[] = [
  { title: 'a .. escape', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: 'Files/../../escaped.txt' }, 'x')] },
  { title: 'an absolute path', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: '/tmp/escaped.txt' }, 'x')] },
  { title: 'a drive-letter path', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: 'C:/escaped.txt' }, 'x')] },
  { title: 'a drive-letter path with a backslash', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: 'C:\\escaped.txt' }, 'x')] },
  { title: 'a drive-relative path (its colon no stream)', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: 'C:escaped.txt' }, 'x')] },
  { title: 'a UNC path', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: '\\\\?\\C:\\escaped.txt' }, 'x')] },
  { title: 'a backslash path', code: 'ERR_PATH_INVALID', entries: [...good, raw({ name: 'Files\\..\\..\\escaped.txt' }, 'x')] },
  { title: 'a root outside the format', code: 'ERR_PATH_ROOT', entries: [...good, raw({ name: 'etc/passwd' }, 'x')] },
  { title: 'a hard link in a base layer before its target', code: 'ERR_LINK_TARGET_NOT_FOUND', entries: [...good, { type: 'link', name: 'Files/h', target: 'Files/later' }, raw({ name: 'Files/later' }, 'x')] },
  { title: 'Files as a file', code: 'ERR_PATH_ROOT', entries: [raw({ name: 'Files' }, 'x')] },
  { title: 'Hives as a symbolic link out of the layer', code: 'ERR_PATH_ROOT', entries: [...good, raw({ name: 'Hives', typeflag: '2', linkname: '/etc' })] },
  { title: 'UtilityVM as a symbolic link', code: 'ERR_PATH_ROOT', entries: [...good, raw({ name: 'UtilityVM', typeflag: '2', linkname: '/etc' })] },
  { title: 'UtilityVM/Files as a file', code: 'ERR_PATH_ROOT', entries: [...good, { type: 'directory', name: 'UtilityVM' }, raw({ name: 'UtilityVM/Files' }, 'x')] },
  { title: 'UtilityVM/Files as a file, spelled in another case', code: 'ERR_PATH_ROOT', entries: [...good, { type: 'directory', name: 'UtilityVM' }, raw({ name: 'UtilityVM/files' }, 'x')] },
  { title: 'Files as a hard link', code: 'ERR_PATH_ROOT', entries: [raw({ name: 'Hives/h' }, 'x'), { type: 'link', name: 'Files', target: 'Hives/h' }] },
  { title: 'a reserved $wcidirs$ name', code: 'ERR_PATH_RESERVED', entries: [...good, raw({ name: 'Files/x.$wcidirs$' }, 'x')] },
  { title: 'a duplicate file', code: 'ERR_ENTRY_DUPLICATE', entries: [...good, { type: 'file', name: 'Files/ok.txt', data: 'again' }] },
  { title: 'a duplicate differing only in case', code: 'ERR_ENTRY_DUPLICATE', entries: [...good, { type: 'file', name: 'Files/OK.TXT', data: 'again' }] },
  { title: 'a file then a directory of the same name', code: 'ERR_ENTRY_DUPLICATE', entries: [...good, { type: 'directory', name: 'Files/ok.txt' }] },
  { title: 'an orphan alternate data stream', code: 'ERR_ADS_ORPHAN', entries: [...good, { type: 'directory', name: 'Files/d' }, raw({ name: 'Files/ok.txt:ads' }, 'x')] },
  { title: 'an entry below a file', code: 'ERR_PARENT_NOT_DIRECTORY', entries: [...good, { type: 'file', name: 'Files/ok.txt/below', data: 'x' }] },
  {
    title: 'an entry through a directory symlink',
    code: 'ERR_PATH_THROUGH_LINK',
    entries: [...good, { type: 'symlink', name: 'Files/link', target: '/etc', isDirectory: true }, { type: 'file', name: 'Files/link/passwd', data: 'x' }],
  },
  {
    title: 'an entry through a junction',
    code: 'ERR_PATH_THROUGH_LINK',
    entries: [...good, { type: 'symlink', name: 'Files/j', target: 'C:\\', isMountPoint: true }, { type: 'directory', name: 'Files/j/Windows' }],
  },
  {
    title: 'a directory symlink after an entry below it',
    code: 'ERR_PATH_THROUGH_LINK',
    entries: [...good, { type: 'file', name: 'Files/d/x', data: 'x' }, { type: 'symlink', name: 'Files/d', target: 'C:\\', isDirectory: true }],
  },
  {
    title: 'a junction after an entry below it',
    code: 'ERR_PATH_THROUGH_LINK',
    entries: [...good, { type: 'file', name: 'Files/d/x', data: 'x' }, { type: 'symlink', name: 'Files/d', target: 'C:\\', isMountPoint: true }],
  },
  {
    title: 'a directory with the reparse-point attribute after an entry below it',
    code: 'ERR_PATH_THROUGH_LINK',
    entries: [...good, { type: 'file', name: 'Files/d/x', data: 'x' }, { type: 'directory', name: 'Files/d', attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT }],
  },
  {
    title: 'a directory repeated with the reparse-point attribute',
    code: 'ERR_ENTRY_DUPLICATE',
    entries: [...good, { type: 'directory', name: 'Files/d' }, { type: 'file', name: 'Files/d/x', data: 'x' }, { type: 'directory', name: 'Files/d', attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT }],
  },
  { title: 'a hard link escaping', code: 'ERR_PATH_ESCAPE', entries: [...good, { type: 'link', name: 'Files/l', target: 'Files/../../etc/passwd' }] },
  { title: 'a hard link to an absolute path', code: 'ERR_PATH_ESCAPE', entries: [...good, { type: 'link', name: 'Files/l', target: '/etc/passwd' }] },
  { title: 'a hard link to nothing', code: 'ERR_LINK_TARGET_NOT_FOUND', entries: [...good, { type: 'link', name: 'Files/l', target: 'Files/missing' }] },
  { title: 'a hard link to itself', code: 'ERR_LINK_TARGET_INVALID', entries: [...good, { type: 'link', name: 'Files/l', target: 'Files/l' }] },
  { title: 'a hard link to itself in a delta whose parents have no such name', code: 'ERR_LINK_TARGET_INVALID', parent: true, entries: [...good, { type: 'link', name: 'Files/l', target: 'Files/l' }] },
  {
    title: 'two hard links to each other (the first before its target, in a base layer)',
    code: 'ERR_LINK_TARGET_NOT_FOUND',
    entries: [...good, { type: 'link', name: 'Files/a', target: 'Files/b' }, { type: 'link', name: 'Files/b', target: 'Files/a' }],
  },
  {
    title: 'a hard link to a hard link that comes later (in a base layer)',
    code: 'ERR_LINK_TARGET_NOT_FOUND',
    entries: [...good, { type: 'link', name: 'Files/a', target: 'Files/b' }, { type: 'link', name: 'Files/b', target: 'Files/ok.txt' }],
  },
  { title: 'a hard link to a directory', code: 'ERR_LINK_TARGET_INVALID', entries: [...good, { type: 'directory', name: 'Files/d' }, { type: 'link', name: 'Files/l', target: 'Files/d' }] },
  {
    title: 'a hard link to a directory made for the entries below it',
    code: 'ERR_LINK_TARGET_INVALID',
    entries: [...good, { type: 'file', name: 'Files/d/x', data: 'x' }, { type: 'link', name: 'Files/l', target: 'Files/d' }],
  },
  { title: 'a hard link across roots', code: 'ERR_LINK_TARGET_INVALID', entries: [...good, { type: 'directory', name: 'Hives' }, { type: 'link', name: 'Hives/h', target: 'Files/ok.txt' }] },
  { title: 'a whiteout escaping', code: 'ERR_PATH_ESCAPE', entries: [...good, raw({ name: 'Files/../.wh.etc' })], parent: true },
  { title: 'a whiteout in a base layer', code: 'ERR_WHITEOUT_INVALID', entries: [...good, { type: 'whiteout', name: 'Files/ok.txt' }] },
  { title: 'a whiteout of a hive', code: 'ERR_WHITEOUT_INVALID', entries: [...good, { type: 'whiteout', name: 'Hives/System_Delta' }], parent: true },
  { title: 'an opaque whiteout in a base layer', code: 'ERR_WHITEOUT_INVALID', entries: [...good, raw({ name: 'Files/.wh..wh..opq' })] },
  { title: 'an opaque whiteout outside Files/ (where the parent holds nothing)', code: 'ERR_WHITEOUT_INVALID', entries: [...good, raw({ name: 'Hives/x/.wh..wh..opq' })], parent: true },
  {
    title: 'a path longer than the host file system holds (8,000 characters; Windows would take it)',
    code: 'ERR_PATH_TOO_LONG',
    entries: [...good, { type: 'file', name: 'Files/' + Array.from({ length: 400 }, (_, i) => `segment-number-${String(i).padStart(4, '0')}`).join('/'), data: 'deep' }],
  },
  {
    title: 'a path of 16,000 levels (within Windows limits; the directories are implicit)',
    code: 'ERR_PATH_TOO_LONG',
    entries: [...good, { type: 'file', name: 'Files/' + 'a/'.repeat(15_999) + 'x', data: 'deep' }],
  },
  { title: 'a device entry', code: 'ERR_ENTRY_TYPE_UNSUPPORTED', entries: [...good, raw({ name: 'Files/dev', typeflag: '3' })] },
  { title: 'a FIFO entry', code: 'ERR_ENTRY_TYPE_UNSUPPORTED', entries: [...good, raw({ name: 'Files/fifo', typeflag: '6' })] },
  { title: 'a bad fileattr', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.fileattr': '0x20' } }, 'x')] },
  { title: 'a fileattr over 32 bits', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.fileattr': '4294967296' } }, 'x')] },
  { title: 'a directory attribute on a file', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.fileattr': '16' } }, 'x')] },
  { title: 'an mtime past the Windows time range', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', mtime: 10n ** 24n }, 'x')] },
  { title: 'an atime before 1601', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', atime: -11_644_473_601n * 1_000_000_000n }, 'x')] },
  {
    title: 'a creation time of int64-max seconds',
    code: 'ERR_PAX_RECORD_INVALID',
    entries: [...good, raw({ name: 'Files/a', paxRecords: { 'LIBARCHIVE.creationtime': '9223372036854775807' } }, 'x')],
  },
  { title: 'a bad creation time', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'LIBARCHIVE.creationtime': '12:00' } }, 'x')] },
  { title: 'rawsd that is not base64', code: 'ERR_PAX_RECORD_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.rawsd': 'not base64!' } }, 'x')] },
  { title: 'rawsd that is not a descriptor', code: 'ERR_SECURITY_DESCRIPTOR_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.rawsd': 'AAAA' } }, 'x')] },
  { title: 'malformed SDDL', code: 'ERR_SDDL_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.sd': 'O:((' } }, 'x')] },
  { title: 'an EA name that is not ASCII', code: 'ERR_EA_INVALID', entries: [...good, raw({ name: 'Files/a', paxRecords: { 'MSWINDOWS.xattr.ñ': 'AA==' } }, 'x')] },
  { title: 'a symlink without target', code: 'ERR_LINK_TARGET_INVALID', entries: [...good, raw({ name: 'Files/s', typeflag: '2' })] },
  { title: 'a UtilityVM file before its directory', code: 'ERR_UTILITYVM_INVALID', entries: [...good, { type: 'file', name: 'UtilityVM/Files/x', data: 'x' }], parent: true },
  { title: 'an invalid ADS name', code: 'ERR_PATH_INVALID', entries: [...good, raw({ name: 'Files/ok.txt:a/b' }, 'x')] },
  { title: 'a directory named like a whiteout (it would export as a deletion)', code: 'ERR_PATH_INVALID', entries: [...good, raw({ name: 'Files/.wh.d/x' }, 'x')] },
  { title: 'a whiteout inside a directory named like one', code: 'ERR_PATH_INVALID', entries: [...good, raw({ name: 'Files/a/.wh.d/.wh.x' })] },
  { title: 'an opaque whiteout at the top of the tar', code: 'ERR_WHITEOUT_INVALID', entries: [...good, raw({ name: '.wh..wh..opq' })], parent: true },
  { title: 'two names NTFS folds together (Greek with ypogegrammeni: ᾀ and ᾈ)', code: 'ERR_ENTRY_DUPLICATE', entries: [...good, raw({ name: 'Files/\u1f80' }, 'a'), raw({ name: 'Files/\u1f88' }, 'b')] },
  { title: 'two names NTFS folds together (ῳ and ῼ)', code: 'ERR_ENTRY_DUPLICATE', entries: [...good, raw({ name: 'Files/x\u1ff3' }, 'a'), raw({ name: 'Files/X\u1ffc' }, 'b')] },
];

describe('store: safety', function () {
  this.timeout(60_000);
  after(cleanupTemp);

  for (const c of cases) {
    it(`rejects ${c.title} with ${c.code}, leaving nothing behind`, async () => {
      const outside = tempDir();
      const home = path.join(outside, 'home');
      fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched');
      const store = await LayerStore.open(home);
      let parent: string | undefined;
      if (c.parent === true) {
        await importTar(store, 'parent', await buildLayerTar([...good, { type: 'directory', name: 'Hives' }, { type: 'file', name: 'Hives/System_Delta', data: 'h' }]));
        parent = 'parent';
      }
      const before = listTree(outside);
      const tar = await buildLayerTar(c.entries);
      expect(await rejectionCode(() => importTar(store, 'victim', tar, parent))).to.equal(c.code);
      expect(listTree(outside)).to.deep.equal(before);
      expect(store.exists('victim')).to.equal(false);
      // the store accepts a valid import under the same id afterwards
      await importTar(store, 'victim', await buildLayerTar(good), parent);
      expect(store.exists('victim')).to.equal(true);
    });
  }

  it('names both entries of a duplicate, each spelled as in the tar (data.entry, data.prior)', async () => {
    for (const [first, second] of [['Files/ok.txt', 'Files/OK.TXT'], ['Files/Dir', 'Files/dir']]) {
      const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files' }, { type: 'file', name: first as string, data: 'a' }, { type: 'file', name: second as string, data: 'b' }];
      const store = await openStore();
      let data: Record<string, unknown> = {};
      await importTar(store, 'dup', await buildLayerTar(entries)).catch((e: unknown) => {
        if (isWinLayerError(e)) data = e.data;
      });
      expect([data['entry'], data['prior']], second).to.deep.equal([second, first]);
    }
  });

  it("names a failed whiteout's own entry, and the path it would delete (data.deletes)", async () => {
    const store = await openStore();
    await importTar(store, 'parent', await buildLayerTar([...good, { type: 'directory', name: 'Hives' }, { type: 'file', name: 'Hives/System_Delta', data: 'h' }]));
    for (const [entry, code, deletes] of [
      ['Hives/.wh.System_Delta', 'ERR_WHITEOUT_INVALID', 'Hives/System_Delta'],
      ['Files/.wh.ok.txt:s', 'ERR_PATH_INVALID', 'Files/ok.txt:s'],
      ['.wh..wh..opq', 'ERR_WHITEOUT_INVALID', undefined],
    ] as const) {
      let data: Record<string, unknown> = {};
      let got = '';
      await importTar(store, 'w', await buildLayerTar([...good, raw({ name: entry })]), 'parent').catch((e: unknown) => {
        if (isWinLayerError(e)) [got, data] = [e.code, e.data];
      });
      expect([got, data['entry'], data['deletes']], entry).to.deep.equal([code, entry, deletes]);
    }
  });

  it('takes a stream entry named with its :$DATA type, in any case, as the stream itself', async () => {
    const store = await openStore();
    await importTar(store, 'typed', await buildLayerTar([...good, raw({ name: 'Files/ok.txt:s:$DATA' }, 'one'), raw({ name: 'Files/ok.txt:t:$data' }, 'two')]));
    const names: string[] = [];
    for await (const e of readTar(feedInChunks(await exportTar(store, 'typed'), 1 << 16))) {
      names.push(e.header.name);
      for await (const _ of e.body) void _;
    }
    expect(names.filter((n) => n.includes(':'))).to.deep.equal(['Files/ok.txt:s', 'Files/ok.txt:t']);
  });

  it('rejects an ADS entry that follows its file with an invalid stream name', async () => {
    const store = await openStore();
    const tar = await buildLayerTar([...good, raw({ name: 'Files/ok.txt:' }, 'x')]);
    expect(await rejectionCode(() => importTar(store, 'x', tar))).to.equal('ERR_PATH_INVALID');
  });

  it(`gives a file at most ${MAX_STREAMS_PER_FILE} alternate data streams (ERR_METADATA_TOO_LARGE past that, no layer)`, async function () {
    this.timeout(60_000);
    const streams = (n: number): BuilderEntry[] => [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/many', data: 'x', streams: Array.from({ length: n }, (_, i) => ({ name: `s${i}`, data: '' })) },
    ];
    const store = await openStore();
    await importTar(store, 'at-cap', await buildLayerTar(streams(MAX_STREAMS_PER_FILE)));
    const err = await rejection(async () => importTar(store, 'past-cap', await buildLayerTar(streams(MAX_STREAMS_PER_FILE + 1))));
    expect([err.code, err.data['entry']]).to.deep.equal(['ERR_METADATA_TOO_LARGE', `Files/many:s${MAX_STREAMS_PER_FILE}`]);
    expect(store.exists('past-cap')).to.equal(false);
  });

  it('rejects a tar cut inside a file body with ERR_TAR_TRUNCATED', async () => {
    const store = await openStore();
    const tar = await buildLayerTar([...good, { type: 'file', name: 'Files/big', data: Buffer.alloc(5000, 1) }]);
    const cut = tar.subarray(0, tar.length - 1024 - 3000);
    expect(await rejectionCode(() => importTar(store, 'cut', cut))).to.equal('ERR_TAR_TRUNCATED');
    expect(listTree(store.home)).to.deep.equal([]);
  });

  it('does not take a layer it may not read for a missing one: ERR_IO (EACCES), where fs.existsSync says false', async () => {
    const store = await openStore();
    await importTar(store, 'a', await buildLayerTar(baseLayer));
    const cjs = createRequire(import.meta.url)('node:fs') as { statSync: (...a: unknown[]) => unknown };
    const { statSync } = cjs;
    cjs.statSync = (p: unknown, ...rest: unknown[]) => {
      if (String(p).startsWith(store.layerPath('a') + path.sep)) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      return statSync(p, ...rest);
    };
    syncBuiltinESMExports();
    try {
      for (const call of [(): unknown => store.exists('a'), (): unknown => store.list()]) {
        const e = await Promise.resolve().then(call).then(() => undefined, (error: unknown) => error);
        expect(isWinLayerError(e) && [e.code, e.data['errno']]).to.deep.equal(['ERR_IO', 'EACCES']);
      }
    } finally {
      cjs.statSync = statSync;
      syncBuiltinESMExports();
    }
    expect(store.exists('a')).to.equal(true);
    expect(store.exists('b')).to.equal(false);
  });

  it('importLayer refuses a chain that is not one of its store\'s, a source that is not bytes and options of the wrong type, before writing anything', async () => {
    const store = await openStore();
    const tar = await buildLayerTar(good);
    await importTar(store, 'a', tar);
    await importTar(store, 'b', tar, 'a');
    const before = listTree(store.home);
    const other = await openStore();
    await importTar(other, 'a', tar);
    const bytes = (): AsyncIterable<Uint8Array> => Readable.from([tar]);
    const calls: [string, string, () => Promise<unknown>][] = [
      ['paths outside the store', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: ['/etc', '/tmp'] })],
      ['a layer of another store', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: other.chainFor('a') })],
      ['a relative path', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: ['a'] })],
      ['a path through ..', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [`${store.home}/../${path.basename(store.home)}/x/../a`] })],
      ['a work name', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [path.join(store.home, 'a-importing-1-00')] })],
      ['not a string', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [5] as never })],
      ['parents not an array', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: store.layerPath('a') as never })],
      ['a missing layer', 'ERR_PARENT_NOT_FOUND', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [store.layerPath('missing')] })],
      ['a chain cut short', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [store.layerPath('b')] })],
      ['a chain with another parent', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [store.layerPath('a'), store.layerPath('b')] })],
      ['a Buffer source', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', tar as never, { parents: [] })],
      ['a null source', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', null as never, { parents: [] })],
      ['no options', 'ERR_ARGUMENT_INVALID', () => (importLayer as (...a: unknown[]) => Promise<unknown>)(store, portableBackend, 'c', bytes())],
      ['a signal that is not one', 'ERR_ARGUMENT_INVALID', () => importLayer(store, portableBackend, 'c', bytes(), { parents: [], signal: 'abc' as never })],
    ];
    for (const [title, code, call] of calls) {
      expect(await rejectionCode(call), title).to.equal(code);
      expect(listTree(store.home), title).to.deep.equal(before);
    }
    // The chain chainFor gives, also as the store is reached through a symbolic link.
    const link = path.join(tempDir(), 'link');
    fs.symlinkSync(store.home, link);
    const linked = await LayerStore.open(link);
    await importLayer(linked, portableBackend, 'c', bytes(), { parents: store.chainFor('b'), durable: false });
    expect(linked.readChain('c').map((p) => path.basename(p))).to.deep.equal(['b', 'a']);
  });

  it('gives a file at most 1,024 names, as NTFS does (ERR_LINK_TARGET_INVALID past that, no layer)', async () => {
    const store = await openStore();
    const layer = (links: number): BuilderEntry[] => [
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/a', data: 'a' },
      ...Array.from({ length: links }, (_, i): BuilderEntry => ({ type: 'link', name: `Files/l${i}`, target: 'Files/a' })),
    ];
    await importTar(store, 'most', await buildLayerTar(layer(1023)));
    expect(fs.statSync(path.join(store.layerPath('most'), 'Files/a')).nlink).to.equal(1024);
    expect(await rejectionCode(async () => importTar(store, 'more', await buildLayerTar(layer(1024))))).to.equal('ERR_LINK_TARGET_INVALID');
    expect(store.exists('more')).to.equal(false);
    // In a base layer, a link between Files/ and UtilityVM/Files is a copy here, one file on NTFS: it counts.
    const across = (files: number, vm: number): BuilderEntry[] => [
      ...layer(files - 1),
      { type: 'directory', name: 'UtilityVM' },
      { type: 'directory', name: 'UtilityVM/Files' },
      ...Array.from({ length: vm }, (_, i): BuilderEntry => ({ type: 'link', name: `UtilityVM/Files/v${i}`, target: 'Files/a' })),
    ];
    await importTar(store, 'across', await buildLayerTar(across(1000, 24)));
    expect(await rejectionCode(async () => importTar(store, 'too-many-across', await buildLayerTar(across(1000, 25))))).to.equal('ERR_LINK_TARGET_INVALID');
    // Names of the copy count too: links to it are more names of the one NTFS file.
    const toCopy = (links: number): BuilderEntry[] => [
      ...across(1000, 1),
      ...Array.from({ length: links }, (_, i): BuilderEntry => ({ type: 'link', name: `UtilityVM/Files/w${i}`, target: 'UtilityVM/Files/v0' })),
    ];
    await importTar(store, 'to-copy', await buildLayerTar(toCopy(23)));
    expect(await rejectionCode(async () => importTar(store, 'too-many-to-copy', await buildLayerTar(toCopy(24))))).to.equal('ERR_LINK_TARGET_INVALID');
    // Names in the parents count: NTFS links a delta's names to the parent's file.
    const delta: BuilderEntry[] = [{ type: 'directory', name: 'Files' }, { type: 'link', name: 'Files/one-more', target: 'Files/a' }];
    expect(await rejectionCode(async () => importTar(store, 'child', await buildLayerTar(delta), 'most'))).to.equal('ERR_LINK_TARGET_INVALID');
  });

  it('names a hard link whose path is longer than the host holds (ERR_PATH_TOO_LONG), in one format and across formats', async function () {
    if (process.platform !== 'linux') this.skip();
    const home = path.join(tempDir(), 'home');
    const store = await LayerStore.open(home);
    // The staging directory: HOME/victim-importing-<pid>-<nonce>, about 40 characters below HOME.
    const room = 4096 - (home.length + 60) - 150;
    for (const root of ['Files', 'UtilityVM/Files']) {
      const segments = Array.from({ length: Math.floor((room - root.length) / 201) }, (_, i) => String(i).padStart(200, 'd'));
      const dirs = segments.map((_, i): BuilderEntry => ({ type: 'directory', name: `${root}/${segments.slice(0, i + 1).join('/')}` }));
      const link = `${root}/${segments.join('/')}/${'l'.repeat(250)}`;
      const tar = await buildLayerTar([
        ...good,
        { type: 'directory', name: 'UtilityVM' },
        { type: 'directory', name: 'UtilityVM/Files' },
        ...dirs,
        { type: 'link', name: link, target: 'Files/ok.txt' },
      ]);
      const e = await rejection(() => importTar(store, 'victim', tar));
      expect([e.code, e.data['entry']], root).to.deep.equal(['ERR_PATH_TOO_LONG', link]);
      expect(store.exists('victim')).to.equal(false);
    }
  });

  it('refuses an id that exists, and ids that are paths', async () => {
    const store = await openStore();
    const tar = await buildLayerTar(good);
    await importTar(store, 'one', tar);
    expect(await rejectionCode(() => importTar(store, 'one', tar))).to.equal('ERR_LAYER_EXISTS');
    // The last four end like the mount table's own files (a lock, a count, a count being
    // written, a view being written): such a layer's view would stand on another's.
    for (const id of ['../x', 'a/b', '', '.hidden', 'x'.repeat(129), 'a-importing-b', 'a-removing', 'x.lock', 'x.refs', 'x.refs.tmp-12', 'z-tmp-999999-deadbeef']) {
      expect(await rejectionCode(() => importTar(store, id, tar)), id).to.equal('ERR_ID_INVALID');
    }
    expect(await rejectionCode(() => importTar(store, 'two', tar, 'nope'))).to.equal('ERR_PARENT_NOT_FOUND');
    for (const id of ['x.locks', 'x.lock2', 'refs', 'tmp-1-deadbeef', 'z-tmp-1-deadbee']) {
      await importTar(store, id, tar);
      expect(store.exists(id), id).to.equal(true);
    }
  });

  it('cleans -importing- and -removing leftovers when a store opens', async () => {
    const home = path.join(tempDir(), 'home');
    await LayerStore.open(home);
    fs.mkdirSync(path.join(home, 'a-importing-123-0a1b2c', 'Files'), { recursive: true });
    fs.mkdirSync(path.join(home, 'b-removing'), { recursive: true });
    // Only the shapes the store gives its work: a name that merely contains them is not its.
    fs.mkdirSync(path.join(home, 'x-importing-y'));
    fs.writeFileSync(path.join(home, 'x-importing-y', 'kept'), 'kept');
    await LayerStore.open(home);
    expect(listTree(home)).to.deep.equal(['x-importing-y', 'x-importing-y/kept']);
  });

  it('refuses a home that is no path (empty, not a string, a NUL inside) as ERR_ARGUMENT_INVALID, making nothing', async () => {
    const { WindowsFilterDriver } = await import('../../src/driver/driver.js');
    const parent = tempDir();
    for (const home of ['', 42, `${parent}/a\0b`]) {
      expect(await rejectionCode(() => LayerStore.open(home as string)), JSON.stringify(home)).to.equal('ERR_ARGUMENT_INVALID');
      expect(await rejectionCode(() => WindowsFilterDriver.open({ home: home as string })), JSON.stringify(home)).to.equal('ERR_ARGUMENT_INVALID');
    }
    expect(fs.readdirSync(parent)).to.deep.equal([]);
  });

  it('refuses a home that holds files a store never made, touching nothing; takes a store made before the mark', async () => {
    // `--home .` by mistake: a user's `*-removing` and `*-replacing-*` must not be swept.
    const mine = tempDir();
    fs.mkdirSync(path.join(mine, 'docs-removing'));
    fs.writeFileSync(path.join(mine, 'docs-removing', 'thesis.txt'), 'years of work');
    fs.writeFileSync(path.join(mine, 'report-removing'), 'report');
    fs.mkdirSync(path.join(mine, 'a-replacing-b'));
    const before = listTree(mine);
    expect(await rejectionCode(() => LayerStore.open(mine))).to.equal('ERR_STORE_UNSAFE');
    const { WindowsFilterDriver } = await import('../../src/driver/driver.js');
    expect(await rejectionCode(() => WindowsFilterDriver.open({ home: mine }))).to.equal('ERR_STORE_UNSAFE');
    expect(listTree(mine)).to.deep.equal(before);
    expect(fs.existsSync(path.join(mine, STORE_MARKER))).to.equal(false);
    // A store without the mark (made by an earlier version): known by its layers, then marked.
    const store = await LayerStore.open(path.join(tempDir(), 'home'));
    await importTar(store, 'base', await buildLayerTar(baseLayer));
    fs.rmSync(path.join(store.home, STORE_MARKER));
    fs.mkdirSync(path.join(store.home, 'gone-removing'));
    await LayerStore.open(store.home);
    expect(storeEntries(store.home)).to.deep.equal(['base']);
    expect(fs.existsSync(path.join(store.home, STORE_MARKER))).to.equal(true);
    // A new or empty directory is marked at its first open.
    const empty = tempDir();
    await LayerStore.open(empty);
    expect(fs.readdirSync(empty)).to.deep.equal([STORE_MARKER]);
  });

  it("takes a new file system's lost+found for nothing, and the mark another process wrote after this one looked", async () => {
    const volume = tempDir();
    fs.mkdirSync(path.join(volume, 'lost+found'));
    await LayerStore.open(volume);
    expect(fs.readdirSync(volume).sort()).to.deep.equal([STORE_MARKER, 'lost+found']);
    // Two opens of a new directory at once: one looks for the mark, the other writes it,
    // then the first lists the directory and finds the mark alone.
    const home = tempDir();
    const cjs = createRequire(import.meta.url)('node:fs') as { statSync: (...a: unknown[]) => unknown };
    const { statSync } = cjs;
    cjs.statSync = (p: unknown, ...rest: unknown[]) => {
      if (String(p) === path.join(home, STORE_MARKER)) {
        fs.writeFileSync(String(p), 'winlayer store\n');
        const error = new Error(`ENOENT: ${String(p)}`) as NodeJS.ErrnoException;
        error.code = 'ENOENT';
        throw error;
      }
      return statSync(p, ...rest);
    };
    syncBuiltinESMExports();
    try {
      await LayerStore.open(home);
    } finally {
      cjs.statSync = statSync;
      syncBuiltinESMExports();
    }
    expect(fs.readdirSync(home)).to.deep.equal([STORE_MARKER]);
  });

  it("sweeps the edge backend's folders beside a layer, once their process is gone", async () => {
    const home = path.join(tempDir(), 'home');
    await LayerStore.open(home);
    for (const name of ['x-importing-999999999-abcdef-tmp-999999998-0a1b2c3d', 'x-importing-export-tmp-999999998-0a1b2c3d', `y-importing-export-tmp-${process.pid}-0a1b2c3d`]) {
      fs.mkdirSync(path.join(home, name, 'Files'), { recursive: true });
    }
    await LayerStore.open(home);
    expect(storeEntries(home)).to.deep.equal([`y-importing-export-tmp-${process.pid}-0a1b2c3d`]);
  });

  it("refuses a store whose .mounts is a link or another user's, or that another user owns (ERR_STORE_UNSAFE), touching nothing", async function () {
    const outside = tempDir();
    fs.mkdirSync(path.join(outside, 'sub'));
    fs.writeFileSync(path.join(outside, 'keep'), 'keep');
    const linked = path.join(tempDir(), 'home');
    fs.mkdirSync(linked);
    fs.symlinkSync(outside, path.join(linked, '.mounts'));
    expect(await rejectionCode(() => LayerStore.open(linked))).to.equal('ERR_STORE_UNSAFE');
    const { WindowsFilterDriver } = await import('../../src/driver/driver.js');
    expect(await rejectionCode(() => WindowsFilterDriver.open({ home: linked }))).to.equal('ERR_STORE_UNSAFE');
    expect(fs.readdirSync(outside).sort()).to.deep.equal(['keep', 'sub']);
    // A HOME anyone may write to (a fresh tmpfs) is fine; a .mounts anyone may write to is not.
    const open = path.join(tempDir(), 'home');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o1777);
    await LayerStore.open(open);
    fs.mkdirSync(path.join(open, '.mounts'));
    fs.chmodSync(path.join(open, '.mounts'), 0o777);
    expect(await rejectionCode(() => LayerStore.open(open))).to.equal('ERR_STORE_UNSAFE');
    if (process.getuid?.() !== 0) return;
    const owned = path.join(tempDir(), 'home');
    fs.mkdirSync(owned);
    fs.chownSync(owned, 4321, 4321);
    expect(await rejectionCode(() => LayerStore.open(owned))).to.equal('ERR_STORE_UNSAFE');
    fs.chownSync(owned, 0, 0);
    await LayerStore.open(owned);
  });

  it('puts back only a set-aside layer directory: a symlink or file of that shape is removed, its target untouched', async () => {
    const home = path.join(tempDir(), 'home');
    const outside = tempDir();
    fs.writeFileSync(path.join(outside, 'keep'), 'keep');
    await LayerStore.open(home);
    fs.symlinkSync(outside, path.join(home, 'evil-replacing-999999999-abcdef'));
    fs.writeFileSync(path.join(home, 'plain-replacing-999999999-abcdef'), 'x');
    fs.mkdirSync(path.join(home, '.x-replacing-999999999-abcdef'));
    await LayerStore.open(home);
    expect(storeEntries(home).filter((n) => !n.startsWith('.'))).to.deep.equal([]);
    expect(fs.readdirSync(outside)).to.deep.equal(['keep']);
  });

  it('leaves a leftover it cannot remove when a store opens; cleanup() then reports it (ERR_CLEANUP_INCOMPLETE)', async () => {
    const home = path.join(tempDir(), 'home');
    await LayerStore.open(home);
    fs.mkdirSync(path.join(home, 'a-importing-123-0a1b2c', 'Files'), { recursive: true });
    fs.mkdirSync(path.join(home, 'b-removing', 'Files'), { recursive: true });
    await withUnremovable(['/b-removing'], async () => {
      const store = await LayerStore.open(home);
      expect(listTree(home)).to.deep.equal(['b-removing']);
      await importTar(store, 'ok', await buildLayerTar(baseLayer));
      expect((await store.list()).map((l) => l.id)).to.deep.equal(['ok']);
      expect(await rejectionCode(() => store.cleanup())).to.equal('ERR_CLEANUP_INCOMPLETE');
    });
    expect(await (await LayerStore.open(home, { cleanup: false })).cleanup()).to.deep.equal(['b-removing']);
  });

  it('a parent removed between the look and the reading of its chain is ERR_PARENT_NOT_FOUND', async () => {
    const store = await LayerStore.open(path.join(tempDir(), 'home'));
    // What another process's remove does between the two: the look still sees the layer.
    (store as unknown as { exists: (id: string) => boolean }).exists = () => true;
    expect(await rejectionCode(async () => store.chainFor('gone'))).to.equal('ERR_PARENT_NOT_FOUND');
  });

  it("cleans a staging directory whose owner is a zombie, and keeps a running owner's", async function () {
    if (process.platform !== 'linux') this.skip();
    // `true` exits and its parent, a Node process blocked in Atomics.wait, never collects it: a
    // zombie, as a worker orphaned under a PID 1 that reaps nothing. (A shell that starts it
    // and then execs may collect it first, when it exits before the exec.)
    const parent = "const c = require('child_process').spawn('true'); require('fs').writeSync(1, c.pid + '\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);";
    const child = spawn(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number((await once(child.stdout, 'data'))[0].toString().trim());
      const deadline = Date.now() + 5000;
      while (fs.readFileSync(`/proc/${zombie}/stat`, 'latin1').split(') ')[1]?.charAt(0) !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(processAlive(zombie)).to.equal(false);
      expect(processAlive(child.pid as number)).to.equal(true);
      const home = path.join(tempDir(), 'home');
      await LayerStore.open(home);
      fs.mkdirSync(path.join(home, `a-importing-${zombie}-0a1b`, 'Files'), { recursive: true });
      fs.mkdirSync(path.join(home, `b-importing-${child.pid as number}-0a1b`), { recursive: true });
      await LayerStore.open(home);
      expect(listTree(home)).to.deep.equal([`b-importing-${child.pid as number}-0a1b`]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('creates a missing home with its parents, and fails with ERR_IO where it cannot (a file on the way, /proc)', async function () {
    const home = path.join(tempDir(), 'a', 'b', 'home');
    await LayerStore.open(home);
    expect(fs.statSync(home).mode & 0o777).to.equal(0o700);
    const file = path.join(tempDir(), 'file');
    fs.writeFileSync(file, 'x');
    expect(await rejectionCode(() => LayerStore.open(path.join(file, 'home')))).to.equal('ERR_IO');
    // Node's own recursive mkdir loops forever on this one.
    if (fs.existsSync('/proc/self')) expect(await rejectionCode(() => LayerStore.open('/proc/winlayer-no-such-dir/home'))).to.equal('ERR_IO');
  });

  it('gives only typed errors for random bytes and random corruptions of a valid layer', async () => {
    const store = await openStore();
    const valid = await buildLayerTar([...good, { type: 'file', name: 'Files/b', data: 'bbbb', extendedAttributes: [{ name: 'E', value: Buffer.from('v') }] }]);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 0, maxLength: 3000 }),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
            const b = Buffer.from(valid);
            b[at] = v;
            return new Uint8Array(b);
          }),
        ),
        async (bytes) => {
          try {
            await importTar(store, `r${n++}`, bytes);
          } catch (e) {
            expect(isWinLayerError(e), String((e as Error).stack)).to.equal(true);
          }
        },
      ),
      { numRuns: 150 },
    );
    for (const name of storeEntries(store.home)) expect(name).to.not.include('-importing-');
  });
});
