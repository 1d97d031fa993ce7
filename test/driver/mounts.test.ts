import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MountTable } from '../../src/driver/mounts.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

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
