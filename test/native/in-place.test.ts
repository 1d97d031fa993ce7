/**
 * Base layers restored in place (hcsshim's base-layer writer, what the edge backend does on
 * Windows before ProcessBaseImage), run here through the real helper on Mono: every entry,
 * Files/ and Hives/ included, goes through RestoreCreate (directories opened after the
 * writer made them), the files hold their data, the other sub-streams come back into the
 * index, and the layer reads back as the tar it was imported from.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { materializeView, resolveView } from '../../src/driver/view.js';
import { TransportLayerWriter } from '../../src/layer/layer-writer.js';
import { INDEX_DIR, readIndexEntriesSync, readLayerInfo } from '../../src/layer/metadata-index.js';
import type { NativeBackend } from '../../src/native/backend.js';
import { createEdgeBackend } from '../../src/native/edge-backend.js';
import type { NativeHelper } from '../../src/native/edge.js';
import { portableBackend } from '../../src/native/portable.js';
import { exportLayer, importLayer } from '../../src/store/layer-ops.js';
import type { LayerStore } from '../../src/store/layer-store.js';
import { WCIDIRS_SUFFIX } from '../../src/util/safe-path.js';
import { FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_READONLY } from '../../src/util/windows.js';
import { feedInChunks } from '../helpers/chunks.js';
import { cleanupTemp, firstDifference, listTree, openStore, rejectionCode, tempDir } from '../helpers/store.js';
import { requireHelperOrSkip, skipNote } from './native-backends.js';

const sd = CRANE_SECURITY_DESCRIPTOR;
const notepad = Buffer.from(Array.from({ length: 150_000 }, (_, i) => i % 253));

/** A base layer whose Files/ and Hives/ carry every kind of sub-stream a restore hands back. */
const baseLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  {
    type: 'directory',
    name: 'Files/Windows',
    securityDescriptor: sd,
    extendedAttributes: [{ name: 'DIR.EA', value: Buffer.from('on a directory') }],
    streams: [{ name: 'dirstream', data: 'a directory ADS' }],
    attributes: FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN,
  },
  {
    type: 'file',
    name: 'Files/Windows/notepad.exe',
    data: notepad,
    securityDescriptor: sd,
    attributes: FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_READONLY,
    extendedAttributes: [{ name: 'A.EA', value: Buffer.from([0, 1, 2, 255]) }],
    streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]\r\nZoneId=3\r\n' }, { name: 'empty', data: '' }],
  },
  { type: 'file', name: 'Files/Windows/empty.txt', data: '' },
  { type: 'file', name: 'Files/Windows/Ünïcødé 𝄞.txt', data: 'non-BMP', streams: [{ name: 'strøm 𝄞', data: 'x' }] },
  { type: 'symlink', name: 'Files/Windows/link.txt', target: 'notepad.exe' },
  { type: 'symlink', name: 'Files/junction', target: 'C:\\ProgramData', isMountPoint: true, securityDescriptor: sd },
  { type: 'link', name: 'Files/Windows/notepad-link.exe', target: 'Files/Windows/notepad.exe' },
  { type: 'directory', name: 'Hives' },
  { type: 'file', name: 'Hives/System_Delta', data: Buffer.alloc(70_000, 0x72), securityDescriptor: sd, streams: [{ name: 'hive-ads', data: 'kept' }] },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/kernel', data: Buffer.alloc(5000, 3), extendedAttributes: [{ name: 'UVM', value: Buffer.from('ea') }] },
  // A base layer may share files between the UtilityVM and the container: real links here.
  { type: 'link', name: 'UtilityVM/Files/notepad.exe', target: 'Files/Windows/notepad.exe' },
  { type: 'link', name: 'Files/Windows/kernel', target: 'UtilityVM/Files/kernel' },
];

/** A delta on that base: its Files/ is in the transport format whatever its parent's is. */
const deltaLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'whiteout', name: 'Files/Windows/empty.txt' },
  { type: 'file', name: 'Files/Windows/new.dll', data: 'new', securityDescriptor: sd },
  { type: 'link', name: 'Files/Windows/notepad-again.exe', target: 'Files/Windows/notepad.exe' },
];

async function importWith(backend: NativeBackend, store: LayerStore, id: string, tar: Uint8Array, parent?: string, chunk = 64 * 1024): Promise<void> {
  await importLayer(store, backend, id, feedInChunks(tar, chunk), { parents: store.chainFor(parent), durable: false });
}

async function exportWith(backend: NativeBackend, store: LayerStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of exportLayer(store, backend, id)) parts.push(c);
  return Buffer.concat(parts);
}

/** Every file under `dir` with its bytes, and every directory, by relative path. */
function contents(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of listTree(dir)) {
    const st = fs.lstatSync(path.join(dir, rel));
    out.set(rel, st.isFile() ? fs.readFileSync(path.join(dir, rel)).toString('hex') : st.isDirectory() ? 'dir' : `link:${fs.readlinkSync(path.join(dir, rel))}`);
  }
  return out;
}

describe(`native/edge-backend: base layers restored in place through the real helper${skipNote()}`, function () {
  this.timeout(60_000);
  let helper: NativeHelper;
  let inPlace: NativeBackend;

  before(function () {
    helper = requireHelperOrSkip(this);
    inPlace = createEdgeBackend({ helper, restoreBaseLayersInPlace: true });
  });
  afterEach(() => {
    if (helper !== undefined) expect(helper.info().openHandles, 'restore handles left open').to.equal(0);
  });
  after(cleanupTemp);

  it('leaves each Files/ and Hives/ entry as a host file or directory holding its data, with no transport file, sidecar or tombstones', async () => {
    const tar = await buildLayerTar(baseLayer);
    const store = await openStore();
    await importWith(inPlace, store, 'base', tar);
    const root = store.layerPath('base');
    const tree = listTree(root);
    expect(tree.filter((rel) => rel.endsWith(WCIDIRS_SUFFIX) || rel === 'tombstones.txt')).to.deep.equal([]);
    expect(fs.readFileSync(path.join(root, 'Files/Windows/notepad.exe')).equals(notepad)).to.equal(true);
    expect(fs.statSync(path.join(root, 'Files/Windows/empty.txt')).size).to.equal(0);
    expect(fs.readFileSync(path.join(root, 'Hives/System_Delta')).equals(Buffer.alloc(70_000, 0x72))).to.equal(true);
    expect(fs.statSync(path.join(root, 'Files/Windows/notepad-link.exe')).ino).to.equal(fs.statSync(path.join(root, 'Files/Windows/notepad.exe')).ino);
    // Restored in place, Files/ and UtilityVM/ hold the same kind of file: links across are real.
    expect(fs.statSync(path.join(root, 'UtilityVM/Files/notepad.exe')).ino).to.equal(fs.statSync(path.join(root, 'Files/Windows/notepad.exe')).ino);
    expect(fs.statSync(path.join(root, 'Files/Windows/kernel')).ino).to.equal(fs.statSync(path.join(root, 'UtilityVM/Files/kernel')).ino);
    // Reparse points stay in the index off Windows: no symbolic link is made in the layer.
    expect(fs.lstatSync(path.join(root, 'Files/Windows/link.txt')).isFile()).to.equal(true);
    expect(fs.lstatSync(path.join(root, 'Files/junction')).isDirectory()).to.equal(true);

    const records = readIndexEntriesSync(root);
    const transportNamed = records.filter((r) => r.kind !== 'link' && (r.name === 'Files' || r.name === 'Hives' || r.name.startsWith('Files/')));
    expect(transportNamed.map((r) => r.name)).to.include.members(['Files', 'Files/Windows', 'Files/Windows/notepad.exe', 'Hives']);
    expect(transportNamed.filter((r) => r.direct !== true).map((r) => r.name), 'records not marked direct').to.deep.equal([]);
    // The directory's EA and ADS came back from the helper into streams.bin.
    expect(records.find((r) => r.name === 'Files/Windows')?.streams?.[1]).to.be.greaterThan(0);
    expect(records.filter((r) => r.name.startsWith('UtilityVM') && r.direct === true), 'UtilityVM records are never transport').to.deep.equal([]);
  });

  it('keeps the layer summary of the portable backend (size, entries, digest)', async () => {
    const tar = await buildLayerTar(baseLayer);
    const a = await openStore();
    const b = await openStore();
    await importWith(inPlace, a, 'base', tar);
    await importWith(portableBackend, b, 'base', tar);
    const { id: _a, ...got } = readLayerInfo(a.layerPath('base'));
    const { id: _b, ...want } = readLayerInfo(b.layerPath('base'));
    expect(got).to.deep.equal(want);
  });

  for (const chunk of [1, 321, 1 << 20]) {
    it(`exports the tar it imported, byte for byte, with the tar fed in ${chunk}-byte chunks, through either backend`, async () => {
      const tar = await buildLayerTar(chunk === 1 ? baseLayer.filter((e) => !('name' in e) || (!e.name.startsWith('Files/Windows/notepad') && (e.type !== 'link' || !e.target.startsWith('Files/Windows/notepad')))) : baseLayer);
      const store = await openStore();
      await importWith(inPlace, store, 'base', tar, undefined, chunk);
      const exported = await exportWith(inPlace, store, 'base');
      expect(firstDifference(exported, tar), 'first differing byte').to.equal(-1);
      expect((await exportWith(portableBackend, store, 'base')).equals(exported)).to.equal(true);
    });
  }

  it('takes a delta layer on top (in the transport format) that exports unchanged, and gives the same mounted view as a portable chain', async () => {
    const baseTar = await buildLayerTar(baseLayer);
    const deltaTar = await buildLayerTar(deltaLayer);
    const mixed = await openStore();
    const portable = await openStore();
    await importWith(inPlace, mixed, 'base', baseTar);
    await importWith(inPlace, mixed, 'delta', deltaTar, 'base');
    await importWith(portableBackend, portable, 'base', baseTar);
    await importWith(portableBackend, portable, 'delta', deltaTar, 'base');
    expect(fs.existsSync(path.join(mixed.layerPath('delta'), `Files${WCIDIRS_SUFFIX}`)), 'the delta is in the transport format').to.equal(true);
    for (const file of ['entries.jsonl', 'streams.bin']) {
      const got = fs.readFileSync(path.join(mixed.layerPath('delta'), INDEX_DIR, file));
      const want = fs.readFileSync(path.join(portable.layerPath('delta'), INDEX_DIR, file));
      expect(firstDifference(got, want), `delta/${file}`).to.equal(-1);
    }
    expect(firstDifference(await exportWith(inPlace, mixed, 'delta'), deltaTar), 'first differing byte').to.equal(-1);

    const views = [mixed, portable].map((store) => {
      const dest = path.join(tempDir(), 'view');
      fs.mkdirSync(dest);
      materializeView(resolveView([store.layerPath('delta'), store.layerPath('base')]), dest);
      return contents(dest);
    });
    expect([...(views[0] as Map<string, string>).keys()]).to.include.members(['Windows/notepad.exe', 'Windows/new.dll', 'Windows/notepad-again.exe']);
    expect([...(views[0] as Map<string, string>).keys()]).not.to.include('Windows/empty.txt');
    expect(views[0]).to.deep.equal(views[1]);
  });

  const bad: { title: string; tar: () => Promise<Buffer>; code: string }[] = [
    {
      title: 'a tar that ends inside a Files/ file',
      tar: async () => {
        const tar = await buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/big.bin', data: 'BODY-MARKER-'.repeat(2000) }]);
        return tar.subarray(0, tar.indexOf('BODY-MARKER-') + 1000);
      },
      code: 'ERR_TAR_TRUNCATED',
    },
    {
      title: 'a Files/ entry below a file',
      tar: () => buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/a', data: 'x' }, { type: 'file', name: 'Files/a/b', data: 'y' }]),
      code: 'ERR_PARENT_NOT_DIRECTORY',
    },
    {
      title: 'a Files/ entry below a junction',
      tar: () =>
        buildLayerTar([
          { type: 'directory', name: 'Files' },
          { type: 'symlink', name: 'Files/j', target: 'C:\\Windows', isMountPoint: true },
          { type: 'file', name: 'Files/j/evil.dll', data: 'x' },
        ]),
      code: 'ERR_PATH_THROUGH_LINK',
    },
    {
      title: 'a second Files/ entry differing only in case',
      tar: () => buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'file', name: 'Files/a.txt', data: 'a' }, { type: 'file', name: 'Files/A.TXT', data: 'b' }]),
      code: 'ERR_ENTRY_DUPLICATE',
    },
    {
      title: 'a whiteout in a base layer',
      tar: () => buildLayerTar([{ type: 'directory', name: 'Files' }, { type: 'whiteout', name: 'Files/x' }]),
      code: 'ERR_WHITEOUT_INVALID',
    },
  ];
  for (const b of bad) {
    it(`rejects ${b.title} with ${b.code}, as the portable backend does, and leaves no layer`, async () => {
      const tar = await b.tar();
      const codes: string[] = [];
      for (const backend of [portableBackend, inPlace]) {
        const store = await openStore();
        const before = listTree(store.home);
        codes.push(await rejectionCode(() => importWith(backend, store, 'bad', tar)));
        expect(listTree(store.home), 'paths after the failed import').to.deep.equal(before);
      }
      expect(codes).to.deep.equal([b.code, b.code]);
    });
  }
});

describe('layer/layer-writer: restoreInPlace', () => {
  after(cleanupTemp);

  it('is refused without a restorer, or for a delta layer, with ERR_ARGUMENT_INVALID', () => {
    const root = tempDir();
    const restorer = { create: (): never => expect.fail('nothing is restored') };
    const codes = [
      () => new TransportLayerWriter({ root, parents: [], restoreInPlace: true }),
      () => new TransportLayerWriter({ root, parents: [tempDir()], restorer, restoreInPlace: true }),
    ].map((make) => {
      try {
        make();
        return 'no error';
      } catch (e) {
        return (e as { code?: string }).code;
      }
    });
    expect(codes).to.deep.equal(['ERR_ARGUMENT_INVALID', 'ERR_ARGUMENT_INVALID']);
    expect(fs.readdirSync(root), 'nothing written').to.deep.equal([]);
  });
});
