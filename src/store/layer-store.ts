/**
 * The layer store on disk (DESIGN.md §4). Vocabulary:
 * - a *layer* is a committed directory `HOME/<id>`: complete, immutable, with its
 *   metadata index and `layerchain.json`;
 * - a *staging* directory `HOME/<id>-importing-<nonce>` is an import in progress; it is
 *   never seen as a layer and becomes one by a single rename, after its data and index
 *   are flushed;
 * - `HOME/<id>-removing` is a removal in progress (windowsfilter's convention);
 * - `HOME/<id>-replacing-<pid>-<nonce>` is an empty layer (made by the driver's create) set
 *   aside while an import replaces it.
 * Opening a store removes staging and removing leftovers of a crash, and puts back an
 * empty layer whose replacing import died before it committed. That sweep is best effort:
 * a leftover it cannot remove stays for the next one, and never fails the open (a name
 * the walk could not remove once made every command of the store fail with the same
 * error). `cleanup()`, asked for explicitly, does the same and then reports what stayed
 * (ERR_CLEANUP_INCOMPLETE).
 *
 * Example — what an import does:
 *   const stage = await store.beginImport('l2');        // HOME/l2-importing-1a2b…
 *   … write the layer into stage.path …
 *   await store.commit(stage, ['HOME/l1']);            // layerchain.json, flush, rename → HOME/l2
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { createError, toWinLayerError, type WinLayerError } from '../errors.js';
import { isMissingLayerFile, readLayerInfo, readLayerText, type LayerInfo } from '../layer/metadata-index.js';
import { crashPoint } from '../util/crash-point.js';
import { firstEntriesSync, removeTreeGuarded } from '../util/remove-tree.js';

export const LAYER_CHAIN_FILE = 'layerchain.json';
export const IMPORTING_INFIX = '-importing-';
export const REMOVING_SUFFIX = '-removing';
export const REPLACING_INFIX = '-replacing-';

/**
 * Which directory `dir` is (device, inode and, where the file system keeps one, birth
 * time), or undefined when there is none: a layer removed and made again under its id,
 * maybe on the inode the old one freed, is another directory, and what went wrong
 * reading the old one is that it went, not damage in the new one.
 */
export function directoryIdentity(dir: string): string | undefined {
  try {
    const st = fs.lstatSync(dir, { bigint: true });
    return st.isDirectory() ? `${st.dev}:${st.ino}:${st.birthtimeNs}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `p` exists: false only when it does not (ENOENT, ENOTDIR). Another error (a
 * store whose layers this user may not read: EACCES) is ERR_IO naming `what`, never
 * taken for a missing layer, as fs.existsSync would.
 */
export function present(p: string, what: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw toWinLayerError(error, `${what}: cannot be read`, { path: p });
  }
}

/**
 * Whether the directories `a` and `b` are one: the same path, the same real path (a
 * symbolic link), or the same device and inode (a bind mount, which no path resolution sees).
 */
function sameDirectory(a: string, b: string): boolean {
  if (a === b || realOrSelf(a) === realOrSelf(b)) return true;
  const sa = fs.statSync(a, { throwIfNoEntry: false, bigint: true });
  const sb = fs.statSync(b, { throwIfNoEntry: false, bigint: true });
  return sa !== undefined && sb !== undefined && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** `p` with symbolic links resolved; for a path that is gone, its directory's (a removed layer's, say). */
function realOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(p)), path.basename(p));
    } catch {
      return p;
    }
  }
}

/**
 * Ids shaped like the mount table's own files in `HOME/.mounts` (`<id>.lock`, `<id>.refs`,
 * `<id>.refs.tmp-<pid>`, a view being written `<id>-tmp-<pid>-<hex>`): a layer of such an
 * id would have its view where another layer keeps its lock or count, or be swept as a
 * leftover.
 */
const MOUNT_NAME = /(\.lock|\.refs|\.refs\.tmp-\d+|-tmp-\d+-[0-9a-f]{8})$/;

/** True for a name the store uses for work in progress (staging, removal, a layer set aside). */
export function isWorkName(name: string): boolean {
  return name.includes(IMPORTING_INFIX) || name.includes(REPLACING_INFIX) || name.endsWith(REMOVING_SUFFIX);
}

/**
 * True for a name of exactly the shape the store gives its work: `<id>-importing-<pid>-<hex>`,
 * `<id>-replacing-<pid>-<hex>`, `<id>-removing`, `<id>` a layer id, and the edge backend's
 * folders beside a layer (`<id>-importing-<pid>-<hex>-tmp-<pid>-<hex>`, for an import,
 * `<id>-importing-export-tmp-<pid>-<hex>`, for an export). Only these are swept.
 */
export function isLeftoverName(name: string): boolean {
  const m = LEFTOVER_NAME.exec(name);
  return m !== null && ID_PATTERN.test(m[1] as string) && !isWorkName(m[1] as string);
}
const LEFTOVER_NAME = /^(.+?)(?:-importing-\d+-[0-9a-f]+(?:-tmp-\d+-[0-9a-f]+)?|-importing-export-tmp-\d+-[0-9a-f]+|-replacing-\d+-[0-9a-f]+|-removing)$/;

/** The file that marks a directory as a store, written by its first open. */
export const STORE_MARKER = '.winlayer-store';

/**
 * Makes `home` a store, or refuses it. A store's open removes what looks like the leftovers
 * of its work (`*-removing`, ...): in a directory that is not a store (`--home .` by
 * mistake) those would be a user's own files. So a directory is a store once its first
 * open, new or empty, marked it (STORE_MARKER), or when it holds what only a store makes
 * (one made before the mark: a layer, `.mounts`, an import's staging directory); any other
 * directory with files in it is refused, ERR_STORE_UNSAFE, before anything is touched. A
 * store where the mark cannot be written (read-only) is used as it is.
 */
function claimStore(home: string): void {
  const marker = path.join(home, STORE_MARKER);
  if (present(marker, 'the store mark')) return;
  let names: string[];
  try {
    names = fs.readdirSync(home);
  } catch (cause) {
    throw toWinLayerError(cause, `cannot read store ${home}`, { path: home });
  }
  // What a new file system holds at its root (a volume formatted for the store) is not a user's.
  const theirs = names.filter((name) => name !== 'lost+found');
  if (theirs.length > 0 && !theirs.some((name) => madeByAStore(home, name))) {
    const shown = theirs.slice(0, 3).map((n) => JSON.stringify(n)).join(', ') + (theirs.length > 3 ? `, and ${theirs.length - 3} more` : '');
    throw createError(
      'ERR_STORE_UNSAFE',
      `${home} is not a winlayer store: it holds other files (${shown}), which the store's clean-up could take for its own leftovers; give a new or empty directory, or a store's`,
      { path: home, entries: theirs.length },
    );
  }
  try {
    fs.writeFileSync(marker, 'winlayer store\n', { flag: 'a', mode: 0o600 });
  } catch {
    // a read-only store: used as it is
  }
}

/** Whether `name` in `home` is something only a store makes. */
function madeByAStore(home: string, name: string): boolean {
  // The mark itself: another process's open wrote it between this one's look and its listing.
  if (name === '.mounts' || name === STORE_MARKER) return true;
  if (/-(?:importing|replacing)-\d+-[0-9a-f]+$/.test(name) && isLeftoverName(name)) return true;
  if (!ID_PATTERN.test(name)) return false;
  try {
    return fs.statSync(path.join(home, name, '.winlayer'), { throwIfNoEntry: false })?.isDirectory() === true || fs.existsSync(path.join(home, name, LAYER_CHAIN_FILE));
  } catch {
    return false;
  }
}
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const MAX_ID_LENGTH = 128;

/**
 * layerchain.json's text: the parents' paths, nearest first; `null` for a base layer, as
 * moby's windowsfilter writes it (Go encodes a nil list so).
 */
export function layerChainText(parents: readonly string[]): string {
  return parents.length === 0 ? 'null' : JSON.stringify(parents);
}

/** Whether `id` is a valid layer id (validateLayerId without the error). */
export function isLayerId(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}

/** Throws ERR_ID_INVALID unless `id` is a valid layer id (never a path). */
export function validateLayerId(id: unknown, what = 'id'): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH || !ID_PATTERN.test(id)) {
    throw createError('ERR_ID_INVALID', `Expected \`${what}\` to match [A-Za-z0-9][A-Za-z0-9_.-]* and be at most ${MAX_ID_LENGTH} characters, got ${JSON.stringify(id)}`, {
      id: typeof id === 'string' ? id.slice(0, 200) : String(id),
    });
  }
  if (isWorkName(id)) {
    throw createError('ERR_ID_INVALID', `\`${what}\` ${JSON.stringify(id)} uses a name the store reserves for work in progress`, { id });
  }
  if (MOUNT_NAME.test(id)) {
    throw createError('ERR_ID_INVALID', `\`${what}\` ${JSON.stringify(id)} ends like a file the store keeps for its mounts (.lock, .refs, -tmp-<pid>-<hex>)`, { id });
  }
}

/** A staging directory for one import. */
export interface Staging {
  readonly id: string;
  readonly path: string;
}

/** A committed layer as `ls` shows it. */
export interface LayerSummary {
  id: string;
  path: string;
  parents: string[];
  info: LayerInfo;
}

export class LayerStore {
  readonly home: string;

  private constructor(home: string) {
    this.home = home;
  }

  /** Opens (creating with mode 0700) the store at `home` and cleans crash leftovers. */
  static async open(home: string, options: { readonly cleanup?: boolean | undefined } = {}): Promise<LayerStore> {
    if (typeof home !== 'string' || home.length === 0) {
      throw createError('ERR_ARGUMENT_INVALID', 'Expected `home` to be a non-empty path', {});
    }
    // No file system takes it: Node refuses such a path with an argument error, not an errno.
    if (home.includes('\0')) throw createError('ERR_ARGUMENT_INVALID', '`home` must not contain a NUL character', { option: 'home' });
    let abs = path.resolve(home);
    try {
      await makeDirectories(abs, 0o700);
      // Chains name their parents by absolute path: through a symbolic link to the store,
      // they would break when the link goes or changes (every child then corrupt). The
      // store's real directory is named instead, as Docker resolves its data root.
      abs = fs.realpathSync(abs);
    } catch (cause) {
      throw toWinLayerError(cause, `cannot create store ${abs}`, { path: abs });
    }
    checkStoreOwnership(abs);
    claimStore(abs);
    const store = new LayerStore(abs);
    // Best effort: what cannot be removed now is tried again by the next open or cleanup.
    if (options.cleanup !== false) await store.sweep();
    return store;
  }

  /** The directory of layer `id` (whether or not it exists). */
  layerPath(id: string): string {
    validateLayerId(id);
    return path.join(this.home, id);
  }

  /** True when `id` is a committed layer. */
  exists(id: string): boolean {
    return present(path.join(this.layerPath(id), '.winlayer', 'layer.json'), `layer ${id}`);
  }

  /**
   * Removes `-importing-*` and `-removing` leftovers; returns what was removed. A staging
   * directory whose owner process is alive is an import in progress, not a leftover. A
   * layer set aside by a replacing import (`-replacing-*`) whose owner died goes back in
   * place when that import did not commit (the store is as it was before), else it goes.
   * Every leftover is tried; ERR_CLEANUP_INCOMPLETE (`data.removed`, `data.remaining`)
   * when some stayed.
   */
  async cleanup(): Promise<string[]> {
    return finishCleanup(this.home, await this.sweep());
  }

  /** cleanup() without the error: what it removed, and what it could not with why. */
  async sweep(): Promise<Sweep> {
    const sweep: Sweep = { removed: [], failed: [] };
    let names: string[];
    try {
      names = await fsp.readdir(this.home);
    } catch (cause) {
      throw toWinLayerError(cause, `cannot read store ${this.home}`, { path: this.home });
    }
    // Staging first: a dead import of the id whose layer goes back in place must be gone.
    names.sort((a, b) => Number(a.includes(REPLACING_INFIX)) - Number(b.includes(REPLACING_INFIX)));
    for (const name of names) {
      if (!isLeftoverName(name)) continue;
      if (ownerAlive(name)) continue;
      try {
        const at = name.indexOf(REPLACING_INFIX);
        // Only what setAside makes goes back: a real directory named for a layer id (anything
        // else of that shape, a symlink among them, is removed like any leftover).
        if (at > 0 && isLayerId(name.slice(0, at)) && fs.lstatSync(path.join(this.home, name)).isDirectory()) {
          const original = path.join(this.home, name.slice(0, at));
          if (!fs.existsSync(original)) {
            await fsp.rename(path.join(this.home, name), original);
            continue;
          }
        }
        await removeTreeGuarded(path.join(this.home, name));
        sweep.removed.push(name);
      } catch (error) {
        // Gone meanwhile: another process's sweep (or the owner's put-back) took it.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        sweep.failed.push({ name, error });
      }
    }
    return sweep;
  }

  /** Sets the layer `id` aside for an import that replaces it; returns where it went. */
  async setAside(id: string): Promise<string> {
    const aside = path.join(this.home, `${id}${REPLACING_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.rename(this.layerPath(id), aside);
    } catch (cause) {
      throw toWinLayerError(cause, `layer ${id}: cannot set it aside for the import that replaces it`, { id });
    }
    return aside;
  }

  /**
   * Creates the staging directory of an import of `id` (fails if `id` exists) on the
   * layers `parents`. Their chain is written into it at once: a removal of one of them
   * while the import runs finds it there (dependentOf) and is refused.
   */
  async beginImport(id: string, parents: readonly string[] = []): Promise<Staging> {
    validateLayerId(id);
    if (fs.existsSync(this.layerPath(id))) throw createError('ERR_LAYER_EXISTS', `layer ${id} already exists`, { id });
    // The owner's pid in the name lets another process's cleanup leave a live import alone.
    const dir = path.join(this.home, `${id}${IMPORTING_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(dir, { mode: 0o700 });
    } catch (cause) {
      throw toWinLayerError(cause, `layer ${id}: cannot make its staging directory`, { id });
    }
    try {
      if (parents.length > 0) writeFileDurable(path.join(dir, LAYER_CHAIN_FILE), JSON.stringify(parents), false);
    } catch (cause) {
      // A full disk: the directory made goes too (a live process's would stay until it ends).
      await removeTreeGuarded(dir).catch(() => undefined);
      throw toWinLayerError(cause, `layer ${id}: cannot write its parent chain`, { id });
    }
    return { id, path: dir };
  }

  /**
   * The name of a layer, or of a running import, whose chain holds the layer at `layerPath`;
   * undefined when none does.
   */
  dependentOf(layerPath: string): string | undefined {
    // The store may be reached through a symbolic link or a bind mount on one day and by
    // its real path on another: chains name their parents as the store was opened then.
    // Same name first (cheap), then same directory.
    const base = path.basename(layerPath);
    const home = path.dirname(layerPath);
    /** Directories of chain entries judged so far: one chain names the same one many times. */
    const judged = new Map<string, boolean>();
    const isHome = (dir: string): boolean => {
      let same = judged.get(dir);
      // A chain written through a link that is gone now (or a store since moved) names a
      // directory that no longer resolves: taken for this one when the name is the layer's,
      // so that such a child keeps its parent rather than lose it to a removal.
      if (same === undefined) judged.set(dir, (same = !fs.existsSync(dir) || sameDirectory(dir, home)));
      return same;
    };
    const names = (parent: unknown): boolean => typeof parent === 'string' && (parent === layerPath || (path.basename(parent) === base && isHome(path.dirname(parent))));
    // A name that moves between the listing and the read of its chain (renamed by a commit,
    // a set-aside, a removal) is looked for again: the listing is taken anew, a few times.
    for (let scan = 0; ; scan++) {
      let moved = false;
      const found = this.#dependentIn(listStore(this.home), names, () => (moved = true));
      if (found !== undefined || !moved || scan === 4) return found;
    }
  }

  #dependentIn(listing: readonly string[], names: (parent: unknown) => boolean, moved: () => void): string | undefined {
    for (const name of listing) {
      if (name.startsWith('.')) continue;
      // Work in progress counts only for a live import, and a layer set aside while an
      // import (or a removal) works on it, when its layer is not there: it goes back if that
      // work fails, even after a crash (the next open puts it back). Beside its layer, a
      // set-aside copy is obsolete; a leftover's chain means nothing.
      const importing = name.includes(IMPORTING_INFIX);
      const replacing = name.indexOf(REPLACING_INFIX);
      if (isWorkName(name) && !(importing && ownerAlive(name)) && !(replacing > 0 && !fs.existsSync(path.join(this.home, name.slice(0, replacing))))) continue;
      // An import that commits between the listing and this read is under its own name now.
      const places = importing ? [name, name.slice(0, name.indexOf(IMPORTING_INFIX))] : [name];
      for (const place of places) {
        try {
          const chain = JSON.parse(fs.readFileSync(path.join(this.home, place, LAYER_CHAIN_FILE), 'utf8')) as unknown;
          if (Array.isArray(chain) && chain.some(names)) return name;
          break;
        } catch {
          // not a layer, or an import that has not written its chain (or has just committed)
          if (place === name && !fs.existsSync(path.join(this.home, name))) moved();
        }
      }
    }
    return undefined;
  }

  /** Writes layerchain.json, flushes the staging tree and renames it into place. */
  async commit(stage: Staging, parents: readonly string[], options: { durable?: boolean; beforeRename?: ((staging: string) => void) | undefined } = {}): Promise<string> {
    const durable = options.durable ?? true;
    writeFileDurable(path.join(stage.path, LAYER_CHAIN_FILE), layerChainText(parents), durable);
    if (durable) flushFileSystem(stage.path);
    // A parent removed while this import ran (before the removal could see it) leaves a
    // chain that names nothing: refused, not committed.
    for (const parent of parents) {
      if (!fs.existsSync(parent)) throw createError('ERR_PARENT_NOT_FOUND', `parent layer ${path.basename(parent)} was removed during the import of ${stage.id}`, { id: path.basename(parent) });
    }
    options.beforeRename?.(stage.path);
    const target = this.layerPath(stage.id);
    try {
      // rename(2) replaces an empty directory; a layer never is one, but refuse anyway.
      if (fs.existsSync(target)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      crashPoint('rename');
      await fsp.rename(stage.path, target);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTEMPTY') throw createError('ERR_LAYER_EXISTS', `layer ${stage.id} already exists`, { id: stage.id }, cause);
      throw toWinLayerError(cause, `cannot commit layer ${stage.id}`, { id: stage.id });
    }
    if (durable) fsyncDirectory(this.home);
    crashPoint('committed');
    return target;
  }

  /**
   * Deletes a staging directory (failure path). Best effort: the caller's own error is the
   * one to report, and what stays is a leftover the next open or cleanup removes.
   */
  async abort(stage: Staging): Promise<void> {
    await removeTreeGuarded(stage.path).catch(() => undefined);
  }

  /** The parent chain of `id`: layer paths, nearest first. */
  readChain(id: string): string[] {
    const file = path.join(this.layerPath(id), LAYER_CHAIN_FILE);
    let text: string;
    try {
      text = readLayerText(file, `layer ${id}`, { id });
    } catch (cause) {
      if (isMissingLayerFile(cause)) {
        if (!fs.existsSync(this.layerPath(id))) throw createError('ERR_LAYER_NOT_FOUND', `layer ${id} does not exist`, { id });
        return [];
      }
      throw cause;
    }
    let chain: unknown;
    try {
      chain = JSON.parse(text);
    } catch (cause) {
      throw createError('ERR_LAYER_CORRUPT', `${file}: not JSON`, { id }, cause);
    }
    // `null` is a base layer's chain as moby writes it (a nil list).
    if (chain === null) return [];
    if (!Array.isArray(chain) || !chain.every((p) => typeof p === 'string')) {
      throw createError('ERR_LAYER_CORRUPT', `${file}: not an array of layer paths`, { id });
    }
    // Each a layer of this store: a chain edited to name another directory (`/`, a relative
    // path the caller's working directory would resolve) would be read, mounted and
    // exported from there.
    for (const p of chain as string[]) {
      if (!path.isAbsolute(p) || !isLayerId(path.basename(p)) || !this.#isHome(path.dirname(p))) {
        throw createError('ERR_LAYER_CORRUPT', `${file}: ${JSON.stringify(p)} is not a layer of this store`, { id, parent: p });
      }
    }
    return chain as string[];
  }

  /** Whether `dir` is this store's directory: by name, else by what both resolve to (a store opened through a link). */
  #isHome(dir: string): boolean {
    return sameDirectory(dir, this.home);
  }

  /** The chain a new layer on top of `parentId` gets: [parent path, ...parent's chain]. */
  chainFor(parentId: string | undefined): string[] {
    if (parentId === undefined || parentId === '') return [];
    validateLayerId(parentId, 'parent');
    const gone = (cause?: unknown): WinLayerError => createError('ERR_PARENT_NOT_FOUND', `parent layer ${parentId} does not exist`, { id: parentId }, cause);
    if (!this.exists(parentId)) throw gone();
    try {
      const chain = [this.layerPath(parentId), ...this.readChain(parentId)];
      // A layer made on a parent whose summary is damaged would commit and then fail every
      // mount (ERR_LAYER_CORRUPT there): refused here, naming that layer, before anything
      // is written. One small read per layer of the chain.
      for (const layer of chain) {
        try {
          readLayerInfo(layer);
        } catch (error) {
          if (layer === chain[0] && !present(layer, `layer ${parentId}`)) throw gone(error);
          throw error;
        }
      }
      return chain;
    } catch (error) {
      // Removed (renamed away) between the look and the read: still the parent that is missing.
      if ((error as WinLayerError).code === 'ERR_LAYER_NOT_FOUND') throw gone(error);
      throw error;
    }
  }

  /** Layer summary of `id`. */
  stat(id: string): LayerSummary {
    const p = this.layerPath(id);
    if (!present(p, `layer ${id}`)) throw createError('ERR_LAYER_NOT_FOUND', `layer ${id} does not exist`, { id });
    return { id, path: p, parents: this.readChain(id), info: readLayerInfo(p) };
  }

  /** Every committed layer, sorted by id. */
  async list(): Promise<LayerSummary[]> {
    const names = (await fsp.readdir(this.home)).sort();
    const out: LayerSummary[] = [];
    for (const name of names) {
      try {
        validateLayerId(name);
      } catch {
        continue; // work in progress, or not a layer's name
      }
      if (!present(path.join(this.home, name, '.winlayer', 'layer.json'), `layer ${name}`)) continue;
      out.push(this.stat(name));
    }
    return out;
  }
}

/** What a sweep of leftovers did: names relative to the store's home. */
export interface Sweep {
  removed: string[];
  failed: { name: string; error: unknown }[];
}

/**
 * The end of an explicit cleanup: what it removed, or ERR_CLEANUP_INCOMPLETE naming what
 * stayed (`data.remaining`), what went (`data.removed`) and the first failure's errno.
 */
export function finishCleanup(home: string, sweep: Sweep): string[] {
  const first = sweep.failed[0];
  if (first === undefined) return sweep.removed;
  const remaining = sweep.failed.map((f) => f.name);
  const reasons = sweep.failed.map((f) => `${f.name} (${errnoOf(f.error) ?? String(f.error)})`);
  throw createError(
    'ERR_CLEANUP_INCOMPLETE',
    `${remaining.length} leftover(s) in ${home} could not be removed: ${reasons.join(', ')}`,
    { path: home, remaining, removed: sweep.removed, errno: errnoOf(first.error) ?? null },
    first.error,
  );
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdir spins forever on a path where
 * mkdir fails with ENOENT although the parent exists (under /proc, say); here that fails.
 */
/** The names in the store's directory; an error reading it (EMFILE, EACCES) is ERR_IO. */
export function listStore(home: string): string[] {
  try {
    return fs.readdirSync(home);
  } catch (cause) {
    throw toWinLayerError(cause, `cannot read store ${home}`, { path: home });
  }
}

/**
 * Refuses a store another user could redirect: a HOME owned by another user than this
 * process's (root excepted) lets its owner make `.mounts` (or a leftover's name) a
 * symbolic link, and the next sweep, mount or removal would write and delete where it
 * leads; a `.mounts` that is not a plain directory of this user's (or root's) is refused
 * too, whoever made it (a HOME every user may write to, such as a fresh tmpfs, is
 * accepted: what others make in it is checked so). Not on Windows (no owners here).
 */
export function checkStoreOwnership(home: string): void {
  if (process.platform === 'win32' || typeof process.geteuid !== 'function') return;
  const me = process.geteuid();
  const unsafe = (st: fs.Stats): boolean => st.uid !== me && st.uid !== 0;
  let st: fs.Stats;
  try {
    st = fs.statSync(home);
  } catch (cause) {
    throw toWinLayerError(cause, `cannot read store ${home}`, { path: home });
  }
  if (unsafe(st)) {
    throw createError('ERR_STORE_UNSAFE', `store ${home} is owned by another user (uid ${st.uid}): they could redirect what winlayer writes and removes`, { path: home, uid: st.uid });
  }
  const mounts = path.join(home, '.mounts');
  let m: fs.Stats | undefined;
  try {
    m = fs.lstatSync(mounts);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw toWinLayerError(cause, `cannot read ${mounts}`, { path: mounts });
  }
  if (m !== undefined && (!m.isDirectory() || unsafe(m) || (m.mode & 0o002) !== 0)) {
    throw createError('ERR_STORE_UNSAFE', `${mounts} is not a directory of the store's owner (a symbolic link, another kind of file, or another user's)`, { path: mounts });
  }
}

async function makeDirectories(dir: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; ) {
    try {
      if ((await fsp.stat(d)).isDirectory()) break;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${d}'`), { code: 'ENOTDIR', path: d });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
    }
    missing.push(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      await fsp.mkdir(missing[i] as string, { mode });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cause;
    }
  }
}

/**
 * True when `name` (`…-importing-`, `…-replacing-` or `…-tmp-<pid>-<nonce>`) belongs to a running
 * process. A reused pid keeps a leftover until that process ends: never the reverse.
 */
export function ownerAlive(name: string): boolean {
  return processAlive(ownerPid(name) ?? 0);
}

/** The process whose work `name` (`…-importing-`, `…-replacing-` or `…-tmp-<pid>-<nonce>`) is, or undefined for another name. */
export function ownerPid(name: string): number | undefined {
  const m = /-(?:importing|replacing|tmp)-(\d+)-[0-9a-f]+$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * True when process `pid` runs (a positive integer; anything else is no process). A zombie
 * does not: it has exited and only waits for its parent to collect it. A worker orphaned
 * by a killed controller is reparented to the nearest reaper, which in a container is
 * often a process that never collects orphans (Node running as PID 1): its staging
 * directory and mount lock would otherwise count as a live owner's until that ended.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (cause) {
    return (cause as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** Linux: whether /proc says `pid` has exited (Z, zombie; X, dead). Elsewhere, or unreadable: false. */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  // `pid (comm) state …`: comm may hold spaces and parentheses, the state follows the last ')'.
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X';
}

/** Writes `file` of a staging directory, replacing what beginImport wrote; never through a symbolic link. */
function writeFileDurable(file: string, text: string, durable: boolean): void {
  const c = fs.constants;
  const fd = fs.openSync(file, c.O_WRONLY | c.O_CREAT | c.O_TRUNC | c.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, text);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Below this many files and directories, fsync each of them; above, one syncfs. */
export const FSYNC_EACH_MAX_ENTRIES = 64;

/**
 * Flushes every file written under `dir` to disk. A small tree is fsynced file by file.
 * A large one is flushed in one call: syncfs(2) through `sync -f` on Linux (plain sync(2)
 * elsewhere), one process start however many files a layer has, where an fsync per file
 * costs a disk round trip per file. syncfs also flushes whatever else is dirty on that
 * file system, which is why small layers do not use it.
 */
export function flushFileSystem(dir: string): void {
  if (countEntries(dir, FSYNC_EACH_MAX_ENTRIES + 1) <= FSYNC_EACH_MAX_ENTRIES) {
    fsyncTree(dir);
    return;
  }
  const args = process.platform === 'linux' ? ['-f', dir] : [];
  // Loaded here, not at the top: only a large import needs it, and a worker's start-up should not.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('sync', args, { stdio: 'ignore' });
  if (r.error !== undefined || r.status !== 0) {
    // No usable `sync` binary: fall back to fsync of each file, which is always correct.
    fsyncTree(dir);
  }
}

/**
 * Files and directories below `dir`, counting stops at `limit`. Directories are read only
 * as far as the count needs: reading a whole one (readdirSync) made ~14 MiB of objects
 * for the 100,000 links of a base layer's System32, the peak of its import, to count 65.
 */
function countEntries(dir: string, limit: number): number {
  let n = 0;
  const stack = [dir];
  while (stack.length > 0 && n < limit) {
    const current = stack.pop() as string;
    for (const d of firstEntriesSync(current, limit - n)) {
      n++;
      if (d.isDirectory()) stack.push(path.join(current, d.name));
    }
  }
  return n;
}

function fsyncTree(dir: string): void {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) fsyncTree(p);
    else if (d.isFile()) {
      const fd = fs.openSync(p, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  fsyncDirectory(dir);
}
