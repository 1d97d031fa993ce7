import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canWalkByDescriptors, removeTree, removeTreeByDescriptors, removeTreeGuarded, removeTreeSync } from '../../src/util/remove-tree.js';
import { cleanupTemp, listTree, tempDir } from '../helpers/store.js';

const forms: [string, (target: string, listBatch?: number) => void | Promise<void>][] = [
  ['removeTreeSync', removeTreeSync],
  ['removeTree', removeTree],
  ['removeTreeGuarded', (target) => removeTreeGuarded(target)],
  // What removeTreeGuarded does after the system's rm, or without one, on Linux.
  ...(canWalkByDescriptors() ? [['removeTreeByDescriptors', removeTreeByDescriptors] as [string, (target: string, listBatch?: number) => Promise<void>]] : []),
];

describe('util/remove-tree', () => {
  after(cleanupTemp);

  for (const [label, remove] of forms) {
    describe(label, () => {
      it('removes a tree 2,000 levels deep (fs.rmSync overflows its stack there on Node 20)', async () => {
        const root = path.join(tempDir(), 'deep');
        let dir = root;
        fs.mkdirSync(root);
        for (let i = 0; i < 2000; i++) {
          dir = path.join(dir, 'd');
          fs.mkdirSync(dir);
          if (i % 500 === 0) fs.writeFileSync(path.join(dir, `f${i}`), 'x');
        }
        fs.writeFileSync(path.join(dir, 'last'), 'x');
        await remove(root);
        expect(fs.existsSync(root)).to.equal(false);
      });

      it('removes wide directories, files and links without following a link', async () => {
        const base = tempDir();
        const outside = path.join(base, 'outside');
        fs.mkdirSync(path.join(outside, 'sub'), { recursive: true });
        fs.writeFileSync(path.join(outside, 'keep.txt'), 'keep');
        const root = path.join(base, 'tree');
        for (let i = 0; i < 300; i++) fs.mkdirSync(path.join(root, `d${i}`, 'e'), { recursive: true });
        for (let i = 0; i < 300; i += 7) fs.writeFileSync(path.join(root, `d${i}`, 'e', 'f.bin'), Buffer.alloc(10));
        // One directory of more files than one batch of unlinks.
        for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(root, `f${i}`), '');
        fs.symlinkSync(outside, path.join(root, 'd1', 'dir-link'));
        fs.symlinkSync(path.join(outside, 'keep.txt'), path.join(root, 'd2', 'file-link'));
        fs.symlinkSync(path.join(base, 'nowhere'), path.join(root, 'dangling'));
        await remove(root);
        expect(fs.existsSync(root)).to.equal(false);
        expect(listTree(outside)).to.deep.equal(['keep.txt', 'sub']);
      });

      it('reads a directory a batch at a time, and removes what later batches hold, subdirectories included', async () => {
        const base = tempDir();
        const root = path.join(base, 'tree');
        fs.mkdirSync(root);
        // 40 entries per level with batches of 7: every directory is read several times.
        for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(root, `f${i}`), 'x');
        for (let i = 0; i < 10; i++) {
          fs.mkdirSync(path.join(root, `d${i}`));
          for (let j = 0; j < 40; j++) fs.writeFileSync(path.join(root, `d${i}`, `g${j}`), '');
          fs.mkdirSync(path.join(root, `d${i}`, 'sub'));
          fs.symlinkSync(base, path.join(root, `d${i}`, 'up'));
        }
        const kept = path.join(base, 'kept.txt');
        fs.writeFileSync(kept, 'kept');
        await remove(root, 7);
        expect(fs.existsSync(root)).to.equal(false);
        expect(fs.readdirSync(base)).to.deep.equal(['kept.txt']);
      });

      it('removes names that are not UTF-8 (files, directories, links), in batches or whole', async function () {
        const base = tempDir();
        const bytes = (...parts: (string | number[] | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
        for (const [name, listBatch] of [['batched', 7], ['whole', undefined]] as const) {
          const root = path.join(base, name);
          fs.mkdirSync(root);
          try {
            fs.writeFileSync(bytes(root, '/bad', [0xff]), 'x');
          } catch (error) {
            // A file system that takes only UTF-8 names (APFS) has no such names to remove.
            if ((error as NodeJS.ErrnoException).code === 'EILSEQ') this.skip();
            throw error;
          }
          // A name that holds U+FFFD itself is UTF-8: it must not be taken for one that is not.
          fs.writeFileSync(path.join(root, 'real-\uFFFD'), 'x');
          const dir = bytes(root, '/dir', [0xfe]);
          fs.mkdirSync(dir);
          for (let i = 0; i < 20; i++) fs.writeFileSync(bytes(dir, `/f${i}`, [0xc3, 0x28]), '');
          for (let i = 0; i < 10; i++) fs.writeFileSync(bytes(dir, `/plain${i}`), '');
          // A UTF-16 surrogate written as UTF-8 (what WTF-8 holds): not UTF-8 either.
          const sub = bytes(dir, '/sub', [0xed, 0xa0, 0x80]);
          fs.mkdirSync(sub);
          fs.writeFileSync(bytes(sub, '/ok.txt'), 'x');
          fs.mkdirSync(bytes(sub, '/deeper', [0x80]));
          fs.symlinkSync(base, bytes(dir, '/link', [0x80]));
          await remove(root, listBatch);
          expect(fs.existsSync(root), name).to.equal(false);
        }
        expect(fs.readdirSync(base)).to.deep.equal([]);
      });

      it('removes a tree deeper than PATH_MAX (made with relative paths), and nothing outside it', async () => {
        const base = tempDir();
        const root = path.join(base, 'tree');
        fs.mkdirSync(root);
        fs.writeFileSync(path.join(base, 'kept.txt'), 'kept');
        // Names the removal would otherwise give the directories it moves up: never replaced.
        fs.mkdirSync(path.join(root, '.rm-0'));
        fs.writeFileSync(path.join(root, '.rm-1'), '');
        // 1,200 levels of `dddd/`: 6,000 bytes below the root, past Linux's 4,096 and macOS's
        // 1,024, with files and side directories on the way, and on Linux a name that is not
        // UTF-8 every 100 levels (so that directories addressed by their bytes move up too).
        const levels = 1200;
        const make = `
          const fs = require('node:fs');
          process.chdir(process.argv[1]);
          for (let i = 0; i < ${levels}; i++) {
            fs.mkdirSync('dddd');
            process.chdir('dddd');
            fs.writeFileSync('f', 'x');
            if (i % 100 !== 0) continue;
            fs.mkdirSync('side/inner', { recursive: true });
            fs.writeFileSync('side/inner/g', 'x');
            if (process.platform !== 'linux') continue;
            const odd = Buffer.from([0x62, 0xff]);
            fs.mkdirSync(odd);
            fs.mkdirSync(Buffer.concat([odd, Buffer.from('/sub')]));
            fs.writeFileSync(Buffer.concat([odd, Buffer.from('/sub/h')]), 'x');
          }`;
        execFileSync(process.execPath, ['-e', make, root]);
        const deepest = path.join(root, ...Array<string>(levels).fill('dddd'));
        expect(() => fs.readdirSync(deepest)).to.throw().with.property('code', 'ENAMETOOLONG');
        await remove(root, 7);
        expect(fs.existsSync(root)).to.equal(false);
        expect(fs.readdirSync(base)).to.deep.equal(['kept.txt']);
      });

      it('removes a single file or link, and takes a missing path as done', async () => {
        const base = tempDir();
        const file = path.join(base, 'file');
        fs.writeFileSync(file, 'x');
        const link = path.join(base, 'link');
        fs.symlinkSync(base, link);
        await remove(file);
        await remove(link);
        await remove(path.join(base, 'missing', 'deeper'));
        expect(fs.readdirSync(base)).to.deep.equal([]);
      });
    });
  }

  it('as a user other than root, removes directories its owner may not read or change (chmod 000, 555); another user\'s stays refused (EACCES)', function () {
    // Root passes every permission: the removal runs as `nobody` then, from a copy of the module.
    const asRoot = process.getuid?.() === 0;
    if (process.platform === 'win32') this.skip();
    const base = tempDir();
    fs.chmodSync(base, 0o755);
    const copy = path.join(base, 'remove-tree.mjs');
    fs.copyFileSync(new URL('../../src/util/remove-tree.js', import.meta.url), copy);
    const trees = ['sync', 'async', 'other', 'kept/tree', 'descriptors'].map((name) => path.join(base, name));
    for (const t of trees) fs.mkdirSync(t, { recursive: true });
    if (asRoot) for (const d of [base, path.join(base, 'kept'), ...trees]) fs.chownSync(d, 65534, 65534);
    const script = `
      import * as fs from 'node:fs';
      import { canWalkByDescriptors, removeTree, removeTreeByDescriptors, removeTreeSync } from ${JSON.stringify(copy)};
      const make = (t) => {
        fs.mkdirSync(t + '/locked/inner', { recursive: true });
        fs.writeFileSync(t + '/locked/inner/f', 'x');
        fs.writeFileSync(t + '/locked/g', 'x');
        fs.mkdirSync(t + '/mod/pkg@v1/sub', { recursive: true });
        fs.writeFileSync(t + '/mod/pkg@v1/sub/h.go', 'x');
        fs.chmodSync(t + '/locked/inner', 0o000);
        fs.chmodSync(t + '/locked', 0o000);
        for (const d of ['/mod/pkg@v1/sub', '/mod/pkg@v1', '/mod']) fs.chmodSync(t + d, 0o555);
      };
      const [sync, async_, other, kept, descriptors] = process.argv.slice(1);
      make(sync);
      make(async_);
      make(kept);
      make(descriptors);
      // Readable but not searchable (a container's \`chmod -R 644\`): what is below it cannot be opened until it is.
      fs.mkdirSync(descriptors + '/ro/sub/deeper', { recursive: true });
      fs.writeFileSync(descriptors + '/ro/sub/deeper/f', 'x');
      fs.chmodSync(descriptors + '/ro/sub', 0o400);
      fs.chmodSync(descriptors + '/ro', 0o400);
      removeTreeSync(sync);
      await removeTree(async_, 1, 0);
      if (canWalkByDescriptors()) await removeTreeByDescriptors(descriptors, 1, 0);
      else removeTreeSync(descriptors);
      let code = 'none';
      try { removeTreeSync(other); } catch (e) { code = e.code; }
      // A tree in a directory its owner made read-only: emptied, but that directory is not the removal's to open.
      fs.chmodSync(kept + '/..', 0o555);
      let keptCode = 'none';
      try { removeTreeSync(kept); } catch (e) { keptCode = e.code; }
      process.stdout.write(JSON.stringify({ sync: fs.existsSync(sync), async: fs.existsSync(async_), descriptors: fs.existsSync(descriptors), other: code, kept: keptCode, keptEntries: fs.readdirSync(kept).length }));`;
    if (asRoot) {
      // A directory of root's in the other tree: its owner alone may open it up.
      fs.mkdirSync(path.join(trees[2] as string, 'roots'));
      fs.writeFileSync(path.join(trees[2] as string, 'roots', 'f'), 'x');
      fs.chmodSync(path.join(trees[2] as string, 'roots'), 0o700);
    }
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, ...trees], asRoot ? { uid: 65534, gid: 65534 } : {});
    expect(JSON.parse(out.toString())).to.deep.equal({ sync: false, async: false, descriptors: false, other: asRoot ? 'EACCES' : 'none', kept: 'EACCES', keptEntries: 0 });
    // The directories that held the trees are outside them: left as they were.
    expect(fs.statSync(base).mode & 0o777).to.equal(0o755);
    expect(fs.statSync(path.join(base, 'kept')).mode & 0o777).to.equal(0o555);
    fs.chmodSync(path.join(base, 'kept'), 0o755);
    if (asRoot) expect(fs.readdirSync(path.join(trees[2] as string, 'roots'))).to.deep.equal(['f']);
  });

  it('the walk by descriptors removes a tree deeper than the descriptors the process may open (1,000 levels under `ulimit -n 200`, and under 48: fewer than it keeps)', function () {
    if (!canWalkByDescriptors()) this.skip();
    const root = path.join(tempDir(), 'deep');
    const module = new URL('../../src/util/remove-tree.js', import.meta.url).href;
    const script = `import { removeTreeByDescriptors } from ${JSON.stringify(module)}; await removeTreeByDescriptors(${JSON.stringify(root)});`;
    for (const limit of [200, 48]) {
      fs.mkdirSync(path.join(root, ...Array.from({ length: 1000 }, () => 'd')), { recursive: true });
      fs.writeFileSync(path.join(root, ...Array.from({ length: 1000 }, () => 'd'), 'f'), 'x');
      const r = spawnSync('sh', ['-c', `ulimit -n ${limit} && exec "$0" --input-type=module -e "$1"`, process.execPath, script], { encoding: 'utf8' });
      expect([r.status, r.stderr], `ulimit -n ${limit}`).to.deep.equal([0, '']);
      expect(fs.existsSync(root)).to.equal(false);
    }
  });

  const guardedForms: [string, (target: string) => Promise<void>][] = [
    ['removeTreeGuarded', (target) => removeTreeGuarded(target)],
    ...(canWalkByDescriptors() ? [['removeTreeByDescriptors (its walk after rm, or without one)', (target: string) => removeTreeByDescriptors(target)] as [string, (target: string) => Promise<void>]] : []),
  ];
  for (const [label, removeGuarded] of guardedForms) it(`${label} removes a tree whose directories another process swaps for links to outside it, and nothing outside`, async function () {
    if (process.platform === 'win32') this.skip();
    this.timeout(30_000);
    const base = tempDir();
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(outside, `keep${i}`), 'keep');
    const root = path.join(base, 'tree');
    for (let i = 0; i < 200; i++) {
      fs.mkdirSync(path.join(root, `s${i}`), { recursive: true });
      for (let j = 0; j < 10; j++) fs.writeFileSync(path.join(root, `s${i}`, `f${j}`), 'x');
    }
    // A "container" still running in the tree: each directory in turn moved aside and a link
    // to `outside` put in its place, then moved back, for as long as the removal runs.
    const swapper = `
      const fs = require('node:fs'); const path = require('node:path');
      const [root, outside] = process.argv.slice(1);
      const end = Date.now() + 5000;
      for (let n = 0; Date.now() < end; n = (n + 1) % 200) {
        const d = path.join(root, 's' + n), aside = path.join(root, '.a' + n);
        try { fs.renameSync(d, aside); fs.symlinkSync(outside, d); fs.unlinkSync(d); fs.renameSync(aside, d); } catch { if (!fs.existsSync(root)) break; }
      }`;
    const child = (await import('node:child_process')).spawn(process.execPath, ['-e', swapper, root, outside], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < 20 && fs.existsSync(root); i++) await removeGuarded(root).catch(() => undefined);
    await new Promise((resolve) => child.once('close', resolve));
    await removeGuarded(root);
    expect(fs.existsSync(root)).to.equal(false);
    expect(fs.readdirSync(outside)).to.have.length(50);
  });

  it('removeTree lets the event loop run while it works, every slice of its time', async () => {
    const root = path.join(tempDir(), 'tree');
    for (let d = 0; d < 20; d++) {
      fs.mkdirSync(path.join(root, `d${d}`), { recursive: true });
      for (let f = 0; f < 50; f++) fs.writeFileSync(path.join(root, `d${d}`, `f${f}`), '');
    }
    let turns = 0;
    let done = false;
    const turn = (): void => {
      turns++;
      if (!done) setImmediate(turn);
    };
    setImmediate(turn);
    // Slices of 0 ms: a turn of the loop after each of its 1,000 unlinks, 20 listings and 21 rmdirs.
    await removeTree(root, 7, 0);
    done = true;
    expect(fs.existsSync(root)).to.equal(false);
    expect(turns).to.be.greaterThan(1000);
  });

  it('stays on the tree\'s device where it may not see the mount table (the walk of macOS and the BSDs): a mounted file system stops it (EBUSY)', async function () {
    if (process.platform !== 'linux') this.skip();
    const root = path.join(tempDir(), 'tree');
    fs.mkdirSync(path.join(root, 'a', 'mnt'), { recursive: true });
    fs.writeFileSync(path.join(root, 'a', 'f'), 'x');
    if (spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', path.join(root, 'a', 'mnt')]).status !== 0) this.skip(); // no privilege to mount here
    try {
      fs.writeFileSync(path.join(root, 'a', 'mnt', 'kept'), 'kept');
      const error = (await removeTree(root, 64, 4, true).then(() => undefined, (e: unknown) => e)) as NodeJS.ErrnoException | undefined;
      expect(error?.code).to.equal('EBUSY');
      expect(fs.readFileSync(path.join(root, 'a', 'mnt', 'kept'), 'utf8')).to.equal('kept');
      // And on Linux the table says so before anything is removed.
      const guarded = (await removeTreeGuarded(root).then(() => undefined, (e: unknown) => e)) as NodeJS.ErrnoException | undefined;
      expect(guarded?.code).to.equal('EBUSY');
      // The walk by descriptors (a mount made after the table was read) stops at the device too.
      const walked = (await removeTreeByDescriptors(root).then(() => undefined, (e: unknown) => e)) as NodeJS.ErrnoException | undefined;
      expect([walked?.code, walked?.path]).to.deep.equal(['EBUSY', path.join(root, 'a', 'mnt')]);
      expect(fs.readFileSync(path.join(root, 'a', 'mnt', 'kept'), 'utf8')).to.equal('kept');
    } finally {
      spawnSync('umount', [path.join(root, 'a', 'mnt')]);
    }
    await removeTreeGuarded(root);
    expect(fs.existsSync(root)).to.equal(false);
  });
});
