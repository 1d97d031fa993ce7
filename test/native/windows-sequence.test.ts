/**
 * The edge backend's Windows sequence (docs/windows.md, "The Windows sequence"), run on
 * any machine: the backend is told it runs on 'win32' and is given a helper that records
 * every call. Its Host Compute Service calls are simulated here (ImportLayer expands the
 * import folder into the layer and keeps a copy, which ExportLayer hands back; the
 * Process*Image calls write what they would and rewrite the BCD store); file restores go
 * to the real helper where it runs (Mono off Windows) and to a small restore written here
 * otherwise, so the sequence is checked with both.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupStreamId } from '../../src/backup/constants.js';
import { encodeBackupHeader } from '../../src/backup/header.js';
import { parseBackupStreamBuffer } from '../../src/backup/parser.js';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import type { WinLayerError } from '../../src/errors.js';
import { INDEX_DIR } from '../../src/layer/metadata-index.js';
import type { NativeBackend } from '../../src/native/backend.js';
import { createEdgeBackend, type EdgeHelper } from '../../src/native/edge-backend.js';
import { HELPER_PROTOCOL, LAYER_PRIVILEGES, nativeErrorFromThrown, type HelperInfo, type NativeHelper, type RestoreResult } from '../../src/native/edge.js';
import { portableBackend } from '../../src/native/portable.js';
import { exportLayer, importLayer } from '../../src/store/layer-ops.js';
import { ownerAlive, type LayerStore } from '../../src/store/layer-store.js';
import { WCIDIRS_SUFFIX } from '../../src/util/safe-path.js';
import type { FileBasicInfo } from '../../src/util/windows.js';
import { feedInChunks } from '../helpers/chunks.js';
import { cleanupTemp, firstDifference, listTree, openStore, rejection } from '../helpers/store.js';
import { edgeAvailability, requireHelperOrSkip, skipNote } from './native-backends.js';

const sd = CRANE_SECURITY_DESCRIPTOR;

/** The Host Compute Service calls, as opposed to file calls. */
const HCS_METHODS = new Set(['importLayer', 'exportLayer', 'processBaseImage', 'processUtilityImage']);

type HcsMethod = 'importLayer' | 'exportLayer' | 'processBaseImage' | 'processUtilityImage';

interface Call {
  method: string;
  args: unknown[];
  /** HCS calls: the tree of the folder they were given (import/export folder), at the call. */
  folderTree?: string[];
  /** HCS calls: the tree of the layer directory, at the call. */
  layerTree?: string[];
}

/** ERROR_SHARING_VIOLATION as an HRESULT, what a failed vmcompute call returns. */
const FAILURE = { win32Error: 32, hresult: -2147024864 };

/** What edge-js raises for a failed helper call, through the bridge's own mapping. */
function hcsError(method: string, failure: { win32Error: number; hresult: number }): WinLayerError {
  const thrown = Object.assign(new Error('The process cannot access the file because it is being used by another process.'), {
    Code: 'ERR_NATIVE_CALL_FAILED',
    Operation: method,
    Win32Error: failure.win32Error,
    HResult: failure.hresult,
  });
  thrown.name = 'WinLayer.Native.NativeError';
  return nativeErrorFromThrown(method, thrown);
}

/**
 * Restores written here: the data payload into the file (the writer keeps the other
 * sub-streams); a directory (made by the writer) only gets its times.
 */
class InTestRestores {
  #next = 1;
  readonly #open = new Map<number, { fd: number | undefined; dir: string; chunks: Buffer[] }>();

  get openHandles(): number {
    return this.#open.size;
  }

  create(file: string, directory: boolean): number {
    if (directory && !fs.lstatSync(file).isDirectory()) throw new Error(`${file} is not a directory`);
    const fd = directory ? undefined : fs.openSync(file, 'wx');
    const handle = this.#next++;
    this.#open.set(handle, { fd, dir: file, chunks: [] });
    return handle;
  }

  write(handle: number, chunk: Uint8Array): void {
    this.#get(handle).chunks.push(Buffer.from(chunk));
  }

  finish(handle: number, info: FileBasicInfo): RestoreResult {
    const r = this.#get(handle);
    this.#open.delete(handle);
    try {
      let dataSize = 0;
      for (const s of parseBackupStreamBuffer(Buffer.concat(r.chunks))) {
        if (s.header.id !== BackupStreamId.Data) continue;
        if (r.fd === undefined) throw new Error(`${r.dir}: a directory with a data stream`);
        dataSize = s.header.size;
        fs.writeSync(r.fd, s.payload);
      }
      const seconds = (ft: bigint): number => Number(ft - 116444736000000000n) / 1e7;
      if (r.fd === undefined) fs.utimesSync(r.dir, seconds(info.lastAccessTime), seconds(info.lastWriteTime));
      else fs.futimesSync(r.fd, seconds(info.lastAccessTime), seconds(info.lastWriteTime));
      return { dataSize };
    } finally {
      if (r.fd !== undefined) fs.closeSync(r.fd);
    }
  }

  abort(handle: number): void {
    const r = this.#open.get(handle);
    if (r === undefined) return;
    this.#open.delete(handle);
    if (r.fd !== undefined) fs.closeSync(r.fd);
  }

  #get(handle: number): { fd: number | undefined; dir: string; chunks: Buffer[] } {
    const r = this.#open.get(handle);
    if (r === undefined) throw new Error(`no restore ${handle}`);
    return r;
  }
}

/** Every path of a folder's tree that is a file under Files/ and not a sidecar: transport content. */
function isTransportContent(rel: string): boolean {
  return rel.startsWith('Files/') && !rel.endsWith(WCIDIRS_SUFFIX);
}

/**
 * A helper that says it runs on Windows, records every call, restores files through
 * `restores`, and simulates the Host Compute Service on the file system.
 */
class RecordingHelper implements EdgeHelper {
  readonly calls: Call[] = [];
  /** A call to fail, with a Win32 error and its HRESULT. */
  fail: HcsMethod | undefined;
  /** Paths (below the layer) ImportLayer leaves in the layer, as if brought in from the parents. */
  plant: string[] = [];
  /** Bytes BackupRead adds to (or, negative, drops from) a file's data, as if it changed while read. */
  readSizeChange = 0;
  /** Whether ExportLayer writes Files.$wcidirs$ and Hives.$wcidirs$. */
  exportTopSidecars = true;
  readonly #real: NativeHelper | undefined;
  readonly #inTest = new InTestRestores();
  /** What each imported layer's import folder held, by layer id, for ExportLayer. */
  readonly #imported = new Map<string, string>();
  readonly #vault: string;
  readonly #reads = new Map<number, Buffer>();
  #nextRead = 1;

  constructor(real: NativeHelper | undefined, vault: string) {
    this.#real = real;
    this.#vault = vault;
  }

  /** The calls since the last reset. */
  reset(): void {
    this.calls.length = 0;
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  hcsCalls(): Call[] {
    return this.calls.filter((c) => HCS_METHODS.has(c.method));
  }

  callsOf(method: string): Call[] {
    return this.calls.filter((c) => c.method === method);
  }

  indexOf(method: string): number {
    return this.calls.findIndex((c) => c.method === method);
  }

  lastIndexOf(method: string): number {
    return this.calls.findLastIndex((c) => c.method === method);
  }

  get openHandles(): number {
    return this.#real === undefined ? this.#inTest.openHandles : this.#real.info().openHandles;
  }

  info(): HelperInfo {
    this.#record('info', []);
    return { platform: 'windows', runtime: 'recording', protocol: HELPER_PROTOCOL, is64Bit: true, assemblyVersion: '0.0.0.0', openHandles: 0, fileApi: true };
  }

  enablePrivileges(names: readonly string[] = LAYER_PRIVILEGES): string[] {
    this.#record('enablePrivileges', [[...names]]);
    return [...names];
  }

  restoreCreate(file: string, entry: string, processSecurity: boolean, directory = false): number {
    this.#record('restoreCreate', [file, entry, processSecurity, directory]);
    return this.#real === undefined ? this.#inTest.create(file, directory) : this.#real.restoreCreate(file, entry, processSecurity, directory);
  }

  restoreWrite(handle: number, chunk: Uint8Array): void {
    this.#record('restoreWrite', [handle]);
    if (this.#real === undefined) this.#inTest.write(handle, chunk);
    else this.#real.restoreWrite(handle, chunk);
  }

  restoreFinish(handle: number, info: FileBasicInfo): RestoreResult {
    this.#record('restoreFinish', [handle]);
    return this.#real === undefined ? this.#inTest.finish(handle, info) : this.#real.restoreFinish(handle, info);
  }

  restoreAbort(handle: number): void {
    this.#record('restoreAbort', [handle]);
    if (this.#real === undefined) this.#inTest.abort(handle);
    else this.#real.restoreAbort(handle);
  }

  /** A directory reads as an empty stream, a file as one DATA sub-stream. */
  backupReadOpen(file: string, processSecurity: boolean): number {
    this.#record('backupReadOpen', [file, processSecurity]);
    const st = fs.lstatSync(file);
    let data = st.isDirectory() ? Buffer.alloc(0) : fs.readFileSync(file);
    if (!st.isDirectory() && this.readSizeChange !== 0) {
      data = this.readSizeChange > 0 ? Buffer.concat([data, Buffer.alloc(this.readSizeChange, 0x21)]) : data.subarray(0, Math.max(0, data.length + this.readSizeChange));
    }
    const stream = st.isDirectory() ? data : Buffer.concat([encodeBackupHeader({ id: BackupStreamId.Data, size: data.length }), data]);
    const handle = this.#nextRead++;
    this.#reads.set(handle, stream);
    return handle;
  }

  backupReadChunk(handle: number, size: number): Buffer {
    const rest = this.#reads.get(handle) ?? Buffer.alloc(0);
    this.#reads.set(handle, rest.subarray(Math.min(size, rest.length)));
    return rest.subarray(0, size);
  }

  closeHandle(handle: number): void {
    this.#record('closeHandle', [handle]);
    this.#reads.delete(handle);
  }

  /** As on Windows, the path must exist. */
  setFileBasicInfo(file: string, info: FileBasicInfo): void {
    this.#record('setFileBasicInfo', [file, info]);
    if (fs.lstatSync(file, { throwIfNoEntry: false }) === undefined) throw hcsError('SetFileBasicInfo', { win32Error: 2, hresult: -2147024894 });
  }

  createHardLink(link: string, target: string): void {
    this.#record('createHardLink', [link, target]);
    fs.linkSync(target, link);
  }

  /** Keeps the folder (for ExportLayer), then expands it into the layer: directories, data, hives. */
  async importLayer(layer: string, folder: string, parents: readonly string[]): Promise<void> {
    this.#record('importLayer', [layer, folder, [...parents]], { folderTree: listTree(folder), layerTree: listTree(layer) });
    await Promise.resolve();
    if (this.fail === 'importLayer') throw hcsError('ImportLayer', FAILURE);
    const kept = path.join(this.#vault, `${this.#imported.size}`);
    fs.cpSync(folder, kept, { recursive: true });
    this.#imported.set(layerId(layer), kept);
    for (const rel of listTree(folder)) {
      const from = path.join(folder, rel);
      const to = path.join(layer, rel);
      if (fs.lstatSync(from).isDirectory()) fs.mkdirSync(to, { recursive: true });
      else if (isTransportContent(rel)) {
        const records = parseBackupStreamBuffer(fs.readFileSync(from).subarray(4));
        fs.writeFileSync(to, Buffer.concat(records.filter((r) => r.header.id === BackupStreamId.Data).map((r) => r.payload)));
      } else if (!rel.endsWith(WCIDIRS_SUFFIX)) fs.copyFileSync(from, to);
    }
    for (const rel of this.plant) {
      fs.mkdirSync(path.dirname(path.join(layer, rel)), { recursive: true });
      fs.writeFileSync(path.join(layer, rel), 'from a parent');
    }
  }

  /** Hands back what the layer was imported from, with a tombstones.txt, as ExportLayer writes one. */
  async exportLayer(layer: string, folder: string, parents: readonly string[]): Promise<void> {
    this.#record('exportLayer', [layer, folder, [...parents]], { folderTree: listTree(folder), layerTree: listTree(layer) });
    await Promise.resolve();
    if (this.fail === 'exportLayer') throw hcsError('ExportLayer', FAILURE);
    const kept = this.#imported.get(layerId(layer));
    if (kept === undefined) throw hcsError('ExportLayer', { win32Error: 2, hresult: -2147024894 });
    fs.cpSync(kept, folder, { recursive: true });
    if (!this.exportTopSidecars) for (const top of ['Files', 'Hives']) fs.rmSync(path.join(folder, top + WCIDIRS_SUFFIX), { force: true });
    fs.writeFileSync(path.join(folder, 'tombstones.txt'), '\ufeffVersion 1.0\n');
  }

  async processBaseImage(layer: string): Promise<void> {
    this.#record('processBaseImage', [layer], { layerTree: listTree(layer) });
    await Promise.resolve();
    if (this.fail === 'processBaseImage') throw hcsError('ProcessBaseImage', FAILURE);
    for (const vhd of ['blank.vhdx', 'blank-base.vhdx']) fs.writeFileSync(path.join(layer, vhd), 'vhd');
  }

  /** Writes the UVM template and rewrites the BCD store, naming the layer it ran on. */
  async processUtilityImage(uvm: string): Promise<void> {
    this.#record('processUtilityImage', [uvm], { layerTree: listTree(path.dirname(uvm)) });
    await Promise.resolve();
    if (this.fail === 'processUtilityImage') throw hcsError('ProcessUtilityImage', FAILURE);
    fs.writeFileSync(path.join(uvm, 'SystemTemplate.vhdx'), 'vhd');
    const bcd = path.join(uvm, 'Files/EFI/Microsoft/Boot/BCD');
    if (fs.existsSync(bcd)) fs.writeFileSync(bcd, bcdRewrittenIn(uvm));
  }

  #record(method: string, args: unknown[], extra: Omit<Call, 'method' | 'args'> = {}): void {
    this.calls.push({ method, args, ...extra });
  }
}

/** What the simulated ProcessUtilityImage writes into the BCD store of `uvm`. */
function bcdRewrittenIn(uvm: string): string {
  return `rewritten by ProcessUtilityImage in ${layerId(path.dirname(uvm))}`;
}

/** A staging or committed layer directory → the layer id. */
function layerId(layerPath: string): string {
  return path.basename(layerPath).split('-importing-')[0] as string;
}

async function importWith(backend: NativeBackend, store: LayerStore, id: string, tar: Uint8Array, parent?: string): Promise<void> {
  await importLayer(store, backend, id, feedInChunks(tar, 64 * 1024), { parents: store.chainFor(parent), durable: false });
}

async function exportWith(backend: NativeBackend, store: LayerStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of exportLayer(store, backend, id)) parts.push(c);
  return Buffer.concat(parts);
}

/** Names in the store's home that are temporary folders of the backend. */
function tempFolders(store: LayerStore): string[] {
  return fs.readdirSync(store.home).filter((n) => /-tmp-\d+-[0-9a-f]{8}$/.test(n));
}

const baseLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'file', name: 'Files/readme.txt', data: 'hello', securityDescriptor: sd },
  { type: 'directory', name: 'Files/dir' },
  { type: 'file', name: 'Files/dir/a.bin', data: Buffer.alloc(70_000, 5), streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]' }] },
  { type: 'link', name: 'Files/dir/a-link.bin', target: 'Files/dir/a.bin' },
  { type: 'directory', name: 'Hives' },
  { type: 'file', name: 'Hives/System_Delta', data: 'regf base', securityDescriptor: sd },
];

const uvmBaseLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'file', name: 'Files/Windows/notepad.exe', data: Buffer.alloc(4000, 0x4d), securityDescriptor: sd },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI', securityDescriptor: sd },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'base bcd', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD.LOG1', data: 'base log1' },
  { type: 'file', name: 'UtilityVM/Files/kernel', data: Buffer.alloc(9000, 9) },
  { type: 'file', name: 'UtilityVM/Files/gone.bin', data: 'to be deleted' },
];

/** On uvmBaseLayer: a file for the next layer to link to, a hive, and the UtilityVM cloned. */
const middleLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'file', name: 'Files/Windows/shared.dll', data: 'shared' },
  { type: 'directory', name: 'Hives' },
  { type: 'file', name: 'Hives/System_Delta', data: 'regf middle' },
  { type: 'directory', name: 'UtilityVM' },
];

/** On middleLayer: a deletion, links within the layer and into a parent, hives, a serviced UtilityVM. */
const topLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files' },
  { type: 'directory', name: 'Hives' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'whiteout', name: 'Files/Windows/notepad.exe' },
  { type: 'file', name: 'Files/Windows/new.dll', data: 'new', securityDescriptor: sd, streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]' }] },
  { type: 'link', name: 'Files/Windows/new-link.dll', target: 'Files/Windows/new.dll' },
  { type: 'link', name: 'Files/Windows/shared-link.dll', target: 'Files/Windows/shared.dll' },
  {
    type: 'file',
    name: 'Hives/System_Delta',
    data: Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) % 256)),
    securityDescriptor: sd,
    extendedAttributes: [{ name: 'HIVE.EA', value: Buffer.from([1, 2, 3]) }],
    streams: [{ name: 'log', data: 'hive ads' }],
  },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'serviced bcd', securityDescriptor: sd },
  { type: 'whiteout', name: 'UtilityVM/Files/gone.bin' },
  { type: 'file', name: 'UtilityVM/Files/added.sys', data: 'added' },
];

/** The restorers the sequence runs with. */
const restorers: { title: string; real: () => NativeHelper | undefined; needsHelper: boolean }[] = [
  { title: 'restores by the real helper', real: () => edgeAvailability.helper, needsHelper: true },
  { title: 'restores by the in-test restore', real: () => undefined, needsHelper: false },
];

for (const restorer of restorers) {
  const note = restorer.needsHelper ? skipNote() : '';
  describe(`native/edge-backend: the Windows sequence (${restorer.title})${note}`, function () {
    this.timeout(60_000);
    let real: NativeHelper | undefined;
    let vault: string;
    let store: LayerStore;
    let helper: RecordingHelper;
    let backend: NativeBackend;

    before(function () {
      real = restorer.needsHelper ? requireHelperOrSkip(this) : undefined;
    });
    beforeEach(async () => {
      store = await openStore();
      vault = path.join(path.dirname(store.home), 'hcs-vault');
      fs.mkdirSync(vault);
      helper = new RecordingHelper(real, vault);
      backend = createEdgeBackend({ helper, platform: 'win32' });
    });
    afterEach(() => {
      expect(helper.openHandles, 'restore handles left open').to.equal(0);
    });
    after(cleanupTemp);

    describe('a base layer without a UtilityVM', () => {
      it('enables the privileges, restores, then calls ProcessBaseImage on the staging directory, and nothing else', async () => {
        const tar = await buildLayerTar(baseLayer);
        await importWith(backend, store, 'base', tar);

        expect(helper.calls[0], 'first call').to.deep.include({ method: 'enablePrivileges', args: [[...LAYER_PRIVILEGES]] });
        expect(helper.callsOf('enablePrivileges')).to.have.length(1);
        const hcs = helper.hcsCalls();
        expect(hcs.map((c) => c.method)).to.deep.equal(['processBaseImage']);
        const staging = (hcs[0] as Call).args[0] as string;
        expect(path.dirname(staging)).to.equal(store.home);
        expect(path.basename(staging)).to.match(/^base-importing-/);
        expect(helper.lastIndexOf('restoreFinish')).to.be.lessThan(helper.indexOf('processBaseImage'));
        expect(helper.indexOf('processBaseImage'), 'ProcessBaseImage is the last call').to.equal(helper.calls.length - 1);
        // The layer as ProcessBaseImage sees it: the index, and every entry restored in place,
        // as hcsshim's base-layer writer leaves it: no transport format, no sidecar, no tombstones.
        const tree = (hcs[0] as Call).layerTree as string[];
        expect(tree).to.include.members([
          `${INDEX_DIR}/layer.json`,
          'Files',
          'Files/readme.txt',
          'Files/dir/a.bin',
          'Files/dir/a-link.bin',
          'Hives/System_Delta',
        ]);
        expect(tree.filter((rel) => rel.endsWith(WCIDIRS_SUFFIX) || rel === 'tombstones.txt')).to.deep.equal([]);
        // Every entry through BackupWrite with its security; directories opened after mkdir.
        expect(helper.callsOf('restoreCreate').map((c) => c.args.slice(1))).to.deep.equal([
          ['Files', true, true],
          ['Files/readme.txt', true, false],
          ['Files/dir', true, true],
          ['Files/dir/a.bin', true, false],
          ['Hives', true, true],
          ['Hives/System_Delta', true, false],
        ]);
        expect(helper.callsOf('restoreCreate').map((c) => path.relative(staging, c.args[0] as string))).to.deep.equal([
          'Files',
          'Files/readme.txt',
          'Files/dir',
          'Files/dir/a.bin',
          'Hives',
          'Hives/System_Delta',
        ]);
        // Directory times after every child exists, children first, before ProcessBaseImage.
        expect(helper.callsOf('setFileBasicInfo').map((c) => path.relative(staging, c.args[0] as string))).to.deep.equal(['Hives', 'Files/dir', 'Files']);
        expect(helper.lastIndexOf('setFileBasicInfo')).to.be.lessThan(helper.indexOf('processBaseImage'));
        const layer = store.layerPath('base');
        expect(fs.readFileSync(path.join(layer, 'Files/readme.txt'), 'utf8'), 'the file holds its data').to.equal('hello');
        expect(fs.statSync(path.join(layer, 'Files/dir/a-link.bin')).ino, 'the hard link is made in the layer').to.equal(fs.statSync(path.join(layer, 'Files/dir/a.bin')).ino);
        expect(store.stat('base').info.isBaseLayer).to.equal(true);
        expect(fs.existsSync(path.join(layer, 'blank.vhdx'))).to.equal(true);
      });

      it('exports without the Host Compute Service, as the tar it imported, reading each file with BackupRead', async () => {
        const tar = await buildLayerTar(baseLayer);
        await importWith(backend, store, 'base', tar);
        helper.reset();
        const exported = await exportWith(backend, store, 'base');
        expect(firstDifference(exported, tar), 'first differing byte').to.equal(-1);
        expect(helper.hcsCalls()).to.deep.equal([]);
        // As hcsshim's base-layer reader: under SeBackupPrivilege, whatever the file's DACL.
        const layer = store.layerPath('base');
        expect(helper.callsOf('backupReadOpen').map((c) => c.args)).to.deep.equal(
          ['Files/readme.txt', 'Files/dir/a.bin', 'Hives/System_Delta'].map((rel) => [path.join(layer, rel), false]),
        );
        expect(helper.callsOf('closeHandle')).to.have.length(3);
      });

      it('refuses a file that grows or shrinks between its stat and its BackupRead, with ERR_LAYER_CORRUPT', async () => {
        const tar = await buildLayerTar(baseLayer);
        await importWith(backend, store, 'base', tar);
        for (const delta of [3, -2]) {
          helper.readSizeChange = delta;
          const e = await rejection(async () => exportWith(backend, store, 'base'));
          expect(e.code, String(delta)).to.equal('ERR_LAYER_CORRUPT');
          expect(helper.callsOf('closeHandle').length, 'every BackupRead handle is closed').to.equal(helper.callsOf('backupReadOpen').length);
        }
      });

      it('reports a failed ProcessBaseImage with its code and leaves no layer', async () => {
        helper.fail = 'processBaseImage';
        const tar = await buildLayerTar(baseLayer);
        const before = fs.readdirSync(store.home);
        const e = await rejection(() => importWith(backend, store, 'base', tar));
        expect({ code: e.code, hresult: e.data.hresult, win32Error: e.data.win32Error, method: e.data.method }).to.deep.equal({
          code: 'ERR_NATIVE_CALL_FAILED',
          ...FAILURE,
          method: 'ProcessBaseImage',
        });
        expect(store.exists('base')).to.equal(false);
        expect(fs.readdirSync(store.home)).to.deep.equal(before);
      });
    });

    describe('a base layer with a UtilityVM', () => {
      it('sets the directories children first, then calls ProcessBaseImage, then ProcessUtilityImage on <layer>/UtilityVM', async () => {
        const tar = await buildLayerTar(uvmBaseLayer);
        await importWith(backend, store, 'base', tar);

        const hcs = helper.hcsCalls();
        const staging = (hcs[0] as Call).args[0] as string;
        expect(hcs.map((c) => [c.method, ...c.args])).to.deep.equal([
          ['processBaseImage', staging],
          ['processUtilityImage', path.join(staging, 'UtilityVM')],
        ]);
        expect(helper.indexOf('processUtilityImage'), 'ProcessUtilityImage is the last call').to.equal(helper.calls.length - 1);
        const times = helper.callsOf('setFileBasicInfo');
        expect(times.map((c) => path.relative(staging, c.args[0] as string))).to.deep.equal([
          'UtilityVM/Files/EFI/Microsoft/Boot',
          'UtilityVM/Files/EFI/Microsoft',
          'UtilityVM/Files/EFI',
          'UtilityVM/Files',
          'UtilityVM',
          'Files/Windows',
          'Files',
        ]);
        expect(helper.lastIndexOf('setFileBasicInfo')).to.be.lessThan(helper.indexOf('processBaseImage'));
        // UtilityVM files are restored with their security descriptors.
        expect(helper.callsOf('restoreCreate').every((c) => c.args[2] === true)).to.equal(true);
        expect(store.stat('base').info.hasUtilityVM).to.equal(true);
      });

      it('exports the BCD store as imported, from bcd.bak, although ProcessUtilityImage rewrote it', async () => {
        const tar = await buildLayerTar(uvmBaseLayer);
        await importWith(backend, store, 'base', tar);
        const bcd = path.join(store.layerPath('base'), 'UtilityVM/Files/EFI/Microsoft/Boot/BCD');
        expect(fs.readFileSync(bcd, 'utf8')).to.equal(bcdRewrittenIn(path.join(store.layerPath('base'), 'UtilityVM')));
        const exported = await exportWith(backend, store, 'base');
        expect(firstDifference(exported, tar), 'first differing byte').to.equal(-1);
      });
    });

    describe('a delta layer', () => {
      let tars: { base: Buffer; middle: Buffer; top: Buffer };
      before(async () => {
        tars = { base: await buildLayerTar(uvmBaseLayer), middle: await buildLayerTar(middleLayer), top: await buildLayerTar(topLayer) };
      });

      async function importChain(): Promise<void> {
        await importWith(backend, store, 'base', tars.base);
        await importWith(backend, store, 'middle', tars.middle, 'base');
        helper.plant = ['Files/Windows/notepad.exe'];
        helper.reset();
        await importWith(backend, store, 'top', tars.top, 'middle');
      }

      it('calls ImportLayer with a sibling import folder and the parents nearest first, then deletions, links, directory times and ProcessUtilityImage', async () => {
        await importChain();
        const [imp, uvm, ...more] = helper.hcsCalls();
        expect(more).to.deep.equal([]);
        const [staging, folder, parents] = (imp as Call).args as [string, string, string[]];
        expect((imp as Call).method).to.equal('importLayer');
        expect(parents).to.deep.equal([store.layerPath('middle'), store.layerPath('base')]);
        expect(path.dirname(folder), 'the import folder is on the layer volume').to.equal(store.home);
        expect(path.basename(folder).startsWith(path.basename(staging) + '-tmp-')).to.equal(true);
        expect(ownerAlive(path.basename(folder)), "a store cleanup leaves a running import's folder alone").to.equal(true);
        expect(path.basename(staging)).to.match(/^top-importing-/);
        expect([(uvm as Call).method, ...(uvm as Call).args]).to.deep.equal(['processUtilityImage', path.join(staging, 'UtilityVM')]);

        // The import folder: the transport format of Files and Hives, nothing else.
        const inFolder = (imp as Call).folderTree as string[];
        expect(inFolder).to.include.members(['Files', `Files${WCIDIRS_SUFFIX}`, 'Hives', `Hives${WCIDIRS_SUFFIX}`, 'Files/Windows/new.dll', 'Hives/System_Delta']);
        for (const absent of ['tombstones.txt', 'Files/Windows/new-link.dll', 'Files/Windows/shared-link.dll', INDEX_DIR]) expect(inFolder).not.to.include(absent);
        // The layer at the call: the index, the UtilityVM and the BCD copies; not the transport part.
        const inLayer = (imp as Call).layerTree as string[];
        expect(inLayer).to.include.members([`${INDEX_DIR}/layer.json`, 'UtilityVM/Files/added.sys', 'UtilityVM/Files/kernel', 'bcd.bak']);
        for (const absent of ['Files', 'Hives', 'tombstones.txt', 'UtilityVM/Files/gone.bin']) expect(inLayer).not.to.include(absent);

        // Before ImportLayer: the times of the folder's files, attributes left alone.
        const iImport = helper.indexOf('importLayer');
        const folderTimes = helper.calls.slice(0, iImport).filter((c) => c.method === 'setFileBasicInfo');
        expect(folderTimes.map((c) => path.relative(folder, c.args[0] as string))).to.deep.equal([
          `Files${WCIDIRS_SUFFIX}`,
          `Hives${WCIDIRS_SUFFIX}`,
          `Files/Windows${WCIDIRS_SUFFIX}`,
          'Files/Windows/new.dll',
        ]);
        expect(folderTimes.every((c) => (c.args[1] as FileBasicInfo).fileAttributes === 0)).to.equal(true);
        expect(helper.lastIndexOf('restoreFinish')).to.be.lessThan(iImport);

        // After it: the links, in the layer, from this layer or the parent that holds the target.
        const after = helper.calls.slice(iImport + 1);
        expect(after.filter((c) => c.method === 'createHardLink').map((c) => c.args)).to.deep.equal([
          [path.join(staging, 'Files/Windows/new-link.dll'), path.join(staging, 'Files/Windows/new.dll')],
          [path.join(staging, 'Files/Windows/shared-link.dll'), path.join(store.layerPath('middle'), 'Files/Windows/shared.dll')],
        ]);
        // Then every directory entry's times, children first, then ProcessUtilityImage.
        const iLastLink = helper.lastIndexOf('createHardLink');
        const dirTimes = helper.calls.slice(iLastLink + 1).filter((c) => c.method === 'setFileBasicInfo');
        expect(dirTimes.map((c) => path.relative(staging, c.args[0] as string))).to.deep.equal(['UtilityVM/Files', 'Files/Windows', 'Hives', 'Files']);
        expect(helper.indexOf('processUtilityImage')).to.equal(helper.calls.length - 1);

        // The committed layer: deletion applied, links made, folder gone, parents' BCD stores untouched.
        const top = store.layerPath('top');
        expect(fs.existsSync(path.join(top, 'Files/Windows/notepad.exe')), 'the deletion is applied').to.equal(false);
        expect(fs.statSync(path.join(top, 'Files/Windows/new-link.dll')).ino).to.equal(fs.statSync(path.join(top, 'Files/Windows/new.dll')).ino);
        expect(fs.statSync(path.join(top, 'Files/Windows/shared-link.dll')).ino).to.equal(fs.statSync(path.join(store.layerPath('middle'), 'Files/Windows/shared.dll')).ino);
        expect(fs.existsSync(folder)).to.equal(false);
        expect(tempFolders(store)).to.deep.equal([]);
        for (const id of ['base', 'middle', 'top']) {
          // Each layer's BCD store was rewritten by its own ProcessUtilityImage only: clones copy it.
          const uvmDir = path.join(store.layerPath(id), 'UtilityVM');
          expect(fs.readFileSync(path.join(uvmDir, 'Files/EFI/Microsoft/Boot/BCD'), 'utf8'), id).to.equal(bcdRewrittenIn(uvmDir));
        }
      });

      it('keeps the metadata index the portable backend writes, so layer.json, digest and size are the same', async () => {
        await importChain();
        const portable = await openStore();
        await importWith(portableBackend, portable, 'base', tars.base);
        await importWith(portableBackend, portable, 'middle', tars.middle, 'base');
        await importWith(portableBackend, portable, 'top', tars.top, 'middle');
        // The base layer's Files/ and Hives/ were restored in place: their records say so, and
        // their other sub-streams are in streams.bin rather than in transport files.
        const direct = fs
          .readFileSync(path.join(store.layerPath('base'), INDEX_DIR, 'entries.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { name: string; direct?: boolean })
          .filter((r) => r.name === 'Files' || r.name.startsWith('Files/'));
        expect(direct.length).to.be.greaterThan(0);
        expect(direct.every((r) => r.direct === true)).to.equal(true);
        expect(firstDifference(fs.readFileSync(path.join(store.layerPath('base'), INDEX_DIR, 'layer.json')), fs.readFileSync(path.join(portable.layerPath('base'), INDEX_DIR, 'layer.json')))).to.equal(-1);
        for (const id of ['middle', 'top']) {
          for (const file of ['layer.json', 'entries.jsonl', 'streams.bin']) {
            const got = fs.readFileSync(path.join(store.layerPath(id), INDEX_DIR, file));
            const want = fs.readFileSync(path.join(portable.layerPath(id), INDEX_DIR, file));
            expect(firstDifference(got, want), `${id}/${file}: first differing byte`).to.equal(-1);
          }
        }
        expect(store.stat('top').info).to.deep.equal(portable.stat('top').info);
      });

      it('exports through ExportLayer into a sibling folder with the parents, reading the tar it imported from it', async () => {
        await importChain();
        helper.reset();
        const exported = await exportWith(backend, store, 'top');
        const hcs = helper.hcsCalls();
        expect(hcs.map((c) => c.method)).to.deep.equal(['exportLayer']);
        const [layer, folder, parents] = (hcs[0] as Call).args as [string, string, string[]];
        expect(layer).to.equal(store.layerPath('top'));
        expect(parents).to.deep.equal([store.layerPath('middle'), store.layerPath('base')]);
        expect(path.dirname(folder)).to.equal(store.home);
        // A name the store's cleanup removes once its owner is gone, and not before.
        expect(path.basename(folder)).to.match(/^top-importing-export-tmp-\d+-[0-9a-f]{8}$/);
        expect(ownerAlive(path.basename(folder))).to.equal(true);
        expect((hcs[0] as Call).folderTree, 'ExportLayer gets an empty folder').to.deep.equal([]);
        expect(firstDifference(exported, tars.top), 'first differing byte').to.equal(-1);
        expect(fs.existsSync(folder)).to.equal(false);
        expect(tempFolders(store)).to.deep.equal([]);
        // The layer's own files (the UtilityVM it serviced, the BCD backup served for the BCD
        // store) are read with BackupRead, without security, as hcsshim reads them; nothing
        // in the export folder is (its transport files are plain bytes).
        const top = store.layerPath('top');
        expect(helper.callsOf('backupReadOpen').map((c) => c.args)).to.deep.equal([
          [path.join(top, 'bcd.bak'), false],
          [path.join(top, 'UtilityVM/Files/added.sys'), false],
        ]);
        expect(helper.callsOf('closeHandle')).to.have.length(2);
      });

      it('reads the top-level Files and Hives with BackupRead, without security, when ExportLayer wrote no sidecar for them', async () => {
        await importChain();
        helper.reset();
        helper.exportTopSidecars = false;
        const exported = await exportWith(backend, store, 'top');
        const folder = (helper.hcsCalls()[0] as Call).args[1] as string;
        const top = store.layerPath('top');
        expect(helper.callsOf('backupReadOpen').map((c) => c.args)).to.deep.equal([
          [path.join(folder, 'Files'), false],
          [path.join(folder, 'Hives'), false],
          [path.join(top, 'bcd.bak'), false],
          [path.join(top, 'UtilityVM/Files/added.sys'), false],
        ]);
        expect(helper.callsOf('closeHandle')).to.have.length(4);
        expect(firstDifference(exported, tars.top), 'first differing byte').to.equal(-1);
      });

      it('reports a failed ExportLayer with its code and removes the export folder', async () => {
        await importChain();
        helper.fail = 'exportLayer';
        const e = await rejection(() => exportWith(backend, store, 'top'));
        expect({ code: e.code, hresult: e.data.hresult, win32Error: e.data.win32Error }).to.deep.equal({ code: 'ERR_NATIVE_CALL_FAILED', ...FAILURE });
        expect(tempFolders(store)).to.deep.equal([]);
      });

      it('reports a failed ImportLayer with its code, removes the import folder and leaves nothing that looks like a layer', async () => {
        await importWith(backend, store, 'base', tars.base);
        await importWith(backend, store, 'middle', tars.middle, 'base');
        helper.fail = 'importLayer';
        helper.reset();
        const stage = await store.beginImport('top');
        const e = await rejection(() =>
          backend.writeLayer({ root: stage.path, parents: store.chainFor('middle'), source: feedInChunks(tars.top, 64 * 1024), id: 'top' }),
        );
        expect({ code: e.code, hresult: e.data.hresult, win32Error: e.data.win32Error, method: e.data.method }).to.deep.equal({
          code: 'ERR_NATIVE_CALL_FAILED',
          ...FAILURE,
          method: 'ImportLayer',
        });
        expect(helper.hcsCalls().map((c) => c.method)).to.deep.equal(['importLayer']);
        expect(helper.callsOf('createHardLink')).to.deep.equal([]);
        const folder = (helper.hcsCalls()[0] as Call).args[1] as string;
        expect(fs.existsSync(folder), 'the import folder').to.equal(false);
        expect(tempFolders(store)).to.deep.equal([]);
        const left = listTree(stage.path);
        for (const absent of [INDEX_DIR, 'Files', 'Hives', 'tombstones.txt']) expect(left, 'left in the staging directory').not.to.include(absent);
        expect(store.exists('top')).to.equal(false);
        await store.abort(stage);

        // Through the store: the same error, and the store as it was.
        const before = fs.readdirSync(store.home).sort();
        const again = await rejection(() => importWith(backend, store, 'top', tars.top, 'middle'));
        expect(again.code).to.equal('ERR_NATIVE_CALL_FAILED');
        expect(fs.readdirSync(store.home).sort()).to.deep.equal(before);
      });
    });

    describe('other platforms', () => {
      it('keeps the portable layout and makes no Host Compute Service call', async () => {
        const linux = createEdgeBackend({ helper, platform: 'linux' });
        const tar = await buildLayerTar(uvmBaseLayer);
        await importWith(linux, store, 'base', tar);
        await importWith(linux, store, 'middle', await buildLayerTar(middleLayer), 'base');
        const exported = await exportWith(linux, store, 'base');
        expect(helper.hcsCalls()).to.deep.equal([]);
        expect(fs.existsSync(path.join(store.layerPath('middle'), `Files${WCIDIRS_SUFFIX}`))).to.equal(true);
        expect(firstDifference(exported, tar)).to.equal(-1);
      });
    });
  });
}
