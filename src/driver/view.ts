/**
 * The container's view of a layer chain (what windowsfilter's PrepareLayer exposes as a
 * volume): the Files/ entries of every layer from the base up, each layer's deletions
 * applied, the nearest layer winning. On Linux/macOS it is materialized as a plain
 * directory: data streams as files, symbolic links as symbolic links, hard links as hard
 * links. Only metadata is read to resolve the view; data is copied by positioned reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError, pathTooLongError, toWinLayerError } from '../errors.js';
import { itemFromRecord, type ByteRange, type ExportItem } from '../layer/layer-reader.js';
import { isUtilityVMFilesName } from '../layer/layer-writer.js';
import { INDEX_DIR, indexEntriesSync, indexEntryAt, IndexRecordReader, openLayerFile, readLayerInfo, STREAMS_FILE, type EntryKind, type IndexEntry } from '../layer/metadata-index.js';
import { writeAll, type LineSpan } from '../util/lines.js';
import { caseFoldKey } from '../util/safe-path.js';
import { clampHostSeconds, FILE_ATTRIBUTE_DIRECTORY, unixNsFromFiletime, utimesTime } from '../util/windows.js';
import { NONE, ViewTree } from './view-tree.js';

const FILES_PREFIX = 'Files/';

/**
 * One entry of a view, made when asked for from the view's tree (View.entry): what
 * resolving and materializing need (kind, hard-link target), and where the rest of its
 * record is, read back from the index when asked for.
 */
export class ViewEntry {
  /** Its node in its view's tree; NONE for an entry made from a record alone (ofRecord). */
  readonly id: number;
  /** The name below Files/ with `/` separators (`''` is the root), each directory spelled as the view spells it; a UtilityVM path for a link target there. */
  readonly name: string;
  /** The layer that holds the entry. */
  readonly layerRoot: string;
  readonly kind: EntryKind;
  /**
   * Hard links: the file the link named when its layer was imported. A later layer may
   * delete or replace that path; the link keeps the content, as an NTFS link would.
   */
  readonly linkTo: ViewEntry | undefined;
  /** The record's place in its layer's index, or the record itself when it is not there (merged directories, UtilityVM targets). */
  readonly #offset: number;
  readonly #length: number;
  readonly #kept: IndexEntry | undefined;

  constructor(id: number, name: string, layerRoot: string, kind: EntryKind, linkTo: ViewEntry | undefined, line: LineSpan | IndexEntry) {
    this.id = id;
    this.name = name;
    this.layerRoot = layerRoot;
    this.kind = kind;
    this.linkTo = linkTo;
    const kept = 'kind' in line;
    this.#offset = kept ? -1 : line.offset;
    this.#length = kept ? 0 : line.length;
    this.#kept = kept ? line : undefined;
  }

  /** The entry of `record`, a record of the layer `layerRoot`, outside any view. */
  static ofRecord(layerRoot: string, record: IndexEntry): ViewEntry {
    return new ViewEntry(NONE, record.name, layerRoot, record.kind, undefined, record);
  }

  /** Where the record is in its layer's index (a byte offset), or -1 for a record kept whole. */
  get indexOffset(): number {
    return this.#offset;
  }

  /** The record's name (`Files/…`), as the view spells it: its layer may spell a directory above it otherwise. */
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
 * A resolved view: its entries by case-folded name below Files/ (`''` is the root), and
 * the directories no layer names (a layer holds `a/b/c` without `a/b`: Windows made them,
 * and they stay when what was in them is deleted). Kept as a ViewTree; entries are made
 * when asked for, never held.
 */
export class View {
  readonly tree: ViewTree;
  readonly #layers: readonly string[];
  /** Records not at a line of their layer's index (merged directories, UtilityVM targets), by node. */
  readonly #kept: ReadonlyMap<number, IndexEntry>;

  constructor(tree: ViewTree, layers: readonly string[], kept: ReadonlyMap<number, IndexEntry>) {
    this.tree = tree;
    this.#layers = layers;
    this.#kept = kept;
  }

  /** How many entries the view has (directories no layer names not counted). */
  get size(): number {
    return this.tree.size;
  }

  /** The entry of the case-folded name `key`. */
  get(key: string): ViewEntry | undefined {
    const id = this.tree.find(key);
    return id !== NONE && this.tree.isEntry(id) ? this.entry(id) : undefined;
  }

  has(key: string): boolean {
    const id = this.tree.find(key);
    return id !== NONE && this.tree.isEntry(id);
  }

  /** The entry of node `id`: one of the view, or one a hard link of it reaches (deleted or replaced since, or in a UtilityVM). */
  entry(id: number): ViewEntry {
    const t = this.tree;
    const layerRoot = this.#layers[t.layer(id)] as string;
    const kind = t.kind(id);
    const to = kind === 'link' ? t.linkTo(id) : NONE;
    const name = t.parent(id) === NONE && id !== t.root ? t.name(id) : t.pathOf(id);
    const line = this.#kept.get(id) ?? { offset: t.offset(id), length: t.length(id) };
    return new ViewEntry(id, name, layerRoot, kind === 'implicit' ? 'directory' : kind, to === NONE ? undefined : this.entry(to), line);
  }

  /** Every live node of the tree, the root first, a directory before what it holds. */
  *#nodes(): Generator<number> {
    const t = this.tree;
    const stack = [t.root];
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      yield id;
      for (const c of t.children(id)) stack.push(c);
    }
  }

  /** The nodes of the view's entries, a directory before what it holds. */
  *ids(): Generator<number> {
    for (const id of this.#nodes()) if (this.tree.isEntry(id)) yield id;
  }

  *values(): Generator<ViewEntry> {
    for (const id of this.ids()) yield this.entry(id);
  }

  /** Entries by case-folded name. */
  *[Symbol.iterator](): Generator<[string, ViewEntry]> {
    for (const e of this.values()) yield [caseFoldKey(e.name), e];
  }

  /** The directories no layer names, each as the first name that needed it spells it. */
  *implicitDirectories(): Generator<string> {
    const t = this.tree;
    for (const id of this.#nodes()) if (id !== t.root && t.kind(id) === 'implicit') yield t.pathOf(id);
  }
}

/**
 * Resolves the view of `layers` (nearest first). `checkpoint` is called once a record
 * read; it throws to stop (a worker whose controller is gone).
 */
export function resolveView(layers: readonly string[], checkpoint?: () => void): View {
  const tree = new ViewTree();
  const kept = new Map<number, IndexEntry>();
  /**
   * Files, symlinks and hard links a nearer layer deleted by name: hcsshim resolves a hard link's
   * target in the parent layers' directories, where such a file still is, so a link may
   * name one. The link keeps its content (see materializeView).
   */
  const deleted = new Map<string, number>();
  const dying = (id: number): void => {
    const k = tree.kind(id);
    // A hard link is a file too: a later link may name it, and reaches its content through linkTo.
    if (k === 'file' || k === 'symlink' || k === 'link') deleted.set(caseFoldKey(tree.pathOf(id)), id);
  };
  /** The records of the layer being resolved, by name, read when a link of its UtilityVM needs them. */
  let byName: Map<string, IndexEntry> | undefined;
  /** The layer's UtilityVM files that its links reached, by folded name: two links to one are one file in the view too. */
  const utilityVMNodes = new Map<string, number>();
  const recordsOf = (layerRoot: string) => (): Map<string, IndexEntry> => {
    if (byName === undefined) {
      byName = new Map();
      for (const x of indexEntriesSync(layerRoot)) if (x.kind !== 'whiteout' && x.inherited !== true) byName.set(caseFoldKey(x.name), x);
    }
    return byName;
  };
  /** The node of the file the hard link `linkName` of layer `layer` names as `target` (ERR_LAYER_CORRUPT if none). */
  const linkTarget = (linkName: string, target: string, layer: number): number => {
    const layerRoot = layers[layer] as string;
    let t: number = NONE;
    if (target.startsWith(FILES_PREFIX)) {
      const key = caseFoldKey(target.slice(FILES_PREFIX.length));
      const found = tree.find(key);
      t = found !== NONE && tree.isEntry(found) ? found : (deleted.get(key) ?? NONE);
    } else {
      const r = utilityVMFile(recordsOf(layerRoot), target);
      if (r !== undefined) {
        const key = caseFoldKey(r.name);
        t = utilityVMNodes.get(key) ?? NONE;
        if (t === NONE) {
          t = tree.addDetached(r.name, r.kind, layer);
          kept.set(t, r);
          utilityVMNodes.set(key, t);
        }
      }
    }
    const resolved = t !== NONE && tree.kind(t) === 'link' ? tree.linkTo(t) : t;
    // A hard link to a symbolic link (NTFS makes one) is that link again.
    if (resolved === NONE || (tree.kind(resolved) !== 'file' && tree.kind(resolved) !== 'symlink')) {
      throw createError('ERR_LAYER_CORRUPT', `${linkName}: hard link target ${target} is not a file of the chain`, { entry: linkName });
    }
    return resolved;
  };
  for (let i = layers.length - 1; i >= 0; i--) {
    const layerRoot = layers[i] as string;
    byName = undefined; // one layer's at a time: a base layer has hundreds of thousands
    utilityVMNodes.clear();
    const info = readLayerInfo(layerRoot);
    const merged = new Map((info.merged ?? []).map((m) => [m.name, m] as const));
    // The index is streamed, twice (deletions first, then entries), not read whole: its text
    // and records beside the view raised the peak RSS of resolving a 105,000-entry layer
    // from 155 to 190 MB.
    for (const r of indexEntriesSync(layerRoot)) {
      checkpoint?.();
      if (r.kind !== 'whiteout' || !r.name.startsWith(FILES_PREFIX)) continue;
      const id = tree.find(caseFoldKey(r.name.slice(FILES_PREFIX.length)));
      if (id !== NONE) tree.remove(id, dying);
    }
    /** This layer's hard links, by node: their targets are read back after (a base layer's 100,000 held 18 MB as strings). */
    const links: number[] = [];
    const line: LineSpan = { offset: 0, length: 0 };
    for (const raw of indexEntriesSync(layerRoot, line)) {
      checkpoint?.();
      if (raw.kind === 'whiteout' || (raw.name !== 'Files' && !raw.name.startsWith(FILES_PREFIX))) continue;
      const mergedRecord = merged.get(raw.name);
      const r = mergedRecord ?? raw;
      // The Files directory itself is the view's root, name ''.
      const name = r.name === 'Files' ? '' : r.name.slice(FILES_PREFIX.length);
      const isDir = r.kind === 'directory' && ((r.attributes ?? 0) & FILE_ATTRIBUTE_DIRECTORY) !== 0;
      // A merged directory's record is in layer.json, not at this line: kept whole (there are few).
      const offset = mergedRecord === undefined ? line.offset : -1;
      const length = mergedRecord === undefined ? line.length : 0;
      // A link to the parents' file (its layer added the name only after it) is resolved
      // where it stands, before it takes its place: the link may have the target's own name
      // (`Files/A` → `Files/a`, the parent's file, which it then replaces).
      const early = r.kind === 'link' && r.parentTarget === true ? linkTarget(r.name, r.target ?? '', i) : NONE;
      const id = place(tree, name, r.kind, isDir, i, offset, length, dying);
      // A directory a nearer layer names again keeps its node: not the record kept for it below.
      if (mergedRecord !== undefined) kept.set(id, mergedRecord);
      else kept.delete(id);
      if (early !== NONE) tree.setLinkTo(id, early);
      else if (r.kind === 'link') links.push(id);
    }
    // Links last: their targets are this layer's files or the lower layers' (or, in a base
    // layer, a file of its UtilityVM).
    if (links.length > 0) {
      // In index order: the reader takes the file in blocks. A link's node keeps its record's
      // place (a link is never updated in place, only replaced by a new node).
      const reader = new IndexRecordReader(layerRoot, LINK_READ_AHEAD);
      try {
        for (const id of links) {
          checkpoint?.();
          const name = `Files/${tree.pathOf(id)}`;
          const r = reader.at({ offset: tree.offset(id), length: tree.length(id) }, name);
          tree.setLinkTo(id, linkTarget(name, r.target ?? '', i));
        }
      } finally {
        reader.close();
      }
    }
  }
  return new View(tree, layers, kept);
}

const LINK_READ_AHEAD = 64 * 1024;

/**
 * Puts the record of `name` (`kind`, of layer `layer`, at `offset`/`length` of its index)
 * in the tree, with the directories above it that are not there yet (implicit, spelled as
 * `name` spells them). A non-directory replaces whatever the lower layers had below that
 * name; a directory over a directory keeps what is in it. Returns its node.
 */
function place(tree: ViewTree, name: string, kind: EntryKind, isDir: boolean, layer: number, offset: number, length: number, dying: (id: number) => void): number {
  let parent = tree.root;
  let from = 0;
  let prior = tree.root;
  let base = '';
  if (name !== '') {
    for (;;) {
      const slash = name.indexOf('/', from);
      base = slash === -1 ? name.slice(from) : name.slice(from, slash);
      const next = tree.child(parent, caseFoldKey(base));
      if (slash === -1) {
        prior = next;
        break;
      }
      parent = next !== NONE ? next : tree.add(parent, base, 'implicit', 0, -1, 0);
      from = slash + 1;
    }
  }
  if (prior === NONE) return tree.add(parent, base, kind, layer, offset, length);
  const priorKind = tree.kind(prior);
  if (!isDir || (priorKind !== 'directory' && priorKind !== 'implicit')) tree.removeChildren(prior, dying);
  // A file a hard link may have reached stays as it was, for the link; a directory is no link's target.
  if (priorKind === 'directory' || priorKind === 'implicit' || prior === tree.root) {
    tree.update(prior, prior === tree.root ? '' : base, kind, layer, offset, length);
    return prior;
  }
  tree.remove(prior);
  return tree.add(parent, base, kind, layer, offset, length);
}

/** The record of the file `target` of a layer's own UtilityVM, following its links there; not part of the view. */
function utilityVMFile(records: () => ReadonlyMap<string, IndexEntry>, target: string): IndexEntry | undefined {
  let name = target;
  for (let hops = 0; hops < 2 && isUtilityVMFilesName(name); hops++) {
    const r = records().get(caseFoldKey(name));
    if (r === undefined) return undefined;
    if (r.kind === 'file') return r;
    if (r.kind !== 'link' || r.target === undefined) return undefined;
    name = r.target;
  }
  return undefined;
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
    return itemOf(e, this.#reader(e.layerRoot));
  }

  /** The record of `e` alone: its index line, without opening the file that holds its streams. */
  record(e: ViewEntry): IndexEntry {
    return e.recordFrom(this.#reader(e.layerRoot));
  }

  #reader(layerRoot: string): IndexRecordReader {
    let reader = this.#readers.get(layerRoot);
    if (reader === undefined) {
      reader = new IndexRecordReader(layerRoot, this.#readAhead);
      this.#readers.set(layerRoot, reader);
    }
    return reader;
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
  return utimesTime(clampHostSeconds(Number(unixNsFromFiletime(filetime)) / 1e9));
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
  view: View,
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
    const entry = current?.recordName ?? 'Files';
    if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') throw pathTooLongError(entry, error);
    // A system error (a full disk) names the entry it came at, as an import's does.
    throw toWinLayerError(error, `${entry}: writing the view failed`, { entry });
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

/**
 * `step(e, counts)` is called before each piece of work on entry `e`: `counts` for its
 * first (an entry written, for progress), not for the links, symbolic links and directory
 * times done after all entries.
 */
function materialize(
  view: View,
  dest: string,
  items: ViewItems,
  copyRange: (range: ByteRange, out: number) => void,
  step: (e: ViewEntry, counts: boolean) => void,
): void {
  // Layer by layer, in index order: each index is then read in blocks, not a record at a
  // time, and a layer's entries of one directory mostly follow one another. Parents are
  // made as their children need them; directory times are set at the end.
  const tree = view.tree;
  const order = Int32Array.from(view.ids());
  order.sort((a, b) => tree.layer(a) - tree.layer(b) || tree.offset(a) - tree.offset(b));
  let madeDir = '';
  /** Nodes: hard links, and directories with their times (set last). */
  const links: number[] = [];
  const symlinks: { e: ViewEntry; at: string; target: string; atime: number | Date; mtime: number | Date }[] = [];
  const dirs: number[] = [];
  const dirTimes: (number | Date)[] = [];
  for (const id of order) {
    const e = view.entry(id);
    step(e, true);
    if (e.name === '') {
      // The root's times too, at the end (the view's directory exists already).
      const it = items.of(e);
      if (it.kind === 'entry') {
        dirs.push(id);
        dirTimes.push(secondsOf(it.info.lastAccessTime), secondsOf(it.info.lastWriteTime));
      }
      continue;
    }
    const at = path.join(dest, e.name);
    // Parents a layer created implicitly have no record of their own. They are made now for
    // hard and symbolic links too, while no symbolic link exists that a path could pass through.
    const dir = path.dirname(at);
    if (dir !== madeDir) {
      fs.mkdirSync(dir, { recursive: true });
      madeDir = dir;
    }
    if (e.kind === 'link') {
      links.push(id);
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
      dirs.push(id);
      dirTimes.push(times.atime, times.mtime);
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
  /** A target whose own path the view does not show, by node: the first of its links, which holds its content. */
  const standIns = new Map<number, string>();
  for (const id of links) {
    const e = view.entry(id);
    step(e, false);
    const target = e.linkTo;
    if (target === undefined) throw createError('ERR_LAYER_CORRUPT', `${e.recordName}: unresolved hard link`, { entry: e.recordName });
    const at = path.join(dest, e.name);
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
    if (tree.isAlive(target.id)) {
      fs.linkSync(path.join(dest, target.name), at);
      continue;
    }
    // The target's path was deleted or replaced above: its first link holds the content,
    // and its other links are names of that file, as they are of one file in the layers.
    const standIn = standIns.get(target.id);
    if (standIn !== undefined) {
      fs.linkSync(standIn, at);
      continue;
    }
    standIns.set(target.id, at);
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
  for (const name of view.implicitDirectories()) {
    try {
      fs.mkdirSync(path.join(dest, name), { recursive: true });
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
  for (const [i, id] of dirs.entries()) {
    const e = view.entry(id);
    step(e, false);
    fs.utimesSync(path.join(dest, e.name), dirTimes[2 * i] as number | Date, dirTimes[2 * i + 1] as number | Date);
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
  const fd = openLayerFile(file, 'view');
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
