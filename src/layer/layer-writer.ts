/**
 * Writes a layer in the transport format (FORMATS.md §3.2) on any POSIX file system,
 * the role of hcsshim's legacyLayerWriter/baseLayerWriter:
 *
 *   add(path, info, kind)  starts an entry; its backup stream follows through write()
 *   write(chunk)           appends backup-stream bytes to the current entry
 *   addLink(path, target)  a hard link, resolved and made at close (targets may be in parents)
 *   remove(path)           a deletion (tombstone) of something in the parent chain
 *   settled()              waits for the large files' writes behind (write-behind.ts)
 *   close(summary)         tombstones.txt, links, directory times, metadata index
 *   abort()                closes what is open; the caller deletes the directory
 *
 * Where things go:
 * - `Files`, `Hives` and everything under `Files/`: byte-identical to hcsshim's import
 *   folder — a file is u32 LE attributes ‖ the raw backup stream; a directory is a real
 *   directory plus a `<dir>.$wcidirs$` sidecar holding attributes ‖ stream.
 * - everything else (`Hives/*`, `UtilityVM…`): a real file or directory holding the data
 *   stream itself; the other sub-streams go to the metadata index (streams.bin).
 * - the four times of every entry go to the index, as Linux can hold neither creation
 *   nor change time and rounds the others.
 *
 * The writer never creates a symbolic link on disk (reparse points live in streams), so
 * nothing written can redirect a later write; every file is created with O_EXCL.
 * All I/O is synchronous (the writer runs in a worker process whose only job this is), but
 * for the data of large files when the store flushes at commit: it is written behind, on
 * the thread pool, while the tar is read on (whenWritable() bounds it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crashPoint } from '../util/crash-point.js';
import { FileThread, type ChunkHasher } from './file-thread.js';
import { LinkSpill, type SpilledLink } from './link-spill.js';
import { WriteBehind, WriteBehindFile } from './write-behind.js';
import { DirTable } from './dir-table.js';
import { NameHashMap, NameHashSet } from './name-hash-set.js';
import { BackupStreamId, STREAM_ID_SIZE } from '../backup/constants.js';
import { encodeBackupHeader } from '../backup/header.js';
import type { BackupHeader } from '../backup/header.js';
import { BackupStreamParser } from '../backup/parser.js';
import { createError, isWinLayerError, pathTooLongError, toWinLayerError, type WinLayerError } from '../errors.js';
import { WHITEOUT_PREFIX } from '../convert/pax-keys.js';
import {
  baseName,
  caseFoldKey,
  flatString,
  parentName,
  parseLayerPath,
  WCIDIRS_SUFFIX,
  windowsPathBelowFiles,
  type LayerPath,
} from '../util/safe-path.js';
import { FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT, hostSecondsFromFiletime, utimesTime, type FileBasicInfo } from '../util/windows.js';
import { ChainView } from './chain-view.js';
import {
  indexEntriesSync,
  INDEX_DIR,
  isMissingLayerFile,
  MetadataIndexWriter,
  openLayerFile,
  recordLine,
  timesFromInfo,
  type EntryKind,
  type IndexEntry,
  type LayerInfo,
} from './metadata-index.js';
import { DeletedNames, TombstoneWriter, writeTombstones } from './tombstones.js';
import { MUTATED_UTILITY_VM_FILES, UTILITY_VM_FILES } from './utility-vm.js';
import { removeTreeSync } from '../util/remove-tree.js';

/** Kinds an `add` can start. */
export type AddKind = 'file' | 'directory' | 'symlink';

export interface LayerWriterOptions {
  /** The directory to fill; it must exist and be empty (the staging directory). */
  readonly root: string;
  /** Parent layer directories, nearest first; empty for a base layer. */
  readonly parents: readonly string[];
  /** fsync data and index before close returns. @default true */
  readonly durable?: boolean;
  /**
   * Restores the entries outside Files/ (Hives/, UtilityVM/) instead of the built-in code:
   * the seam through which a native backend does that work. Files/ is written here in the
   * transport format, a byte layout rather than a restore, unless `restoreInPlace`.
   */
  readonly restorer?: HostRestorer | undefined;
  /**
   * Restores every entry, Files/ and Hives/ included, through `restorer` into a host file or
   * directory, as hcsshim's base-layer writer does on Windows (no transport format, no
   * sidecars; the index marks those records `direct`). Base layers only; needs a restorer.
   * @default false
   */
  readonly restoreInPlace?: boolean | undefined;
  /**
   * Called once if a file thread starts (an import of many small files), with the thread as
   * a hasher: the import's digest can then be computed there, beside the parsing.
   */
  readonly onFileThread?: ((hasher: ChunkHasher) => void) | undefined;
}

/** One file being restored from its backup stream by a native backend. */
export interface RestoreTarget {
  /** The next bytes of the entry's backup stream (already validated by the writer's parser). */
  write(chunk: Buffer): void;
  /**
   * Sets the host times and closes the file; returns the data size written. The non-data
   * sub-streams go into the metadata index from the writer's own parse, as they come: a
   * restore holds none of them (an alternate data stream may be gigabytes).
   */
  finish(info: FileBasicInfo): { dataSize: number };
  /** Closes the file after a failure (the caller removes the staging directory). */
  abort(): void;
}

export interface HostRestorer {
  /** Creates `file` (it must not exist) for the entry `entry`. */
  create(file: string, entry: string): RestoreTarget;
  /**
   * Restores the backup stream of the directory entry `entry` onto `dir`, which the writer
   * has just made (a directory exists before its children). Without it, a directory's
   * sub-streams go to the index and the directory is left as made.
   */
  createDirectory?(dir: string, entry: string): RestoreTarget;
}

/** What close() reports. */
export interface LayerWriteResult {
  records: number;
  hasUtilityVM: boolean;
}

const WRITE_BUFFER_BYTES = 64 * 1024;

/**
 * Coalesces small writes to one fd (a small file becomes one write call). The buffer
 * comes from the writer and is shared by the sinks of an entry in turn: a sink flushes
 * whatever another left in it before it writes its own (an import of 20,000 small files
 * used to allocate 20,000 buffers of 64 KiB).
 *
 * A sink made with a file name instead of an fd opens the file only when it must write:
 * a file whose whole content stays in the buffer can instead be handed to the file thread.
 */
class FdSink {
  #fd: number | undefined;
  readonly #file: string | undefined;
  readonly #shared: SharedWriteBuffer;
  readonly #beforeOpen: (() => void) | undefined;
  /** Bytes given to the sink so far. */
  bytes = 0;
  /** Bytes handed to the OS so far: the position of the next write (every write is positional). */
  #position = 0;
  /** Where large chunks go when this sink writes behind (see write-behind.ts), and the entry they belong to. */
  readonly #behind: WriteBehind | undefined;
  readonly #entry: string;
  #behindFile: WriteBehindFile | undefined;

  /**
   * `beforeOpen`: what must happen before a deferred file is created here (its directory may
   * be queued). `behind`: write chunks of 64 KiB and more behind, for the file of `entry`
   * (only for a file written once: nothing may open it again while its writes are in flight).
   */
  constructor(fd: number | string, shared: SharedWriteBuffer, beforeOpen?: () => void, behind?: WriteBehind, entry = '') {
    if (typeof fd === 'number') this.#fd = fd;
    else this.#file = fd;
    this.#shared = shared;
    this.#beforeOpen = beforeOpen;
    this.#behind = behind;
    this.#entry = entry;
  }

  /** The file's writes behind, once any was made. */
  get behindFile(): WriteBehindFile | undefined {
    return this.#behindFile;
  }

  /** The open descriptor, opening a deferred file now. */
  get fd(): number {
    if (this.#fd === undefined) {
      this.#beforeOpen?.();
      this.#fd = openForWrite(this.#file as string, false);
    }
    return this.#fd;
  }

  /** The descriptor if the file is open. */
  get openFd(): number | undefined {
    return this.#fd;
  }

  /** Created lazily and not opened yet: the path to create it at. */
  get deferredFile(): string | undefined {
    return this.#fd === undefined ? this.#file : undefined;
  }

  write(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    const b = this.#shared;
    if (b.owner !== this || b.used + chunk.length > WRITE_BUFFER_BYTES) b.owner?.flush();
    if (chunk.length >= WRITE_BUFFER_BYTES) {
      const behind = this.#behind;
      if (behind !== undefined) {
        this.#behindFile ??= new WriteBehindFile(this.fd, this.#entry);
        behind.write(this.#behindFile, chunk, this.#position);
      } else {
        writeAll(this.fd, chunk, this.#position);
      }
      this.#position += chunk.length;
      return;
    }
    b.owner = this;
    b.buf.set(chunk, b.used);
    b.used += chunk.length;
  }

  flush(): void {
    const b = this.#shared;
    if (b.owner !== this) return;
    if (b.used > 0) writeAll(this.fd, b.buf.subarray(0, b.used), this.#position);
    this.#position += b.used;
    b.used = 0;
    b.owner = undefined;
  }

  /**
   * The whole content of a file never opened (it never left the shared buffer), as a view
   * of that buffer valid until the next write; the buffer is released.
   */
  takeContent(): Uint8Array {
    const b = this.#shared;
    if (b.owner !== this) return EMPTY_CONTENT;
    const content = b.buf.subarray(0, b.used);
    b.used = 0;
    b.owner = undefined;
    return content;
  }
}

const EMPTY_CONTENT = new Uint8Array(0);
const IS_WINDOWS = process.platform === 'win32';

/**
 * The records of the UtilityVM cloned from the parent, by case-folded name: each kept as
 * its index line, and parsed again when looked at. As objects they took ~0.9 KB each: a
 * parent UtilityVM of 80,000 files took a delta's import to 130 MiB.
 */
class InheritedRecords {
  readonly #lines = new Map<string, string>();
  /** The keys in order, once deleteTree needs them (deleted ones stay in it). */
  #sorted: string[] | undefined;

  get size(): number {
    return this.#lines.size;
  }

  set(key: string, record: IndexEntry): void {
    this.#lines.set(key, flatString(recordLine(record)));
  }

  get(key: string): IndexEntry | undefined {
    const line = this.#lines.get(key);
    return line === undefined ? undefined : (JSON.parse(line) as IndexEntry);
  }

  has(key: string): boolean {
    return this.#lines.has(key);
  }

  delete(key: string): boolean {
    return this.#lines.delete(key);
  }

  /**
   * Deletes `key` and every key below it (`key/…`); returns those it deleted. The keys in
   * order are made once, at the first call (records are only deleted once loaded): a
   * subtree is then one run of them, found by a binary search, and a delta deleting D
   * directories of a UtilityVM of R records costs D × log R, not D × R (20,000 of 40,000
   * took 40 s).
   */
  deleteTree(key: string): string[] {
    const sorted = (this.#sorted ??= [...this.#lines.keys()].sort());
    const deleted: string[] = [];
    if (this.#lines.delete(key)) deleted.push(key);
    const prefix = key + '/';
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((sorted[mid] as string) < prefix) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length && (sorted[i] as string).startsWith(prefix); i++) {
      if (this.#lines.delete(sorted[i] as string)) deleted.push(sorted[i] as string);
    }
    return deleted;
  }

  *values(): Generator<IndexEntry> {
    for (const line of this.#lines.values()) yield JSON.parse(line) as IndexEntry;
  }
}

/** The name of the regular file in `dir` whose case-folded name is `key`, read through the directory without keeping it. */
function findFoldedFile(dir: string, key: string): string | undefined {
  const d = fs.opendirSync(dir, { bufferSize: 256 });
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      // Folding keeps the length (one UTF-16 unit for one).
      if (e.name.length === key.length && e.isFile() && caseFoldKey(e.name) === key) return e.name;
    }
    return undefined;
  } finally {
    d.closeSync();
  }
}

/** Names kept from directory listings at most (see #plainFilePath). */
const PLAIN_FILE_LISTING_NAMES = 100_000;

interface SharedWriteBuffer {
  readonly buf: Buffer;
  used: number;
  /** The sink whose bytes are in `buf`. */
  owner: FdSink | undefined;
}

/**
 * Data files from this size on start their flush to disk when they are closed, on the
 * thread pool, while the import goes on (when the store flushes at commit, not per file):
 * the disk writes then overlap with reading, hashing and writing what follows, and the
 * flush before the commit finds little left to do. 256 MiB in 4 files: about 0.1 s less.
 */
export const EARLY_FLUSH_BYTES = 4 * 1024 * 1024;
/** Early flushes in flight at most (each holds its file open and a thread-pool thread). */
const EARLY_FLUSHES = 2;
/**
 * Small files written on this writer's own thread before it starts a file thread: a layer
 * of a few files does not pay for one (a thread takes about 20 ms to start, on a spare CPU).
 */
export const FILE_THREAD_AFTER = 64;

/** Writes all of `chunk` at `position`. */
function writeAll(fd: number, chunk: Uint8Array, position: number): void {
  let done = 0;
  while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done, position + done);
}

/**
 * SeenEntry records by case-folded name. A Map keyed by the folded name held each name a
 * second time: 30,000 symbolic links 3,400 characters deep peaked at 342 MiB that way.
 * Here the key is a 32-bit hash, and a hit is confirmed by folding the entry's name.
 */
class SeenMap {
  readonly #index = new NameHashMap();
  readonly #entries: SeenEntry[] = [];

  get(key: string): SeenEntry | undefined {
    const i = this.#find(key);
    return i === -1 ? undefined : this.#entries[i];
  }

  has(key: string): boolean {
    return this.#find(key) !== -1;
  }

  /** Records `entry` (whose name folds to `key`) under `key`, in place of one recorded before. */
  set(key: string, entry: SeenEntry): void {
    const i = this.#find(key);
    if (i !== -1) {
      this.#entries[i] = entry;
      return;
    }
    this.#index.add(key, this.#entries.length);
    this.#entries.push(entry);
  }

  #find(key: string): number {
    for (let nth = 0; ; nth++) {
      const i = this.#index.valueAt(key, nth);
      if (i === undefined) return -1;
      // Confirmed, not trusted: another name may share the hash.
      if (caseFoldKey((this.#entries[i] as SeenEntry).name) === key) return i;
    }
  }
}

/** What the writer remembers of each name it has seen (for duplicates, parents and links). */
interface SeenEntry {
  name: string;
  kind: EntryKind;
  isDirectory: boolean;
  isReparse: boolean;
  /** Path relative to the root, as spelled on disk; undefined for a plain file (see #plainFiles). */
  host: string | undefined;
  /** Written in the transport format (attributes ‖ backup stream) rather than as its data. */
  transport: boolean;
  attributes: number;
  /** A hard link's place among the links (its record's offset, see LinkSpill). */
  linkOffset?: number;
  /** A plain file: the absolute path where it was just confirmed on disk. */
  found?: string;
}

/** The entry being written. */
interface CurrentEntry {
  path: LayerPath;
  kind: AddKind;
  info: FileBasicInfo;
  host: string;
  transport: boolean;
  /** transport entries: the content file or sidecar. */
  content: FdSink | undefined;
  /** direct entries: the data file (undefined for directories). */
  data: FdSink | undefined;
  /** direct entries: where the current sub-stream's payload goes. */
  target: 'data' | 'streams' | 'none';
  streamsStart: number;
  dataSize: number;
  sawData: boolean;
  /** A file the tar said had no DATA stream (its backup stream may still have an empty one). */
  dataless: boolean;
  sawReparse: boolean;
  bcdBackup: FdSink | undefined;
  isMerge: boolean;
  /** direct entries restored by the native backend. */
  restore: RestoreTarget | undefined;
  /** The current sub-stream is the unnamed data stream. */
  inData: boolean;
}

interface PendingLink {
  path: LayerPath;
  target: LayerPath;
  info: FileBasicInfo;
  host: string;
  /** caseFoldKey of the link's own name. */
  key: string;
  /** Its place among the links, in tar order (see LinkSpill). */
  offset: number;
  /** The target was not in this layer yet when the link came: a parent's file. */
  parentsOnly: boolean;
}

/** The pending-link file, in the staging layer's index directory; removed before the commit. */
const PENDING_LINKS_FILE = 'links.pending';

/** Transport-format layer writer for the portable backend. */
export class TransportLayerWriter {
  readonly #root: string;
  readonly #parents: readonly string[];
  readonly #durable: boolean;
  readonly #restorer: HostRestorer | undefined;
  readonly #inPlace: boolean;
  readonly #index: MetadataIndexWriter;
  readonly #seen = new SeenMap();
  /**
   * Regular files in the transport format, by case-folded name: the bulk of a layer, kept as
   * 32-bit hashes outside the heap since everything else about them is implied (see
   * #seenEntry). In SeenEntry records, a layer of 100,000 files held ~29 MB of heap (and
   * ~90 MB of resident memory) until its end; as strings in a Set, ~8 MB; as 64-bit
   * hashes, 2 MB; here, 1 MB. A hit is confirmed on disk (#plainFilePath); with 32-bit
   * hashes a base layer's 300,000 files give ~10 hits to confirm that 64-bit ones would
   * not, each a wait for the file thread and a directory listing: a few milliseconds in all.
   */
  readonly #plainFiles = new NameHashSet(32);
  /** Directory listings by host path, read at close to find plain files that links point at. */
  #listings = new Map<string, Map<string, string>>();
  #listed = 0;
  /** Set once every file is on disk and no more are written (links, at close). */
  #listingsValid = false;
  /** Directories that exist on disk (explicit or implicit), by case-folded name → host spelling. */
  readonly #dirs = new DirTable();
  /** This layer's deletions: tombstones.txt, written as they come (created at the first). */
  #tombstones: TombstoneWriter | undefined;
  /**
   * Deletions under UtilityVM/Files, by case-folded name (those under Files/ are in
   * #tombstones): a name deleted twice is one deletion.
   */
  readonly #removedFromUtilityVM = new Set<string>();
  /** Cloned UtilityVM directories that hold an entry of this layer (see removeChildren). */
  readonly #addedBelow = new Set<string>();
  /** Opaque whiteouts under Files/, expanded at close (see removeChildren). */
  readonly #opaque: string[] = [];
  /** The same, case-folded: an opaque whiteout given twice is one. */
  readonly #opaqueKeys = new Set<string>();
  /** Hard links, made at close: on disk until then (see LinkSpill). */
  #links: LinkSpill | undefined;
  /**
   * Copies made for links across formats (a base layer's Files/ ⇄ UtilityVM/Files): one
   * file on NTFS, several here. By the first file (host path), and each copy's first file.
   */
  readonly #copiesOf = new Map<string, string[]>();
  readonly #originOf = new Map<string, string>();
  /**
   * Plain directories of the transport format (not reparse points) that were entries are
   * not SeenEntry records either (a WinSxS-like layer has tens of thousands): #dirs marks
   * them, and their name is their host path unless this keeps the entry's own spelling.
   */
  readonly #dirNames = new Map<string, string>();
  /**
   * Directory entries (their #dirs records, whose host paths stay) and their atime/mtime
   * (seconds) in pairs: re-applied at close.
   */
  #dirTimeRecords = new Int32Array(256);
  #dirTimeCount = 0;
  #dirTimeValues = new Float64Array(2 * 256);
  /** Directory records replaced by a repeated directory entry, written into layer.json. */
  readonly #merged = new Map<string, IndexEntry>();
  /** UtilityVM entries cloned from the parent, by case-folded name. */
  #inherited: InheritedRecords | undefined;
  #hasUtilityVM = false;
  #current: CurrentEntry | undefined;
  #chain: ChainView | undefined;
  #closed = false;
  readonly #writeBuffer: SharedWriteBuffer = { buf: Buffer.allocUnsafe(WRITE_BUFFER_BYTES), used: 0, owner: undefined };
  /** Early flushes (EARLY_FLUSH_BYTES) in flight, and the first that failed. */
  readonly #flushing = new Set<Promise<void>>();
  #flushFailure: Error | undefined;
  /** Large files' data written on the thread pool (never when each file is fsynced as it is closed). */
  readonly #writeBehind: WriteBehind | undefined;
  /** Files waiting for their writes behind before their times are set and they are closed. */
  readonly #closing = new Set<Promise<void>>();
  readonly #attributesBytes = Buffer.alloc(4);
  /** One backup-stream parser for every entry in turn (reset by add). */
  readonly #parser = new BackupStreamParser({
    header: (h) => this.#onStreamHeader(this.#current as CurrentEntry, h),
    data: (chunk) => this.#onStreamData(this.#current as CurrentEntry, chunk),
  });
  /** Whether small files may be created on a file thread (never when each file is fsynced, or restored natively). */
  readonly #threadable: boolean;
  #files: FileThread | undefined;
  /**
   * The parent directory #hostPathFor resolved last, and its host path. A layer tar lists a
   * directory's entries together, so most entries skip the lookups (case folding, the
   * name tables, the checks of every ancestor). Files and hard links cannot change what a
   * directory resolves to (a second entry of a name is refused); every other kind of entry,
   * a deletion and the UtilityVM clone clear it, and it is not kept where UtilityVM entries
   * are inherited.
   */
  #lastParent: string | undefined;
  #lastParentHost = '';
  /** Each parent's deletions, case-folded (see #checkParentsHoldDirectory). */
  readonly #parentTombstones = new Map<string, DeletedNames>();
  /** Directories were queued on the file thread since it last drained. */
  #queuedDirs = false;
  /** Small files finished so far (they start the file thread). */
  #smallFiles = 0;
  readonly #onFileThread: ((hasher: ChunkHasher) => void) | undefined;

  constructor(options: LayerWriterOptions) {
    this.#root = options.root;
    this.#parents = options.parents;
    this.#durable = options.durable ?? true;
    this.#restorer = options.restorer;
    this.#onFileThread = options.onFileThread;
    this.#inPlace = options.restoreInPlace ?? false;
    if (this.#inPlace && (this.#restorer === undefined || this.#parents.length > 0)) {
      throw createError('ERR_ARGUMENT_INVALID', 'restoreInPlace writes base layers only, through a restorer');
    }
    this.#index = new MetadataIndexWriter(this.#root);
    this.#threadable = !this.#durable && this.#restorer === undefined;
    this.#writeBehind = this.#durable ? undefined : new WriteBehind();
  }

  get isBaseLayer(): boolean {
    return this.#parents.length === 0;
  }

  /** Whether `name` is stored in the transport format here (never in a layer restored in place). */
  #isTransport(name: string): boolean {
    return !this.#inPlace && isTransportName(name);
  }

  /** The merged view of the parent chain (loaded on first use). */
  get chain(): ChainView {
    this.#chain ??= new ChainView(this.#parents);
    return this.#chain;
  }

  /** Starts a file, directory or reparse point; its backup stream follows through write(). */
  add(p: LayerPath, info: FileBasicInfo, kind: AddKind, dataless = false): void {
    this.#finishCurrent();
    // A directory or reparse point may change what a name below it resolves to.
    if (kind !== 'file') this.#lastParent = undefined;
    if (this.#files?.failed === true) this.#drainFiles(); // throws the thread's failure
    const isDirectory = (info.fileAttributes & FILE_ATTRIBUTE_DIRECTORY) !== 0;
    if ((kind === 'directory') !== isDirectory && kind !== 'symlink') {
      throw createError('ERR_PAX_RECORD_INVALID', `${p.name}: attributes 0x${info.fileAttributes.toString(16)} disagree with entry type ${kind}`, {
        entry: p.name,
      });
    }
    this.#checkUtilityVM(p, 'entry');
    if (p.name === 'UtilityVM' && !this.isBaseLayer) this.#cloneUtilityVM();

    const key = caseFoldKey(p.name);
    const prior = this.#seenEntry(key, p.name);
    const isReparse = kind === 'symlink' || (info.fileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) !== 0;
    let isMerge = false;
    if (prior !== undefined) {
      // Linux-side producers (crane) emit `Files` twice: a repeated plain directory is merged.
      if (prior.kind === 'directory' && kind === 'directory' && !prior.isReparse && !isReparse && prior.name === p.name) {
        isMerge = true;
      } else {
        throw createError('ERR_ENTRY_DUPLICATE', `${p.name}: a second entry for ${prior.name}`, { entry: p.name, prior: prior.name });
      }
    }
    const existingDir = this.#dirs.get(key);
    if (!isDirectory && existingDir !== undefined && this.#holdsBelow(key)) {
      throw createError('ERR_ENTRY_DUPLICATE', `${p.name}: entries below it came first, so it is already a directory`, { entry: p.name });
    }
    if (isReparse && existingDir !== undefined && this.#holdsBelow(key)) {
      // As an entry below a link that came first: its export would be refused.
      throw createError('ERR_PATH_THROUGH_LINK', `${p.name}: a reparse point where entries below it came first`, { entry: p.name });
    }
    const known = (isMerge ? prior?.host : undefined) ?? (isDirectory ? existingDir : undefined);
    // What is kept of it is made flat where it is kept (#dirs, #seen), holding no piece of the entry's name.
    const host = known ?? this.#hostPathFor(p);
    if (!isMerge) this.#replaceInherited(p, host, isDirectory && !isReparse);
    if (this.isBaseLayer && p.name === UTILITY_VM_FILES) this.#hasUtilityVM = true;

    const transport = this.#isTransport(p.name);
    const abs = this.#abs(host);
    let content: FdSink | undefined;
    let data: FdSink | undefined;
    let restore: RestoreTarget | undefined;
    if (isDirectory) {
      if (!isMerge && !this.#dirs.has(key)) {
        // Only below Files/: everything there is created in order on that thread (Hives/
        // and UtilityVM/ files are written here, directly).
        if (transport && p.root === 'Files' && this.#files !== undefined) {
          // Made by the file thread, in order with the files queued for it.
          this.#files.mkdir(abs, p.name);
          this.#queuedDirs = true;
        } else {
          this.#settleDirs();
          fs.mkdirSync(abs);
        }
      }
      if (transport) {
        // A new sidecar is created like a small file (it may go to the file thread); one that
        // may exist already (a repeated or an implicit directory) is rewritten here.
        const sidecar = abs + WCIDIRS_SUFFIX;
        const rewrite = isMerge || this.#dirs.has(key);
        if (isMerge) this.#drainFiles(); // its first sidecar may still be queued
        if (rewrite) this.#settleDirs();
        content = new FdSink(this.#threadable && !rewrite ? sidecar : openForWrite(sidecar, rewrite), this.#writeBuffer, this.#settleDirs);
      }
      else if (this.#restorer?.createDirectory !== undefined) restore = this.#restorer.createDirectory(abs, p.name);
    } else if (transport) {
      // Opened when it must be written; a small one may go to the file thread instead.
      // Written once (never a sidecar, which a repeated directory rewrites): it may write behind.
      content = new FdSink(this.#threadable ? abs : openForWrite(abs, false), this.#writeBuffer, this.#settleDirs, this.#writeBehind, p.name);
    } else if (this.#restorer !== undefined) {
      this.#settleDirs();
      restore = this.#restorer.create(abs, p.name);
    } else {
      this.#settleDirs();
      data = new FdSink(openForWrite(abs, false), this.#writeBuffer, undefined, this.#writeBehind, p.name);
    }
    if (content !== undefined) {
      // Copied by the sink at once, so one scratch buffer serves every entry.
      this.#attributesBytes.writeUInt32LE(info.fileAttributes >>> 0, 0);
      content.write(this.#attributesBytes);
    }
    let bcdBackup: FdSink | undefined;
    const backupName = MUTATED_UTILITY_VM_FILES.get(p.name);
    if (backupName !== undefined && !isDirectory) bcdBackup = new FdSink(openForWrite(path.join(this.#root, backupName), true), this.#writeBuffer);

    const entry: CurrentEntry = {
      path: p,
      kind,
      info,
      host,
      transport,
      content,
      data,
      target: 'none',
      streamsStart: this.#index.streamsOffset,
      dataSize: 0,
      sawData: false,
      dataless,
      sawReparse: false,
      bcdBackup,
      isMerge,
      restore,
      inData: false,
    };
    this.#parser.reset(p.name);
    this.#current = entry;
    if (isDirectory) {
      this.#pushDirTime(this.#dirs.set(key, host), info);
    }
    if (kind === 'file' && transport && !isReparse) {
      this.#plainFiles.add(key);
      return;
    }
    if (kind === 'directory' && transport && !isReparse) {
      this.#dirs.markPlain(key);
      if (p.name !== host) this.#dirNames.set(key, p.name);
      return;
    }
    this.#seen.set(key, {
      name: p.name,
      kind: kind === 'symlink' ? 'symlink' : kind,
      isDirectory,
      isReparse,
      // The name itself when spelled alike (nearly always): one copy of a long path, not two.
      host: host === p.name ? p.name : flatString(host),
      transport,
      attributes: info.fileAttributes >>> 0,
    });
  }

  /**
   * Whether this layer holds `key` already (spelled `spelledAs`). A hash answers "no" for
   * sure; a hit is confirmed, first by one lstat where the name would be (a link's target
   * was nearly always written long before it), then as #seenEntry does (waiting for the
   * file thread), so that another name of the same hash is not taken for it.
   */
  #addedBefore(key: string, spelledAs: string): boolean {
    if (this.#seen.has(key) || this.#dirs.has(key)) return true;
    if (this.#links?.mayHave(key) === true && this.#links.find(key, caseFoldKey) !== undefined) return true;
    if (!this.#plainFiles.has(key)) return false;
    const slash = key.lastIndexOf('/');
    const parentHost = slash === -1 ? '' : this.#dirs.get(key.slice(0, slash));
    const base = baseName(spelledAs);
    if (parentHost !== undefined && caseFoldKey(base) === key.slice(slash + 1)) {
      if (lstatOrUndefined(this.#abs(parentHost === '' ? base : `${parentHost}/${base}`))?.isFile() === true) return true;
    }
    return this.#seenEntry(key, spelledAs) !== undefined;
  }

  /** False when this layer holds nothing under `key` for sure; true when it may (hashes). */
  #mayHaveAdded(key: string): boolean {
    return this.#seen.has(key) || this.#dirs.has(key) || this.#plainFiles.has(key) || this.#links?.mayHave(key) === true;
  }

  /** What this layer holds under `key` (spelled `spelledAs` by the entry asking). */
  #seenEntry(key: string, spelledAs: string): SeenEntry | undefined {
    const seen = this.#seen.get(key);
    if (seen !== undefined) return seen;
    const link = this.#links?.find(key, caseFoldKey);
    if (link !== undefined) {
      return { name: link.name, kind: 'link', isDirectory: false, isReparse: false, host: link.host, transport: link.transport, attributes: link.attributes, linkOffset: link.offset };
    }
    if (this.#dirs.isPlain(key)) {
      const host = this.#dirs.get(key) as string;
      return { name: this.#dirNames.get(key) ?? host, kind: 'directory', isDirectory: true, isReparse: false, host, transport: true, attributes: 0 };
    }
    if (!this.#plainFiles.has(key)) return undefined;
    // A hash hit (a duplicate, a parent that is a file, a link target): confirmed on disk.
    const found = this.#plainFilePath(key, spelledAs);
    if (found === undefined) return undefined;
    // Its spelling is the one on disk: a plain file's host name is its name, below its
    // directories as the layer first spelled them.
    const name = path.relative(this.#root, found).split(path.sep).join('/');
    return { name, kind: 'file', isDirectory: false, isReparse: false, host: undefined, transport: true, attributes: 0, found };
  }

  /**
   * The on-disk path of the plain file `key` (its spelling was not kept), or undefined when
   * there is none: the name as spelled by the asking entry when that exists, else found in
   * its directory's listing.
   */
  #plainFilePath(key: string, spelledAs: string): string | undefined {
    const slash = key.lastIndexOf('/');
    // '' is the layer's root (`Hives` may be a file there).
    const parentHost = slash === -1 ? '' : this.#dirs.get(key.slice(0, slash));
    if (parentHost === undefined) return undefined;
    const hostOf = (base: string): string => (parentHost === '' ? base : parentHost + '/' + base);
    this.#drainFiles(); // the file may still be queued
    const baseKey = key.slice(slash + 1);
    const spelledBase = baseName(spelledAs);
    if (caseFoldKey(spelledBase) === baseKey) {
      const guess = this.#abs(hostOf(spelledBase));
      if (lstatOrUndefined(guess)?.isFile() === true) return guess;
    }
    const dir = parentHost === '' ? this.#root : this.#abs(parentHost);
    // While files are still written a listing goes stale at once: the directory is read
    // through for this one name, holding none. A false hit of the 32-bit hashes (a new
    // name that shares an earlier one's) comes here: listing a directory of 400,000 files
    // into a Map each time (~19 times there) took that import to 191 MiB peak RSS.
    if (!this.#listingsValid) {
      const base = findFoldedFile(dir, baseKey);
      return base === undefined ? undefined : this.#abs(hostOf(base));
    }
    let listing = this.#listings.get(parentHost);
    if (listing === undefined) {
      if (this.#listed > PLAIN_FILE_LISTING_NAMES) {
        this.#listings = new Map();
        this.#listed = 0;
      }
      listing = new Map();
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
        if (d.isFile()) listing.set(caseFoldKey(d.name), d.name);
      }
      this.#listings.set(parentHost, listing);
      this.#listed += listing.size;
    }
    const base = listing.get(baseKey);
    return base === undefined ? undefined : this.#abs(hostOf(base));
  }

  /** Appends backup-stream bytes to the current entry. */
  write(chunk: Buffer): void {
    const e = this.#current;
    if (e === undefined) throw createError('ERR_BACKUP_STREAM_INVALID', 'backup stream bytes with no entry open');
    try {
      if (e.content !== undefined) e.content.write(chunk);
      this.#parser.write(chunk);
      // After the parser, so the native side only ever sees bytes that parsed.
      e.restore?.write(chunk);
    } catch (cause) {
      throw entryIoError(cause, e.path.name, 'writing');
    }
  }

  #onStreamHeader(e: CurrentEntry, h: BackupHeader): void {
    e.inData = h.id === BackupStreamId.Data;
    if (h.id === BackupStreamId.Data) {
      if (e.kind === 'directory') {
        throw createError('ERR_BACKUP_STREAM_INVALID', `${e.path.name}: a directory cannot have a data stream`, { entry: e.path.name });
      }
      e.sawData = true;
      e.dataSize = h.size;
    } else if (h.id === BackupStreamId.ReparseData) {
      e.sawReparse = true;
    } else if (h.id === BackupStreamId.SparseBlock) {
      throw createError('ERR_SPARSE_UNSUPPORTED', `${e.path.name}: sparse blocks cannot be restored by the portable backend`, { entry: e.path.name });
    }
    if (e.transport) return;
    if (h.id === BackupStreamId.Data) {
      e.target = e.data === undefined ? 'none' : 'data';
      return;
    }
    // Restored by a native backend too: it writes the file (on Windows, every sub-stream
    // with it), the index keeps the rest.
    e.target = 'streams';
    this.#index.appendStreams(encodeBackupHeader(h));
  }

  #onStreamData(e: CurrentEntry, chunk: Buffer): void {
    // The original bytes of a BCD file are kept whoever restores the file itself.
    if (e.bcdBackup !== undefined && e.inData) e.bcdBackup.write(chunk);
    if (e.target === 'data') e.data?.write(chunk);
    else if (e.target === 'streams') this.#index.appendStreams(chunk);
  }

  #finishCurrent(): void {
    const e = this.#current;
    if (e === undefined) return;
    this.#current = undefined;
    try {
      this.#parser.end();
      if (e.kind === 'symlink' && !e.sawReparse) {
        throw createError('ERR_BACKUP_STREAM_INVALID', `${e.path.name}: symbolic link without reparse data`, { entry: e.path.name });
      }
      if (e.restore !== undefined) {
        const restore = e.restore;
        e.restore = undefined;
        const done = restore.finish(e.info);
        if (done.dataSize !== e.dataSize) {
          throw createError('ERR_NATIVE_CALL_FAILED', `${e.path.name}: the native backend wrote ${done.dataSize} data bytes, the stream holds ${e.dataSize}`, {
            entry: e.path.name,
          });
        }
      }
    } finally {
      for (const sink of [e.content, e.data, e.bcdBackup]) {
        if (sink === undefined) continue;
        const deferred = sink.deferredFile;
        if (deferred !== undefined && sink.bytes <= WRITE_BUFFER_BYTES) {
          const files = this.#fileThread();
          if (files !== undefined) {
            files.write(deferred, e.path.name, sink.takeContent(), ...hostTimes(e.info));
            continue;
          }
        }
        let fd: number;
        try {
          sink.flush();
          fd = sink.fd; // a deferred file is created here at the latest
        } catch (cause) {
          // Reported from the next entry's add: name this one.
          throw entryIoError(cause, e.path.name, 'writing');
        }
        const info = sink === e.bcdBackup ? undefined : e.info;
        const behind = sink.behindFile;
        if (behind !== undefined && !behind.idle) {
          // Times set now would be undone by the writes still in flight.
          this.#closeAfterWrites(behind, info, sink.bytes);
          continue;
        }
        if (info !== undefined) setHostTimes(fd, info);
        if (this.#durable) fs.fsyncSync(fd);
        this.#closeFile(fd, e.path.name, sink.bytes);
      }
    }
    if (e.kind === 'file') crashPoint('data');
    const record: IndexEntry = {
      kind: e.kind,
      name: e.path.name,
      times: timesFromInfo(e.info),
      attributes: e.info.fileAttributes >>> 0,
    };
    if (e.kind === 'file') record.size = e.dataSize;
    if (!e.transport) {
      const length = this.#index.streamsOffset - e.streamsStart;
      if (length > 0) record.streams = [e.streamsStart, length];
    }
    if (e.host !== e.path.name) record.host = e.host;
    if (!e.transport && isTransportName(e.path.name)) record.direct = true;
    if (e.kind === 'file' && (e.dataless || (!e.transport && !e.sawData))) record.dataless = true;
    if (e.isMerge) {
      this.#merged.set(e.path.name, record);
      // The earlier record keeps its place; its times are replaced, as its sidecar was.
      const i = this.#lastDirTime(caseFoldKey(e.path.name), e.host);
      if (i !== -1) [this.#dirTimeValues[2 * i], this.#dirTimeValues[2 * i + 1]] = hostTimes(e.info);
    } else {
      this.#index.append(record);
    }
  }

  /** Records a hard link; it is made at close, once every target exists. */
  addLink(p: LayerPath, target: LayerPath, info: FileBasicInfo): void {
    this.#finishCurrent();
    this.#checkUtilityVM(p, 'link');
    const key = caseFoldKey(p.name);
    const prior = this.#seenEntry(key, p.name);
    if (prior !== undefined) throw createError('ERR_ENTRY_DUPLICATE', `${p.name}: a second entry for ${prior.name}`, { entry: p.name, prior: prior.name });
    if (this.#dirs.has(key) && this.#holdsBelow(key)) {
      throw createError('ERR_ENTRY_DUPLICATE', `${p.name}: entries below it came first, so it is already a directory`, { entry: p.name });
    }
    const inFiles = (name: string): boolean => name.startsWith('Files/');
    const inUtilityVM = (name: string): boolean => isUtilityVMFilesName(name) && name !== UTILITY_VM_FILES;
    const sameRoot = (inFiles(p.name) && inFiles(target.name)) || (inUtilityVM(p.name) && inUtilityVM(target.name));
    // A base layer may link the UtilityVM's files and the container's both ways (hcsshim's
    // base writer allows it; Windows Server 2016 base images share files that way).
    const acrossInBase = this.isBaseLayer && ((inFiles(p.name) && inUtilityVM(target.name)) || (inUtilityVM(p.name) && inFiles(target.name)));
    if (!sameRoot && !acrossInBase) {
      throw createError(
        'ERR_LINK_TARGET_INVALID',
        `${p.name}: hard link to ${target.name} must stay under Files/ or under UtilityVM/Files/ (a base layer may also link one to the other)`,
        { entry: p.name, target: target.name },
      );
    }
    // hcsshim's writer resolves a delta's Files/ link when the link comes: to a file this
    // layer added before it, else to the parents' (made at the end, by path). A target this
    // layer adds only later is not the one it names.
    const parentsOnly = !this.isBaseLayer && inFiles(p.name) && !this.#addedBefore(caseFoldKey(target.name), target.name);
    // hcsshim's base writer makes each link when it comes: its target must be there already.
    // (A hash says "not added" for sure; its rare false "maybe" leaves the check to close.)
    if (this.isBaseLayer && caseFoldKey(target.name) !== key && !this.#mayHaveAdded(caseFoldKey(target.name))) {
      throw createError('ERR_LINK_TARGET_NOT_FOUND', `${p.name}: hard link to ${target.name}, which the layer has not added before it (a base layer makes each link as it comes)`, {
        entry: p.name,
        target: target.name,
      });
    }
    const host = this.#hostPathFor(p);
    this.#replaceInherited(p, host, false);
    this.#links ??= new LinkSpill(path.join(this.#root, INDEX_DIR, PENDING_LINKS_FILE));
    this.#links.append(
      {
        name: p.name,
        target: target.name,
        host,
        transport: this.#isTransport(p.name),
        attributes: info.fileAttributes >>> 0,
        times: [info.creationTime, info.lastAccessTime, info.lastWriteTime, info.changeTime],
        ...(parentsOnly ? { parentsOnly } : {}),
      },
      key,
    );
    // The record takes the link's place in tar order; the link itself is made at close.
    this.#index.append({
      kind: 'link',
      name: p.name,
      target: target.name,
      times: timesFromInfo(info),
      attributes: info.fileAttributes >>> 0,
      ...(host !== p.name ? { host } : {}),
      ...(parentsOnly ? { parentTarget: true } : {}),
    });
  }

  /**
   * Whether the directory `key` holds entries of this layer: any directory but one cloned
   * from the parent's UtilityVM that the layer has not written into. Replacing it would
   * take them away after their records were written.
   */
  #holdsBelow(key: string): boolean {
    return this.#inherited?.has(key) !== true || this.#addedBelow.has(key);
  }

  /** Records a deletion of `p` from the parent chain (FORMATS.md §3.3 Remove). */
  remove(p: LayerPath): void {
    this.#finishCurrent();
    this.#lastParent = undefined;
    if (this.isBaseLayer) {
      throw createError('ERR_WHITEOUT_INVALID', `${p.name}: a base layer cannot delete files (it has no parent)`, { entry: p.name });
    }
    const key = caseFoldKey(p.name);
    if (p.root === 'Files' && p.name !== 'Files') {
      // A name deleted twice (a whiteout repeated, or explicit and opaque) is one deletion.
      if (this.#tombstones?.deleted.has(key) === true) return;
      this.#tombstones ??= new TombstoneWriter(this.#root);
      this.#tombstones.add(windowsPathBelowFiles(p.name));
    } else if (isUtilityVMFilesName(p.name) && p.name !== UTILITY_VM_FILES) {
      // The UtilityVM is a full clone, so a deletion removes the cloned copy now.
      this.#cloneUtilityVM();
      if (this.#removedFromUtilityVM.has(key)) return;
      // What this layer wrote is in its index already, and hcsshim would delete it with the
      // rest: the index would then name what is not there. Deletions come first in a layer.
      const inherited = this.#inherited?.get(key);
      if (inherited === undefined) {
        if (this.#dirs.has(key) || this.#seenEntry(key, p.name) !== undefined) {
          throw createError('ERR_WHITEOUT_INVALID', `${p.name}: deletes what this layer wrote there before the deletion`, { entry: p.name });
        }
        throw createError('ERR_WHITEOUT_INVALID', `${p.name}: deletes something the parent's UtilityVM does not have`, { entry: p.name });
      }
      if (this.#addedBelow.has(key)) {
        throw createError('ERR_WHITEOUT_INVALID', `${p.name}: deletes a directory this layer wrote entries into before the deletion`, { entry: p.name });
      }
      removeTreeSync(path.join(this.#root, inherited.host ?? inherited.name));
      this.#dropInheritedTree(p.name, inherited);
      this.#removedFromUtilityVM.add(key);
    } else {
      throw notDeletable(p.name);
    }
    this.#index.append({ kind: 'whiteout', name: p.name });
  }

  /**
   * Records an opaque whiteout of `dir`: deletes what the parent chain holds in it except
   * what this layer adds there itself, whether before or after the whiteout, and below a
   * directory it adds again, what the parents hold there that it does not add (the OCI
   * rule: a whiteout hides the parents' entries, never the layer's own). A tombstone of a
   * name the layer also adds would delete that entry on Windows, where hcsshim removes
   * each tombstone from the imported layer after ImportLayer, and fail the import for a
   * directory that holds something. Under Files/ the names are known only at close, so the
   * deletions are made there (their whiteouts come last on export); under UtilityVM/Files,
   * which is cloned and edited in place, what the layer has not added yet is deleted now.
   */
  removeChildren(dir: LayerPath): void {
    this.#finishCurrent();
    this.#lastParent = undefined;
    if (this.isBaseLayer) {
      throw createError('ERR_WHITEOUT_INVALID', `${dir.name}: a base layer cannot delete files (it has no parent)`, { entry: dir.name });
    }
    if (isUtilityVMFilesName(dir.name)) {
      this.#cloneUtilityVM();
      // Held: replaced by the layer, or a cloned directory the layer wrote into.
      this.#removeNotHeld(dir.name, (key) => this.#inherited?.has(key) !== true || this.#addedBelow.has(key));
    } else if (dir.root === 'Files') {
      const key = caseFoldKey(dir.name);
      if (this.#opaqueKeys.has(key)) return;
      this.#opaque.push(dir.name);
      this.#opaqueKeys.add(key);
    } else {
      throw notDeletable(dir.name);
    }
  }

  /**
   * Deletes what the parent chain holds in `dir` and the layer does not (`held`), and
   * recurses into the directories the layer holds there.
   */
  #removeNotHeld(dir: string, held: (key: string, name: string) => boolean): void {
    for (const child of this.chain.childrenOf(dir)) {
      const key = caseFoldKey(child);
      if (!held(key, child)) this.remove(parseLayerPath(child, 'whiteout'));
      else if (this.#dirs.has(key) && this.#seen.get(key)?.isReparse !== true) this.#removeNotHeld(child, held);
    }
  }

  /**
   * Has the chain find, in one pass over the parents' indexes, the children of every
   * directory #removeNotHeld may visit from the opaque directories `dirs`: they, and every
   * directory the layer holds below them (not a reparse point). A pass a level took
   * depth × the parents' records: a delta re-filling 40 levels below an opaque whiteout
   * over a 160,000-entry parent took 9.3 s.
   */
  #prefetchNotHeld(dirs: readonly string[]): void {
    if (dirs.length === 0) return;
    const opaque = new Set(dirs.map(caseFoldKey));
    const belowOpaque = (key: string): boolean => {
      for (let p = parentName(key); p !== ''; p = parentName(p)) if (opaque.has(p)) return true;
      return false;
    };
    const all = [...dirs];
    for (const host of this.#dirs.hosts()) {
      const key = caseFoldKey(host);
      if (!opaque.has(key) && belowOpaque(key) && this.#seen.get(key)?.isReparse !== true) all.push(host);
    }
    this.chain.prefetchChildren(all);
  }

  /** Finishes the layer: tombstones, links, directory times, index. */
  close(summary: Omit<LayerInfo, 'version' | 'records' | 'hasUtilityVM' | 'isBaseLayer'>): LayerWriteResult {
    this.#finishCurrent();
    if (this.#closing.size > 0) throw createError('ERR_ARGUMENT_INVALID', 'layer writer: close() before settled() while data is still being written');
    const heldHere = (key: string, name: string): boolean => this.#addedBefore(key, name);
    this.#prefetchNotHeld(this.#opaque);
    for (const dir of this.#opaque) this.#removeNotHeld(dir, heldHere);
    // Links, directory times and the index need every file on disk.
    this.#drainFiles();
    this.#files?.stop();
    this.#listingsValid = true;
    // A delta's deletions, none at all included, as hcsshim's writer leaves them; a base
    // layer has none to record (hcsshim's base writer writes no tombstones.txt).
    if (this.#tombstones !== undefined) this.#tombstones.finish(this.#durable);
    else if (!this.#inPlace && !this.isBaseLayer) writeTombstones(this.#root, [], this.#durable);
    if (this.#links !== undefined) {
      for (const link of this.#links.records()) this.#makeLink(pendingLink(link));
      this.#links.close(true);
    }
    if (this.#inherited !== undefined) {
      for (const record of this.#inherited.values()) this.#index.append(record);
    }
    // Last: making links and deleting entries bumped their parents' times.
    const times = this.#dirTimeValues;
    for (let i = this.#dirTimeCount - 1; i >= 0; i--) {
      fs.utimesSync(this.#abs(this.#dirs.hostAt(this.#dirTimeRecords[i] as number)), utimesTime(times[2 * i] as number), utimesTime(times[2 * i + 1] as number));
    }
    const merged = [...this.#merged.values()];
    this.#index.finish(
      {
        ...summary,
        hasUtilityVM: this.#hasUtilityVM,
        isBaseLayer: this.isBaseLayer,
        ...(merged.length > 0 ? { merged } : {}),
      } as Omit<LayerInfo, 'version' | 'records'>,
      this.#durable,
    );
    this.#closed = true;
    return { records: this.#index.records, hasUtilityVM: this.#hasUtilityVM };
  }

  /** Closes a finished file, starting its flush to disk first when it is large (EARLY_FLUSH_BYTES). */
  #closeFile(fd: number, entry: string, bytes: number): void {
    if (!this.#durable && bytes >= EARLY_FLUSH_BYTES && this.#flushing.size < EARLY_FLUSHES) this.#flushEarly(fd, entry);
    else fs.closeSync(fd);
  }

  /** Sets the times of a file and closes it once its writes behind are done; `settled()` waits for it. */
  #closeAfterWrites(file: WriteBehindFile, info: FileBasicInfo | undefined, bytes: number): void {
    const done = new Promise<void>((resolve) => {
      file.afterWrites(() => {
        try {
          if (info !== undefined) setHostTimes(file.fd, info);
        } catch (error) {
          this.#flushFailure ??= toWinLayerError(error, `${file.entry}: setting its times`, { entry: file.entry });
        }
        try {
          this.#closeFile(file.fd, file.entry, bytes);
        } catch (error) {
          this.#flushFailure ??= toWinLayerError(error, `${file.entry}: closing`, { entry: file.entry });
        }
        resolve();
      });
    });
    this.#closing.add(done);
    void done.then(() => this.#closing.delete(done));
  }

  /**
   * A promise to wait on before writing more when too much data is still being written
   * behind (see write-behind.ts); undefined when the writer may go on. Throws the first
   * failure of a write behind.
   */
  whenWritable(): Promise<void> | undefined {
    return this.#writeBehind?.whenWritable();
  }

  /**
   * Resolves once every write behind is done and its file closed: call it before close(),
   * which makes links and copies from those files. Throws the first failure.
   */
  async settled(): Promise<void> {
    this.#finishCurrent();
    while (this.#closing.size > 0) await Promise.all(this.#closing);
    this.#writeBehind?.check();
    if (this.#flushFailure !== undefined) throw this.#flushFailure;
  }

  /** fsync then close `fd` on the thread pool; `flushed()` waits for it. */
  #flushEarly(fd: number, entry: string): void {
    const done = new Promise<void>((resolve) => {
      fs.fsync(fd, (error) => {
        if (error !== null) this.#flushFailure ??= toWinLayerError(error, `${entry}: flushing to disk`, { entry });
        fs.close(fd, () => resolve());
      });
    });
    this.#flushing.add(done);
    void done.then(() => this.#flushing.delete(done));
  }

  /** Resolves once the early flushes are done (after close(); a layer is not complete before). */
  async flushed(): Promise<void> {
    while (this.#flushing.size > 0) await Promise.all(this.#flushing);
    if (this.#flushFailure !== undefined) throw this.#flushFailure;
  }

  /**
   * The failure to report for `error`, which ended this import. A disk that fills up while
   * a large file's data is still being written behind fails those writes and the next
   * entry's alike, and the next entry's often first: the file whose data came first is the
   * one named, as a writer that writes in order would. Waits for the writes in flight.
   */
  async reportedFailure(error: unknown): Promise<unknown> {
    const errno = isWinLayerError(error) ? error.data['errno'] : undefined;
    if (this.#writeBehind === undefined || (errno !== 'ENOSPC' && errno !== 'EDQUOT')) return error;
    const behind = await this.#writeBehind.failureOnceDone();
    return behind !== undefined && behind.data['errno'] === errno && behind.data['entry'] !== (error as WinLayerError).data['entry'] ? behind : error;
  }

  /** Closes open files after a failure; the caller removes the directory. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    const e = this.#current;
    this.#current = undefined;
    // No file may appear after this returns: the caller removes the directory.
    try {
      this.#files?.cancel();
    } catch {
      // a stuck thread was terminated
    }
    try {
      e?.restore?.abort();
    } catch {
      // the directory is removed anyway
    }
    for (const sink of [e?.content, e?.data, e?.bcdBackup]) {
      const fd = sink?.openFd;
      if (fd === undefined) continue;
      const closeFd = (): void => {
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      };
      // Not before its writes behind are done: a descriptor reused meanwhile would take them.
      if (sink?.behindFile !== undefined) sink.behindFile.afterWrites(closeFd);
      else closeFd();
    }
    try {
      this.#index.close();
    } catch {
      // already closed
    }
    for (const file of [this.#links, this.#tombstones]) {
      try {
        file?.close(false); // the caller removes the directory
      } catch {
        // already closed
      }
    }
  }

  /**
   * The absolute path of `host`, a checked relative path with `/` separators (see
   * safe-path.ts): joined without path.join's normalization, which cost ~0.7 KB of garbage
   * an entry, except on Windows, where the separators must change.
   */
  #abs(host: string): string {
    return IS_WINDOWS ? path.join(this.#root, host) : this.#root + '/' + host;
  }

  #pushDirTime(record: number, info: FileBasicInfo): void {
    const i = this.#dirTimeCount++;
    if (i === this.#dirTimeRecords.length) {
      const records = new Int32Array(2 * i);
      records.set(this.#dirTimeRecords);
      this.#dirTimeRecords = records;
      const values = new Float64Array(4 * i);
      values.set(this.#dirTimeValues);
      this.#dirTimeValues = values;
    }
    this.#dirTimeRecords[i] = record;
    [this.#dirTimeValues[2 * i], this.#dirTimeValues[2 * i + 1]] = hostTimes(info);
  }

  /** The last of the directory times pushed for the directory `key` at `host`, or -1. */
  #lastDirTime(key: string, host: string): number {
    const record = this.#dirs.recordOf(key);
    for (let i = this.#dirTimeCount - 1; i >= 0; i--) if (this.#dirTimeRecords[i] === record) return i;
    // Recorded under another record of that spelling (one set again since): by its path.
    for (let i = this.#dirTimeCount - 1; i >= 0; i--) if (this.#dirs.hostAt(this.#dirTimeRecords[i] as number) === host) return i;
    return -1;
  }

  /** Waits for the file thread to write what it was given (it was given directories: #queuedDirs). */
  #drainFiles(): void {
    this.#files?.drain();
    this.#queuedDirs = false;
  }

  /**
   * Before anything on this thread creates a path: directories queued on the file thread
   * must exist. A no-op unless some are queued (the common case between two directories).
   */
  readonly #settleDirs = (): void => {
    if (this.#queuedDirs) this.#drainFiles();
  };

  /** The file thread, started once FILE_THREAD_AFTER small files were written here. */
  #fileThread(): FileThread | undefined {
    if (this.#files !== undefined) return this.#files;
    if (++this.#smallFiles <= FILE_THREAD_AFTER) return undefined;
    this.#files = new FileThread();
    this.#onFileThread?.(this.#files);
    return this.#files;
  }

  /** The on-disk path for `p`, creating missing parent directories (implicitly: they are not entries). */
  #hostPathFor(p: LayerPath): string {
    const parent = parentName(p.name);
    if (parent === '') return p.name;
    if (parent === this.#lastParent) return this.#lastParentHost + '/' + baseName(p.name);
    const parentHost = this.#ensureDirectory(parent, p.name);
    if (this.#inherited === undefined) {
      this.#lastParent = parent;
      this.#lastParentHost = parentHost;
    }
    return parentHost + '/' + baseName(p.name);
  }

  /**
   * The host path of directory `dirName`, creating it and its missing ancestors (implicit
   * directories). Iterative: a path may have thousands of levels.
   */
  #ensureDirectory(dirName: string, forEntry: string): string {
    // Every ancestor is looked up below; a path the host cannot hold fails here, not after that walk.
    if (HOST_PATH_MAX !== undefined && this.#root.length + dirName.length >= HOST_PATH_MAX && Buffer.byteLength(this.#root) + 1 + Buffer.byteLength(dirName) >= HOST_PATH_MAX) {
      throw pathTooLongError(forEntry, undefined);
    }
    const missing: string[] = [];
    // The missing directories below Files/, checked against the parents together (deepest first, as they come).
    const checkParents = (): void => {
      const below = missing.filter((name) => name.startsWith('Files/'));
      if (this.#parents.length > 0 && below.length > 0) this.#checkParentsHoldDirectories(below, forEntry);
    };
    let host: string | undefined;
    for (let name = dirName; name !== ''; name = parentName(name)) {
      const key = caseFoldKey(name);
      const known = this.#dirs.get(key);
      const seen = this.#seenEntry(key, name);
      if (seen !== undefined) {
        if (seen.isReparse) {
          checkParents();
          throw createError('ERR_PATH_THROUGH_LINK', `${forEntry}: its parent ${seen.name} is a reparse point`, { entry: forEntry, parent: seen.name });
        }
        if (!seen.isDirectory) {
          checkParents();
          throw createError('ERR_PARENT_NOT_DIRECTORY', `${forEntry}: its parent ${seen.name} is not a directory`, { entry: forEntry, parent: seen.name });
        }
      }
      if (known !== undefined) {
        host = known;
        break;
      }
      const inherited = this.#inherited?.get(key);
      if (inherited !== undefined && inherited.kind !== 'directory') {
        checkParents();
        throw createError('ERR_PARENT_NOT_DIRECTORY', `${forEntry}: its parent ${inherited.name} is not a directory`, { entry: forEntry, parent: inherited.name });
      }
      missing.push(name);
    }
    checkParents();
    if (missing.length > 0) this.#settleDirs();
    for (let i = missing.length - 1; i >= 0; i--) {
      const name = missing[i] as string;
      host = host === undefined ? name : host + '/' + baseName(name);
      fs.mkdirSync(this.#abs(host), { recursive: false });
      this.#dirs.set(caseFoldKey(name), host);
    }
    return host as string;
  }

  #checkUtilityVM(p: LayerPath, what: string): void {
    if (p.root !== 'UtilityVM' || this.isBaseLayer) return;
    if (p.name !== 'UtilityVM' && !isUtilityVMFilesName(p.name)) {
      throw createError('ERR_UTILITYVM_INVALID', `${p.name}: a delta layer's UtilityVM may only hold UtilityVM/Files`, { entry: p.name, what });
    }
    if (p.name !== 'UtilityVM' && !this.#hasUtilityVM) {
      throw createError('ERR_UTILITYVM_INVALID', `${p.name}: comes before the UtilityVM directory entry`, { entry: p.name });
    }
  }

  /**
   * Clones the nearest parent's UtilityVM/Files (Server 2016 cannot layer the utility
   * VM): directories are made, files hard-linked — except the four BCD files that
   * ProcessUtilityVMImage rewrites, which are copied so the parent's stay intact.
   */
  #cloneUtilityVM(): void {
    this.#lastParent = undefined;
    if (this.#hasUtilityVM || this.isBaseLayer) return;
    const parent = this.#parents[0] as string;
    const src = path.join(parent, UTILITY_VM_FILES);
    if (!fs.existsSync(src)) {
      throw createError('ERR_UTILITYVM_INVALID', `the parent layer ${parent} has no ${UTILITY_VM_FILES} to clone`, { parent });
    }
    this.#hasUtilityVM = true;
    const uvm = path.join(this.#root, 'UtilityVM');
    if (!fs.existsSync(uvm)) fs.mkdirSync(uvm);
    this.#dirs.set(caseFoldKey('UtilityVM'), 'UtilityVM');
    const inherited = new InheritedRecords();
    /** Each directory's case-folded name and host path, in index order. */
    const directories: string[] = [];
    const parentStreams = path.join(parent, '.winlayer', 'streams.bin');
    let streamsFd: number | undefined;
    try {
      // Streamed: only the parent's UtilityVM records are kept, not its whole index.
      for (const r of indexEntriesSync(parent)) {
        if (r.kind === 'whiteout' || !isUtilityVMFilesName(r.name)) continue;
        const copy: IndexEntry = { ...r, inherited: true };
        if (r.streams !== undefined) {
          streamsFd ??= openLayerFile(parentStreams, parent, { path: parent });
          const buf = Buffer.allocUnsafe(r.streams[1]);
          fs.readSync(streamsFd, buf, 0, buf.length, r.streams[0]);
          copy.streams = [this.#index.appendStreams(buf), buf.length];
        }
        const key = caseFoldKey(r.name);
        inherited.set(key, copy);
        if (r.kind === 'directory') directories.push(key, r.host ?? r.name);
      }
    } finally {
      if (streamsFd !== undefined) fs.closeSync(streamsFd);
    }
    this.#inherited = inherited;
    cloneTree(src, path.join(this.#root, UTILITY_VM_FILES), UTILITY_VM_FILES);
    this.#dirs.set(caseFoldKey(UTILITY_VM_FILES), UTILITY_VM_FILES);
    for (let i = 0; i < directories.length; i += 2) this.#dirs.set(directories[i] as string, directories[i + 1] as string);
  }

  /**
   * A tar entry for a cloned UtilityVM path replaces the clone (FORMATS.md §3.3); a plain
   * directory (`isPlainDirectory`) over a plain directory keeps what the clone holds in it.
   */
  #replaceInherited(p: LayerPath, host: string, isPlainDirectory: boolean): void {
    // Only a UtilityVM cloned from a parent inherits entries; other layers skip the case folding.
    if (this.#inherited === undefined || this.#inherited.size === 0) return;
    const key = caseFoldKey(p.name);
    for (let dir = parentName(key); dir.includes('/') && !this.#addedBelow.has(dir); dir = parentName(dir)) this.#addedBelow.add(dir);
    const prior = this.#inherited.get(key);
    if (prior === undefined) return;
    const abs = path.join(this.#root, prior.host ?? host);
    if (isPlainDirectory && prior.kind === 'directory' && ((prior.attributes ?? 0) & FILE_ATTRIBUTE_REPARSE_POINT) === 0) {
      this.#inherited?.delete(key);
      this.#dirs.set(key, prior.host ?? host);
      return;
    }
    removeTreeSync(abs);
    this.#dropInheritedTree(p.name, prior);
    this.#dirs.delete(key);
  }

  /**
   * Forgets the inherited record `prior` of `name`, and what the clone held below it. Only
   * a directory has records below it: a file's is forgotten alone, so that a servicing
   * layer replacing or deleting N of the parent's P UtilityVM files costs N, not N × P.
   */
  #dropInheritedTree(name: string, prior: IndexEntry): void {
    const key = caseFoldKey(name);
    if (prior.kind !== 'directory') {
      this.#inherited?.delete(key);
      this.#dirs.delete(key);
      return;
    }
    for (const k of this.#inherited?.deleteTree(key) ?? []) this.#dirs.delete(k);
  }

  /**
   * Implicit directories `names` (no entry of this layer names them; deepest first, each
   * the parent of the one before) merge with what the parents show there: refused when
   * that is a file (it would take an entry for the directory to replace it) or a directory
   * symbolic link or junction (the entry would be written through it). Probed in each
   * parent, nearest first, by their spelling here; a deletion in this layer or a nearer
   * parent hides what lies below it.
   */
  #checkParentsHoldDirectories(names: readonly string[], forEntry: string): void {
    // Not an opaque whiteout's: it deletes only what the layer does not hold, and this
    // directory the layer holds (a parent's file there stays below it, which Windows
    // cannot merge; a reparse point would be written through).
    // Walked down from the shallowest, one segment a step in each parent: probing each
    // directory from the parent's root took time cubic in the depth (minutes at 2,000).
    const above = parentName(names[names.length - 1] as string);
    let deletedHere = deletedBy(this.#deletedHere, caseFoldKey(above));
    const probes = this.#parents.map((parent): { parent: string; at: string | undefined; deleted: boolean | undefined } => ({ parent, at: findFolded(parent, above), deleted: undefined }));
    let failure: WinLayerError | undefined;
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i] as string;
      const key = caseFoldKey(name);
      deletedHere ||= this.#deletedHere(key);
      for (const probe of probes) {
        if (probe.at !== undefined) probe.at = findFoldedSegment(probe.at, baseName(name));
        if (probe.deleted === false) probe.deleted = this.#deletedIn(probe.parent).has(key);
      }
      if (deletedHere) continue;
      for (const probe of probes) {
        const st = probe.at === undefined ? undefined : lstatOrUndefined(probe.at);
        if (st?.isFile() === true) {
          failure = createError('ERR_PARENT_NOT_DIRECTORY', `${forEntry}: its parent ${name} is a file in a parent layer (a directory entry would replace it)`, {
            entry: forEntry,
            parent: name,
          });
          break;
        }
        if (st?.isDirectory() === true) {
          if ((sidecarAttributes(probe.at + WCIDIRS_SUFFIX) & FILE_ATTRIBUTE_REPARSE_POINT) !== 0) {
            failure = createError('ERR_PATH_THROUGH_LINK', `${forEntry}: its parent ${name} is a reparse point in a parent layer`, { entry: forEntry, parent: name });
          }
          break;
        }
        // Read only where a parent lacks the directory; from then on kept up a segment at a time.
        if (probe.deleted === undefined) {
          const deleted = this.#deletedIn(probe.parent);
          probe.deleted = deletedBy((k) => deleted.has(k), key);
        }
        if (probe.deleted) break;
      }
    }
    // The deepest directory's failure, as when they were checked deepest first.
    if (failure !== undefined) throw failure;
  }

  /** The deletions of the parent layer `parent`, case-folded (read once). */
  #deletedIn(parent: string): DeletedNames {
    let deleted = this.#parentTombstones.get(parent);
    if (deleted === undefined) {
      deleted = DeletedNames.ofLayer(parent);
      this.#parentTombstones.set(parent, deleted);
    }
    return deleted;
  }

  /** Whether this layer deletes `key` (a case-folded name). */
  readonly #deletedHere = (key: string): boolean => this.#tombstones?.deleted.has(key) === true;

  /**
   * NTFS gives a file at most 1,024 names (in every layer that links it, and in a base
   * layer the copies made for links across formats): Windows would fail this import, and a
   * view of the layer would not hold them all either. Refuses the name that would pass it.
   */
  #checkNames(from: string, link: PendingLink): void {
    const origin = this.#originOf.get(from) ?? from;
    let names = lstatOrUndefined(origin)?.nlink ?? 0;
    for (const copy of this.#copiesOf.get(origin) ?? []) names += lstatOrUndefined(copy)?.nlink ?? 0;
    if (names >= NTFS_MAX_LINKS) {
      throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} has ${NTFS_MAX_LINKS} names already, the most NTFS holds`, {
        entry: link.path.name,
        target: link.target.name,
      });
    }
  }

  /** Makes one hard link; the links before it in tar order are made. */
  #makeLink(link: PendingLink): void {
    const targetKey = caseFoldKey(link.target.name);
    const own = link.parentsOnly ? undefined : this.#seenEntry(targetKey, link.target.name);
    let from: string | undefined;
    if (own !== undefined && own.kind === 'link' && !((own.linkOffset ?? Infinity) < link.offset)) {
      // Links are made in tar order, as Windows makes them: an earlier link is a file by now;
      // the link itself, or one further on, is not there to link to.
      throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} is ${targetKey === link.key ? 'the link itself' : 'a hard link that comes later'}`, {
        entry: link.path.name,
        target: link.target.name,
      });
    }
    // A directory the layer made only for entries below it is one all the same.
    const ownDirectory = own === undefined && !link.parentsOnly && this.#dirs.has(targetKey);
    if (own !== undefined || ownDirectory) {
      if (own === undefined || own.isDirectory) {
        throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} is a directory`, {
          entry: link.path.name,
          target: link.target.name,
        });
      }
      // A plain file was found on disk just now: one lstat per link, not two.
      from = own.host === undefined ? (own.found ?? this.#plainFilePath(targetKey, link.target.name) ?? '') : path.join(this.#root, own.host);
      const linkIsTransport = this.#isTransport(link.path.name);
      if (linkIsTransport !== own.transport) {
        // Files/ (transport format) and UtilityVM/Files (data) in one base layer: one file
        // cannot be both, so the link gets its own copy in its own format. The index keeps
        // it a link, which is what an export writes and what a view or diffGetter follows.
        // Each copy is a name NTFS would count (one file there).
        this.#checkNames(from, link);
        const to = path.join(this.#root, link.host);
        try {
          copyAcrossFormats(from, to, own, linkIsTransport, link);
        } catch (cause) {
          throw entryIoError(cause, link.path.name, 'copying its target');
        }
        const origin = this.#originOf.get(from) ?? from;
        this.#originOf.set(to, origin);
        const copies = this.#copiesOf.get(origin);
        if (copies === undefined) this.#copiesOf.set(origin, [to]);
        else copies.push(to);
        return;
      }
    } else if (link.path.root === 'Files') {
      // Names are case-insensitive: the nearest parent that holds the name in any spelling
      // holds the file, a farther one spelling it exactly being a copy it replaced.
      for (const parent of this.#parents) {
        const exact = path.join(parent, link.target.name);
        let st = lstatOrUndefined(exact);
        const candidate = st !== undefined ? exact : findFolded(parent, link.target.name);
        if (candidate === undefined) continue;
        st ??= lstatOrUndefined(candidate);
        if (st === undefined) continue;
        if (!st.isFile()) {
          throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} is not a file in ${parent}`, {
            entry: link.path.name,
            target: link.target.name,
          });
        }
        from = candidate;
        break;
      }
    } else {
      const inherited = this.#inherited?.get(targetKey);
      if (inherited?.kind === 'directory') {
        throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} is a directory`, {
          entry: link.path.name,
          target: link.target.name,
        });
      }
      if (inherited !== undefined) from = path.join(this.#root, inherited.host ?? inherited.name);
    }
    if (from === undefined) {
      // Its own name, which no parent holds: the layer's entry of that name is this link.
      if (targetKey === link.key) {
        throw createError('ERR_LINK_TARGET_INVALID', `${link.path.name}: hard link target ${link.target.name} is the link itself`, { entry: link.path.name, target: link.target.name });
      }
      const addedLater = link.parentsOnly && this.#addedBefore(targetKey, link.target.name);
      const where = addedLater ? 'in none of the parents (the layer adds it only after the link)' : 'in neither this layer nor its parents';
      throw createError('ERR_LINK_TARGET_NOT_FOUND', `${link.path.name}: hard link target ${link.target.name} is ${where}`, {
        entry: link.path.name,
        target: link.target.name,
      });
    }
    const to = path.join(this.#root, link.host);
    this.#checkNames(from, link);
    try {
      fs.linkSync(from, to);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw createError('ERR_LINK_TARGET_NOT_FOUND', `${link.path.name}: hard link target ${link.target.name} is not there to link to`, {
          entry: link.path.name,
          target: link.target.name,
        }, cause);
      }
      // Parents on another file system, or a file system without hard links: copy.
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw entryIoError(cause, link.path.name, 'making it');
      fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
    }
  }
}

function notDeletable(name: string): WinLayerError {
  return createError('ERR_WHITEOUT_INVALID', `${name}: only files under Files/ or UtilityVM/Files/ can be deleted`, { entry: name });
}

/** The most names (hard links) NTFS gives one file. */
const NTFS_MAX_LINKS = 1024;

/**
 * A copy of the file at `from` (the entry `target`) at `to`, in the other format: the data
 * stream alone when `toTransport` is false; when true, the attributes and a backup stream
 * holding the data stream (the target's other sub-streams are its own, in the index).
 * Streamed in chunks, created exclusively.
 */
function copyAcrossFormats(from: string, to: string, target: SeenEntry, toTransport: boolean, link: PendingLink): void {
  let start = 0;
  let length: number;
  const src = openLayerFile(from, target.name, { entry: target.name });
  try {
    if (target.transport) {
      const size = fs.fstatSync(src).size;
      const data = scanDataStream(src, size, target.name);
      start = data.offset;
      length = data.length;
    } else {
      length = fs.fstatSync(src).size;
    }
    const out = openForWrite(to, false);
    try {
      let position = 0;
      if (toTransport) {
        const head = Buffer.alloc(4);
        head.writeUInt32LE(target.attributes, 0);
        const header = encodeBackupHeader({ id: BackupStreamId.Data, size: length });
        writeAll(out, head, 0);
        writeAll(out, header, 4);
        position = 4 + header.length;
      }
      const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(length, 1)));
      let done = 0;
      while (done < length) {
        const n = fs.readSync(src, buf, 0, Math.min(buf.length, length - done), start + done);
        if (n === 0) throw createError('ERR_LAYER_CORRUPT', `${link.path.name}: ${target.name} ended early while being copied`, { entry: link.path.name });
        writeAll(out, buf.subarray(0, n), position + done);
        done += n;
      }
      setHostTimes(out, link.info);
    } finally {
      fs.closeSync(out);
    }
  } finally {
    fs.closeSync(src);
  }
}

const COPY_CHUNK_BYTES = 1024 * 1024;

/** Where the DATA payload of the transport file open at `fd` is (none: an empty range). */
function scanDataStream(fd: number, size: number, entry: string): { offset: number; length: number } {
  const head = Buffer.alloc(STREAM_ID_SIZE);
  let pos = 4;
  while (pos + STREAM_ID_SIZE <= size) {
    if (fs.readSync(fd, head, 0, STREAM_ID_SIZE, pos) !== STREAM_ID_SIZE) break;
    const id = head.readUInt32LE(0);
    const length = Number(head.readBigUInt64LE(8));
    const nameSize = head.readUInt32LE(16);
    pos += STREAM_ID_SIZE + nameSize;
    if (id === BackupStreamId.Data) return { offset: pos, length };
    pos += length;
  }
  if (pos > size) throw createError('ERR_LAYER_CORRUPT', `${entry}: its transport file ends inside a stream`, { entry });
  return { offset: pos, length: 0 };
}

/** True for names stored in the transport format: `Files`, `Hives` and everything under `Files/`. */
export function isTransportName(name: string): boolean {
  return name === 'Files' || name === 'Hives' || name.startsWith('Files/');
}

/** True for an index record stored in the transport format (a base layer restored in place has none). */
export function isTransportRecord(r: IndexEntry): boolean {
  return isTransportName(r.name) && r.direct !== true;
}

/** True for `UtilityVM/Files` and everything under it. */
export function isUtilityVMFilesName(name: string): boolean {
  return name === UTILITY_VM_FILES || name.startsWith(UTILITY_VM_FILES + '/');
}

/** True when `name`'s last segment marks a whiteout. */
export function isWhiteoutName(name: string): boolean {
  return baseName(name).startsWith(WHITEOUT_PREFIX);
}

function openForWrite(file: string, truncate: boolean): number {
  const flags = truncate
    ? fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW
    : fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
  return fs.openSync(file, flags, 0o644);
}

/** True when `key` or one of its parent directories is deleted (case-folded names). */
function deletedBy(deleted: (key: string) => boolean, key: string): boolean {
  for (let i = key.indexOf('/'); i !== -1; i = key.indexOf('/', i + 1)) {
    if (deleted(key.slice(0, i))) return true;
  }
  return deleted(key);
}

/**
 * The path below `root` that `name` names when compared case-insensitively, as NTFS
 * compares (each segment as spelled, else the first listed entry that folds the same), or
 * undefined. Used where a parent layer is probed by a name spelled in this one.
 */
function findFolded(root: string, name: string): string | undefined {
  let at: string | undefined = root;
  for (const segment of name.split('/')) {
    at = findFoldedSegment(at, segment);
    if (at === undefined) return undefined;
  }
  return at;
}

/** What `segment` names in the directory `at` when compared as NTFS compares, or undefined (see findFolded). */
function findFoldedSegment(at: string, segment: string): string | undefined {
  const exact = path.join(at, segment);
  if (lstatOrUndefined(exact) !== undefined) return exact;
  const want = caseFoldKey(segment);
  let found: string | undefined;
  try {
    found = fs.readdirSync(at).find((entry) => caseFoldKey(entry) === want);
  } catch {
    return undefined;
  }
  return found === undefined ? undefined : path.join(at, found);
}

/** The attributes at the start of a transport-format sidecar (0 when it cannot be read). */
function sidecarAttributes(file: string): number {
  const head = Buffer.alloc(4);
  let fd: number;
  try {
    fd = openLayerFile(file, 'sidecar');
  } catch (cause) {
    // None: a directory a layer made implicitly. Anything else there is the layer's damage.
    if (isMissingLayerFile(cause)) return 0;
    throw cause;
  }
  try {
    return fs.readSync(fd, head, 0, 4, 0) === 4 ? head.readUInt32LE(0) : 0;
  } finally {
    fs.closeSync(fd);
  }
}

function lstatOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT' || (cause as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw cause;
  }
}

/**
 * A file system error met while writing `entry`, as the error that names it (ENOSPC, EFBIG
 * and EIO otherwise come back naming only the layer); WinLayerErrors pass unchanged.
 */
function entryIoError(cause: unknown, entry: string, doing: string): unknown {
  if ((cause as NodeJS.ErrnoException).code === 'ENAMETOOLONG') return pathTooLongError(entry, cause);
  return typeof (cause as NodeJS.ErrnoException).syscall === 'string' ? toWinLayerError(cause, `${entry}: ${doing}`, { entry }) : cause;
}

/** Host atime/mtime as seconds (what utimes takes); the exact 100 ns values live in the index. */
function hostTimes(info: FileBasicInfo): [number, number] {
  return [hostSecondsFromFiletime(info.lastAccessTime), hostSecondsFromFiletime(info.lastWriteTime)];
}

/**
 * The longest path (bytes, with its NUL) the host's system calls take, where it is fixed:
 * Linux refuses longer ones with ENAMETOOLONG.
 */
const HOST_PATH_MAX = process.platform === 'linux' ? 4096 : undefined;

function setHostTimes(fd: number, info: FileBasicInfo): void {
  const [atime, mtime] = hostTimes(info);
  fs.futimesSync(fd, utimesTime(atime), utimesTime(mtime));
}

/** Hard-links a tree, copying directories' structure and the mutated BCD files. */
function cloneTree(src: string, dest: string, name: string): void {
  fs.mkdirSync(dest);
  for (const d of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, d.name);
    const to = path.join(dest, d.name);
    const childName = name + '/' + d.name;
    if (d.isDirectory()) {
      cloneTree(from, to, childName);
    } else if (d.isFile()) {
      if (MUTATED_UTILITY_VM_FILES.has(childName)) fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
      else {
        try {
          fs.linkSync(from, to);
        } catch (cause) {
          if ((cause as NodeJS.ErrnoException).code !== 'EXDEV') throw cause;
          fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
        }
      }
    }
    // Anything else (a symlink planted by hand) is not part of a layer we wrote: skip it.
  }
}

/** A recorded link as the link-making code takes it. */
function pendingLink(link: SpilledLink): PendingLink {
  const [creationTime, lastAccessTime, lastWriteTime, changeTime] = link.times;
  return {
    path: layerPathOf(link.name),
    target: layerPathOf(link.target),
    info: { creationTime, lastAccessTime, lastWriteTime, changeTime, fileAttributes: link.attributes },
    host: link.host,
    key: caseFoldKey(link.name),
    offset: link.offset,
    parentsOnly: link.parentsOnly === true,
  };
}

/** The LayerPath of a name that was validated when it was recorded. */
function layerPathOf(name: string): LayerPath {
  const slash = name.indexOf('/');
  return { name, root: (slash === -1 ? name : name.slice(0, slash)) as LayerPath['root'] };
}
