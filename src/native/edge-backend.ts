/**
 * The edge backend: the portable store's layout and index, with the files outside Files/
 * (Hives/, UtilityVM/) restored by the C# helper instead of node:fs. On Windows the helper
 * restores them with BackupWrite on a backup-semantics handle, so the OS applies security
 * descriptors, EAs, ADS and reparse data; on Mono it restores with portable semantics.
 * Either way the layer writer keeps the non-data sub-streams from its own parse, as they
 * come (none is held whole: an alternate data stream may be gigabytes), so the metadata
 * index is byte-identical to the portable backend's (test/native/conformance).
 *
 * Files/ of a delta layer is written by the layer writer: the transport format is a byte
 * layout, not a restore. Off Windows that is the whole import, and export is the portable
 * reader (which reads a base layer restored in place too: `restoreBaseLayersInPlace`).
 *
 * On Windows (`platform === 'win32'`, checked at run time) the layer is then handed to
 * the Host Compute Service, in the order hcsshim's layer writer and reader use
 * (docs/windows.md, "The Windows sequence"):
 * - a delta layer: the transport part (Files, Hives, their sidecars) moves into a sibling
 *   import folder, which `ImportLayer(layer, folder, parents)` turns into the layer;
 *   deletions, hard links below Files/ and directory times are then applied in the layer,
 *   and `ProcessUtilityImage(layer\UtilityVM)` runs when it has one (legacyLayerWriter);
 * - a base layer: every entry, Files/ and Hives/ included, is restored in place with
 *   BackupWrite (files created, directories made then opened; security restored), as
 *   hcsshim's baseLayerWriter does; then directory times, `ProcessBaseImage(layer)`, and
 *   `ProcessUtilityImage(layer\UtilityVM)` when it has one (baseLayerWriter.Close);
 * - exporting a delta layer: `ExportLayer(layer, folder, parents)` into a sibling folder,
 *   whose transport-format files are read in the order and with the times the metadata
 *   index keeps (legacyLayerReader reads the same folder).
 * The metadata index (.winlayer/) stays in the layer directory throughout.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tarFromLayerEntries } from '../convert/export-tar.js';
import { writeLayerFromTar } from '../convert/import-tar.js';
import { createError, isWinLayerError, layerFileError, type WinLayerError } from '../errors.js';
import { BackupStreamId } from '../backup/constants.js';
import { BackupStreamParser } from '../backup/parser.js';
import { itemFromRecord, readLayerEntries, type ByteRange, type ExportItem } from '../layer/layer-reader.js';
import { isTransportRecord, TransportLayerWriter, type HostRestorer, type LayerWriteResult, type RestoreTarget } from '../layer/layer-writer.js';
import {
  INDEX_DIR,
  infoFromRecord,
  readIndexEntries,
  readIndexEntriesSync,
  readLayerInfo,
  STREAMS_FILE,
  type IndexEntry,
  type LayerInfo,
} from '../layer/metadata-index.js';
import { TOMBSTONES_FILE } from '../layer/tombstones.js';
import { MUTATED_UTILITY_VM_FILES } from '../layer/utility-vm.js';
import { IMPORTING_INFIX, LAYER_CHAIN_FILE } from '../store/layer-store.js';
import { readTar } from '../tar/reader.js';
import { writeAll } from '../util/lines.js';
import { caseFoldKey, WCIDIRS_SUFFIX } from '../util/safe-path.js';
import { FILE_ATTRIBUTE_DIRECTORY, type FileBasicInfo } from '../util/windows.js';
import type { NativeBackend, ReadLayerRequest, WriteLayerRequest, WriteLayerResult } from './backend.js';
import { LAYER_PRIVILEGES, loadNativeHelper, type NativeHelper, type NativeHelperOptions } from './edge.js';
import { DigestingSource, portableBackend, readFileRange } from './portable.js';
import { removeTreeSync } from '../util/remove-tree.js';

/** Bytes gathered in JavaScript before one call crosses the bridge. */
export const DEFAULT_BRIDGE_CHUNK_BYTES = 64 * 1024;

/** The helper calls the edge backend makes: a {@link NativeHelper}, or anything shaped like one. */
export type EdgeHelper = Pick<
  NativeHelper,
  | 'info'
  | 'enablePrivileges'
  | 'restoreCreate'
  | 'restoreWrite'
  | 'restoreFinish'
  | 'restoreAbort'
  | 'backupReadOpen'
  | 'backupReadChunk'
  | 'closeHandle'
  | 'setFileBasicInfo'
  | 'createHardLink'
  | 'importLayer'
  | 'exportLayer'
  | 'processBaseImage'
  | 'processUtilityImage'
>;

export interface EdgeBackendOptions {
  /** The helper to use; by default it is loaded on the first import. */
  readonly helper?: EdgeHelper | undefined;
  /** How to load the helper when `helper` is not given. */
  readonly helperOptions?: NativeHelperOptions | undefined;
  /**
   * Small writes are coalesced up to this many bytes per call (a call costs far more than
   * a copy); larger writes cross as they are. 4 KiB to 16 MiB. @default 65536
   */
  readonly chunkBytes?: number | undefined;
  /**
   * The platform whose layer sequence runs: 'win32' adds the Host Compute Service calls
   * (ImportLayer, ExportLayer, ProcessBaseImage, ProcessUtilityImage); anything else is
   * the portable layout alone. @default process.platform
   */
  readonly platform?: NodeJS.Platform | undefined;
  /**
   * Restore a base layer's Files/ and Hives/ in place through the helper (hcsshim's base-layer
   * writer) instead of writing them in the transport format. Windows needs it: ProcessBaseImage
   * reads the real files. Elsewhere it gives the same exports, so the helper's directory and
   * file restores can be checked on Mono. @default platform === 'win32'
   */
  readonly restoreBaseLayersInPlace?: boolean | undefined;
}

/** A restore in the helper, fed through a coalescing buffer. */
class EdgeRestoreTarget implements RestoreTarget {
  readonly #helper: EdgeHelper;
  readonly #handle: number;
  readonly #entry: string;
  readonly #buf: Buffer;
  #used = 0;
  #isOpen = true;

  constructor(helper: EdgeHelper, handle: number, entry: string, chunkBytes: number) {
    this.#helper = helper;
    this.#handle = handle;
    this.#entry = entry;
    this.#buf = Buffer.allocUnsafe(chunkBytes);
  }

  write(chunk: Buffer): void {
    if (chunk.length >= this.#buf.length) {
      this.#flush();
      this.#send(chunk);
      return;
    }
    if (this.#used + chunk.length > this.#buf.length) this.#flush();
    chunk.copy(this.#buf, this.#used);
    this.#used += chunk.length;
  }

  finish(info: FileBasicInfo): { dataSize: number } {
    this.#flush();
    // The helper closes the handle whether or not finishing succeeds.
    this.#isOpen = false;
    try {
      return this.#helper.restoreFinish(this.#handle, info);
    } catch (error) {
      throw naming(error, this.#entry);
    }
  }

  abort(): void {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    this.#helper.restoreAbort(this.#handle);
  }

  #flush(): void {
    if (this.#used === 0) return;
    // edge-js copies the bytes into a CLR array during the call, so the buffer is free again after it.
    this.#send(this.#buf.subarray(0, this.#used));
    this.#used = 0;
  }

  #send(chunk: Buffer): void {
    try {
      this.#helper.restoreWrite(this.#handle, chunk);
    } catch (error) {
      // A failed write closes the handle in the helper.
      this.#isOpen = false;
      throw naming(error, this.#entry);
    }
  }
}

/**
 * `error` with `data.entry`: the helper names the entry of a file it writes itself, a
 * Win32 call's failure (BackupWrite on a full disk) names none.
 */
function naming(error: unknown, entry: string): unknown {
  if (!isWinLayerError(error) || error.data['entry'] !== undefined) return error;
  return createError(error.code, error.message.includes(entry) ? error.message : `${entry}: ${error.message}`, { ...error.data, entry }, error);
}

/**
 * Restores through the helper. Hives/ without security, as hcsshim's legacy writer does,
 * except in a base layer on Windows, which hcsshim's base writer restores whole with it.
 */
class EdgeRestorer implements HostRestorer {
  readonly #helper: EdgeHelper;
  readonly #chunkBytes: number;
  readonly #hivesWithSecurity: boolean;

  constructor(helper: EdgeHelper, chunkBytes: number, hivesWithSecurity: boolean) {
    this.#helper = helper;
    this.#chunkBytes = chunkBytes;
    this.#hivesWithSecurity = hivesWithSecurity;
  }

  create(file: string, entry: string): RestoreTarget {
    return new EdgeRestoreTarget(this.#helper, this.#open(file, entry, false), entry, this.#chunkBytes);
  }

  createDirectory(dir: string, entry: string): RestoreTarget {
    return new EdgeRestoreTarget(this.#helper, this.#open(dir, entry, true), entry, this.#chunkBytes);
  }

  #open(file: string, entry: string, directory: boolean): number {
    try {
      return this.#helper.restoreCreate(file, entry, this.#processSecurity(entry), directory);
    } catch (error) {
      throw naming(error, entry);
    }
  }

  #processSecurity(entry: string): boolean {
    return this.#hivesWithSecurity || !isHivesName(entry);
  }
}

const MIN_CHUNK_BYTES = 4 * 1024;
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** BackupRead chunk size when a directory of an export folder is read through the helper. */
const BACKUP_READ_CHUNK_BYTES = 1024 * 1024;

/**
 * What the legacy writer puts in the import folder and ImportLayer consumes: Files and
 * Hives, with the sidecars of both top-level directories (FORMATS.md §3.2).
 */
const IMPORT_FOLDER_NAMES = ['Files', 'Files' + WCIDIRS_SUFFIX, 'Hives', 'Hives' + WCIDIRS_SUFFIX] as const;

/** An edge backend; the helper is loaded (and its absence reported) on the first import. */
export function createEdgeBackend(options: EdgeBackendOptions = {}): NativeBackend {
  const chunkBytes = options.chunkBytes ?? DEFAULT_BRIDGE_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}, not ${chunkBytes}`);
  }
  const onWindows = (options.platform ?? process.platform) === 'win32';
  const baseInPlace = options.restoreBaseLayersInPlace ?? onWindows;
  let helper: EdgeHelper | undefined;
  const getHelper = (): EdgeHelper => {
    if (helper !== undefined) return helper;
    const h = options.helper ?? loadNativeHelper(options.helperOptions);
    // As windowsfilter's writer: backup, restore and security privileges before the first
    // restore or HCS call, for the whole (single-purpose worker) process; see docs/windows.md.
    if (onWindows || h.info().platform === 'windows') h.enablePrivileges(LAYER_PRIVILEGES);
    helper = h;
    return h;
  };

  return {
    name: 'edge',

    async writeLayer(req: WriteLayerRequest): Promise<WriteLayerResult> {
      const h = getHelper();
      const isBaseLayer = req.parents.length === 0;
      const restorer = new EdgeRestorer(h, chunkBytes, onWindows && isBaseLayer);
      const source = new DigestingSource(req.source);
      const writer = new TransportLayerWriter({
        root: req.root,
        parents: req.parents,
        durable: false,
        restorer,
        restoreInPlace: baseInPlace && isBaseLayer,
      });
      let result: WriteLayerResult;
      let written: LayerWriteResult;
      try {
        const r = await writeLayerFromTar(readTar(source), writer, {
          signal: req.signal,
          onProgress: req.onProgress,
          bytesRead: () => source.bytes,
        });
        await writer.settled();
        const digest = source.digest();
        written = writer.close({ id: req.id, size: r.size, entries: r.entries, digest });
        await writer.flushed();
        result = { size: r.size, entries: r.entries, digest };
      } catch (error) {
        const reported = await writer.reportedFailure(error);
        writer.abort();
        throw reported;
      }
      if (!onWindows) return result;
      try {
        if (isBaseLayer) await finishBaseLayer(h, req, written.hasUtilityVM);
        else await importDeltaLayer(h, req, written.hasUtilityVM);
      } catch (error) {
        // No index, no layer: whatever the failed call left in the directory is not one.
        removeTreeSync(path.join(req.root, INDEX_DIR));
        throw error;
      }
      return result;
    },

    readLayer(req: ReadLayerRequest): AsyncGenerator<Buffer> {
      if (!onWindows) return portableBackend.readLayer(req);
      return readWindowsLayer(getHelper, req);
    },
  };
}

/** The edge backend with the helper from this package's dotnet/bin. */
export const edgeBackend: NativeBackend = createEdgeBackend();

// ---- the Windows sequence -------------------------------------------------------------

/**
 * hcsshim's baseLayerWriter.Close: directory times (children first), ProcessBaseImage on
 * the layer, then ProcessUtilityImage on its UtilityVM. The writer made the directories
 * with mkdir and restored their streams; their full FILE_BASIC_INFO (creation and change
 * times, attributes) is set here, after every child exists. A directory written in the
 * transport format (when the layer was not restored in place) is a placeholder next to its
 * sidecar, and is left alone.
 */
async function finishBaseLayer(helper: EdgeHelper, req: WriteLayerRequest, hasUtilityVM: boolean): Promise<void> {
  const records = layerRecords(req.root);
  const dirs = records.filter((r) => isDirectoryRecord(r) && r.inherited !== true && !isTransportRecord(r));
  for (let i = dirs.length - 1; i >= 0; i--) {
    const d = dirs[i] as IndexEntry;
    helper.setFileBasicInfo(hostPath(req.root, d), infoFromRecord(d));
  }
  throwIfCanceled(req.signal);
  await helper.processBaseImage(req.root);
  if (hasUtilityVM) await processUtilityVM(helper, req.root, req.signal);
}

/**
 * hcsshim's legacyLayerWriterWrapper.Close, on what the layer writer left in `req.root`:
 * the import folder is the transport part of it, moved into a sibling folder; UtilityVM/,
 * the bcd*.bak copies and the metadata index stay in the layer, where the legacy writer
 * (and moby) write them too.
 */
async function importDeltaLayer(helper: EdgeHelper, req: WriteLayerRequest, hasUtilityVM: boolean): Promise<void> {
  const root = req.root;
  const records = layerRecords(root);
  const folder = makeSiblingFolder(root);
  try {
    for (const name of IMPORT_FOLDER_NAMES) moveIfPresent(path.join(root, name), path.join(folder, name));
    // Deletions are applied in the layer after the import, as hcsshim does since 2018: a
    // tombstones.txt in the import folder is removed there too.
    fs.rmSync(path.join(root, TOMBSTONES_FILE), { force: true });
    // Hard links below Files/ wait for the import too: in the folder they would be two
    // names for one transport file, or a parent's real file read as transport content.
    const links = records.filter((r) => r.kind === 'link' && isFilesName(r.name));
    for (const l of links) fs.rmSync(hostPath(folder, l), { force: true });
    // ImportLayer takes each entry's times from its file in the folder (the content file,
    // or a directory's sidecar); the attributes are in the content, so they are left alone.
    for (const r of records) {
      if (!isTransportRecord(r) || !isEntryRecord(r)) continue;
      helper.setFileBasicInfo(transportFile(folder, r), { ...infoFromRecord(r), fileAttributes: 0 });
    }
    throwIfCanceled(req.signal);
    await helper.importLayer(root, folder, req.parents);

    for (const r of records) {
      if (r.kind === 'whiteout' && isFilesName(r.name)) removeOne(path.join(root, r.name));
    }
    const added = new Map<string, IndexEntry>();
    for (const r of records) if (r.kind !== 'whiteout' && r.inherited !== true) added.set(caseFoldKey(r.name), r);
    for (const l of links) {
      const from = linkSource(l, added, root, req.parents);
      const to = hostPath(root, l);
      removeOne(to);
      helper.createHardLink(to, from);
    }
    // Deletions and links moved the times of their directories: every directory entry of
    // the layer gets its own back, children first (hcsshim's changedDi).
    const dirs = records.filter((r) => isDirectoryRecord(r) && r.inherited !== true && r.name !== 'UtilityVM');
    for (let i = dirs.length - 1; i >= 0; i--) {
      const d = dirs[i] as IndexEntry;
      helper.setFileBasicInfo(hostPath(root, d), infoFromRecord(d));
    }
    if (hasUtilityVM) await processUtilityVM(helper, root, req.signal);
  } finally {
    removeTreeSync(folder);
  }
}

/** ProcessUtilityImage on `<layer>/UtilityVM`, which must not be a reparse point. */
async function processUtilityVM(helper: EdgeHelper, root: string, signal: AbortSignal | undefined): Promise<void> {
  const uvm = path.join(root, 'UtilityVM');
  if (fs.lstatSync(uvm).isSymbolicLink()) {
    throw createError('ERR_PATH_THROUGH_LINK', `${uvm} is a reparse point`, { entry: 'UtilityVM' });
  }
  throwIfCanceled(signal);
  await helper.processUtilityImage(uvm);
}

/**
 * The layer as a tar, on Windows. A base layer is read from its index, in import order:
 * the data of each file through BackupRead (backupDataReader), the other sub-streams
 * (kept verbatim at import) from the index; hcsshim's baseLayerReader would BackupRead
 * them all back, which gives the same streams but not the tar's order. A delta layer is exported by the Host Compute
 * Service into a sibling folder, as hcsshim's NewLayerReader does, since after ImportLayer
 * its Files/ holds the files themselves.
 */
async function* readWindowsLayer(getHelper: () => EdgeHelper, req: ReadLayerRequest): AsyncGenerator<Buffer> {
  const helper = getHelper();
  const root = req.root;
  const info = readLayerInfo(root);
  const options = { signal: req.signal, onProgress: req.onProgress };
  const readRange = backupDataReader(helper, root);
  if (info.isBaseLayer) {
    yield* tarFromLayerEntries(withOriginalBcd(root, readLayerEntries(root, info)), readRange, options);
    return;
  }
  const parents = readLayerChain(root);
  const folder = makeSiblingFolder(root);
  try {
    throwIfCanceled(req.signal);
    await helper.exportLayer(root, folder, parents);
    yield* tarFromLayerEntries(withOriginalBcd(root, exportedEntries(helper, root, folder, info)), readRange, options);
  } finally {
    removeTreeSync(folder);
  }
}

/**
 * The entries of a delta layer, with the bytes of Files/ and Hives/ from the export
 * folder. ExportLayer writes only the transport format, so the tar order, the exact times,
 * the hard links and the deletions come from the metadata index, and the sub-streams of
 * Hives/ files other than their data from its streams.bin. UtilityVM/ is not part of the
 * transport format: it is read from the layer, where the writer restored it.
 */
async function* exportedEntries(helper: EdgeHelper, root: string, folder: string, info: LayerInfo): AsyncGenerator<ExportItem> {
  const merged = new Map<string, IndexEntry>();
  for (const m of info.merged ?? []) merged.set(m.name, m);
  const streamsFile = path.join(root, INDEX_DIR, STREAMS_FILE);
  for await (const record of readIndexEntries(root)) {
    if (record.inherited === true) continue;
    const r = merged.get(record.name) ?? record;
    if (isUtilityVMName(r.name)) {
      yield itemFromRecord(root, streamsFile, r);
      continue;
    }
    if ((r.name === 'Files' || r.name === 'Hives') && isDirectoryRecord(r)) writeMissingSidecar(helper, folder, r);
    yield itemFromRecord(folder, streamsFile, r);
  }
}

/**
 * The legacy reader reads the top-level Files and Hives directories of an export folder
 * with BackupRead (without security), not from a sidecar. When ExportLayer wrote none,
 * one is made from that stream and the attributes in the index.
 */
function writeMissingSidecar(helper: EdgeHelper, folder: string, r: IndexEntry): void {
  const dir = hostPath(folder, r);
  const sidecar = dir + WCIDIRS_SUFFIX;
  if (fs.existsSync(sidecar) || !fs.existsSync(dir)) return;
  const fd = fs.openSync(sidecar, 'wx');
  try {
    const attrs = Buffer.alloc(4);
    attrs.writeUInt32LE((r.attributes ?? FILE_ATTRIBUTE_DIRECTORY) >>> 0, 0);
    writeAll(fd, attrs);
    const handle = helper.backupReadOpen(dir, false);
    try {
      for (;;) {
        const chunk = helper.backupReadChunk(handle, BACKUP_READ_CHUNK_BYTES);
        if (chunk.length === 0) break;
        writeAll(fd, chunk);
      }
    } finally {
      helper.closeHandle(handle);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * How the data of a layer's own files is read on Windows: a whole file under the layer
 * directory (a file restored in place, a UtilityVM file, a BCD backup) through BackupRead
 * on a backup-semantics handle, as hcsshim's readers do, so a file whose DACL shuts out
 * the worker's account still exports under SeBackupPrivilege; its DATA sub-stream is what
 * the tar gets (the other sub-streams come from the index). Everything else (transport
 * files in an export folder, the index's streams.bin, bytes already in memory) is read
 * with node:fs.
 */
function backupDataReader(helper: EdgeHelper, root: string): (range: ByteRange) => AsyncGenerator<Buffer> {
  const index = path.join(root, INDEX_DIR) + path.sep;
  return (range) => {
    const own = range.bytes === undefined && range.offset === 0 && range.file.startsWith(root + path.sep) && !range.file.startsWith(index);
    return own ? readDataThroughBackup(helper, range) : readFileRange(range);
  };
}

async function* readDataThroughBackup(helper: EdgeHelper, range: ByteRange): AsyncGenerator<Buffer> {
  const handle = helper.backupReadOpen(range.file, false);
  try {
    let taken: Buffer[] = [];
    let inData = false;
    let seen = 0;
    const parser = new BackupStreamParser(
      {
        header: (h) => {
          inData = h.id === BackupStreamId.Data;
        },
        data: (chunk) => {
          if (!inData) return;
          // A view of the chunk the helper handed over, which nothing reuses.
          taken.push(chunk);
          seen += chunk.length;
        },
      },
      { entryName: range.file },
    );
    const changed = (): WinLayerError =>
      createError('ERR_LAYER_CORRUPT', `${range.file}: changed while being exported (${seen} data bytes read, ${range.length} expected)`, { path: range.file });
    for (;;) {
      const chunk = helper.backupReadChunk(handle, BACKUP_READ_CHUNK_BYTES);
      if (chunk.length === 0) break;
      parser.write(chunk);
      if (seen > range.length) throw changed();
      if (taken.length > 0) {
        yield* taken;
        taken = [];
      }
    }
    parser.end();
    if (seen !== range.length) throw changed();
  } finally {
    helper.closeHandle(handle);
  }
}

/**
 * ProcessUtilityImage rewrites the four BCD files; the writer kept their tar bytes in
 * `<layer>/bcd*.bak`, which are served instead, as windowsfilter's DiffGetter does.
 */
async function* withOriginalBcd(root: string, items: AsyncIterable<ExportItem>): AsyncGenerator<ExportItem> {
  for await (const item of items) {
    const backup = item.kind === 'entry' && item.data !== undefined ? MUTATED_UTILITY_VM_FILES.get(item.name) : undefined;
    if (backup === undefined || item.kind !== 'entry') {
      yield item;
      continue;
    }
    const file = path.join(root, backup);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    yield st === undefined ? item : { ...item, data: { file, offset: 0, length: st.size } };
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** The index records of a layer, a repeated directory's by its later metadata. */
function layerRecords(root: string): IndexEntry[] {
  const merged = new Map<string, IndexEntry>();
  for (const m of readLayerInfo(root).merged ?? []) merged.set(m.name, m);
  return readIndexEntriesSync(root).map((r) => merged.get(r.name) ?? r);
}

/** The parent chain the store recorded at commit (layerchain.json), nearest first. */
function readLayerChain(root: string): string[] {
  const file = path.join(root, LAYER_CHAIN_FILE);
  let chain: unknown;
  try {
    chain = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (cause) {
    throw layerFileError(cause, `${root}: a delta layer needs its ${LAYER_CHAIN_FILE} to be exported`, { path: root });
  }
  if (!Array.isArray(chain) || chain.length === 0 || !chain.every((p) => typeof p === 'string')) {
    throw createError('ERR_LAYER_CORRUPT', `${file}: not a list of parent layer paths`, { path: root });
  }
  return chain as string[];
}

/**
 * A new empty folder next to `root`, on its volume. The store's cleanup removes names
 * holding `-importing-` whose owner, the pid before the trailing nonce, has exited: a
 * staging directory's name holds it already, a committed layer's gets it.
 */
function makeSiblingFolder(root: string): string {
  const base = path.basename(root);
  const work = base.includes(IMPORTING_INFIX) ? base : `${base}${IMPORTING_INFIX}export`;
  const dir = path.join(path.dirname(root), `${work}-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir);
  return dir;
}

/** Where hcsshim's source of a pending link is: this layer when it added the target before the link, else the first parent holding it. */
function linkSource(link: IndexEntry, added: ReadonlyMap<string, IndexEntry>, root: string, parents: readonly string[]): string {
  const target = link.target;
  if (typeof target !== 'string') throw createError('ERR_LAYER_CORRUPT', `${link.name}: link record without a target`, { entry: link.name });
  // A link that came before the layer's own file of that name is the parents' file (parentTarget).
  const own = link.parentTarget === true ? undefined : added.get(caseFoldKey(target));
  if (own !== undefined) return hostPath(root, own);
  for (const parent of parents) {
    const candidate = path.join(parent, target);
    if (fs.lstatSync(candidate, { throwIfNoEntry: false }) !== undefined) return candidate;
  }
  throw createError('ERR_LINK_TARGET_NOT_FOUND', `${link.name}: hard link target ${target} is in neither this layer nor its parents`, {
    entry: link.name,
    target,
  });
}

function moveIfPresent(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
  }
}

/** Removes one file or empty directory (hcsshim's RemoveRelative); a missing one is not an error. */
function removeOne(file: string): void {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (st === undefined) return;
  if (st.isDirectory()) fs.rmdirSync(file);
  else fs.unlinkSync(file);
}

function hostPath(root: string, r: IndexEntry): string {
  return path.join(root, r.host ?? r.name);
}

/** The file holding a transport entry: its content file, or a directory's sidecar. */
function transportFile(root: string, r: IndexEntry): string {
  const host = hostPath(root, r);
  return ((r.attributes ?? 0) & FILE_ATTRIBUTE_DIRECTORY) !== 0 ? host + WCIDIRS_SUFFIX : host;
}

function isEntryRecord(r: IndexEntry): boolean {
  return r.kind === 'file' || r.kind === 'directory' || r.kind === 'symlink';
}

/** Directories, directory symbolic links and junctions. */
function isDirectoryRecord(r: IndexEntry): boolean {
  return (r.kind === 'directory' || r.kind === 'symlink') && ((r.attributes ?? 0) & FILE_ATTRIBUTE_DIRECTORY) !== 0;
}

function isFilesName(name: string): boolean {
  return name.startsWith('Files/');
}

function isHivesName(name: string): boolean {
  return name === 'Hives' || name.startsWith('Hives/');
}

function isUtilityVMName(name: string): boolean {
  return name === 'UtilityVM' || name.startsWith('UtilityVM/');
}

function throwIfCanceled(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw createError('ERR_CANCELED', 'canceled before a Host Compute Service call');
}

