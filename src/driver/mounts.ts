/**
 * Mount reference counts, shared by every process that opens the same store (the CLI's
 * `mount` in one process and `unmount` in another must agree). A count lives in
 * `HOME/.mounts/<id>.refs`, changed under a lock directory `HOME/.mounts/<id>.lock`. The
 * lock holds its owner's pid, a nonce, its host and the process's start time; it is made
 * whole beside its place (`.lock-<id>-<pid>-<hex>`) and renamed there (atomic, and refused
 * while another's lock is there), so that no lock is ever without its owner: a lock whose
 * owner is gone (killed in the middle of a mount) is broken at once, one of another host
 * once older than STALE_LOCK_MS, and one without an owner (left half-removed, or by an
 * older winlayer that made the directory first) after UNOWNED_LOCK_MS (see lockStale).
 * The holder refreshes its lock's time while it works (a large mount takes seconds), so a
 * live holder's lock never looks stale to another host either.
 *
 * Breaking is serialized: a waiter breaks a lock only while it holds `HOME/.mounts/.break-<id>`
 * (no layer id starts with a dot), and judges the lock there, so two waiters that both saw
 * a dead owner cannot have the second remove the lock a third took after the first broke
 * the dead one. A holder releases only its own lock (the nonce tells).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createError, toWinLayerError } from '../errors.js';
import { checkStoreOwnership, processAlive } from '../store/layer-store.js';

export const MOUNTS_DIR = '.mounts';
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;
/** A breaking takes a few system calls: a `.break-<id>` this old was left by a breaker that died. */
const STALE_BREAK_MS = 5_000;
/**
 * The owner is written right after the lock is made: a lock this old without one was left
 * by a process killed in between (waiters would otherwise wait STALE_LOCK_MS, past their
 * LOCK_WAIT_MS).
 */
const UNOWNED_LOCK_MS = 2_000;

/** A count written beside its place before the rename: `<id>.refs.tmp-<pid>`. */
const REFS_TMP = /\.refs\.tmp-(\d+)$/;

/** The file in a lock directory that names its owner: `<pid> <nonce>`. */
const OWNER_FILE = 'owner';

/** The owner text of `lock`, or undefined when it has none (not yet written, or released). */
function ownerOf(lock: string): string | undefined {
  try {
    return fs.readFileSync(path.join(lock, OWNER_FILE), 'utf8');
  } catch (error) {
    // Not written yet, or the lock went. Any other failure (out of descriptors) says
    // nothing of the owner: an error, never "nobody", which would break a live holder's lock.
    if (isAbsent(error)) return undefined;
    throw toWinLayerError(error, `${lock}: cannot read the lock's owner`, { path: lock });
  }
}

function isAbsent(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * The lock directory and what it holds (its owner, an owner being written), by unlink
 * and rmdir: no descriptor needed, so a process out of them (EMFILE) still releases.
 */
function removeLock(lock: string): void {
  for (const name of [OWNER_FILE, `${OWNER_FILE}.tmp`]) {
    try {
      fs.unlinkSync(path.join(lock, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  try {
    fs.rmdirSync(lock);
  } catch (error) {
    // Gone, or another's lock renamed onto it once it was empty: no longer this one.
    if (!['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
}

/** A lock being made: `.lock-<id>-<pid>-<hex>` (no layer id starts with a dot). */
const PENDING_LOCK_PREFIX = '.lock-';

/** Whether a rename onto a lock failed because the lock is there (held). */
function isTaken(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  // Windows renames no directory onto an existing one.
  return code === 'EEXIST' || code === 'ENOTEMPTY' || (code === 'EPERM' && process.platform === 'win32');
}

/** The owner file of `lock` as lstat sees it (inode and change time), without opening it. */
function ownerStamp(lock: string): string | undefined {
  try {
    const st = fs.lstatSync(path.join(lock, OWNER_FILE), { bigint: true });
    return `${st.dev}:${st.ino}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/**
 * True when the lock's owner is gone: on this host, its process (the same pid and start
 * time) is no longer running; on another host (a store on a shared file system), the lock
 * is past its time. A live owner here keeps its lock however long it holds it: stopped
 * (Ctrl-Z) or busy in synchronous work it cannot refresh the lock's time, and a waiter
 * that broke it by age would count its mount over the holder's. A lock without an owner
 * goes after a shorter time; one of an older winlayer (pid and nonce only) by either rule.
 */
function lockStale(lock: string): boolean {
  const age = Date.now() - fs.statSync(lock).mtimeMs;
  const owner = ownerOf(lock);
  if (owner === undefined) return age > UNOWNED_LOCK_MS;
  const [pid, , host, started] = owner.split(' ');
  if (host === undefined) return age > STALE_LOCK_MS || !processAlive(Number(pid));
  if (host !== HOST) return age > STALE_LOCK_MS;
  if (!processAlive(Number(pid))) return true;
  if (started === undefined || started === '-') return false;
  const now = processStartTime(Number(pid));
  return now !== '-' && started !== now;
}

/** This host, as lock owners name it (no spaces). */
const HOST = encodeURIComponent(os.hostname());

/** Linux: when process `pid` started (clock ticks since boot, /proc/<pid>/stat), telling it from a later one of its pid; '-' elsewhere. */
function processStartTime(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The fields after the command (which may hold spaces and parentheses); starttime is the 22nd field.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '-';
  } catch (error) {
    // No /proc (not Linux), or the process just ended: unknown. Unreadable for another
    // reason (out of descriptors): an error, not a different process.
    if (isAbsent(error) || (error as NodeJS.ErrnoException).code === 'ESRCH') return '-';
    throw toWinLayerError(error, `process ${pid}: cannot read when it started`, { pid });
  }
}

export class MountTable {
  readonly dir: string;
  readonly #refreshMs: number;
  readonly #waitMs: number;

  /** `refreshMs`: how often a held lock's time is refreshed; `waitMs`: how long a lock is waited for (tests shorten both). */
  constructor(home: string, options: { refreshMs?: number; waitMs?: number } = {}) {
    this.dir = path.join(home, MOUNTS_DIR);
    this.#refreshMs = options.refreshMs ?? STALE_LOCK_MS / 3;
    this.#waitMs = options.waitMs ?? LOCK_WAIT_MS;
  }

  /** The read-only view directory of `id`. */
  viewPath(id: string): string {
    return path.join(this.dir, id);
  }

  refs(id: string): number {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, `${id}.refs`), 'utf8');
    } catch (error) {
      // No count file: not mounted. A count that cannot be read is not zero: taken for
      // zero, a put or get would remove the view of a layer others have mounted.
      if (isAbsent(error)) return 0;
      throw toWinLayerError(error, `layer ${id}: cannot read its mount count`, { id });
    }
    const n = Number(text);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  }

  /** Every id with a count above zero. */
  mounted(): string[] {
    return this.names().filter((n) => n.endsWith('.refs')).map((n) => n.slice(0, -5)).filter((id) => this.refs(id) > 0).sort();
  }

  setRefs(id: string, n: number): void {
    const file = path.join(this.dir, `${id}.refs`);
    if (n <= 0) {
      fs.rmSync(file, { force: true });
      return;
    }
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, String(n));
      fs.renameSync(tmp, file);
    } catch (cause) {
      // A full disk fails the write half-way: nothing of it stays (sweepLocks takes a dead writer's).
      fs.rmSync(tmp, { force: true });
      throw toWinLayerError(cause, `layer ${id}: cannot record its mount count`, { id });
    }
  }

  /**
   * Runs `fn` holding the lock of `id`, waiting for it `waitMs` at most (the table's wait by
   * default; Infinity: as long as its holder lives and keeps it fresh). `signal` ends the
   * wait (ERR_CANCELED).
   */
  async withLock<T>(id: string, fn: () => T | Promise<T>, options: { waitMs?: number; signal?: AbortSignal | undefined } = {}): Promise<T> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Made since the store was opened, it is checked as the open checks it.
    checkStoreOwnership(path.dirname(this.dir));
    const lock = path.join(this.dir, `${id}.lock`);
    const token = `${process.pid} ${randomBytes(8).toString('hex')} ${HOST} ${processStartTime(process.pid)}`;
    const waitMs = options.waitMs ?? this.#waitMs;
    const deadline = Date.now() + waitMs;
    let stamp: string | undefined;
    // The lock is made whole beside its place (its owner written in it) and renamed there:
    // it never exists without its owner. A lock made in place and then given its owner could
    // be judged ownerless while its maker stalled (past UNOWNED_LOCK_MS on a loaded host),
    // broken and taken by another, and its maker then wrote its owner into that one's lock:
    // two holders at once.
    const pending = path.join(this.dir, `${PENDING_LOCK_PREFIX}${id}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.mkdirSync(pending);
      fs.writeFileSync(path.join(pending, OWNER_FILE), token);
    } catch (cause) {
      // Nothing of it stays to be waited for.
      try {
        removeLock(pending);
      } catch {
        // swept later: its maker's pid is in its name
      }
      const code = (cause as NodeJS.ErrnoException).code;
      // A full file system: no lock can be made there, by this process or another, and the
      // work that frees space (remove, unmount) must still be done: without one, when none
      // is held (a mount, which needs space, fails on its own).
      if ((code === 'ENOSPC' || code === 'EDQUOT') && !fs.existsSync(lock)) return await fn();
      throw toWinLayerError(cause, `layer ${id}: cannot take the mount lock`, { id });
    }
    try {
      for (;;) {
        try {
          // Its time is the lock's once in place: fresh, however long this waited, or others
          // would take a lock made before a long wait for one past STALE_LOCK_MS.
          const now = new Date();
          fs.utimesSync(pending, now, now);
          // Atomic; onto an empty directory (a lock being released) it takes its place.
          fs.renameSync(pending, lock);
          stamp = ownerStamp(lock);
          break;
        } catch (cause) {
          if (!isTaken(cause)) throw toWinLayerError(cause, `layer ${id}: cannot take the mount lock`, { id });
          this.#breakIfStale(id, lock);
          if (options.signal?.aborted === true) throw createError('ERR_CANCELED', `layer ${id}: canceled while waiting for its mount lock`, { id });
          if (Date.now() >= deadline) throw createError('ERR_LAYER_IN_USE', `layer ${id}: mount lock held for over ${waitMs} ms`, { id });
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } finally {
      if (stamp === undefined) {
        try {
          removeLock(pending);
        } catch {
          // swept later
        }
      }
    }
    const refresh = setInterval(() => {
      try {
        const now = new Date();
        fs.utimesSync(lock, now, now);
      } catch {
        // gone: the finally below is about to remove it anyway
      }
    }, this.#refreshMs);
    refresh.unref();
    try {
      return await fn();
    } finally {
      clearInterval(refresh);
      // Its own only: a lock broken while this one worked (judged stale) may be another's now.
      // Known by its owner file's inode and change time (a file made anew has others), so
      // that a process out of descriptors (EMFILE) still knows and releases it. Best effort:
      // what `fn` did stands; a lock that cannot go (a file system gone read-only) is broken
      // by the next taker once it looks stale.
      try {
        if (stamp !== undefined ? ownerStamp(lock) === stamp : ownerOf(lock) === token) removeLock(lock);
      } catch {
        // left to look stale
      }
    }
  }

  /**
   * Breaks the stale locks of every id and removes breakers' marks left behind (a process
   * killed while it held one); returns their names in `.mounts`. Locks in use stay.
   */
  sweepLocks(): { removed: string[]; failed: { name: string; error: unknown }[] } {
    const removed: string[] = [];
    const failed: { name: string; error: unknown }[] = [];
    for (const n of this.names()) {
      if (n.startsWith('.break-')) {
        try {
          if (Date.now() - fs.statSync(path.join(this.dir, n)).mtimeMs > STALE_BREAK_MS) {
            fs.rmdirSync(path.join(this.dir, n));
            removed.push(n);
          }
        } catch {
          // taken or gone meanwhile
        }
      } else if (n.startsWith(PENDING_LOCK_PREFIX)) {
        // A lock its maker was killed before it renamed into place.
        const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(n)?.[1] ?? 0);
        if (pid <= 0 || processAlive(pid)) continue;
        try {
          removeLock(path.join(this.dir, n));
          removed.push(n);
        } catch (error) {
          failed.push({ name: n, error });
        }
      } else if (REFS_TMP.test(n)) {
        // A count being written by a process killed before its rename.
        const pid = Number(REFS_TMP.exec(n)?.[1] ?? 0);
        if (pid <= 0 || processAlive(pid)) continue;
        try {
          fs.rmSync(path.join(this.dir, n), { force: true });
          removed.push(n);
        } catch (error) {
          failed.push({ name: n, error });
        }
      } else if (n.endsWith('.lock')) {
        try {
          if (this.#breakIfStale(n.slice(0, -'.lock'.length), path.join(this.dir, n))) removed.push(n);
        } catch (error) {
          failed.push({ name: n, error });
        }
      }
    }
    return { removed, failed };
  }

  /** The names in `.mounts`: none before the first mount made it. */
  names(): string[] {
    try {
      return fs.readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  /**
   * Removes `lock` if it is stale, judged and removed while holding `.break-<id>`; never
   * waits. True when it removed it. Throws ERR_IO when the mark cannot be made or a stale
   * lock cannot be removed for another reason than a taker (a full or read-only disk):
   * waiting would not make it go.
   */
  #breakIfStale(id: string, lock: string): boolean {
    const breaking = path.join(this.dir, `.break-${id}`);
    try {
      fs.mkdirSync(breaking);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw toWinLayerError(cause, `layer ${id}: cannot break its stale mount lock`, { id });
      // Another waiter is breaking it (or died doing so: its mark goes once it is old).
      try {
        if (Date.now() - fs.statSync(breaking).mtimeMs > STALE_BREAK_MS) fs.rmdirSync(breaking);
      } catch {
        // gone meanwhile
      }
      return false;
    }
    try {
      // Judged by its owner as it is now, and removed only if that owner is still the one
      // judged: a breaker that stalled here (past STALE_BREAK_MS, its mark then taken for a
      // dead breaker's) would otherwise remove the lock another took since.
      const judged = ownerStamp(lock);
      if (!lockStale(lock) || ownerStamp(lock) !== judged) return false;
      removeLock(lock);
      return true;
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return false; // released meanwhile
      throw toWinLayerError(cause, `layer ${id}: cannot break its stale mount lock`, { id });
    } finally {
      try {
        fs.rmdirSync(breaking);
      } catch {
        // a waiter judged it old and removed it
      }
    }
  }
}
