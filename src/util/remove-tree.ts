/**
 * Removal of a directory tree without recursion, synchronous or asynchronous.
 *
 * - Depth: a layer may hold a tree thousands of levels deep (a Windows path has up to
 *   32,767 units), and `fs.rmSync` with `recursive` recurses once per level in
 *   JavaScript: ~1,900 levels overflowed its stack on Node 20 (RangeError, and the tree
 *   left in place).
 * - Paths longer than the host takes: a read-write layer's directory, or a mounted view,
 *   is written by whatever runs in it, which can nest directories with relative paths far
 *   past PATH_MAX (4,096 bytes on Linux, 1,024 on macOS); any call given such a path fails
 *   with ENAMETOOLONG, and Node has no openat/unlinkat to walk down by descriptors. So a
 *   directory whose path passes RELOCATE_PAST is first renamed to a short name directly
 *   under the root being removed (a rename inside a tree about to go is harmless) and
 *   removed from there: every path the walk hands the system stays under PATH_MAX.
 * - Names: a name need not be UTF-8 (a container in a read-write layer or a mounted view
 *   may write `bad\xff`). Read as a string it decodes to U+FFFD, whose encoding names
 *   nothing: its unlink found nothing to remove, the directory's rmdir then failed with
 *   ENOTEMPTY, and the leftover failed every later open of the store. A directory with
 *   such a name is read again by its bytes and its entries addressed by Buffer paths.
 * - Width: `fs.promises.rm` with `recursive` starts the removal of every entry of a
 *   directory at once. An import of 80,000 files in one directory that failed at its end
 *   peaked at 228 MB RSS removing its staging directory (80,000 pending lstat calls and
 *   their Stats), against 83 MB for the import itself.
 * - Speed: the asynchronous form makes the same synchronous calls as removeTreeSync, a
 *   slice of SLICE_MS at a time, and lets the event loop run between slices. With a
 *   promise per unlink and per directory entry read (at most 64 unlinks in flight), a
 *   base layer of 440,000 entries took 13 s to remove on tmpfs, 9.3 s of it in
 *   JavaScript; `rm -rf` took 2.8 s, the synchronous walk 4.9 s.
 *
 * - Listings: a directory is read at most LIST_BATCH entries at a time (reading a whole
 *   one made an object per entry: ~14 MiB for the 100,000 links of a base layer's
 *   System32). Those entries are removed (subdirectories first, from an explicit stack)
 *   before the directory is read again, from its start, for what is left; a directory
 *   read to its end goes once its last subdirectory has.
 *
 * - Permissions: a tree written by a process that is not root can hold directories its
 *   owner may not read or change (a container's `chmod 000 d`, or Go's module cache,
 *   read-only by design), and root's removal passes them where the owner's cannot: a
 *   listing, unlink or rmdir refused with EACCES gives the directory concerned rwx for its
 *   owner and tries once more. A directory the process does not own stays refused.
 *
 * Symbolic links are removed, never followed. A path that does not exist is not an error
 * (as `force: true`). One walk (`removal`) serves both forms. A tree something else may
 * be writing while it goes is removed with removeTreeGuarded.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

/** How long the asynchronous removal works before it lets the event loop run (ms). */
const SLICE_MS = 4;

/** Entries read from a directory at a time. */
export const LIST_BATCH = 4096;

/**
 * The longest path (bytes, its terminating NUL included) the host's calls take: Linux's
 * PATH_MAX, Windows' 32,767 units for the `\\?\` paths Node makes of long ones (a UTF-8
 * byte count is never below the UTF-16 unit count), and 1,024 on macOS and the BSDs.
 */
const PATH_MAX = process.platform === 'linux' ? 4096 : process.platform === 'win32' ? 32_767 : 1024;

/**
 * A directory whose path is longer than this (bytes) is moved up under the root before it
 * is read: its entries' paths, a separator and a name (at most 255 bytes) longer, then
 * stay under PATH_MAX with room to spare.
 */
export const RELOCATE_PAST = PATH_MAX - 512;

/**
 * A path as the walk hands it to the system: a string while every name on it is UTF-8,
 * else its bytes. Strings are the common case and the cheaper one: with every path a
 * Buffer, removing 100,000 files on tmpfs took 17-22% more CPU time (names read as
 * Buffers: +1.0 us an entry; paths joined as Buffers: +0.5 us). So a directory is read
 * by its bytes only when one of its names did not decode.
 */
type WalkPath = string | Buffer;

/** A directory on the walk's stack: `listed` once it was read to its end. */
interface Pending {
  readonly dir: WalkPath;
  listed: boolean;
}

const SEPARATOR = Buffer.from(path.sep);
const AS_STRINGS = { bufferSize: 256 };
// 'buffer' is an encoding opendir takes (names as Buffers), though not a BufferEncoding.
const AS_BYTES = { bufferSize: 256, encoding: 'buffer' as BufferEncoding };

/**
 * The removal, one call at a time: it yields after each (an unlink, a listing, an rmdir,
 * a rename), so that the asynchronous form can let the event loop run between calls.
 */
function* removal(target: string, listBatch: number, oneDevice = false): Generator<void, void, void> {
  const st = absentAsUndefined(() => fs.lstatSync(target));
  if (st === undefined) return;
  if (!st.isDirectory()) {
    unlinkIfThere(target);
    return;
  }
  const rootDevice = oneDevice ? st.dev : undefined;
  const relocation = { root: target, next: 0 };
  // Subdirectories are above their directory on the stack.
  const stack: Pending[] = [{ dir: target, listed: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Pending;
    if (top.listed) {
      stack.pop();
      // The root's own parent is outside the tree: its permissions are not the removal's to change.
      absentAsUndefined(() => (top.dir === target ? fs.rmdirSync(top.dir) : withAccess(parentOf(top.dir), () => fs.rmdirSync(top.dir))));
      yield;
      continue;
    }
    const batch = absentAsUndefined(() => nextBatch(top.dir, listBatch));
    yield;
    if (batch === undefined) {
      stack.pop();
      continue;
    }
    // A full batch: the directory is read again, once these entries are gone.
    if (batch.entries.length < listBatch) top.listed = true;
    for (const entry of batch.entries) {
      const child = typeof batch.dir === 'string' ? `${batch.dir}/${entry.name as string}` : Buffer.concat([batch.dir, SEPARATOR, entry.name as Buffer]);
      if (!entry.isDirectory()) {
        withAccess(batch.dir, () => unlinkIfThere(child));
        yield;
        continue;
      }
      refuseOtherDevice(child, rootDevice);
      if (top.dir === relocation.root || byteLength(child) <= RELOCATE_PAST) {
        stack.push({ dir: child, listed: false });
        continue;
      }
      // A directory moved to another parent needs write permission on both (its `..` changes).
      const moved = withAccess(parentOf(child), () => withAccess(child, () => relocate(child, relocation)));
      yield;
      if (moved !== undefined) stack.push({ dir: moved, listed: false });
    }
  }
}

/**
 * The first `max` entries of `dir`, with `dir` in the form that addresses them: as
 * strings, or by their bytes when a name did not decode as UTF-8 (it then holds U+FFFD,
 * and the string names nothing), or when the read itself failed on a missing entry (where
 * the file system gives no entry types, Node lstats each entry by its decoded name).
 */
function nextBatch(dir: WalkPath, max: number): { dir: WalkPath; entries: fs.Dirent<string | Buffer>[] } {
  if (typeof dir === 'string') {
    try {
      const entries = readFirst(withAccess(dir, () => fs.opendirSync(dir, AS_STRINGS)), max);
      if (!entries.some((e) => e.name.includes('\uFFFD'))) return { dir, entries };
    } catch (error) {
      if (!isAbsent(error)) throw error;
    }
  }
  const bytes = typeof dir === 'string' ? toBytes(dir) : dir;
  return { dir: bytes, entries: readFirst(withAccess(bytes, () => fs.opendirSync(bytes, AS_BYTES)), max) as unknown as fs.Dirent<Buffer>[] };
}

/** A string path as bytes; on Windows in its `\\?\` form, which Node adds to strings but never to Buffers. */
function toBytes(dir: string): Buffer {
  return Buffer.from(process.platform === 'win32' ? path.toNamespacedPath(path.resolve(dir)) : dir);
}

/** The directory that holds `p`. */
function parentOf(p: WalkPath): WalkPath {
  if (typeof p === 'string') return path.dirname(p);
  const at = p.lastIndexOf(SEPARATOR[0] as number);
  return at <= 0 ? SEPARATOR : p.subarray(0, at);
}

/**
 * `call`, and when the system refused it for lack of permission on `dir` (EACCES), `call`
 * again once `dir` is readable, writable and searchable by its owner. When `dir` cannot be
 * changed (another user's), the first refusal is what is thrown.
 */
function withAccess<T>(dir: WalkPath, call: () => T): T {
  try {
    return call();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error;
    try {
      fs.chmodSync(dir, 0o700);
    } catch {
      throw error;
    }
    return call();
  }
}

function byteLength(p: WalkPath): number {
  return typeof p === 'string' ? Buffer.byteLength(p) : p.length;
}

/**
 * Renames the directory `dir` to a free short name directly under the root being removed
 * (`.rm-<n>`, the first n from `state.next` that names nothing there); returns its new
 * path, or undefined when `dir` was already gone.
 */
function relocate(dir: WalkPath, state: { readonly root: string; next: number }): string | undefined {
  for (;;) {
    const to = `${state.root}/.rm-${state.next++}`;
    // rename(2) would replace an empty directory of that name: only a name that is free.
    if (absentAsUndefined(() => fs.lstatSync(to)) !== undefined) continue;
    try {
      fs.renameSync(dir, to);
      return to;
    } catch (error) {
      if (isAbsent(error)) return undefined;
      const code = (error as NodeJS.ErrnoException).code;
      // Taken between the lstat and the rename: the next name.
      if (code === 'EEXIST' || code === 'ENOTEMPTY') continue;
      throw error;
    }
  }
}

/**
 * The first `max` entries of `dir` (all of them when it has fewer), read a few at a time:
 * a directory of 100,000 entries costs no more than its first `max`.
 */
export function firstEntriesSync(dir: string, max: number): fs.Dirent[] {
  return readFirst(fs.opendirSync(dir, AS_STRINGS), max);
}

function readFirst(handle: fs.Dir, max: number): fs.Dirent[] {
  try {
    const out: fs.Dirent[] = [];
    for (let d = handle.readSync(); d !== null; d = out.length < max ? handle.readSync() : null) out.push(d);
    return out;
  } finally {
    handle.closeSync();
  }
}

/** `listBatch`: entries read from a directory at a time (tests make it small). */
export function removeTreeSync(target: string, listBatch = LIST_BATCH): void {
  for (const _ of removal(target, listBatch));
}

/**
 * removeTreeSync a slice at a time: it lets the event loop run (setImmediate) whenever it
 * has worked `sliceMs` since it last did, checked after each call, so one slice lasts
 * `sliceMs` and one call at most. `sliceMs` 0 yields after every call (tests).
 */
export async function removeTree(target: string, listBatch = LIST_BATCH, sliceMs = SLICE_MS, oneDevice = false): Promise<void> {
  await sliced(removal(target, listBatch, oneDevice), sliceMs);
}

/** Runs the calls of `walk`, letting the event loop run whenever `sliceMs` have passed since it last did. */
async function sliced(walk: Generator<void, void, void>, sliceMs: number): Promise<void> {
  let since = performance.now();
  for (const _ of walk) {
    if (performance.now() - since < sliceMs) continue;
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  }
}


/**
 * removeTree for a tree that something else may still be writing while it goes: a
 * read-write layer's directory or a mounted view, where a container still running there
 * can swap a directory for a symbolic link between the walk's listing and its next call
 * (the walk addresses entries by path: Node has no openat/unlinkat), and the walk would
 * then remove what the link leads to. On Linux and macOS the system's `rm -rf` goes
 * first: GNU's and BSD's walk by descriptors (fts, physical) and check each directory they
 * enter, so a link swapped in is removed, never followed. What it leaves (a container
 * still writing keeps a directory from emptying, a directory its owner may not enter when
 * the process is not root, no `rm` at all) goes, on Linux, through removeTreeByDescriptors,
 * which is as safe; elsewhere through removeTree, by path (a container racing it there
 * could lead it out: one in 10–30 tries removed files outside the tree on Linux before).
 */
export async function removeTreeGuarded(target: string, listBatch = LIST_BATCH, sliceMs = SLICE_MS): Promise<void> {
  refuseMountPoints(target);
  if (process.platform !== 'win32') {
    // Loaded on first use: a worker removes only trees it made, with removeTreeSync.
    const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
    await new Promise<void>((resolve) => {
      try {
        // By its absolute path where it has one (a PATH could name another).
        // BSD's rm crosses no mount point with -x (Linux's are refused above, by the table).
        const options = BSD_RM ? ['-rfx', '--', target] : ['-rf', '--', target];
        const rm = spawn(fs.existsSync('/bin/rm') ? '/bin/rm' : 'rm', options, { stdio: 'ignore' });
        rm.once('error', () => resolve());
        rm.once('close', () => resolve());
      } catch {
        resolve(); // no process could be started (EMFILE, EAGAIN): the walk alone
      }
    });
  }
  // What rm left (a container still writing there, a directory its owner may not enter,
  // or no rm at all). On Linux, by descriptors: nothing swapped in can lead the walk out.
  if (canWalkByDescriptors()) {
    await removeTreeByDescriptors(target, listBatch, sliceMs);
    return;
  }
  // Elsewhere by path, on the root's device (no mount table to look in).
  await removeTree(target, listBatch, sliceMs, true);
}

/** Linux's directory of this process's open descriptors, each a link to what it has open (the object, not a path). */
const PROC_FD = '/proc/self/fd';

/** Whether removeTreeByDescriptors can run here: Linux with /proc. */
export function canWalkByDescriptors(): boolean {
  return process.platform === 'linux' && fs.existsSync(PROC_FD);
}

/** removeTree by descriptors (removalByDescriptors), a slice at a time; Linux only (canWalkByDescriptors). */
export async function removeTreeByDescriptors(target: string, listBatch = LIST_BATCH, sliceMs = SLICE_MS): Promise<void> {
  await sliced(removalByDescriptors(target, listBatch), sliceMs);
}

/** Linux's O_PATH (open for a place, not for reading: a directory its owner may not read opens too); Node names no constant for it. */
const O_PATH = 0o10000000;

/** Flags of a directory opened for the walk: never through a link in its own place. */
const DIRECTORY_FLAGS = O_PATH | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;

/** `name` (string or bytes) in the directory open as `fd`, as a path the system resolves through the descriptor. */
function inDescriptor(fd: number, name: string | Buffer): WalkPath {
  return typeof name === 'string' ? `${PROC_FD}/${fd}/${name}` : Buffer.concat([Buffer.from(`${PROC_FD}/${fd}/`), name]);
}

/**
 * The removal of a tree something else may be writing (a running container), by
 * descriptors: each directory is opened inside its parent's open descriptor without
 * following a link in its place, listed and emptied through that descriptor, and removed
 * by name inside its parent's. Node has no openat/unlinkat, but Linux resolves
 * `/proc/self/fd/<fd>/<name>` as `name` inside the directory `fd` has open, whatever path
 * leads there now: a directory swapped for a link to the host between the listing and
 * the next call is a link there, unlinked, never entered. (By path, such a swap made the
 * walk delete the files the link led to.) A directory on the stack keeps a descriptor
 * open: a tree 2,000 levels deep holds 2,000.
 */
function* removalByDescriptors(target: WalkPath, listBatch: number): Generator<void, void, void> {
  const st = absentAsUndefined(() => fs.lstatSync(target));
  if (st === undefined) return;
  if (!st.isDirectory()) {
    unlinkIfThere(target);
    return;
  }
  const rootFd = absentAsUndefined(() => fs.openSync(target, DIRECTORY_FLAGS));
  if (rootFd === undefined) return;
  const root: DescriptorDirectory = { fd: rootFd, parent: undefined, name: '', listed: false };
  const rootDevice = fs.fstatSync(rootFd).dev;
  /** Directories, subdirectories above their directory (siblings side by side). */
  const stack: DescriptorDirectory[] = [root];
  /** The directories with a descriptor open, oldest first (the root always). */
  const open: DescriptorDirectory[] = [root];
  /** `p`'s descriptor, opened again (inside its parent's, itself opened again if need be) when it was closed. */
  const fdOf = (p: DescriptorDirectory): number => {
    const missing: DescriptorDirectory[] = [];
    for (let q: DescriptorDirectory | undefined = p; q !== undefined && q.fd === undefined; q = q.parent) missing.push(q);
    for (let i = missing.length - 1; i >= 0; i--) {
      const q = missing[i] as DescriptorDirectory;
      const parent = q.parent as DescriptorDirectory;
      const parentFd = parent.fd as number;
      q.fd = sparing(parent, () => withAccess(`${PROC_FD}/${parentFd}`, () => fs.openSync(inDescriptor(parentFd, q.name), DIRECTORY_FLAGS)));
      open.push(q);
      // A file system mounted there since the mount table was read (another device): not entered.
      if (fs.fstatSync(q.fd).dev !== rootDevice) throw busy(absentAsUndefined(() => fs.readlinkSync(`${PROC_FD}/${q.fd}`)) ?? inDescriptor(parentFd, q.name));
      // A tree thousands of levels deep would hold a descriptor a level: the oldest (nearest
      // the root, but the root) are closed, and opened again when their turn comes.
      if (open.length > MAX_OPEN_DIRECTORIES) trim(q);
    }
    return p.fd as number;
  };
  /** Closes the oldest open directories but the root and `keep`, until `left` (and those two) stay open. */
  const trim = (keep: DescriptorDirectory, left = MAX_OPEN_DIRECTORIES / 2): void => {
    let closing = open.length - left;
    for (const q of open) {
      if (closing === 0) break;
      if (q === root || q === keep || q.fd === undefined) continue;
      fs.closeSync(q.fd);
      q.fd = undefined;
      closing--;
    }
    open.splice(0, open.length, ...open.filter((q) => q.fd !== undefined));
  };
  /**
   * `call`, which opens a descriptor; tried again, once all open directories but the root
   * and `keep` are closed, when the process may open fewer than the walk keeps (EMFILE).
   */
  const sparing = <T>(keep: DescriptorDirectory, call: () => T): T => {
    try {
      return call();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EMFILE') throw error;
      trim(keep, 0);
      return call();
    }
  };
  const close = (p: DescriptorDirectory): void => {
    if (p.fd === undefined) return;
    fs.closeSync(p.fd);
    p.fd = undefined;
    const at = open.lastIndexOf(p);
    if (at !== -1) open.splice(at, 1);
  };
  try {
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as DescriptorDirectory;
      const parent = top.parent;
      let fd: number;
      try {
        fd = fdOf(top);
      } catch (error) {
        // What is there now is no directory (a link or file swapped in): removed as such,
        // never entered. Only a subdirectory can be: the root stays open.
        const code = (error as NodeJS.ErrnoException).code;
        if (parent === undefined || (code !== 'ENOENT' && code !== 'ELOOP' && code !== 'ENOTDIR')) throw error;
        stack.pop();
        removeEntry(fdOf(parent), top.name, false);
        yield;
        continue;
      }
      if (top.listed) {
        stack.pop();
        close(top);
        if (parent === undefined) absentAsUndefined(() => fs.rmdirSync(target));
        else removeEntry(fdOf(parent), top.name, true);
        yield;
        continue;
      }
      const batch = sparing(top, () => nextBatch(`${PROC_FD}/${fd}`, listBatch));
      yield;
      if (batch.entries.length < listBatch) top.listed = true;
      for (const entry of batch.entries) {
        const name = entry.name as string | Buffer;
        if (entry.isDirectory()) {
          stack.push({ fd: undefined, parent: top, name, listed: false });
          continue;
        }
        removeEntry(fdOf(top), name, false);
        yield;
      }
    }
  } finally {
    for (const p of open) if (p.fd !== undefined) fs.closeSync(p.fd);
  }
}

/** A directory of removalByDescriptors: `name` in `parent` (undefined for the root), `fd` while it is open. */
interface DescriptorDirectory {
  fd: number | undefined;
  readonly parent: DescriptorDirectory | undefined;
  readonly name: string | Buffer;
  listed: boolean;
}

/** Descriptors removalByDescriptors keeps open at most (a process may have as few as 1,024). */
const MAX_OPEN_DIRECTORIES = 128;

/**
 * Removes `name` inside the directory open as `parent`: an empty directory (`directory`)
 * or anything else, as it is there now (a directory swapped in for a file is left to the
 * next pass: its rmdir fails with ENOTEMPTY). Refused for want of permission (EACCES), the
 * parent is opened up to its owner and the call tried once more.
 */
function removeEntry(parent: number, name: string | Buffer, directory: boolean): void {
  const at = inDescriptor(parent, name);
  const remove = (): void => {
    try {
      if (directory) fs.rmdirSync(at);
      else fs.unlinkSync(at);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // The kind changed since the listing: the other call (rmdir never follows a link,
      // unlink never removes a directory).
      if (code === 'ENOTDIR' && directory) return fs.unlinkSync(at);
      if ((code === 'EISDIR' || code === 'EPERM') && !directory && absentAsUndefined(() => fs.lstatSync(at))?.isDirectory() === true) return removeDirectoryHere(parent, name);
      throw error;
    }
  };
  withAccess(`${PROC_FD}/${parent}`, remove);
}

/** A directory found where the listing saw a file: emptied by descriptors too, then removed. */
function removeDirectoryHere(parent: number, name: string | Buffer): void {
  for (const _ of removalByDescriptors(inDescriptor(parent, name), LIST_BATCH));
}

const BSD_RM = process.platform === 'darwin' || process.platform === 'freebsd' || process.platform === 'openbsd';

/**
 * The mount points at `dir` or below it, from Linux's /proc/self/mountinfo (empty
 * elsewhere, or when it cannot be read). A container's volume bind-mounted into its
 * read-write layer, and left mounted, is such a one: a removal would delete what the
 * volume holds, outside the store. A bind mount of the same file system has the same
 * device number as its surroundings, so only the kernel's table tells it.
 */
export function mountPointsWithin(dir: string): string[] {
  if (process.platform !== 'linux') return [];
  let table: string;
  try {
    table = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const root = path.resolve(dir);
  const below = root === '/' ? root : root + '/';
  const found: string[] = [];
  for (const line of table.split('\n')) {
    // Fields: id, parent id, major:minor, root, mount point, ... (octal escapes for space, tab, newline, backslash).
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    if (point === root || point.startsWith(below)) found.push(point);
  }
  return found;
}

/**
 * Refuses (EBUSY, nothing removed) to remove a tree that holds a mount point: the walk,
 * and the system's rm before it, would go into what is mounted there.
 */
function refuseMountPoints(target: string): void {
  const point = mountPointsWithin(target)[0];
  if (point !== undefined) throw busy(point);
}

/** The error of a removal that stops at the mount point `at` (as the system's rmdir would). */
function busy(at: WalkPath): NodeJS.ErrnoException {
  return Object.assign(new Error(`EBUSY: a file system is mounted at ${String(at)} (unmount it first), not removed`), { code: 'EBUSY', path: String(at) });
}

/**
 * Where mountinfo cannot be read (macOS, the BSDs): a directory on another device than
 * the tree's root is not entered. A removal that meets one throws (EBUSY).
 */
function refuseOtherDevice(child: WalkPath, rootDevice: number | undefined): void {
  if (rootDevice === undefined) return;
  const st = absentAsUndefined(() => fs.lstatSync(child));
  if (st === undefined || st.dev === rootDevice) return;
  throw busy(child);
}

function isAbsent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function absentAsUndefined<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch (error) {
    if (isAbsent(error)) return undefined;
    throw error;
  }
}

/** Windows refuses to delete a read-only file (a layer's files may carry that attribute). */
function readOnlyOnWindows(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EPERM' && process.platform === 'win32';
}

function unlinkIfThere(file: WalkPath): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if (isAbsent(error)) return;
    if (!readOnlyOnWindows(error)) throw error;
    fs.chmodSync(file, 0o666);
    fs.unlinkSync(file);
  }
}
