/**
 * The container's view of a layer chain (what windowsfilter's PrepareLayer exposes as a
 * volume): the Files/ entries of every layer from the base up, each layer's deletions
 * applied, the nearest layer winning. On Linux/macOS it is materialized as a plain
 * directory: data streams as files, symbolic links as symbolic links, hard links as hard
 * links. Only metadata is read to resolve the view; data is copied by positioned reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError, pathTooLongError } from '../errors.js';
import { itemFromRecord, type ByteRange, type ExportItem } from '../layer/layer-reader.js';
import { isUtilityVMFilesName } from '../layer/layer-writer.js';
import { INDEX_DIR, indexEntriesSync, indexEntryAt, IndexRecordReader, readLayerInfo, STREAMS_FILE, type EntryKind, type IndexEntry } from '../layer/metadata-index.js';
import { writeAll, type LineSpan } from '../util/lines.js';
import { caseFoldKey } from '../util/safe-path.js';
import { clampHostSeconds, FILE_ATTRIBUTE_DIRECTORY, unixNsFromFiletime } from '../util/windows.js';

const FILES_PREFIX = 'Files/';

/**
 * One visible entry of the view: what resolving and materializing need (kind, hard-link
 * target), and where the rest of its record is, read back from the index when asked for.
 * Holding every record instead cost ~770 bytes of heap an entry: ~324 MiB for a Windows
 * base layer's 440,000 entries, 427 MiB peak RSS in the worker that made its view.
 */
export class ViewEntry {
  /** The name below Files/ with `/` separators (`''` is the root); a UtilityVM path for a link target there. */
  readonly name: string;
  /** The layer that holds the entry. */
  readonly layerRoot: string;
  readonly kind: EntryKind;
  /** A hard link's target (layer path), as its record holds it. */
  readonly target: string | undefined;
  /**
   * Hard links: the file the link named when its layer was imported. A later layer may
   * delete or replace that path; the link keeps the content, as an NTFS link would.
   */
  linkTo: ViewEntry | undefined = undefined;
  /** The record's place in its layer's index, or the record itself when it is not there (merged directories, UtilityVM targets). */
  readonly #offset: number;
  readonly #length: number;
  readonly #kept: IndexEntry | undefined;

  /** `line` is where indexEntriesSync read `record`; without it the record is kept whole. */
  constructor(name: string, layerRoot: string, record: IndexEntry, line?: LineSpan) {
    this.name = name;
    this.layerRoot = layerRoot;
    this.kind = record.kind;
    this.target = record.kind === 'link' ? record.target : undefined;
    this.#offset = line?.offset ?? -1;
    this.#length = line?.length ?? 0;
    this.#kept = line === undefined ? record : undefined;
  }

  /** Where the record is in its layer's index (a byte offset), or -1 for a record kept whole. */
  get indexOffset(): number {
    return this.#offset;
  }

  /** The record's name in its layer (`Files/…`). */
  get recordName(): string {
    if (this.#kept !== undefined) return this.#kept.name;
    return this.name === '' ? 'Files' : FILES_PREFIX + this.name;
  }

  /** The whole record, read back from the index (through `reader` when given: one open for many reads). */
  recordFrom(reader?: IndexRecordReader): IndexEntry {
    if (this.#kept !== undefined) return this.#kept;
    const line = { offset: this.#offset, length: this.#length };
    return reader === undefined ? indexEntryAt(this.layerRoot, line, this.recordName) : reader.at(line, this.recordName);
  }

  /** The whole record, read back from the index. */
  get record(): IndexEntry {
    return this.recordFrom();
  }
}

/**
 * Resolves the view of `layers` (nearest first). Returns entries keyed by case-folded
 * name below Files/, in an order where a directory comes before its children.
 * `checkpoint` is called once a record read; it throws to stop (a worker whose controller
 * is gone).
 */
export function resolveView(layers: readonly string[], checkpoint?: () => void): Map<string, ViewEntry> {
  const view = new Map<string, ViewEntry>();
  /**
   * Files, symlinks and hard links a nearer layer deleted by name: hcsshim resolves a hard link's
   * target in the parent layers' directories, where such a file still is, so a link may
   * name one. The link keeps its content (see materializeView).
   */
  const deleted = new Map<string, ViewEntry>();
  /**
   * The names below each name, for every name in the view and every directory above one
   * (a layer may hold `a/b/c` without `a/b`): dropping what lies below a name then visits
   * that subtree only. A scan of the whole view per deletion or replaced file made this
   * quadratic: 2.7 s of CPU for a 20,000-file layer, 252 s for one of 105,000 entries.
   */
  const below = new Map<string, Set<string>>();
  const parentKey = (key: string): string => {
    const slash = key.lastIndexOf('/');
    return slash === -1 ? '' : key.slice(0, slash);
  };
  /** A spelling of each directory `below` knows (caseFoldKey keeps each unit's place: a key's prefix is the name's prefix's key). */
  const spelled = new Map<string, string>();
  const place = (key: string, entry: ViewEntry): void => {
    view.set(key, entry);
    // Link the name into the tree, and each missing directory above it, up to one already there.
    for (let k = key; k !== ''; ) {
      const up = parentKey(k);
      let kids = below.get(up);
      const known = kids !== undefined;
      if (kids === undefined) {
        kids = new Set();
        below.set(up, kids);
        if (up !== '' && !spelled.has(up)) spelled.set(up, entry.name.slice(0, up.length));
      }
      if (kids.has(k)) break;
      kids.add(k);
      if (known) break;
      k = up;
    }
  };
  const forget = (key: string): void => {
    const gone = view.get(key);
    // A hard link is a file too: a later link may name it, and reaches its content through linkTo.
    if (gone !== undefined && (gone.kind === 'file' || gone.kind === 'symlink' || gone.kind === 'link')) deleted.set(key, gone);
    view.delete(key);
  };
  const dropBelow = (key: string): void => {
    const stack = [key];
    for (let k = stack.pop(); k !== undefined; k = stack.pop()) {
      const kids = below.get(k);
      if (kids === undefined) continue;
      below.delete(k);
      for (const kid of kids) {
        forget(kid);
        stack.push(kid);
      }
    }
  };
  /** Takes `key` and everything below it out of the view. */
  const remove = (key: string): void => {
    forget(key);
    dropBelow(key);
    if (key !== '') below.get(parentKey(key))?.delete(key);
  };
  /** The records of the layer being resolved, by name, read when a link of its UtilityVM needs them. */
  const byName = new Map<string, Map<string, IndexEntry>>();
  const recordsOf = (layerRoot: string) => (): Map<string, IndexEntry> => {
    let records = byName.get(layerRoot);
    if (records === undefined) {
      records = new Map();
      for (const x of indexEntriesSync(layerRoot)) if (x.kind !== 'whiteout' && x.inherited !== true) records.set(caseFoldKey(x.name), x);
      byName.set(layerRoot, records);
    }
    return records;
  };
  const resolveLink = (link: ViewEntry, layerRoot: string): void => {
    const target = link.target ?? '';
    const targetKey = caseFoldKey(target.slice(FILES_PREFIX.length));
    const t = target.startsWith(FILES_PREFIX) ? (view.get(targetKey) ?? deleted.get(targetKey)) : utilityVMFile(recordsOf(layerRoot), layerRoot, target);
    const resolved = t?.kind === 'link' ? t.linkTo : t;
    // A hard link to a symbolic link (NTFS makes one) is that link again.
    if (resolved === undefined || (resolved.kind !== 'file' && resolved.kind !== 'symlink')) {
      throw createError('ERR_LAYER_CORRUPT', `${link.recordName}: hard link target ${target} is not a file of the chain`, { entry: link.recordName });
    }
    link.linkTo = resolved;
  };
  for (let i = layers.length - 1; i >= 0; i--) {
    const layerRoot = layers[i] as string;
    byName.clear(); // one layer's at a time: a base layer has hundreds of thousands
    const info = readLayerInfo(layerRoot);
    const merged = new Map((info.merged ?? []).map((m) => [m.name, m] as const));
    // The index is streamed, twice (deletions first, then entries), not read whole: its text
    // and records beside the view raised the peak RSS of resolving a 105,000-entry layer
    // from 155 to 190 MB.
    for (const r of indexEntriesSync(layerRoot)) {
      checkpoint?.();
      if (r.kind !== 'whiteout' || !r.name.startsWith(FILES_PREFIX)) continue;
      remove(caseFoldKey(r.name.slice(FILES_PREFIX.length)));
    }
    const links: ViewEntry[] = [];
    const line: LineSpan = { offset: 0, length: 0 };
    for (const raw of indexEntriesSync(layerRoot, line)) {
      checkpoint?.();
      if (raw.kind === 'whiteout' || (raw.name !== 'Files' && !raw.name.startsWith(FILES_PREFIX))) continue;
      const mergedRecord = merged.get(raw.name);
      const r = mergedRecord ?? raw;
      // The Files directory itself is the view's root, name ''.
      const name = r.name === 'Files' ? '' : r.name.slice(FILES_PREFIX.length);
      const key = caseFoldKey(name);
      const isDir = r.kind === 'directory' && ((r.attributes ?? 0) & FILE_ATTRIBUTE_DIRECTORY) !== 0;
      const prior = view.get(key);
      // A non-directory replaces whatever the lower layers had below that name.
      if (!isDir || (prior !== undefined && prior.kind !== 'directory')) dropBelow(key);
      // A merged directory's record is in layer.json, not at this line: kept whole (there are few).
      const entry = new ViewEntry(name, layerRoot, r, mergedRecord === undefined ? line : undefined);
      // A link to the parents' file (its layer added the name only after it) is resolved
      // where it stands: the entries placed so far are not of that name.
      if (r.kind === 'link' && r.parentTarget === true) resolveLink(entry, layerRoot);
      else if (r.kind === 'link') links.push(entry);
      place(key, entry);
    }
    // Links last: their targets are this layer's files or the lower layers' (or, in a base
    // layer, a file of its UtilityVM).
    for (const link of links) resolveLink(link, layerRoot);
  }
  // Directories a layer made without an entry of their own (it holds `a/b/c`, not `a/b`):
  // Windows made them, and they stay when what was in them is deleted.
  const implicit = new Map<string, string>();
  for (const key of below.keys()) if (key !== '' && !view.has(key)) implicit.set(key, spelled.get(key) ?? key);
  implicitOf.set(view, implicit);
  return view;
}

const implicitOf = new WeakMap<ReadonlyMap<string, ViewEntry>, ReadonlyMap<string, string>>();

/**
 * The directories of a view that no layer names (resolveView), by case-folded name, with
 * a spelling; they are made in the view, and compared, as directories.
 */
export function implicitDirectories(view: ReadonlyMap<string, ViewEntry>): ReadonlyMap<string, string> {
  return implicitOf.get(view) ?? new Map();
}

/** The file `target` of a layer's own UtilityVM, following its links there; not part of the view. */
function utilityVMFile(records: () => ReadonlyMap<string, IndexEntry>, layerRoot: string, target: string): ViewEntry | undefined {
  let name = target;
  for (let hops = 0; hops < 2 && isUtilityVMFilesName(name); hops++) {
    const r = records().get(caseFoldKey(name));
    if (r === undefined) return undefined;
    if (r.kind === 'file') return new ViewEntry(r.name, layerRoot, r);
    if (r.kind !== 'link' || r.target === undefined) return undefined;
    name = r.target;
  }
  return undefined;
}

/**
 * Where the names of a view go below its directory. Layers may spell one directory
 * differently (`Windows` in one, `WINDOWS` in the next); on NTFS that is one directory, and
 * so it is here: a name's parent is found by its case-folded name, and a directory takes
 * the spelling of its own view entry, or, when no layer names it, of the first name that
 * needs it. `dir` gives a directory's path, `entry` any other name's (its parent's path,
 * a slash, its own last component).
 */
function hostNames(view: ReadonlyMap<string, ViewEntry>): { dir: (name: string) => string; entry: (name: string) => string } {
  const placed = new Map<string, string>([['', '']]);
  const dir = (name: string): string => {
    const key = caseFoldKey(name);
    const known = placed.get(key);
    if (known !== undefined) return known;
    // Up to the nearest placed ancestor, then each missing one placed on the way down
    // (iterative: a path may have thousands of levels). caseFoldKey keeps every UTF-16
    // unit's place, so a key's prefix is its name prefix's key.
    const missing: { name: string; key: string }[] = [];
    let n = name;
    let k = key;
    let host = placed.get(k);
    while (host === undefined) {
      missing.push({ name: n, key: k });
      const slash = n.lastIndexOf('/');
      n = slash === -1 ? '' : n.slice(0, slash);
      k = slash === -1 ? '' : k.slice(0, slash);
      host = placed.get(k);
    }
    for (let i = missing.length - 1; i >= 0; i--) {
      const m = missing[i] as { name: string; key: string };
      const own = view.get(m.key);
      const spelled = own !== undefined && own.kind === 'directory' ? own.name : m.name;
      const base = spelled.slice(spelled.lastIndexOf('/') + 1);
      host = host === '' ? base : `${host}/${base}`;
      placed.set(m.key, host);
    }
    return host;
  };
  let lastParent: string | undefined;
  let lastParentHost = '';
  const entry = (name: string): string => {
    const slash = name.lastIndexOf('/');
    if (slash === -1) return name;
    const parent = name.slice(0, slash);
    if (parent !== lastParent) {
      lastParentHost = dir(parent);
      lastParent = parent;
    }
    return `${lastParentHost}/${name.slice(slash + 1)}`;
  };
  return { dir, entry };
}

/** The export item (data range, metadata) of a view entry; its record is read through `reader` when given. */
export function itemOf(e: ViewEntry, reader?: IndexRecordReader): ExportItem {
  return itemFromRecord(e.layerRoot, path.join(e.layerRoot, INDEX_DIR, STREAMS_FILE), e.recordFrom(reader));
}

/**
 * Export items of many view entries: each layer's index is opened once, on its first
 * record, and read ahead `readAhead` bytes at a time (for a walk in index order). `close`
 * when done.
 */
export class ViewItems {
  readonly #readAhead: number;
  readonly #readers = new Map<string, IndexRecordReader>();

  constructor(readAhead = 0) {
    this.#readAhead = readAhead;
  }

  of(e: ViewEntry): ExportItem {
    let reader = this.#readers.get(e.layerRoot);
    if (reader === undefined) {
      reader = new IndexRecordReader(e.layerRoot, this.#readAhead);
      this.#readers.set(e.layerRoot, reader);
    }
    return itemOf(e, reader);
  }

  close(): void {
    for (const r of this.#readers.values()) r.close();
    this.#readers.clear();
  }
}

/** A Windows link target as a POSIX one: relative targets keep meaning; absolute ones stay as written. */
export function posixLinkTarget(target: string): string {
  if (/^[A-Za-z]:|^\\\\/.test(target)) return target;
  return target.replaceAll('\\', '/');
}

/**
 * A FILETIME as the time to give utimes: seconds, or, before 1970, a Date (Node's utimes
 * takes a negative number of seconds for "now", a Date before 1970 as itself, to the ms).
 * rw-diff compares the view's mtimes with their records (mtimeMatches).
 */
function secondsOf(filetime: bigint): number | Date {
  const seconds = clampHostSeconds(Number(unixNsFromFiletime(filetime)) / 1e9);
  return seconds < 0 ? new Date(Math.round(seconds * 1000)) : seconds;
}

/**
 * Whether the mtime a view file has (`hostUs`, µs since 1970) is the one the view gave it
 * from its record (`recordNs`): utimes takes seconds as a double, which keeps a time since
 * 1970 to within 1 µs, and one before to the ms (a Date). A time outside 1901–2038 may be
 * clamped by the host's file system, each its own way: it matches whatever the host holds,
 * and the size decides.
 */
export function mtimeMatches(recordNs: bigint, hostUs: bigint): boolean {
  if (recordNs < -(2n ** 31n) * 1_000_000_000n || recordNs >= 2n ** 31n * 1_000_000_000n) return true;
  const difference = recordNs / 1000n - hostUs;
  const tolerance = recordNs < 0n ? 1000n : 1n;
  return difference <= tolerance && difference >= -tolerance;
}

/** How often materializeView reports progress at most. */
const PROGRESS_MS = 100;

/**
 * Writes the view into the empty directory `dest`. Symbolic links are made last, so no
 * write can pass through one; every file is created exclusively. `onProgress` hears the
 * entries written and the bytes copied, at most every 100 ms and once at the end.
 * `checkpoint` is called once an entry (and once a chunk of a large file's data); it
 * throws to stop (a worker whose controller is gone). A path longer than the host takes
 * (the view's directory is deeper in the store than the layers are) fails with
 * ERR_PATH_TOO_LONG naming its entry.
 */
export function materializeView(
  view: Map<string, ViewEntry>,
  dest: string,
  onProgress?: (p: { entries: number; bytes: number }) => void,
  checkpoint?: () => void,
): void {
  let done = 0;
  let copied = 0;
  let reported = 0;
  const progress = (force: boolean): void => {
    if (onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - reported < PROGRESS_MS) return;
    reported = now;
    onProgress({ entries: done, bytes: copied });
  };
  const copyRange = (range: ByteRange, out: number): void => {
    copyFileRange(range, out, checkpoint);
    copied += range.length;
  };
  const items = new ViewItems(INDEX_READ_AHEAD);
  /** The entry being written, for the error that names it. */
  let current: ViewEntry | undefined;
  try {
    materialize(view, dest, items, copyRange, (e, counts) => {
      current = e;
      checkpoint?.();
      if (!counts) return;
      done++;
      progress(false);
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') throw pathTooLongError(current?.recordName ?? 'Files', error);
    throw error;
  } finally {
    items.close();
  }
  progress(true);
}

/**
 * `step(e, counts)` is called before each piece of work on entry `e`: `counts` for its
 * first (an entry written, for progress), not for the links, symbolic links and directory
 * times done after all entries.
 */
function materialize(
  view: Map<string, ViewEntry>,
  dest: string,
  items: ViewItems,
  copyRange: (range: ByteRange, out: number) => void,
  step: (e: ViewEntry, counts: boolean) => void,
): void {
  // Layer by layer, in index order: each index is then read in blocks, not a record at a
  // time, and a layer's entries of one directory mostly follow one another. Parents are
  // made as their children need them; directory times are set at the end.
  const byLayer = new Map<string, ViewEntry[]>();
  for (const e of view.values()) {
    let list = byLayer.get(e.layerRoot);
    if (list === undefined) {
      list = [];
      byLayer.set(e.layerRoot, list);
    }
    list.push(e);
  }
  const entries: ViewEntry[] = [];
  for (const list of byLayer.values()) {
    list.sort((a, b) => a.indexOffset - b.indexOffset);
    for (const e of list) entries.push(e);
  }
  byLayer.clear();
  const hostOf = hostNames(view);
  let madeDir = '';
  const links: ViewEntry[] = [];
  const symlinks: { e: ViewEntry; at: string; target: string; atime: number | Date; mtime: number | Date }[] = [];
  const dirTimes: { e: ViewEntry; at: string; atime: number | Date; mtime: number | Date }[] = [];
  for (const e of entries) {
    step(e, true);
    if (e.name === '') continue;
    const at = path.join(dest, e.kind === 'directory' ? hostOf.dir(e.name) : hostOf.entry(e.name));
    // Parents a layer created implicitly have no record of their own. They are made now for
    // hard and symbolic links too, while no symbolic link exists that a path could pass through.
    const dir = path.dirname(at);
    if (dir !== madeDir) {
      fs.mkdirSync(dir, { recursive: true });
      madeDir = dir;
    }
    if (e.kind === 'link') {
      links.push(e);
      continue;
    }
    const it = items.of(e);
    if (it.kind !== 'entry') continue;
    const times = { atime: secondsOf(it.info.lastAccessTime), mtime: secondsOf(it.info.lastWriteTime) };
    if (e.kind === 'symlink') {
      symlinks.push({ e, at, target: posixLinkTarget(it.meta.reparse?.target ?? ''), ...times });
      continue;
    }
    if (e.kind === 'directory') {
      fs.mkdirSync(at, { recursive: true });
      dirTimes.push({ e, at, ...times });
      continue;
    }
    const fd = fs.openSync(at, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    try {
      if (it.data !== undefined) copyRange(it.data, fd);
      fs.futimesSync(fd, times.atime, times.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }
  /** A target whose own path the view does not show: the first of its links, which holds its content. */
  const standIns = new Map<ViewEntry, string>();
  for (const e of links) {
    step(e, false);
    const target = e.linkTo;
    if (target === undefined) throw createError('ERR_LAYER_CORRUPT', `${e.recordName}: unresolved hard link`, { entry: e.recordName });
    const at = path.join(dest, hostOf.entry(e.name));
    if (target.kind === 'symlink') {
      const it = items.of(target);
      const info = it.kind === 'entry' ? it.info : undefined;
      symlinks.push({
        e,
        at,
        target: posixLinkTarget(it.kind === 'entry' ? (it.meta.reparse?.target ?? '') : ''),
        atime: info === undefined ? new Date() : secondsOf(info.lastAccessTime),
        mtime: info === undefined ? new Date() : secondsOf(info.lastWriteTime),
      });
      continue;
    }
    if (view.get(caseFoldKey(target.name)) === target) {
      fs.linkSync(path.join(dest, hostOf.entry(target.name)), at);
      continue;
    }
    // The target's path was deleted or replaced above: its first link holds the content,
    // and its other links are names of that file, as they are of one file in the layers.
    const standIn = standIns.get(target);
    if (standIn !== undefined) {
      fs.linkSync(standIn, at);
      continue;
    }
    standIns.set(target, at);
    const it = items.of(target);
    const fd = fs.openSync(at, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    try {
      if (it.kind === 'entry') {
        if (it.data !== undefined) copyRange(it.data, fd);
        // A hard link shares its file's times.
        fs.futimesSync(fd, secondsOf(it.info.lastAccessTime), secondsOf(it.info.lastWriteTime));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  // Directories no layer names, left empty by deletions (the others exist by now), before
  // any symbolic link exists that a path could pass through.
  for (const name of implicitDirectories(view).values()) {
    try {
      fs.mkdirSync(path.join(dest, hostOf.dir(name)), { recursive: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') throw pathTooLongError(`Files/${name}`, error);
      throw error;
    }
  }
  for (const s of symlinks) {
    step(s.e, false);
    fs.symlinkSync(s.target, s.at);
    // The link's own times, as its layer records them (not the time of the mount).
    fs.lutimesSync(s.at, s.atime, s.mtime);
  }
  // Directory times last, when nothing more is made in them (a utimes of a directory's
  // child leaves the directory's own times alone: their order does not matter).
  for (const d of dirTimes) {
    step(d.e, false);
    fs.utimesSync(d.at, d.atime, d.mtime);
  }
}

const COPY_CHUNK = 256 * 1024;

/** Bytes of an index read at once while materializing (records are ~200–400 bytes). */
const INDEX_READ_AHEAD = 64 * 1024;

/**
 * Writes the bytes of `range` to `out`: from memory when the reader already holds them (a
 * small file read whole), else copied in chunks, `checkpoint` called before each.
 */
function copyFileRange(range: ByteRange, out: number, checkpoint?: () => void): void {
  for (const chunk of rangeChunks(range, checkpoint)) writeAll(out, chunk);
}

/**
 * The bytes of `range`, read in chunks of at most 256 KiB into one buffer (each chunk is
 * valid until the next is asked for), or the bytes the reader holds; `checkpoint` is
 * called before each read. A file shorter than its index says is ERR_LAYER_CORRUPT.
 */
export function* rangeChunks(range: ByteRange, checkpoint?: () => void): Generator<Buffer> {
  const { file, offset, length } = range;
  if (length === 0) return;
  if (range.bytes !== undefined) {
    if (range.bytes.length !== length) throw createError('ERR_LAYER_CORRUPT', `${file}: shorter than its index says`, { file });
    yield range.bytes;
    return;
  }
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, length));
  try {
    let done = 0;
    while (done < length) {
      checkpoint?.();
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
      if (n === 0) throw createError('ERR_LAYER_CORRUPT', `${file}: shorter than its index says`, { file });
      yield n === buf.length ? buf : buf.subarray(0, n);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
