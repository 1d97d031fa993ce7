import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MountTable } from '../../src/driver/mounts.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

/** Runs `fn` with the `node:fs` functions `methods` throwing `error` for the paths `when` picks. */
async function withFsFailing<T>(methods: readonly string[], error: Error, when: (p: string) => boolean, fn: () => Promise<T>): Promise<T> {
  // The module object behind `node:fs`, whose changes syncBuiltinESMExports carries to importers.
  const cjs = createRequire(import.meta.url)('node:fs') as Record<string, (...a: unknown[]) => unknown>;
  const saved = methods.map((m) => cjs[m] as (...a: unknown[]) => unknown);
  methods.forEach((m, i) => {
    const real = saved[i] as (...a: unknown[]) => unknown;
    cjs[m] = (p: unknown, ...rest: unknown[]) => {
      if (when(String(p))) throw error;
      return real(p, ...rest);
    };
  });
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    methods.forEach((m, i) => (cjs[m] = saved[i] as (...a: unknown[]) => unknown));
    syncBuiltinESMExports();
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));
const HOLDER = path.join(here, '..', '..', '..', 'test', 'fixtures', 'locks', 'holder.mjs');
const MOUNTS_MODULE = path.join(here, '..', '..', 'src', 'driver', 'mounts.js');

/** A pid no process has any more. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

describe('driver/mounts: the mount lock', () => {
  after(cleanupTemp);

  it('is refreshed while held, so a long mount never looks stale to another process', async () => {
    const table = new MountTable(tempDir(), { refreshMs: 20 });
    const lock = path.join(table.dir, 'x.lock');
    const seen: number[] = [];
    await table.withLock('x', async () => {
      const first = fs.statSync(lock).mtimeMs;
      fs.utimesSync(lock, new Date(first - 60_000), new Date(first - 60_000)); // as if taken a minute ago
      for (let i = 0; i < 10 && seen.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 30));
        const now = fs.statSync(lock).mtimeMs;
        if (now > first - 60_000) seen.push(now);
      }
    });
    expect(seen.length).to.equal(1);
    expect(fs.existsSync(lock)).to.equal(false);
  });

  it('breaks at once a lock whose owner is gone (killed in the middle of a mount)', async () => {
    const table = new MountTable(tempDir(), { waitMs: 500 });
    const lock = path.join(table.dir, 'x.lock');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    fs.mkdirSync(lock, { recursive: true });
    fs.writeFileSync(path.join(lock, 'owner'), gone);
    // A lock taken just now: only its owner's absence lets a waiter in before the wait runs out.
    expect(await table.withLock('x', () => 'held')).to.equal('held');
    // A live owner's fresh lock is waited for, and the waiter gives up with ERR_LAYER_IN_USE.
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(lock, 'owner'), String(process.pid));
    const code = await table.withLock('x', () => 'held').then(() => 'taken', (e: { code?: string }) => e.code);
    expect(code).to.equal('ERR_LAYER_IN_USE');
  });

  it('a lock without its owner (its maker killed before writing one) is waited for 2 s, then broken; cleanup breaks it too', async () => {
    const table = new MountTable(tempDir(), { waitMs: 300 });
    const lock = path.join(table.dir, 'x.lock');
    fs.mkdirSync(lock, { recursive: true });
    fs.writeFileSync(path.join(lock, 'owner.tmp'), String(deadPid()));
    const code = await table.withLock('x', () => 'held').then(() => 'taken', (e: { code?: string }) => e.code);
    expect(code).to.equal('ERR_LAYER_IN_USE');
    const old = new Date(Date.now() - 3_000);
    fs.utimesSync(lock, old, old);
    expect(await table.withLock('x', () => 'held')).to.equal('held');
    // Left behind: broken by a sweep once stale (a live owner's stays).
    fs.mkdirSync(lock);
    fs.utimesSync(lock, old, old);
    fs.mkdirSync(path.join(table.dir, 'y.lock'));
    fs.writeFileSync(path.join(table.dir, 'y.lock', 'owner'), `${process.pid} live`);
    fs.mkdirSync(path.join(table.dir, 'z.lock'));
    fs.writeFileSync(path.join(table.dir, 'z.lock', 'owner'), `${deadPid()} gone`);
    expect(table.sweepLocks().removed.sort()).to.deep.equal(['x.lock', 'z.lock']);
    expect(fs.readdirSync(table.dir)).to.deep.equal(['y.lock']);
  });

  it("out of descriptors, never takes a live holder's lock for an ownerless or stale one, nor an unreadable count for zero: ERR_IO", async () => {
    const emfile = Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE', syscall: 'open' });
    const outOfDescriptors = <T>(fn: () => Promise<T>, when: (p: string) => boolean): Promise<T> => withFsFailing(['readFileSync'], emfile, when, fn);
    const table = new MountTable(tempDir(), { waitMs: 4_000 });
    const lock = path.join(table.dir, 'x.lock');
    const codeOf = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'taken', (e: { code?: string; data?: { errno?: string } }) => [e.code, e.data?.errno]);
    // A live holder (this process), its lock older than the ownerless rule's 2 s.
    fs.mkdirSync(table.dir, { recursive: true });
    fs.mkdirSync(lock);
    const token = `${process.pid} held ${encodeURIComponent(os.hostname())} ${fs.readFileSync(`/proc/${process.pid}/stat`, 'latin1').split(') ')[1]?.split(' ')[19] ?? '-'}`;
    fs.writeFileSync(path.join(lock, 'owner'), token);
    const old = new Date(Date.now() - 3_000);
    fs.utimesSync(lock, old, old);
    for (const unreadable of [(p: string) => p.endsWith(`${path.sep}owner`), (p: string) => p.startsWith('/proc/')]) {
      expect(await codeOf(outOfDescriptors(() => table.withLock('x', () => 'broken'), unreadable))).to.deep.equal(['ERR_IO', 'EMFILE']);
      expect(fs.readFileSync(path.join(lock, 'owner'), 'utf8'), 'the holder keeps its lock').to.equal(token);
    }
    table.setRefs('x', 2);
    expect(await codeOf(outOfDescriptors(async () => table.refs('x'), (p) => p.endsWith('.refs')))).to.deep.equal(['ERR_IO', 'EMFILE']);
    expect(table.refs('x')).to.equal(2);
    expect(table.refs('never-mounted')).to.equal(0);
  });

  it('on a full disk, does the work without a lock when none is held (a remove must free space), and says so rather than waiting on one it cannot break', async () => {
    const full = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    const withFull = <T>(fn: () => Promise<T>, when: (p: string) => boolean): Promise<T> => withFsFailing(['writeFileSync', 'mkdirSync'], full, when, fn);
    const table = new MountTable(tempDir(), { waitMs: 5_000 });
    const lock = path.join(table.dir, 'x.lock');
    const codeOf = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'taken', (e: { code?: string; data?: { errno?: string } }) => [e.code, e.data?.errno]);
    expect(await withFull(() => table.withLock('x', () => 'done without a lock'), (p) => p.endsWith(`${path.sep}owner`))).to.equal('done without a lock');
    expect(fs.existsSync(lock), 'no lock').to.equal(false);
    expect(fs.readdirSync(table.dir), 'nothing of the lock it was making').to.deep.equal([]);
    // Where another holds one, it says so at once: ERR_IO, the disk full.
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(lock, 'owner'), `${process.pid} mine`);
    const atOnce = Date.now();
    expect(await codeOf(withFull(() => table.withLock('x', () => 'held'), (p) => p.endsWith(`${path.sep}owner`)))).to.deep.equal(['ERR_IO', 'ENOSPC']);
    expect(Date.now() - atOnce).to.be.below(2_000);
    fs.rmSync(lock, { recursive: true });
    expect(await table.withLock('x', () => 'held')).to.equal('held');
    // A dead owner's lock that cannot be broken (its mark cannot be made): ERR_IO at once, not ERR_LAYER_IN_USE after the wait.
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(lock, 'owner'), `${deadPid()} gone`);
    const started = Date.now();
    expect(await codeOf(withFull(() => table.withLock('x', () => 'held'), (p) => p.includes('.break-')))).to.deep.equal(['ERR_IO', 'ENOSPC']);
    expect(Date.now() - started).to.be.below(2_000);
    const swept = await withFull(async () => table.sweepLocks(), (p) => p.includes('.break-'));
    expect({ removed: swept.removed, failed: swept.failed.map((f) => f.name) }).to.deep.equal({ removed: [], failed: ['x.lock'] });
    expect(table.sweepLocks().removed).to.deep.equal(['x.lock']);
  });

  it('releases its lock when the process is out of descriptors (EMFILE), and lets what it did stand when the lock cannot go', async () => {
    type Calls = { readFileSync: (...a: unknown[]) => unknown; openSync: (...a: unknown[]) => unknown; unlinkSync: (...a: unknown[]) => unknown };
    const cjs = createRequire(import.meta.url)('node:fs') as Calls;
    const saved = { readFileSync: cjs.readFileSync, openSync: cjs.openSync, unlinkSync: cjs.unlinkSync };
    const table = new MountTable(tempDir());
    const lock = path.join(table.dir, 'x.lock');
    const failing = (code: string) => (): never => {
      throw Object.assign(new Error(`${code}: as the test has it`), { code });
    };
    /** withLock, whose work leaves `calls` failing (put back afterwards). */
    const holdingThenFailing = async (calls: Partial<Calls>, result: string): Promise<string> => {
      try {
        return await table.withLock('x', () => {
          Object.assign(cjs, calls);
          syncBuiltinESMExports();
          return result;
        });
      } finally {
        Object.assign(cjs, saved);
        syncBuiltinESMExports();
      }
    };
    // As when the caller's own work used up every descriptor: nothing can be opened.
    expect(await holdingThenFailing({ readFileSync: failing('EMFILE'), openSync: failing('EMFILE') }, 'held')).to.equal('held');
    expect(fs.existsSync(lock), 'released').to.equal(false);
    // A lock that cannot be removed (a file system gone read-only): the result stands.
    expect(await holdingThenFailing({ unlinkSync: failing('EROFS') }, 'counted')).to.equal('counted');
  });

  it('releases only its own lock: one broken and taken by another while it worked stays', async () => {
    const table = new MountTable(tempDir());
    const lock = path.join(table.dir, 'x.lock');
    await table.withLock('x', () => {
      // As if a waiter judged this lock stale, broke it, and a third process took it.
      fs.rmSync(lock, { recursive: true });
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'owner'), `${process.ppid} another`);
    });
    expect(fs.readFileSync(path.join(lock, 'owner'), 'utf8')).to.equal(`${process.ppid} another`);
  });

  it('a breaker that died while breaking (its .break-<id> left behind) holds no one up for longer than that mark is fresh', async () => {
    const table = new MountTable(tempDir(), { waitMs: 10_000 });
    const lock = path.join(table.dir, 'x.lock');
    fs.mkdirSync(lock, { recursive: true });
    fs.writeFileSync(path.join(lock, 'owner'), `${deadPid()} gone`);
    const breaking = path.join(table.dir, '.break-x');
    fs.mkdirSync(breaking);
    const old = new Date(Date.now() - 6_000);
    fs.utimesSync(breaking, old, old);
    expect(await table.withLock('x', () => 'held')).to.equal('held');
    expect(fs.readdirSync(table.dir)).to.deep.equal([]);
  });

  it('is held by one process at a time while processes race for it and holders are killed inside it', async function () {
    this.timeout(60_000);
    const home = tempDir();
    const round = async (kill: boolean): Promise<void> => {
      const holders = Array.from({ length: 4 }, () => spawn(process.execPath, [HOLDER, MOUNTS_MODULE, home, kill ? '120' : '400'], { stdio: 'ignore' }));
      const exits = holders.map((h) => new Promise((r) => h.once('exit', r)));
      if (kill) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 300));
        holders[0]?.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, Math.random() * 50));
        holders[1]?.kill('SIGKILL');
      }
      const codes = await Promise.all(exits);
      expect(codes.slice(kill ? 2 : 0).every((c) => c === 0), 'every holder not killed finished').to.equal(true);
    };
    await round(false);
    for (let i = 0; i < 3; i++) await round(true);
    // Before locks were written whole and broken one breaker at a time, 4 rounds of 1,500
    // takings without kills had 11 double holders, and 10 rounds with kills had 7.
    expect(fs.existsSync(path.join(home, 'DOUBLE')) ? fs.readFileSync(path.join(home, 'DOUBLE'), 'utf8') : '').to.equal('');
    // What a killed holder left (its lock, its marker) is no obstacle to the next.
    const table = new MountTable(home, { waitMs: 2_000 });
    expect(await table.withLock('x', () => 'held')).to.equal('held');
    // What stays is a lock a killed waiter was making (`.lock-x-<pid>-<hex>`), which the next
    // sweep (open, cleanup) removes, and the mark of a holder killed while it broke a lock
    // (`.break-x`), which goes once it is STALE_BREAK_MS old.
    const left = fs.readdirSync(path.join(home, '.mounts'));
    expect(left.every((n) => n.startsWith('.lock-x-') || n === '.break-x'), left.join(' ')).to.equal(true);
    table.sweepLocks();
    expect(fs.readdirSync(path.join(home, '.mounts')).filter((n) => n !== '.break-x')).to.deep.equal([]);
  });

  it("keeps a live holder's lock on this host however old (stopped, or busy without refreshing it); breaks another host's by age and a reused pid's at once", async () => {
    const table = new MountTable(tempDir(), { waitMs: 300 });
    let owner = '';
    await table.withLock('x', () => {
      owner = fs.readFileSync(path.join(table.dir, 'x.lock', 'owner'), 'utf8');
    });
    const [pid, , host, started] = owner.split(' ');
    expect([pid, host]).to.deep.equal([String(process.pid), encodeURIComponent(os.hostname())]);
    const lock = path.join(table.dir, 'x.lock');
    const hold = (text: string, ageMs: number): void => {
      fs.mkdirSync(lock, { recursive: true });
      fs.writeFileSync(path.join(lock, 'owner'), text);
      const then = new Date(Date.now() - ageMs);
      fs.utimesSync(lock, then, then);
    };
    const attempt = (): Promise<string> => table.withLock('x', () => 'taken').then((v) => v, (e: { code?: string }) => String(e.code));
    // This process, a minute into its hold: still its own.
    hold(`${process.pid} 0123456789abcdef ${host} ${started}`, 60_000);
    expect(await attempt()).to.equal('ERR_LAYER_IN_USE');
    // Another host's lock, a minute old: its holder stopped refreshing it.
    hold(`${process.pid} 0123456789abcdef another-host ${started}`, 60_000);
    expect(await attempt()).to.equal('taken');
    // This host's pid, started at another time: a later process that reused the pid.
    hold(`${process.pid} 0123456789abcdef ${host} 1`, 0);
    expect(await attempt()).to.equal(process.platform === 'linux' ? 'taken' : 'ERR_LAYER_IN_USE');
  });

  it("with waitMs Infinity waits past the table's wait for a live holder, and a signal ends that wait with ERR_CANCELED", async () => {
    const table = new MountTable(tempDir(), { waitMs: 50 });
    let release: () => void = () => undefined;
    const held = table.withLock('x', () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    const waiting = table.withLock('x', () => 'mine', { waitMs: Infinity });
    const ac = new AbortController();
    const canceled = table.withLock('x', () => 'mine', { waitMs: Infinity, signal: ac.signal }).then(
      () => 'taken',
      (e: { code?: string }) => e.code,
    );
    setTimeout(() => ac.abort(), 150);
    expect(await canceled).to.equal('ERR_CANCELED');
    // Well past the table's 50 ms.
    await new Promise((r) => setTimeout(r, 150));
    release();
    await held;
    expect(await waiting).to.equal('mine');
    expect(fs.readdirSync(table.dir).filter((n) => !n.endsWith('.refs'))).to.deep.equal([]);
  });

  it("leaves no count half-written: a failed write removes its temporary file, and the sweep removes a dead writer's", () => {
    const table = new MountTable(tempDir());
    fs.mkdirSync(table.dir, { recursive: true });
    // The rename fails (its place is a directory that is not empty), as a full disk fails the write.
    fs.mkdirSync(path.join(table.dir, 'x.refs', 'in-the-way'), { recursive: true });
    let code: string | undefined;
    try {
      table.setRefs('x', 1);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).to.equal('ERR_IO');
    expect(fs.readdirSync(table.dir).filter((n) => n.includes('.tmp-'))).to.deep.equal([]);
    const dead = path.join(table.dir, `y.refs.tmp-${deadPid()}`);
    const live = path.join(table.dir, `z.refs.tmp-${process.pid}`);
    fs.writeFileSync(dead, '1');
    fs.writeFileSync(live, '1');
    expect(table.sweepLocks().removed).to.deep.equal([path.basename(dead)]);
    expect(fs.existsSync(live)).to.equal(true);
  });

  it('lets one holder at a time in, and the next after it', async () => {
    const table = new MountTable(tempDir());
    const order: string[] = [];
    await Promise.all([
      table.withLock('x', async () => {
        order.push('a in');
        await new Promise((r) => setTimeout(r, 60));
        order.push('a out');
      }),
      new Promise((r) => setTimeout(r, 10)).then(() => table.withLock('x', () => order.push('b'))),
    ]);
    expect(order).to.deep.equal(['a in', 'a out', 'b']);
  });
});
