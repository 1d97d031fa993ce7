/**
 * Changes of a layer (layerChanges: a read-only layer's records against its parent chain,
 * or a read-write layer's directory against its parent view), and a read-write layer's
 * Windows layer tar. These run in the `changes` and `export-layer` workers.
 *
 * A read-write layer's writable directory (a copy of the parent view made at the first
 * mount) is compared with the parent view, one directory at a time. Comparison is by kind, size, modification time and link target, as
 * `docker diff` does for overlay layers: a change that keeps size and mtime is not seen. A
 * name whose case changed is a modification too (the file under its new name). The view
 * wrote each mtime through utimes, which holds a time since 1970 to 1 µs and one before
 * to the ms, and cannot hold one outside 1901–2038 on every file system: mtimes are
 * compared that closely (mtimeMatches), and such a time not at all. Directories a layer
 * made implicitly (no entry of their own) are part of the view: neither added nor lost.
 *
 * Metadata of what the tar says: a modified entry keeps its own security descriptor,
 * attributes, EAs and creation time from the parent view (a file whose data changed less
 * the EAs NTFS purges then: keptExtendedAttributes); a new entry takes the security
 * descriptor of its nearest parent directory in the view, ARCHIVE (files) or DIRECTORY
 * (directories), and its creation time from the host (birth time where it exists); the
 * last access time is the last write time (see hostTimes). The tar holds `Files`, the
 * directories above each change (unchanged ones as the parent view has them), and `Hives`.
 */
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sizeOf, streamLayerTar, type BuilderEntry } from '../convert/layer-tar-builder.js';
import { MAX_FILETIME } from '../convert/file-info.js';
import { encodeReparsePoint } from '../backup/reparse.js';
import { ChainView } from '../layer/chain-view.js';
import { exportError } from '../store/layer-ops.js';
import { directoryIdentity, present } from '../store/layer-store.js';
import { INDEX_DIR, indexEntriesSync, infoFromRecord } from '../layer/metadata-index.js';
import type { ByteRange, ExportAlternateStream, ExportItem } from '../layer/layer-reader.js';
import type { ExtendedAttribute } from '../backup/ea.js';
import { createError, pathTooLongError, toWinLayerError } from '../errors.js';
import { WHITEOUT_PREFIX } from '../convert/pax-keys.js';
import { baseName, caseFoldKey, parentName, parseLayerPath, WCIDIRS_SUFFIX } from '../util/safe-path.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_DIRECTORY,
  FILE_ATTRIBUTE_REPARSE_POINT,
  filetimeFromUnixNs,
  unixNsFromFiletime,
  type FileBasicInfo,
} from '../util/windows.js';
import { mtimeMatches, posixLinkTarget, rangeChunks, resolveView, ViewItems, type View, type ViewEntry } from './view.js';
import { NONE } from './view-tree.js';

/** A read-write layer's marker in its index directory, and its writable directory. */
export const RW_INFO = 'rw.json';
export const RW_DIR = 'rw';

/** True when the layer directory `layerRoot` holds a read-write layer. */
export function isReadWriteLayer(layerRoot: string): boolean {
  return present(path.join(layerRoot, INDEX_DIR, RW_INFO), `layer ${path.basename(layerRoot)}`);
}

/**
 * The Windows layer tar of the read-write layer at `layerRoot`: its writable directory's
 * changes against the view of `parents` (nearest first). Run by the export worker.
 */
export async function* readWriteLayerTar(
  layerRoot: string,
  parents: readonly string[],
  onProgress?: (p: { entries: number; bytes: number }) => void,
  checkpoint?: () => void,
): AsyncGenerator<Uint8Array> {
  const rw = path.join(layerRoot, RW_DIR);
  const identity = directoryIdentity(layerRoot);
  try {
    const view = resolveView(parents, checkpoint);
    // Never mounted: no change, and the same tar as a container mounted and left as it was.
    const comparison = fs.existsSync(rw) ? compareWithView(rw, view, checkpoint) : { changes: [], found: new Map<Change, Found>(), keptLinks: new Map<string, number[]>() };
    yield* streamLayerTar(counted(entriesOfChanges(rw, view, comparison), onProgress));
  } catch (error) {
    const id = path.basename(layerRoot);
    throw exportError(layerRoot, error, identity) ?? toWinLayerError(error, `export of read-write layer ${id} failed`, { id });
  }
}

/** Passes `entries` on, telling `onProgress` (at most every 100 ms, and at the end) how many went and their data bytes. */
function* counted(entries: Iterable<BuilderEntry>, onProgress: ((p: { entries: number; bytes: number }) => void) | undefined): Generator<BuilderEntry> {
  let n = 0;
  let bytes = 0;
  let reported = 0;
  for (const e of entries) {
    yield e;
    n++;
    if (e.type === 'file') bytes += sizeOf(e.data);
    const now = Date.now();
    if (onProgress !== undefined && now - reported >= 100) {
      reported = now;
      onProgress({ entries: n, bytes });
    }
  }
  onProgress?.({ entries: n, bytes });
}

/**
 * What the layer at `layerRoot` changes against `parents` (nearest first). Unlike
 * windowsfilter, which reports every change as a modification, additions and
 * modifications are told apart by looking at the parent chain. Run by the `changes` worker.
 * `checkpoint` is called once an entry; it throws to stop (a worker whose controller is gone).
 *
 * A read-write layer's FIFOs, sockets and devices are listed, as any change of its
 * directory is (and names an export refuses); its export refuses them.
 */
export function layerChanges(layerRoot: string, parents: readonly string[], checkpoint?: () => void): Iterable<Change> {
  if (isReadWriteLayer(layerRoot)) {
    const rw = path.join(layerRoot, RW_DIR);
    if (!fs.existsSync(rw)) return [];
    return walkChanges(rw, resolveView(parents, checkpoint), checkpoint);
  }
  return readOnlyLayerChanges(layerRoot, parents, checkpoint);
}

/** A read-only layer's changes, as its index is read: none is held (a base layer of 200,000 entries took 112 MB as a list). */
function* readOnlyLayerChanges(layerRoot: string, parents: readonly string[], checkpoint?: () => void): Generator<Change> {
  const parentView = new ChainView(parents, checkpoint);
  // Directories the layer holds without a record (a tar that never named them: Windows
  // made them, and the export writes them): listed before the first name below them, as
  // the changes of that export imported again are. Only the layer's directories are held.
  const named = new Set<string>();
  for (const r of indexEntriesSync(layerRoot)) if (r.kind === 'directory') named.add(caseFoldKey(r.name));
  const made = new Set<string>();
  for (const r of indexEntriesSync(layerRoot)) {
    checkpoint?.();
    if (r.inherited === true) continue;
    if (r.name.startsWith('Files/')) {
      const missing: string[] = [];
      for (let dir = parentName(r.name); dir !== 'Files' && dir !== ''; dir = parentName(dir)) {
        const key = caseFoldKey(dir);
        if (named.has(key) || made.has(key)) break;
        made.add(key);
        missing.push(dir);
      }
      for (let i = missing.length - 1; i >= 0; i--) {
        const dir = missing[i] as string;
        yield { path: dir, kind: parentView.has(dir) ? 'modify' : 'add' };
      }
    }
    if (r.kind === 'whiteout') yield { path: r.name, kind: 'delete' };
    else yield { path: r.name, kind: parentView.has(r.name) ? 'modify' : 'add' };
  }
}

export type ChangeKind = 'modify' | 'add' | 'delete';

export interface Change {
  /** Layer path, with its `Files/` prefix as windowsfilter reports it. */
  path: string;
  kind: ChangeKind;
}

/**
 * What the comparison keeps of a changed file of the writable directory besides its
 * change (whose path names it): its kind, and for a regular file with more than one name
 * its device and inode (`dev:ino`). Unchanged files are not kept: over a 143,000-entry
 * parent a record of every file (and the parent view as a Map) took 210 MiB peak RSS to
 * export a read-write layer. Keyed by the change itself: by case-folded name, and with the
 * name again, 100,000 new files exported at 109 MiB.
 */
interface Found {
  kind: HostKind;
  inode?: string;
  /** Its number of names, for a regular file with more than one. */
  links?: number;
  /** A file of the parent's name whose kind, size, time or bytes differ from the parent's file there. */
  dataChanged?: boolean;
}

type HostKind = 'file' | 'directory' | 'symlink' | 'other';

/**
 * A read-write layer's changes: sorted by path, deletions naming only the top entry; what
 * was found of each changed file, by its change; and the names of the container's files
 * with more than one name that it left as the parent view has them, by inode (for changedLinks).
 */
interface Comparison {
  changes: Change[];
  found: Map<Change, Found>;
  /** The view's nodes of such files, by `dev:ino`, for the inodes of changed files only. */
  keptLinks: Map<string, number[]>;
}

/**
 * The names in the directory `dir` (`rel` below the writable directory). A name that is
 * not UTF-8 comes back from readdir with U+FFFD in place of its bad bytes: only then is
 * the directory read again as bytes, to tell such a name from one that holds U+FFFD.
 */
function namesIn(dir: string, rel: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    throw hostPathError(error, rel);
  }
  if (!names.some((n) => n.includes('\uFFFD'))) return names;
  for (const raw of fs.readdirSync(dir, { encoding: 'buffer' })) {
    if (isUtf8(raw)) continue;
    const shown = `Files/${rel === '' ? '' : `${rel}/`}${escapeNonUtf8(raw)}`;
    throw createError('ERR_PATH_INVALID', `container file ${shown}: the name is not UTF-8 (bytes shown as \\xNN), so it has no Windows spelling`, {
      entry: shown,
      bytes: raw.toString('hex'),
    });
  }
  return names;
}

/** `raw` decoded, each byte that starts no valid UTF-8 sequence written as `\xNN`. */
function escapeNonUtf8(raw: Buffer): string {
  let out = '';
  for (let i = 0; i < raw.length; ) {
    let len = 0;
    for (let n = 1; n <= 4 && i + n <= raw.length; n++) {
      if (isUtf8(raw.subarray(i, i + n))) {
        len = n;
        break;
      }
    }
    if (len === 0) {
      out += `\\x${(raw[i] as number).toString(16).padStart(2, '0')}`;
      i++;
    } else {
      out += raw.toString('utf8', i, i + len);
      i += len;
    }
  }
  return out;
}

/** A file system error on `rel` (below the writable directory): a path too long for the host names its entry. */
function hostPathError(error: unknown, rel: string): unknown {
  if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') return pathTooLongError(rel === '' ? 'Files' : `Files/${rel}`, error);
  return error;
}

function kindOf(e: ViewEntry): 'file' | 'directory' | 'symlink' {
  if (e.kind === 'symlink') return 'symlink';
  if (e.kind === 'directory') return 'directory';
  return 'file';
}

function hostKind(s: fs.BigIntStats): HostKind {
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isDirectory()) return 'directory';
  if (s.isFile()) return 'file';
  return 'other';
}

/** A hard link's entry compares as its target (the view made them one inode). */
function resolveLink(e: ViewEntry): ViewEntry | undefined {
  return e.kind === 'link' ? e.linkTo : e;
}

/**
 * Whether the container's file `f` at `at` is the view's `entry` as it was made. Kind,
 * size and modification time decide, as for most tools; a file whose inode changed after
 * the writable directory was made (`madeNs`: a write that kept its size and set its time
 * back, as `cp -p` or `tar x` do) is compared byte for byte with the parent's data.
 */
function sameFile(entry: ViewEntry, kind: HostKind, stat: fs.BigIntStats, rwDir: string, at: string, items: ViewItems, madeNs: bigint | undefined): boolean {
  const e = resolveLink(entry);
  if (e === undefined) return false;
  const k = kindOf(e);
  if (k !== kind) return false;
  if (k === 'directory') return true;
  if (k === 'file') {
    // Size and time are in the index record: the layer's file that holds the data (and its
    // streams) is opened only to compare bytes. Opening it for every file took 35 of the 50 s
    // of `changes` over a 440,000-entry parent whose files were not in the page cache.
    const r = items.record(e);
    if (r.kind === 'file' && typeof r.size === 'number') {
      if (BigInt(r.size) !== stat.size || !mtimeMatches(unixNsFromFiletime(infoFromRecord(r).lastWriteTime), stat.mtimeNs / 1000n)) return false;
      if (madeNs === undefined || stat.ctimeNs < madeNs) return true;
    }
  }
  const item = items.of(e);
  if (item.kind !== 'entry') return false;
  if (k === 'symlink') return fs.readlinkSync(at) === posixLinkTarget(item.meta.reparse?.target ?? '');
  if (BigInt(item.data?.length ?? 0) !== stat.size || !mtimeMatches(unixNsFromFiletime(item.info.lastWriteTime), stat.mtimeNs / 1000n)) return false;
  // Changed in the mark's own tick or after: compared (a coarse clock gives both one time).
  if (madeNs === undefined || stat.ctimeNs < madeNs || item.data === undefined) return true;
  return sameBytes(item.data, at, rwDir);
}

/**
 * Whether the file at `at` holds exactly the bytes of `range` (their lengths are equal).
 * Opened as hostFileChunks opens a file (a FIFO swapped in does not block); one that
 * cannot be read (`chmod 000`) or is no longer a file counts as changed.
 */
function sameBytes(range: ByteRange, at: string, rwDir: string): boolean {
  let opened: { fd: number; now: fs.BigIntStats } | undefined;
  try {
    opened = openContainerFile(at, rwDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'ELOOP' || code === 'ENXIO') return false;
    throw error;
  }
  if (opened === undefined) return false;
  const { fd } = opened;
  try {
    let done = 0;
    let ours = Buffer.alloc(0);
    for (const expected of rangeChunks(range)) {
      if (ours.length < expected.length) ours = Buffer.allocUnsafe(expected.length);
      if (fs.readSync(fd, ours, 0, expected.length, done) !== expected.length || !ours.subarray(0, expected.length).equals(expected)) return false;
      done += expected.length;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether the host file `stat` was made before the mark `madeNs`: by the view, not the container (false where no birth time is kept). */
function bornInView(stat: fs.BigIntStats | undefined, madeNs: bigint | undefined): boolean {
  return stat !== undefined && madeNs !== undefined && stat.birthtimeNs > 0n && stat.birthtimeNs < madeNs;
}

/** Where markWritableMade leaves its mark: its change time is when the writable directory was whole. */
const WRITABLE_MADE = 'rw-made';

/**
 * Marks the writable directory of the read-write layer at `layerRoot` as just made, once
 * whole: a file whose inode changes in the mark's tick of the file system's clock or
 * after may have been written by the container, and is compared byte for byte (sameFile).
 * The mark's change time is taken past the tick in which it was first written (the
 * kernel stamps files from a clock of a few milliseconds a tick), so that every file the
 * view made was born before it, and a file born at the mark or after is the container's
 * (bornInView); waiting for the tick takes at most one, a few milliseconds.
 */
export function markWritableMade(layerRoot: string): void {
  const mark = path.join(layerRoot, INDEX_DIR, WRITABLE_MADE);
  fs.writeFileSync(mark, '');
  const first = fs.statSync(mark, { bigint: true }).ctimeNs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < MARK_TICK_TRIES; i++) {
    Atomics.wait(pause, 0, 0, 1);
    fs.chmodSync(mark, 0o644); // a change of the inode: a new change time
    if (fs.statSync(mark, { bigint: true }).ctimeNs > first) return;
  }
}

/** Milliseconds markWritableMade waits at most for the file system's clock to tick. */
const MARK_TICK_TRIES = 100;

/** Whether the writable directory of the read-write layer at `layerRoot` has its mark. */
export function isWritableMarked(layerRoot: string): boolean {
  return writableMadeNs(layerRoot) !== undefined;
}

/** The mark's change time, or undefined for a writable directory made before marks were kept. */
function writableMadeNs(layerRoot: string): bigint | undefined {
  try {
    return fs.statSync(path.join(layerRoot, INDEX_DIR, WRITABLE_MADE), { bigint: true }).ctimeNs;
  } catch {
    return undefined;
  }
}

/**
 * Changes of `rwDir` against the parent view, one directory at a time: each name of the
 * container's directory is looked up below the view's directory of that name, and what
 * the view has there that the container has not is deleted. Refuses what the comparison
 * would otherwise lose or misread: two names that differ only in case (one file on
 * Windows), a name that is not UTF-8 (read back as U+FFFD, it named no file), and a path
 * longer than the host's system calls take (a tree made with relative paths can be
 * deeper than PATH_MAX).
 */
function compareWithView(rwDir: string, view: View, checkpoint?: () => void): Comparison {
  const changes: Change[] = [];
  const found = new Map<Change, Found>();
  /** Unchanged files with more than one name: device, inode and view node of each. */
  const linked: number[] = [];
  for (const c of walkChanges(rwDir, view, checkpoint, { found, linked })) changes.push(c);
  // The kept names of the changed files' inodes only.
  const wanted = new Set<string>();
  for (const f of found.values()) if (f.inode !== undefined) wanted.add(f.inode);
  const keptLinks = new Map<string, number[]>();
  for (let i = 0; wanted.size > 0 && i < linked.length; i += 3) {
    const inode = `${linked[i] as number}:${linked[i + 1] as number}`;
    if (!wanted.has(inode)) continue;
    const nodes = keptLinks.get(inode);
    if (nodes === undefined) keptLinks.set(inode, [linked[i + 2] as number]);
    else nodes.push(linked[i + 2] as number);
  }
  return { changes, found, keptLinks };
}

/** A directory of the writable directory whose names come after those that sort before `key` (`name/`). */
interface PendingDirectory {
  key: string;
  rel: string;
  node: number;
}

/** Where walkChanges is in one directory (see its `opened`). */
interface WalkFrame {
  prefix: string;
  names: string[];
  /** The view's node of each name, or NONE. */
  children: Int32Array;
  /** The view's names there that the container's directory no longer holds, sorted. */
  deleted: string[];
  /** Directories found there, to walk in their place in path order. */
  pending: PendingDirectory[];
  /** The next name and the next deleted name. */
  i: number;
  j: number;
}

/**
 * The changes of `rwDir` against the view, one at a time, in path order (see
 * compareWithView): nothing is held but the directories being walked. Path order without
 * a sort: in a directory, a name's own change sorts at the name, what is below it at the
 * name and `/` (every path below it starts so, and no name holds `/`), so the walk takes
 * its names, its deletions and its subdirectories by that key. `forExport`, when given,
 * gathers what an export reads of each changed file and of the unchanged files with more
 * than one name. Held whole and sorted, 200,000 changes took `changes` to 109 MiB.
 */
function* walkChanges(rwDir: string, view: View, checkpoint?: () => void, forExport?: { found: Map<Change, Found>; linked: number[] }): Generator<Change> {
  // A link put in its place would have the walk list, and the export read, where it leads.
  if (fs.lstatSync(rwDir, { throwIfNoEntry: false })?.isSymbolicLink() === true) {
    throw createError('ERR_LAYER_CORRUPT', `${rwDir}: the writable directory is a symbolic link`, { path: rwDir });
  }
  const madeNs = writableMadeNs(path.dirname(rwDir));
  const tree = view.tree;
  // Each parent layer's index is opened once for the comparison, not once a file.
  const items = new ViewItems();
  /**
   * The walk of the directory `rel` below the writable directory, whose node in the view is
   * `node` (or NONE): its names, their nodes, the view's names it no longer holds, and the
   * directories below it still to walk, in path order. Walked from a stack of these, not by
   * recursion: a parent's directories 1,750 levels deep overflowed the call stack.
   */
  const opened = (rel: string, node: number): WalkFrame => {
    const dir = path.join(rwDir, rel);
    const prefix = rel === '' ? '' : `${rel}/`;
    const names = namesIn(dir, rel).sort();
    const children = new Int32Array(names.length).fill(NONE);
    const here = new Map<string, string>();
    for (const [i, name] of names.entries()) {
      const key = caseFoldKey(name);
      const other = here.get(key);
      if (other !== undefined) {
        throw createError('ERR_ENTRY_DUPLICATE', `container files ${JSON.stringify(`Files/${prefix}${other}`)} and ${JSON.stringify(`Files/${prefix}${name}`)}: names that differ only in case are one file on Windows`, {
          entry: `Files/${prefix}${name}`,
          other: `Files/${prefix}${other}`,
        });
      }
      here.set(key, name);
      const child = node === NONE ? NONE : tree.child(node, key);
      children[i] = child;
      if (child !== NONE) tree.mark(child);
    }
    here.clear();
    // Spelled below its directory as the container sees it (`WINDOWS/SYSTEM32` where a
    // later layer spells the parent's `Windows/System32` so), as the changes beside it are.
    // Below a deleted directory, the directory's deletion says it all; below one replaced
    // by a file or a link, its replacement does (a whiteout below a file would not import on Windows).
    const deleted: string[] = [];
    if (node !== NONE) for (const c of tree.children(node)) if (!tree.isMarked(c)) deleted.push(tree.name(c));
    deleted.sort();
    return { prefix, names, children, deleted, pending: [], i: 0, j: 0 };
  };
  function* walk(): Generator<Change> {
    const stack = [opened('', tree.root)];
    for (let frame = stack[0]; frame !== undefined; frame = stack[stack.length - 1]) {
      const { prefix, names, children, deleted, pending } = frame;
      const name = names[frame.i];
      const gone = deleted[frame.j];
      const next = pending[0];
      if (name === undefined && gone === undefined && next === undefined) {
        stack.pop();
        continue;
      }
      if (next !== undefined && (name === undefined || next.key < name) && (gone === undefined || next.key < gone)) {
        pending.shift();
        stack.push(opened(next.rel, next.node));
        continue;
      }
      if (gone !== undefined && (name === undefined || gone < name)) {
        frame.j++;
        yield { path: `Files/${prefix}${gone}`, kind: 'delete' };
        continue;
      }
      const child = children[frame.i] as number;
      frame.i++;
      checkpoint?.();
      const r = `${prefix}${name as string}`;
      let stat: fs.BigIntStats;
      try {
        stat = fs.lstatSync(path.join(rwDir, r), { bigint: true });
      } catch (error) {
        throw hostPathError(error, r);
      }
      const kind = hostKind(stat);
      let change: ChangeKind | undefined;
      let dataChanged = false;
      if (child === NONE) {
        change = 'add';
      } else if (!tree.isEntry(child)) {
        // A directory a layer made implicitly (it holds `a/b/c` and no `a/b`) is in the view
        // too: replaced, or renamed in case, it is modified, as a named one is.
        if (kind !== 'directory' || tree.name(child) !== name) change = 'modify';
      } else {
        // A name whose case changed (`mv a.txt A.TXT`) is a change Windows shows: the entry
        // goes in the layer under its new name. Only its own name counts: what is below a
        // renamed directory is the same.
        // A directory is compared by its name and kind alone, from the tree: its entry (made
        // with its whole path) at every level of a chain 2,000 deep took `changes` to 177 MiB.
        const renamed = tree.name(child) !== name;
        if (tree.kind(child) === 'directory') {
          if (renamed || kind !== 'directory') change = 'modify';
        } else if (renamed && forExport === undefined) {
          change = 'modify';
        } else {
          // An export compares a file renamed in case too: what NTFS purges when the data
          // changes goes (keptExtendedAttributes).
          const same = sameFile(view.entry(child), kind, stat, rwDir, path.join(rwDir, r), items, madeNs);
          if (renamed || !same) change = 'modify';
          dataChanged = !same;
        }
      }
      const inode = forExport !== undefined && kind === 'file' && stat.nlink > 1n ? `${stat.dev}:${stat.ino}` : undefined;
      if (kind === 'directory') {
        const key = `${name as string}/`;
        let at = pending.length;
        while (at > 0 && key < (pending[at - 1] as PendingDirectory).key) at--;
        pending.splice(at, 0, { key, rel: r, node: child });
      }
      if (change !== undefined) {
        const c: Change = { path: `Files/${r}`, kind: change };
        // Only an export reads what was found of a file (`changes` lists paths alone).
        forExport?.found.set(c, { kind, ...(inode === undefined ? {} : { inode, links: Number(stat.nlink) }), ...(dataChanged ? { dataChanged } : {}) });
        yield c;
      } else if (inode !== undefined) {
        forExport?.linked.push(Number(stat.dev), Number(stat.ino), child);
      }
    }
  }
  try {
    yield* walk();
  } finally {
    items.close();
  }
}

/**
 * The bytes of the container's file `file`, which the export found as `st`: opened without
 * following a link and checked to be that file still, so that a container swapping it
 * for a symbolic link (or a FIFO) after its header was written cannot put another file's
 * bytes in the tar (or stall the export).
 */
export async function* hostFileChunks(file: string, st: fs.BigIntStats, entry: string, rwDir: string): AsyncGenerator<Uint8Array> {
  let opened: { fd: number; now: fs.BigIntStats } | undefined;
  try {
    opened = openContainerFile(file, rwDir);
  } catch (cause) {
    throw toWinLayerError(cause, `container file ${entry}: cannot open it`, { entry });
  }
  if (opened === undefined || opened.now.ino !== st.ino || opened.now.dev !== st.dev) {
    if (opened !== undefined) fs.closeSync(opened.fd);
    throw createError('ERR_IO', `container file ${entry} was replaced while it was exported`, { entry });
  }
  const { fd } = opened;
  try {
    // Its size when found: a file that grew since gives what it held then.
    const size = Number(st.size);
    for (let pos = 0; pos < size; ) {
      const buf = Buffer.allocUnsafe(Math.min(256 * 1024, size - pos));
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return;
      pos += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The container's file `file` opened for reading, and its stat: without following a link
 * or blocking (a FIFO swapped in), and only when it is a regular file below `rwDir`
 * (undefined else, nothing left open). A failure to open is thrown as it is.
 */
function openContainerFile(file: string, rwDir: string): { fd: number; now: fs.BigIntStats } | undefined {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | (fs.constants.O_NONBLOCK ?? 0));
  try {
    const now = fs.fstatSync(fd, { bigint: true });
    if (now.isFile() && openedInside(fd, rwDir)) return { fd, now };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  fs.closeSync(fd);
  return undefined;
}

/**
 * Whether the open file `fd` is below the directory `rwDir`, as the kernel resolved it.
 * O_NOFOLLOW guards only a path's last name: a container that swaps a directory above the
 * file for a symbolic link (`zz` → `/etc`) between the export's stat and its open would
 * have it read a host file, with the identity the stat saw through the same link. Where
 * the host does not tell an open file's path (no /proc), true: the identity check stays.
 */
function openedInside(fd: number, rwDir: string): boolean {
  let real: string;
  try {
    real = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return true;
  }
  return real.startsWith(realDirectory(rwDir) + path.sep);
}

const realDirectories = new Map<string, string>();

/** The real path of `dir` (the writable directory), found once. */
function realDirectory(dir: string): string {
  let real = realDirectories.get(dir);
  if (real === undefined) {
    real = fs.realpathSync(dir);
    realDirectories.set(dir, real);
  }
  return real;
}

/** An alternate data stream of a parent layer's entry, as the tar builder takes it: read when written. */
function builderStream(s: ExportAlternateStream): { name: string; data: { size: number; chunks: () => Iterable<Uint8Array> | AsyncIterable<Uint8Array> } } {
  // Backup-stream names are `:name:$DATA`.
  const name = s.name.replace(/^:/, '').replace(/:\$DATA$/, '');
  const { file, offset, length, bytes } = s.range;
  const chunks = (): Iterable<Uint8Array> | AsyncIterable<Uint8Array> => {
    if (length === 0) return [];
    if (bytes !== undefined) return [bytes];
    return fs.createReadStream(file, { start: offset, end: offset + length - 1, highWaterMark: 256 * 1024 }) as AsyncIterable<Uint8Array>;
  };
  return { name, data: { size: length, chunks } };
}

function filetimeOfNs(ns: bigint): bigint {
  return filetimeFromUnixNs(ns);
}

type BuilderTimes = Pick<FileBasicInfo, 'creationTime' | 'lastAccessTime' | 'lastWriteTime' | 'changeTime'>;

/** A file a container's hard link goes in the tar as a link to: its layer path and basic info. */
interface LinkTarget {
  path: string;
  times: BuilderTimes;
  attributes: number;
}

function timesOf(info: FileBasicInfo): BuilderTimes {
  return { creationTime: info.creationTime, lastAccessTime: info.lastAccessTime, lastWriteTime: info.lastWriteTime, changeTime: info.changeTime };
}

/**
 * The times of a container file from its host stat: the creation time kept from the parent
 * view (`creation`) or the host's birth time (else its change time). The last access is
 * the last write: reading the file for the export moves the host's access time (relatime),
 * so the host's would make two exports of one layer differ.
 */
/**
 * The EA name prefix NTFS purges: it deletes every EA named so (case-insensitive) once the
 * file's data changes. Windows keeps code-integrity caches there ($KERNEL.PURGE.ESBCACHE,
 * $KERNEL.PURGE.APPXFICACHE), which vouch for the bytes they were made for.
 */
const PURGED_EA_PREFIX = '$KERNEL.PURGE.';

/**
 * The EAs an entry that changed in the container keeps from its parent's: all of them,
 * less, on a file whose data may have been written (its size, last write time or bytes
 * differ: `dataChanged`, from the comparison), those NTFS purges then. A file renamed in
 * case with its bytes as they were, or whose metadata alone changed, keeps them all. A new
 * last write time on the same bytes drops them too: a write of the same bytes purges, and
 * a cache dropped is only made again, where one kept for other bytes would vouch for them.
 */
function keptExtendedAttributes(own: Extract<ExportItem, { kind: 'entry' }>, kind: HostKind, s: fs.BigIntStats, dataChanged: boolean): { extendedAttributes?: ExtendedAttribute[] } {
  let eas = own.meta.extendedAttributes;
  if (kind === 'file' && eas.length > 0) {
    const size = BigInt(own.data?.length ?? 0);
    const written = dataChanged || size !== s.size || !mtimeMatches(unixNsFromFiletime(own.info.lastWriteTime), s.mtimeNs / 1000n);
    if (written) eas = eas.filter((ea) => !ea.name.toUpperCase().startsWith(PURGED_EA_PREFIX));
  }
  return eas.length > 0 ? { extendedAttributes: eas } : {};
}

/**
 * `times` of a changed entry of the parent's whose host modification time is still the
 * parent's (renamed in case, its metadata alone changed): the parent's last write time to
 * 100 ns, which the host, given it through utimes, holds to the microsecond only. Its last
 * access time is that last write time too (hostTimes).
 */
function keptTimes(times: BuilderTimes, own: Extract<ExportItem, { kind: 'entry' }> | undefined, s: fs.BigIntStats): BuilderTimes {
  if (own === undefined || !mtimeMatches(unixNsFromFiletime(own.info.lastWriteTime), s.mtimeNs / 1000n)) return times;
  return { ...times, lastWriteTime: own.info.lastWriteTime, lastAccessTime: own.info.lastWriteTime };
}

function hostTimes(s: fs.BigIntStats, creation: bigint | undefined): BuilderTimes {
  return {
    creationTime: creation ?? filetimeOfNs(s.birthtimeNs > 0n ? s.birthtimeNs : s.ctimeNs),
    lastAccessTime: filetimeOfNs(s.mtimeNs),
    lastWriteTime: filetimeOfNs(s.mtimeNs),
    changeTime: filetimeOfNs(s.ctimeNs),
  };
}

/**
 * The security descriptor of the nearest directory above `name` in the view (a directory
 * there too). `found` remembers it for each directory asked about, and for those passed on
 * the way up: the changes in one directory ask once, and a new tree thousands of levels
 * deep is walked up once, not once a level.
 */
function inheritedSecurity(name: string, view: View, items: ViewItems, found: Map<string, Uint8Array | undefined>): Uint8Array | undefined {
  const passed: string[] = [];
  let sd: Uint8Array | undefined;
  for (let dir = parentName(name); ; dir = parentName(dir)) {
    const key = caseFoldKey(dir);
    if (found.has(key)) {
      sd = found.get(key);
      break;
    }
    passed.push(key);
    const e = view.get(key);
    // The view's entry of that name, if a directory: a file the container replaced by a directory is not one.
    if (e !== undefined && e.kind === 'directory') {
      const item = items.of(e);
      if (item.kind === 'entry' && item.meta.securityDescriptor !== undefined) {
        sd = item.meta.securityDescriptor;
        break;
      }
    }
    if (dir === '') break;
  }
  for (const key of passed) found.set(key, sd);
  return sd;
}

/**
 * Refuses a container file whose name a Windows layer cannot carry as itself: one with a
 * character Windows forbids (`:` would read as a stream, `\\` as a separator), or named
 * like a whiteout (`.wh.x` would delete `x` on import). The tar would mean something else.
 */
function checkExportable(layerPath: string): void {
  parseLayerPath(layerPath, 'container file');
  const base = baseName(layerPath);
  if (base.startsWith(WHITEOUT_PREFIX)) {
    throw createError('ERR_PATH_INVALID', `container file ${JSON.stringify(layerPath)}: a name starting with ${WHITEOUT_PREFIX} reads as a deletion in a layer tar`, {
      entry: layerPath,
    });
  }
}

/** The target of the container's symbolic link `name`; one that is not UTF-8 has no Windows spelling (ERR_PATH_INVALID). */
function linkTargetOf(rwDir: string, name: string, layerPath: string): string {
  const raw = fs.readlinkSync(path.join(rwDir, name), { encoding: 'buffer' });
  if (!isUtf8(raw)) {
    throw createError('ERR_PATH_INVALID', `container symbolic link ${JSON.stringify(layerPath)}: its target is not UTF-8 (bytes shown as \\xNN: ${escapeNonUtf8(raw)}), so it has no Windows spelling`, {
      entry: layerPath,
      bytes: raw.toString('hex'),
    });
  }
  return raw.toString('utf8');
}

/**
 * Refuses a symbolic link whose target a Windows layer would read as another: a backslash
 * is a separator there (`a\b` would come back as `a/b`), and `C:/x` names a drive (it
 * would come back as `C:\x`, not as the directory `C:` beside the link).
 */
function checkLinkTarget(layerPath: string, target: string): void {
  // An absolute Windows target (`C:\Users`, `\\server\share`) is how the view spells a
  // parent's link or junction that has no POSIX form: moved or copied in the container, it
  // means there what it meant in the parent.
  const why = WINDOWS_ABSOLUTE.test(target)
    ? undefined
    : target.includes('\\')
      ? 'a backslash reads as a separator'
      : /^[A-Za-z]:/.test(target)
        ? 'a target starting with a drive letter and a colon names a drive'
        : undefined;
  if (why !== undefined) throw createError('ERR_PATH_INVALID', `container symbolic link ${JSON.stringify(layerPath)} -> ${JSON.stringify(target)}: on Windows ${why}`, { entry: layerPath, target });
  // Its reparse point must fit 16 KiB, as an import checks (a target of ~4,000 characters).
  try {
    encodeReparsePoint({ target: windowsLinkTarget(target), isMountPoint: false });
  } catch (cause) {
    throw createError('ERR_REPARSE_INVALID', `container symbolic link ${JSON.stringify(layerPath)}: its target of ${target.length} characters does not fit a Windows reparse point`, { entry: layerPath }, cause);
  }
}

/** A link target the view kept as Windows spelled it (posixLinkTarget): a drive's root and a path below it, or a UNC or device path. */
const WINDOWS_ABSOLUTE = /^[A-Za-z]:\\|^\\\\/;

/** The most names NTFS gives one file (an import refuses a link past it). */
const MAX_NAMES = 1024;

/** Refuses a container file whose modification time Windows cannot hold (before 1601, after 30828): its tar would not import. */
function checkTimes(layerPath: string, s: fs.BigIntStats): void {
  const ft = filetimeFromUnixNs(s.mtimeNs);
  if (ft >= 0n && ft <= MAX_FILETIME) return;
  throw createError('ERR_PAX_RECORD_INVALID', `container file ${JSON.stringify(layerPath)}: its modification time (${String(s.mtimeNs)} ns from 1970) is outside what Windows holds (1601 to 30828)`, {
    entry: layerPath,
    key: 'mtime',
  });
}

/**
 * Refuses a FIFO, socket or device: Windows has no such file, and a layer tar that
 * carried one could not be imported.
 */
function checkFileType(layerPath: string, stat: fs.BigIntStats): void {
  if (hostKind(stat) !== 'other') return;
  const what = stat.isFIFO() ? 'a FIFO' : stat.isSocket() ? 'a socket' : stat.isCharacterDevice() ? 'a character device' : stat.isBlockDevice() ? 'a block device' : 'a special file';
  throw createError('ERR_ENTRY_TYPE_UNSUPPORTED', `container file ${JSON.stringify(layerPath)}: ${what} has no Windows equivalent`, { entry: layerPath });
}

/** Reparse points Windows follows in one path before it gives up (ERROR_CANT_RESOLVE_FILENAME). */
const MAX_LINK_HOPS = 63;

/** `parts` without empty and `.` components, each `..` taking away the one before it (none at the root). */
function lexicalParts(parts: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p !== '' && p !== '.') out.push(p);
  }
  return out;
}

/**
 * A container symbolic link's target as Windows stores it: backslashes, and without the
 * empty and `.` components Linux ignores and Windows refuses (ERROR_INVALID_NAME for a
 * relative `.\\x`). `..` stays: Windows takes it, lexically.
 */
function windowsLinkTarget(target: string): string {
  const parts = target.split('/').filter((p) => p !== '' && p !== '.');
  const text = (target.startsWith('/') ? '\\' : '') + parts.join('\\');
  return text === '' ? '.' : text;
}

/**
 * Whether the container's symbolic link `name` (relative to the container's root `rwDir`)
 * leads to a directory: its tar entry says so (a directory link or a file link), and
 * Windows opens it accordingly. It is resolved the way Windows resolves it inside the
 * container, never through the host: an absolute target from the container's root, a
 * target joined to the link's directory as text with each `..` taken away lexically and
 * none past the root, names compared without case, links met on the way followed, at
 * most 63 of them. A dangling or looping link is a file link. (Following it on the host instead made `/etc` a directory
 * link and `/Windows` a file link, whatever the container held.)
 */
function linkLeadsToDirectory(rwDir: string, name: string, listings: DirectoryListings): boolean {
  let parts = lexicalParts(name.split('/'));
  let hops = 0;
  for (let i = 0; i < parts.length; i++) {
    let at = path.join(rwDir, ...parts.slice(0, i + 1));
    let s = reachableStat(at);
    if (s === undefined) {
      // Windows compares names without case: `windows` finds `Windows`.
      const spelled = listings.spelled(path.join(rwDir, ...parts.slice(0, i)), parts[i] as string);
      if (spelled === undefined) return false;
      parts[i] = spelled;
      at = path.join(rwDir, ...parts.slice(0, i + 1));
      s = reachableStat(at);
      if (s === undefined) return false;
    }
    if (s.isSymbolicLink()) {
      if (++hops > MAX_LINK_HOPS) return false;
      const target = containerLinkTarget(fs.readlinkSync(at));
      parts = lexicalParts([...(target.startsWith('/') ? [] : parts.slice(0, i)), ...target.split('/'), ...parts.slice(i + 1)]);
      i = -1;
    } else if (i === parts.length - 1) {
      return s.isDirectory();
    }
  }
  return true; // the container's root
}

/**
 * A link's target as a path in the container: the view keeps a parent layer's absolute
 * Windows target as written (a junction `Documents and Settings` → `C:\\Users`), which
 * inside the container is its own `C:` drive, its root.
 */
function containerLinkTarget(target: string): string {
  const drive = /^(?:\\\\\?\\|\\\?\?\\)?[A-Za-z]:(?:[\\/]|$)/.exec(target);
  return drive === null ? target : `/${target.slice(drive[0].length).replaceAll('\\', '/')}`;
}

/** The stat of `file`, or undefined for any failure (missing, below a file, a name too long): a link through it leads nowhere. */
function reachableStat(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Names in directories by case-folded name, for links whose targets are spelled in another
 * case: a directory read and folded once for all the links that look in it, not once a
 * link (20,000 such links into one directory took 6.5 minutes to export). The last few
 * directories are kept.
 */
class DirectoryListings {
  readonly #byDir = new Map<string, Map<string, string> | undefined>();

  /** The name in directory `dir` that is `name` without regard to case, if there is one. */
  spelled(dir: string, name: string): string | undefined {
    let names = this.#byDir.get(dir);
    if (!this.#byDir.has(dir)) {
      try {
        names = new Map();
        for (const n of fs.readdirSync(dir)) {
          const key = caseFoldKey(n);
          if (!names.has(key)) names.set(key, n);
        }
      } catch {
        names = undefined;
      }
      if (this.#byDir.size >= 4) this.#byDir.delete(this.#byDir.keys().next().value as string);
      this.#byDir.set(dir, names);
    }
    return names?.get(caseFoldKey(name));
  }
}

/**
 * A name the parent did not hold, on a file born before the writable directory's mark: its
 * size and modification time (µs since 1970). Numbers, not BigInts: one per moved file.
 */
interface BornAdded {
  c: Change;
  /** Its inode when it has several names (Found). */
  inode: string | undefined;
  size: number;
  us: number;
}

/**
 * The parent's files the container moved to a name the parent did not hold (`mv a.txt
 * b/c.txt`), each new name's change with the view's entry of the file: Windows keeps a
 * file's metadata across a rename (streams, descriptor, attributes, EAs, creation time).
 * Such a file is one the view made (born before the writable directory's mark) that no
 * name of the parent's holds any more (not in `identity`); which one it was is told by
 * the names that lost their file (deleted, a deleted directory's, or changed): the one
 * file among them of its size and modification time. With none, or several, or its data
 * since changed, it is a new object, as before.
 */
function movedFiles(view: View, items: ViewItems, changes: readonly Change[], bornAdded: readonly BornAdded[], identity: ReadonlyMap<string, Change>): Map<Change, ViewEntry> {
  const out = new Map<Change, ViewEntry>();
  /** By inode (a file of one name: by its name), the new names of each such file (`ln` may have given it several) and its stat. */
  const added = new Map<string, { cs: Change[]; file: BornAdded }>();
  for (const file of bornAdded) {
    if (file.inode !== undefined && identity.has(file.inode)) continue;
    const known = added.get(file.inode ?? file.c.path);
    if (known !== undefined) known.cs.push(file.c);
    else added.set(file.inode ?? file.c.path, { cs: [file.c], file });
  }
  if (added.size === 0) return out;
  /**
   * The parent's files the moved one may be, by size, each once (by its node: two names of
   * one file are one file): under a deleted name, a deleted directory's included, or under
   * a changed name. The file there may be the parent's edited in place, or another moved
   * over it (`mv a x; mv c a`: x is a's, and a's name is changed, not deleted): every
   * file that may have left its name counts, so that a look-alike makes the move unknown
   * rather than wrongly attributed.
   */
  /** By size and millisecond: the node of each file (its entry is made again for a match), with its time. */
  const gone = new Map<string, LookAlike[]>();
  const counted = new Set<number>();
  const consider = (seen: ViewEntry): void => {
    const e = resolveLink(seen);
    if (e === undefined || kindOf(e) !== 'file' || counted.has(e.id)) return;
    counted.add(e.id);
    const r = items.record(e);
    if (r.kind !== 'file' || typeof r.size !== 'number') return;
    const us = Number(floorDiv(unixNsFromFiletime(infoFromRecord(r).lastWriteTime), 1000n));
    const key = lookAlikeKey(r.size, Math.floor(us / 1000));
    const files = gone.get(key);
    if (files === undefined) gone.set(key, [{ id: e.id, us }]);
    else files.push({ id: e.id, us });
  };
  const tree = view.tree;
  for (const c of changes) {
    const top = c.kind === 'add' ? NONE : tree.find(caseFoldKey(c.path.slice('Files/'.length)));
    const stack = top === NONE ? [] : [top];
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      if (tree.isEntry(id)) consider(view.entry(id));
      if (c.kind === 'delete') for (const child of tree.children(id)) stack.push(child);
    }
  }
  const claims = new Map<number, Change[][]>();
  for (const { cs, file } of added.values()) {
    const only = onlyLookAlike(gone, file);
    if (only !== undefined) claims.set(only.id, [...(claims.get(only.id) ?? []), cs]);
  }
  // Two files on one gone file (one moved, another copied with its times?) tell nothing.
  for (const [id, files] of claims) {
    if (files.length !== 1) continue;
    const e = view.entry(id);
    for (const c of files[0] as Change[]) out.set(c, e);
  }
  return out;
}

/** A candidate of movedFiles: the view's node of a parent's file, and its last write time (µs since 1970). */
interface LookAlike {
  id: number;
  us: number;
}

/** The bucket of movedFiles' candidates of size `size` and modification time in millisecond `ms`. */
function lookAlikeKey(size: number, ms: number): string {
  return `${size}:${ms}`;
}

/** `a / b` rounded down (BigInt division rounds toward zero: times before 1970 are negative). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/**
 * The one candidate of `gone` of the host file `s`'s size whose time matches its
 * (mtimeMatches: within 1 µs, 1 ms before 1970), or undefined when none or several do.
 * Looks in the buckets of the neighbouring milliseconds only, and stops at a second match:
 * thousands of empty files of one time, moved, cost a look each, not one per pair.
 */
function onlyLookAlike(gone: ReadonlyMap<string, readonly LookAlike[]>, s: { size: number; us: number }): LookAlike | undefined {
  const ms = Math.floor(s.us / 1000);
  let found: LookAlike | undefined;
  for (const m of [ms - 1, ms, ms + 1]) {
    for (const d of gone.get(lookAlikeKey(s.size, m)) ?? []) {
      if (!mtimeMatches(BigInt(d.us) * 1000n, BigInt(s.us))) continue;
      if (found !== undefined) return undefined;
      found = d;
    }
  }
  return found;
}

/**
 * The tar entries of the changes (deletions as whiteouts), in path order. Every change is
 * checked before the first entry: a refused one fails the export before any byte of it.
 */
function* entriesOfChanges(rwDir: string, view: View, { changes, found, keptLinks }: Comparison): Generator<BuilderEntry> {
  /**
   * By inode, the first name of a file with several that the parent held (a modify), when
   * the file is the one the view made for it (born before the writable directory's mark):
   * the file is that one, whichever of its names comes first in the tar. Its streams,
   * security descriptor, creation time and attributes are the file's, on every name of it,
   * as NTFS keeps them: a new name (`ln x.txt A.txt`) that sorts first must not take them
   * away. A file the container made and linked over a parent's name (`ln -f new a.txt`)
   * is a new object, as on Windows. Where the file system keeps no birth time, no name
   * lends its parent's metadata to another.
   */
  const identity = new Map<string, Change>();
  const madeNs = writableMadeNs(path.dirname(rwDir));
  /** New names of files the view made (movedFiles). */
  const bornAdded: BornAdded[] = [];
  for (const c of changes) {
    if (c.kind === 'delete') continue;
    checkExportable(c.path);
    const f = found.get(c);
    const name = c.path.slice('Files/'.length);
    const stat = f === undefined ? undefined : fs.lstatSync(path.join(rwDir, name), { bigint: true });
    if (c.kind === 'modify' && f?.inode !== undefined && !identity.has(f.inode) && bornInView(stat, madeNs)) identity.set(f.inode, c);
    if (c.kind === 'add' && f?.kind === 'file' && bornInView(stat, madeNs)) bornAdded.push({ c, inode: f.inode, size: Number((stat as fs.BigIntStats).size), us: Number(floorDiv((stat as fs.BigIntStats).mtimeNs, 1000n)) });
    if (f?.kind === 'other') checkFileType(c.path, stat as fs.BigIntStats);
    if (f?.kind === 'symlink') checkLinkTarget(c.path, linkTargetOf(rwDir, name, c.path));
    if (f !== undefined && f.kind !== 'other') checkTimes(c.path, stat as fs.BigIntStats);
    if (f?.links !== undefined && f.links > MAX_NAMES) {
      throw createError('ERR_LINK_TARGET_INVALID', `container file ${JSON.stringify(c.path)} has ${f.links} names: NTFS gives a file at most ${MAX_NAMES}`, { entry: c.path, links: f.links });
    }
    // Windows' import writes a directory's metadata beside it as `<name>.$wcidirs$`, a name
    // that must fit in 255 units (and, on this host, bytes) too.
    if (f?.kind === 'directory' && Buffer.byteLength(baseName(c.path)) + WCIDIRS_SUFFIX.length > 255) {
      throw createError('ERR_PATH_TOO_LONG', `container directory ${JSON.stringify(c.path)}: its name and the ${WCIDIRS_SUFFIX} its metadata takes beside it pass 255 characters`, { entry: c.path });
    }
  }
  // Hard links made in the container (`ln a b`): one file with several names. Each name
  // after the first goes in the tar as a link to it, or to a name of the parent's that the
  // container left as it was (hcsshim's import resolves such a target in the parent).
  /** Each file written, by inode: its name and basic info, which a later name of it (a link) shares. */
  const written = new Map<string, LinkTarget>();
  const items = new ViewItems();
  const moved = movedFiles(view, items, changes, bornAdded, identity);
  /** What a name of the parent's that the container left as it was holds (its record), for links to it. */
  const keptTarget = (f: Found): LinkTarget | undefined => {
    if (f.inode === undefined) return undefined;
    // A name the parent holds as a file or as a hard link to one (hcsshim finds either there).
    for (const node of keptLinks.get(f.inode) ?? []) {
      const e = view.entry(node);
      const file = resolveLink(e);
      if (file?.kind !== 'file') continue;
      const item = items.of(file);
      if (item.kind !== 'entry') return undefined;
      return { path: `Files/${e.name}`, times: timesOf(item.info), attributes: item.info.fileAttributes };
    }
    return undefined;
  };
  // Directories above the changes go in the tar too, before what is in them: Windows'
  // import makes each entry inside its parent, which must be there (the layer's own
  // directory starts empty), and Windows' own exports have them. An unchanged one keeps
  // its record from the parent view, whole.
  const emitted = new Set<string>();
  const securityAbove = new Map<string, Uint8Array | undefined>();
  const listings = new DirectoryListings();
  const directory = (name: string): Extract<BuilderEntry, { type: 'directory' }> => {
    const e = view.get(caseFoldKey(name));
    const item = e !== undefined && e.kind === 'directory' ? items.of(e) : undefined;
    const layerPath = name === '' ? 'Files' : `Files/${name}`;
    if (item?.kind === 'entry' && (item.info.fileAttributes & FILE_ATTRIBUTE_DIRECTORY) !== 0) {
      const streams = item.streams.map(builderStream);
      return {
        type: 'directory',
        name: layerPath,
        times: timesOf(item.info),
        attributes: item.info.fileAttributes & ~FILE_ATTRIBUTE_REPARSE_POINT,
        ...(item.meta.securityDescriptor === undefined ? {} : { securityDescriptor: item.meta.securityDescriptor }),
        ...(item.meta.extendedAttributes.length > 0 ? { extendedAttributes: item.meta.extendedAttributes } : {}),
        ...(streams.length > 0 ? { streams } : {}),
      };
    }
    // A directory no layer named (Windows made it), or the root of a chain without one
    // (with the builder's times when the container was never mounted).
    const st = fs.lstatSync(path.join(rwDir, name), { bigint: true, throwIfNoEntry: false });
    const securityDescriptor = name === '' ? undefined : inheritedSecurity(name, view, items, securityAbove);
    return {
      type: 'directory',
      name: layerPath,
      ...(st === undefined ? {} : { times: hostTimes(st, undefined) }),
      attributes: FILE_ATTRIBUTE_DIRECTORY,
      ...(securityDescriptor === undefined ? {} : { securityDescriptor }),
    };
  };
  function* ancestors(name: string): Generator<BuilderEntry> {
    // Up to the nearest one already written (all above it are too), then down: one fold a
    // level for a change in a new directory, not one a level for every change.
    const missing: string[] = [];
    for (let dir = parentName(name); dir !== ''; dir = parentName(dir)) {
      const key = caseFoldKey(dir);
      if (emitted.has(key)) break;
      emitted.add(key);
      missing.push(dir);
    }
    for (let i = missing.length - 1; i >= 0; i--) {
      const dir = missing[i] as string;
      if (!fs.lstatSync(path.join(rwDir, dir), { throwIfNoEntry: false })?.isDirectory()) continue;
      yield directory(dir);
    }
  }
  try {
    const root = directory('');
    yield root;
    for (const c of changes) {
      const name = c.path.slice('Files/'.length);
      yield* ancestors(name);
      if (c.kind === 'delete') {
        yield { type: 'whiteout', name: c.path };
        continue;
      }
      const f = found.get(c);
      if (f === undefined) continue;
      const s = fs.lstatSync(path.join(rwDir, name), { bigint: true });
      checkFileType(c.path, s);
      const kind = hostKind(s);
      if (kind === 'directory') emitted.add(caseFoldKey(name));
      const target = kind === 'file' && f.inode !== undefined ? (keptTarget(f) ?? written.get(f.inode)) : undefined;
      if (target !== undefined) {
        yield { type: 'link', name: c.path, target: target.path, times: target.times, attributes: target.attributes };
        continue;
      }
      const as = kind === 'file' && f.inode !== undefined ? (identity.get(f.inode) ?? c) : c;
      const seen = as.kind === 'modify' ? view.get(caseFoldKey(as.path.slice('Files/'.length))) : moved.get(as);
      const prior = seen === undefined ? undefined : resolveLink(seen);
      // What replaced an entry of another kind is a new object: none of that entry's metadata.
      const priorItem = prior === undefined || kindOf(prior) !== kind ? undefined : items.of(prior);
      const own = priorItem?.kind === 'entry' ? priorItem : undefined;
      const times = keptTimes(hostTimes(s, own?.info.creationTime), own, s);
      // An entry of the parent's keeps its descriptor, none included.
      const securityDescriptor = own !== undefined ? own.meta.securityDescriptor : inheritedSecurity(name, view, items, securityAbove);
      // Alternate data streams are not in the container's directory: a file or directory
      // edited in place (or renamed in case) keeps its parent's, as it would on Windows.
      const streams = own !== undefined ? own.streams.map(builderStream) : [];
      const common = {
        name: c.path,
        times,
        ...(securityDescriptor === undefined ? {} : { securityDescriptor }),
        ...(own !== undefined ? keptExtendedAttributes(own, kind, s, f.dataChanged === true) : {}),
        ...(streams.length > 0 ? { streams } : {}),
      };
      const keep = own?.info.fileAttributes;
      if (kind === 'directory') {
        yield { ...common, type: 'directory', attributes: keep !== undefined && (keep & FILE_ATTRIBUTE_DIRECTORY) !== 0 ? keep & ~FILE_ATTRIBUTE_REPARSE_POINT : FILE_ATTRIBUTE_DIRECTORY };
      } else if (kind === 'symlink') {
        const target = windowsLinkTarget(fs.readlinkSync(path.join(rwDir, name)));
        // A parent's link renamed in case (or edited back to its target) is that link, as a
        // rename on Windows keeps it: a junction stays one, a directory link stays one (its
        // target may be nowhere the container can see, `\\server\share`), and its attributes
        // stay. A link made or moved in the container is a symbolic link of its own.
        const same = own?.meta.reparse !== undefined && own.meta.reparse.target === target && keep !== undefined && (keep & FILE_ATTRIBUTE_REPARSE_POINT) !== 0;
        if (same) {
          const isDirectory = (keep & FILE_ATTRIBUTE_DIRECTORY) !== 0;
          yield { ...common, type: 'symlink', target, attributes: keep, isDirectory, ...(own.meta.reparse?.isMountPoint === true ? { isMountPoint: true } : {}) };
        } else {
          yield { ...common, type: 'symlink', target, isDirectory: linkLeadsToDirectory(rwDir, name, listings) };
        }
      } else if (kind === 'file') {
        const file = path.join(rwDir, name);
        const size = Number(s.size);
        const attributes = keep !== undefined && (keep & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)) === 0 ? keep : FILE_ATTRIBUTE_ARCHIVE;
        if (f.inode !== undefined) written.set(f.inode, { path: c.path, times, attributes });
        yield {
          ...common,
          type: 'file',
          attributes,
          data: { size, chunks: () => (size === 0 ? [] : hostFileChunks(file, s, c.path, rwDir)) },
        };
      }
    }
    // Windows' exports, and crane's layers, have Hives too (here without registry deltas).
    yield { type: 'directory', name: 'Hives', attributes: FILE_ATTRIBUTE_DIRECTORY, ...(root.times === undefined ? {} : { times: root.times }), ...(root.securityDescriptor === undefined ? {} : { securityDescriptor: root.securityDescriptor }) };
  } finally {
    items.close();
  }
}
