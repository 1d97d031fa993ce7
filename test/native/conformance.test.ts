/**
 * One conformance suite for every native backend (STYLE.md point 28): whatever restores the
 * files, an import must leave a store byte-identical to the portable backend's — every
 * file of every layer, the .winlayer index included — export the same tar, and reject bad
 * input with the same error codes, leaving the store as it was.
 *
 * The portable backend runs the suite too: against itself it shows the comparison is
 * deterministic; the edge backend (edge-js → C# helper, on Mono here) is what it is for.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import type { NativeBackend } from '../../src/native/backend.js';
import { portableBackend } from '../../src/native/portable.js';
import { exportLayer, importLayer, type ImportLayerResult } from '../../src/store/layer-ops.js';
import type { LayerStore } from '../../src/store/layer-store.js';
import { readIndexEntriesSync } from '../../src/layer/metadata-index.js';
import { WCIDIRS_SUFFIX } from '../../src/util/safe-path.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_DIRECTORY,
  FILE_ATTRIBUTE_HIDDEN,
  FILE_ATTRIBUTE_READONLY,
  FILE_ATTRIBUTE_SYSTEM,
  filetimeFromUnixNs,
  unixNsFromFiletime,
} from '../../src/util/windows.js';
import { feedInChunks } from '../helpers/chunks.js';
import { cleanupTemp, firstDifference, openStore, rejectionCode, tempDir } from '../helpers/store.js';
import { backendsUnderTest, isEdgeRequired, skipNote, type BackendUnderTest } from './native-backends.js';

const sd = CRANE_SECURITY_DESCRIPTOR;

const longDir = 'Files/' + Array.from({ length: 12 }, (_, i) => `a-directory-name-long-enough-${i}`).join('/');

/** A base layer with every entry kind, under all three roots (after test/store/round-trip's). */
const everythingLayer: BuilderEntry[] = [
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
    extendedAttributes: [{ name: 'A.EA', value: Buffer.from([0, 1, 2, 255]) }],
    streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]\r\nZoneId=3\r\n' }, { name: 'empty', data: '' }],
    times: { creationTime: filetimeFromUnixNs(-2_208_988_800_000_000_000n), changeTime: filetimeFromUnixNs(-1_500_000_000n) },
  },
  { type: 'file', name: 'Files/dir/Ünïcødé 𝄞 名前.txt', data: 'non-BMP', streams: [{ name: 'strøm 𝄞', data: 'x' }] },
  { type: 'symlink', name: 'Files/dir/link-rel.txt', target: '..\\dir\\all.bin' },
  { type: 'symlink', name: 'Files/junction', target: 'C:\\ProgramData', isMountPoint: true, securityDescriptor: sd },
  ...longDir
    .split('/')
    .slice(1)
    .map((_, i, all): BuilderEntry => ({ type: 'directory', name: 'Files/' + all.slice(0, i + 1).join('/') })),
  { type: 'file', name: `${longDir}/deep-file.txt`, data: 'a path longer than 260 characters' },
  { type: 'link', name: 'Files/dir/hardlink.bin', target: 'Files/dir/all.bin' },
  {
    type: 'file',
    name: 'Hives/System_Delta',
    data: Buffer.alloc(150_000, 0x72),
    securityDescriptor: sd,
    extendedAttributes: [{ name: 'HIVE.EA', value: Buffer.from('ea') }],
    streams: [{ name: 'hive-ads', data: 'kept' }],
    times: { lastAccessTime: filetimeFromUnixNs(1_600_000_000_000_000_100n), lastWriteTime: filetimeFromUnixNs(1_700_000_000_000_000_000n) },
  },
  { type: 'file', name: 'Hives/Sam_Delta', data: '' },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI', securityDescriptor: sd },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'bcd store', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG', data: 'bcd log' },
  {
    type: 'file',
    name: 'UtilityVM/Files/kernel',
    data: Buffer.alloc(5000, 3),
    attributes: FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_SYSTEM,
    extendedAttributes: [{ name: 'UVM', value: Buffer.from('ea') }],
    streams: [{ name: 'uvm-ads', data: Buffer.alloc(100_000, 0x61) }],
  },
  { type: 'symlink', name: 'UtilityVM/Files/kernel-link', target: 'kernel' },
  { type: 'link', name: 'UtilityVM/Files/kernel-hardlink', target: 'UtilityVM/Files/kernel' },
];

/** A parent with a UtilityVM to clone and hives to replace. */
const parentLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Hives' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'file', name: 'Files/Windows/notepad.exe', data: Buffer.alloc(4000, 0x4d), securityDescriptor: sd },
  { type: 'file', name: 'Hives/System_Delta', data: 'regf parent', securityDescriptor: sd },
  { type: 'file', name: 'Hives/Software_Delta', data: Buffer.alloc(300_000, 7), streams: [{ name: 'log', data: 'hive ads' }] },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'parent bcd', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1', data: 'parent log1' },
  { type: 'file', name: 'UtilityVM/Files/kernel', data: Buffer.alloc(70_000, 9), extendedAttributes: [{ name: 'K', value: Buffer.from('v') }] },
  { type: 'file', name: 'UtilityVM/Files/gone.bin', data: 'to be deleted' },
];

/** A delta over `parentLayer`: new hives, a servicing UtilityVM, deletions and links. */
const deltaLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Hives' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'whiteout', name: 'Files/Windows/notepad.exe' },
  { type: 'file', name: 'Files/Windows/new.dll', data: 'new', streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]' }] },
  { type: 'link', name: 'Files/Windows/new-link.dll', target: 'Files/Windows/new.dll' },
  {
    type: 'file',
    name: 'Hives/System_Delta',
    data: Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256)),
    securityDescriptor: sd,
    extendedAttributes: [{ name: 'HIVE.EA', value: Buffer.from([1, 2, 3]) }],
    streams: [{ name: 'first', data: 'one' }, { name: 'second', data: Buffer.alloc(70_000, 2) }],
    times: { creationTime: filetimeFromUnixNs(1_000_000_000_000_000_000n), lastWriteTime: filetimeFromUnixNs(1_650_000_000_987_654_300n) },
  },
  { type: 'file', name: 'Hives/Empty_Delta', data: '' },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'serviced bcd', securityDescriptor: sd },
  { type: 'whiteout', name: 'UtilityVM/Files/gone.bin' },
  { type: 'file', name: 'UtilityVM/Files/added.sys', data: Buffer.alloc(1, 1), attributes: 0x20 | 0x1 },
  { type: 'symlink', name: 'UtilityVM/Files/added-link', target: 'added.sys' },
];

/**
 * Off Windows both backends leave plain files, so kinds and permission bits must match
 * too. On Windows the edge backend restores through BackupWrite, so the OS applies
 * attributes (READONLY shows in the mode) and reparse points to the host files — which is
 * its purpose — and only paths and bytes are compared.
 */
const comparesHostMetadata = process.platform !== 'win32';

/** One file of a store, as compared between backends. */
interface StoreFile {
  kind: 'file' | 'directory' | 'symlink' | 'other';
  /** Permission bits. */
  mode: number;
  /** Regular files: content (layerchain.json with the store's home replaced). */
  bytes?: Buffer;
  /** Regular files with several names: the first name of the group. */
  linkGroup?: string;
}

/** Every path under the store's home with what is compared of it. */
function snapshotStore(home: string): Map<string, StoreFile> {
  const out = new Map<string, StoreFile>();
  const groups = new Map<string, string>();
  const walk = (dir: string, rel: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(abs);
      const entry: StoreFile = {
        kind: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other',
        mode: st.mode & 0o777,
      };
      if (st.isFile()) {
        const raw = fs.readFileSync(abs);
        entry.bytes = name === 'layerchain.json' ? Buffer.from(raw.toString('utf8').split(home).join('<home>')) : raw;
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (!groups.has(key)) groups.set(key, r);
          entry.linkGroup = groups.get(key) as string;
        }
      }
      out.set(r, entry);
      if (st.isDirectory()) walk(abs, r);
    }
  };
  walk(home, '');
  return out;
}

/** Asserts two stores hold the same paths with the same bytes, naming the first difference. */
function expectSameStores(actualHome: string, expectedHome: string): void {
  const actual = snapshotStore(actualHome);
  const expected = snapshotStore(expectedHome);
  expect([...actual.keys()], 'paths in the store').to.deep.equal([...expected.keys()]);
  for (const [rel, want] of expected) {
    const got = actual.get(rel) as StoreFile;
    if (want.bytes !== undefined && got.bytes !== undefined && !got.bytes.equals(want.bytes)) {
      expect.fail(`${rel}: contents differ at byte ${firstDifference(got.bytes, want.bytes)} (${got.bytes.length} vs ${want.bytes.length} bytes)`);
    }
    if (!comparesHostMetadata) continue;
    const { bytes: _a, ...gotRest } = got;
    const { bytes: _b, ...wantRest } = want;
    expect(gotRest, rel).to.deep.equal(wantRest);
  }
}

/**
 * Asserts that every file and directory a layer's entries made carries the entry's last
 * write time on the host, to the millisecond (the index keeps the exact 100 ns values).
 * Cloned UtilityVM files and hard links take their times from elsewhere and are skipped.
 */
async function expectHostTimes(store: LayerStore): Promise<void> {
  for (const layer of await store.list()) {
    let checked = 0;
    for (const record of readIndexEntriesSync(layer.path)) {
      if (record.times === undefined || record.inherited === true || record.kind === 'link' || record.kind === 'whiteout') continue;
      const ns = unixNsFromFiletime(BigInt(record.times[2]));
      if (ns < 0n) continue;
      const host = path.join(layer.path, record.host ?? record.name);
      const st = fs.lstatSync(fs.existsSync(host) ? host : host + WCIDIRS_SUFFIX);
      expect(Math.trunc(st.mtimeMs), `${layer.id}/${record.name}: host mtime`).to.equal(Number(ns / 1_000_000n));
      checked++;
    }
    expect(checked, `${layer.id}: entries checked`).to.be.greaterThan(0);
  }
}

async function importWith(
  backend: NativeBackend,
  store: LayerStore,
  id: string,
  tar: Uint8Array,
  parent?: string,
  chunk = 64 * 1024,
): Promise<ImportLayerResult> {
  return importLayer(store, backend, id, feedInChunks(tar, chunk), { parents: store.chainFor(parent), durable: false });
}

async function exportWith(backend: NativeBackend, store: LayerStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of exportLayer(store, backend, id)) parts.push(c);
  return Buffer.concat(parts);
}

/** `tar` cut in the middle of the first occurrence of `marker` (a file body). */
function cutInside(tar: Buffer, marker: string): Buffer {
  const at = tar.indexOf(marker);
  if (at < 0) throw new Error(`marker ${marker} not in the tar`);
  return tar.subarray(0, at + (marker.length >> 1));
}

interface BadInput {
  title: string;
  /** The layer tar (built lazily: some cases cut a built tar). */
  tar: () => Promise<Buffer>;
  /** Import on top of the layer built from `parentLayer`. */
  onParent?: boolean;
  code: string;
}

const badInputs: BadInput[] = [
  {
    title: 'a tar that ends inside a hive',
    tar: async () => cutInside(await buildLayerTar([{ type: 'directory', name: 'Hives' }, { type: 'file', name: 'Hives/System_Delta', data: 'HIVE-BODY-MARKER-'.repeat(100) }]), 'HIVE-BODY-MARKER-'),
    code: 'ERR_TAR_TRUNCATED',
  },
  {
    title: 'a tar that ends inside a UtilityVM file',
    tar: async () =>
      cutInside(
        await buildLayerTar([
          { type: 'directory', name: 'UtilityVM' },
          { type: 'directory', name: 'UtilityVM/Files' },
          { type: 'file', name: 'UtilityVM/Files/kernel', data: 'KERNEL-BODY-MARKER-'.repeat(5000) },
        ]),
        'KERNEL-BODY-MARKER-KERNEL-BODY-MARKER-',
      ),
    code: 'ERR_TAR_TRUNCATED',
  },
  {
    title: 'a hive entry that escapes the layer',
    tar: () => buildLayerTar([{ type: 'file', name: 'Hives/../../etc/passwd', data: 'x' }]),
    code: 'ERR_PATH_ESCAPE',
  },
  {
    title: 'a second hive differing only in case',
    tar: () =>
      buildLayerTar([
        { type: 'directory', name: 'Hives' },
        { type: 'file', name: 'Hives/System_Delta', data: 'a' },
        { type: 'file', name: 'Hives/SYSTEM_DELTA', data: 'b' },
      ]),
    code: 'ERR_ENTRY_DUPLICATE',
  },
  {
    title: "a delta layer's UtilityVM entry outside UtilityVM/Files",
    tar: () => buildLayerTar([{ type: 'directory', name: 'UtilityVM' }, { type: 'file', name: 'UtilityVM/SystemTemplate.vhdx', data: 'x' }]),
    onParent: true,
    code: 'ERR_UTILITYVM_INVALID',
  },
  {
    title: 'a whiteout in a base layer',
    tar: () => buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'whiteout', name: 'Files/x' }]),
    code: 'ERR_WHITEOUT_INVALID',
  },
  {
    title: 'a hard link to nothing',
    tar: () => buildLayerTar([{ type: 'directory', name: 'UtilityVM' }, { type: 'directory', name: 'UtilityVM/Files' }, { type: 'link', name: 'UtilityVM/Files/a', target: 'UtilityVM/Files/missing' }]),
    code: 'ERR_LINK_TARGET_NOT_FOUND',
  },
  {
    title: 'a hive below a file',
    tar: () => buildLayerTar([{ type: 'file', name: 'Hives/System_Delta', data: 'not a directory' }, { type: 'file', name: 'Hives/System_Delta/x', data: 'x' }]),
    code: 'ERR_PARENT_NOT_DIRECTORY',
  },
];

/** The conformance suite for one backend. */
function describeNativeBackend(c: BackendUnderTest): void {
  const note = c.backend === undefined ? skipNote(c.reason ?? 'unavailable') : '';
  describe(`native backend conformance: ${c.name}${note}`, function () {
    this.timeout(120_000);
    let backend: NativeBackend;

    before(function () {
      if (c.backend !== undefined) {
        backend = c.backend;
        return;
      }
      if (isEdgeRequired) throw new Error(`backend ${c.name} is required here (CI=true, WINLAYER_REQUIRE_EDGE=1) but unavailable: ${c.reason ?? ''}`);
      this.skip();
    });
    after(cleanupTemp);

    it('imports a base layer with Files/, Hives/ and UtilityVM/ into the same store as the portable backend', async () => {
      const tar = await buildLayerTar(everythingLayer);
      const expected = await openStore();
      const actual = await openStore();
      const want = await importWith(portableBackend, expected, 'everything', tar);
      const got = await importWith(backend, actual, 'everything', tar);
      expect({ ...got, path: '' }).to.deep.equal({ ...want, path: '' });
      expectSameStores(actual.home, expected.home);
      await expectHostTimes(actual);
    });

    it('exports that layer as the tar it imported, twice, as the portable backend does', async () => {
      const tar = await buildLayerTar(everythingLayer);
      const store = await openStore();
      await importWith(backend, store, 'everything', tar);
      const first = await exportWith(backend, store, 'everything');
      expect(firstDifference(first, tar), 'first differing byte').to.equal(-1);
      expect((await exportWith(backend, store, 'everything')).equals(first)).to.equal(true);
      expect((await exportWith(portableBackend, store, 'everything')).equals(first)).to.equal(true);
    });

    for (const chunk of [1, 321, 1 << 20]) {
      it(`gives the same store when the tar arrives in ${chunk}-byte chunks`, async () => {
        const isLarge = (e: BuilderEntry): boolean => 'name' in e && (e.name === 'Hives/Software_Delta' || e.name === 'UtilityVM/Files/kernel');
        const entries = chunk === 1 ? parentLayer.filter((e) => !isLarge(e)) : parentLayer;
        const tar = await buildLayerTar(entries);
        const expected = await openStore();
        const actual = await openStore();
        await importWith(portableBackend, expected, 'p', tar);
        await importWith(backend, actual, 'p', tar, undefined, chunk);
        expectSameStores(actual.home, expected.home);
      });
    }

    it('imports a delta layer (hives, a serviced UtilityVM, deletions, links) into the same store, and exports it unchanged', async () => {
      const parentTar = await buildLayerTar(parentLayer);
      const deltaTar = await buildLayerTar(deltaLayer);
      const expected = await openStore();
      const actual = await openStore();
      await importWith(portableBackend, expected, 'p', parentTar);
      await importWith(backend, actual, 'p', parentTar);
      const want = await importWith(portableBackend, expected, 'c', deltaTar, 'p');
      const got = await importWith(backend, actual, 'c', deltaTar, 'p');
      expect({ ...got, path: '' }).to.deep.equal({ ...want, path: '' });
      expectSameStores(actual.home, expected.home);
      await expectHostTimes(actual);
      const exported = await exportWith(backend, actual, 'c');
      expect(exported.equals(await exportWith(portableBackend, expected, 'c'))).to.equal(true);
      expect(firstDifference(exported, deltaTar), 'first differing byte').to.equal(-1);
    });

    describe('bad input', () => {
      for (const bad of badInputs) {
        it(`rejects ${bad.title} with ${bad.code}, as the portable backend does, and leaves the store as it was`, async () => {
          const tar = await bad.tar();
          const codes: string[] = [];
          for (const b of [portableBackend, backend]) {
            const store = await openStore();
            if (bad.onParent === true) await importWith(b, store, 'p', await buildLayerTar(parentLayer));
            const before = snapshotStore(store.home);
            codes.push(await rejectionCode(() => importWith(b, store, 'bad', tar, bad.onParent === true ? 'p' : undefined)));
            const after = snapshotStore(store.home);
            expect([...after.keys()], 'paths after the failed import').to.deep.equal([...before.keys()]);
          }
          expect(codes).to.deep.equal([bad.code, bad.code]);
          // Nothing the failed import opened natively stays open.
          if (c.openHandles !== undefined) expect(c.openHandles(), 'native handles left open').to.equal(0);
        });
      }

      (process.platform === 'win32' ? it.skip : it)('reports a file the system will not take (past the file-size limit) as ERR_IO naming its entry, as the portable backend does', async () => {
        const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.cjs');
        // 2 MiB in a hive: the helper writes it on the edge backend, node:fs on the portable one.
        const tar = await buildLayerTar([
          { type: 'directory', name: 'Files', securityDescriptor: sd },
          { type: 'directory', name: 'Hives', securityDescriptor: sd },
          { type: 'file', name: 'Hives/System_Delta', securityDescriptor: sd, data: Buffer.alloc(2 << 20, 7) },
        ]);
        const home = tempDir();
        // bash's ulimit -f counts KiB: the metadata index fits under 1 MiB, the hive does not.
        const r = spawnSync('bash', ['-c', 'ulimit -f 1024 && exec "$0" "$@"', process.execPath, cli, 'import', '--json', '--home', home, '--id', 'big'], {
          input: tar,
          env: { ...process.env, WINLAYER_NATIVE: c.name },
        });
        expect(r.status, r.stderr.toString()).to.equal(1);
        const e = JSON.parse(r.stderr.toString()) as { code: string; data: Record<string, unknown> };
        expect([e.code, e.data['entry']]).to.deep.equal(['ERR_IO', 'Hives/System_Delta']);
        // Mono reports EFBIG as ERROR_NOT_SUPPORTED, which tells no errno.
        if (c.name === 'portable') expect(e.data['errno']).to.equal('EFBIG');
        else expect(e.data['win32Error']).to.be.a('number');
        expect(fs.readdirSync(home).filter((n) => !n.startsWith('.'))).to.deep.equal([]);
      });

      it('rejects an id that is taken with ERR_LAYER_EXISTS', async () => {
        const store = await openStore();
        const tar = await buildLayerTar([{ type: 'directory', name: 'Hives' }, { type: 'file', name: 'Hives/System_Delta', data: 'x' }]);
        await importWith(backend, store, 'l', tar);
        expect(await rejectionCode(() => importWith(backend, store, 'l', tar))).to.equal('ERR_LAYER_EXISTS');
      });
    });
  });
}

for (const c of backendsUnderTest()) describeNativeBackend(c);
