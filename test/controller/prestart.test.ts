/**
 * An import's worker started before its job is known (src/controller/prestart.ts): the
 * deferred worker takes its command line from its job pipe, does nothing when let go, and
 * the controller hands the job to it only when it is the worker the job would start.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { prestartedState, prestartImportWorker, releasePrestarted, wantsPrestart } from '../../src/controller/prestart.js';
import { DEFERRED_COMMAND, JOB_FD } from '../../src/controller/protocol.js';
import { errorFromResult, WORKER_ENTRY, workerEnv } from '../../src/controller/spawn-worker.js';
import { WindowsFilterDriver } from '../../src/driver/driver.js';
import { baseLayer, deltaLayer } from '../helpers/layers.js';
import { cleanupTemp, storeEntries, tempDir } from '../helpers/store.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.cjs');
const onLinux = process.platform === 'linux';

/** Runs a deferred worker on the tar file `tar` in `home`; `job` is written on its job pipe (undefined: the pipe is closed with nothing). */
async function runDeferred(tarFile: string, job: string | undefined, words: readonly string[] = []): Promise<{ code: number | null; stdout: string; stderr: string; unread: boolean }> {
  const fd = fs.openSync(tarFile, 'r');
  try {
    const child = spawn(process.execPath, [WORKER_ENTRY, DEFERRED_COMMAND, ...words], { stdio: [fd, 'pipe', 'pipe', 'pipe', 'pipe'], env: workerEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const progress = child.stdio[PROGRESS_PIPE] as Readable;
    const pipe = child.stdio[JOB_FD] as Writable;
    // Written only once the worker runs (its start line), so that a job it reads whole is tested, not a race.
    const started = new Promise((resolve) => progress.once('data', resolve));
    progress.resume();
    await started;
    if (job === undefined) pipe.end();
    else pipe.end(job);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    // The shared file offset: a worker that read nothing left it at the start.
    const head = Buffer.alloc(512);
    const n = fs.readSync(fd, head, 0, head.length, null);
    const first = Buffer.alloc(512);
    fs.readSync(fd, first, 0, first.length, 0);
    return { code, stdout, stderr, unread: n === head.length && head.equals(first) };
  } finally {
    fs.closeSync(fd);
  }
}
const PROGRESS_PIPE = 3;

describe('controller: a worker started before its job (prestart)', function () {
  this.timeout(60_000);
  after(cleanupTemp);

  it('is asked for by `winlayer import --home DIR --id ID` only, never with --help, in process or on Windows', () => {
    expect(wantsPrestart(['import', '--home', '/h', '--id', 'a'], {})).to.equal(process.platform !== 'win32');
    expect(wantsPrestart(['import', '--id=a', '--home=/h', '--json'], {})).to.equal(process.platform !== 'win32');
    for (const argv of [
      ['export', '--home', '/h', '--id', 'a'],
      ['import', '--id', 'a'],
      ['import', '--home', '/h'],
      ['import', '--home', '/h', '--home', '/g', '--id', 'a'],
      ['import', '--home', '/h', '--help'],
      ['import', '-h', '--home', '/h'],
      ['import', '--', '--home', '/h'],
      [],
    ]) {
      expect(wantsPrestart(argv, {}), argv.join(' ')).to.equal(false);
    }
    expect(wantsPrestart(['import', '--home', '/h', '--id', 'a'], { WINLAYER_NOREEXEC: '1' })).to.equal(false);
  });

  describe('the deferred worker', () => {
    it('runs the command line its job pipe gives it', async () => {
      const home = tempDir();
      const tarFile = path.join(tempDir(), 'base.tar');
      const tar = await buildLayerTar(baseLayer);
      fs.writeFileSync(tarFile, tar);
      const r = await runDeferred(tarFile, JSON.stringify({ argv: ['write-layer', home, 'a'] }) + '\n', ['write-layer', home, 'a']);
      expect(r.code, r.stderr).to.equal(0);
      expect(Number(r.stdout.trim())).to.be.greaterThan(0);
      expect(storeEntries(home).filter((n) => !n.startsWith('.'))).to.include('a');
    });

    it('exits 0 having read and written nothing when its job pipe closes without a job', async () => {
      const home = tempDir();
      const tarFile = path.join(tempDir(), 'base.tar');
      fs.writeFileSync(tarFile, await buildLayerTar(baseLayer));
      const r = await runDeferred(tarFile, undefined);
      expect([r.code, r.stdout, r.stderr]).to.deep.equal([0, '', '']);
      expect(r.unread, 'the input was not read').to.equal(true);
      expect(fs.readdirSync(home)).to.deep.equal([]);
    });

    for (const [title, job] of [
      ['not JSON', 'write-layer /h a\n'],
      ['without argv', '{"command":"write-layer"}\n'],
      ['with an argument that is not a string', '{"argv":["write-layer","/h",1]}\n'],
      ['deferred again', `{"argv":["${DEFERRED_COMMAND}"]}\n`],
      ['cut before its newline', '{"argv":["write-layer","/h","a"]}'],
      ['for another layer than its command line names', '{"argv":["write-layer","/h","b"]}\n'],
      ['for another store than its command line names', '{"argv":["write-layer","/g","a"]}\n'],
    ] as const) {
      it(`refuses a job line ${title} with ERR_ARGUMENT_INVALID, reading no input`, async () => {
        const tarFile = path.join(tempDir(), 'base.tar');
        fs.writeFileSync(tarFile, await buildLayerTar(baseLayer));
        const r = await runDeferred(tarFile, job, ['write-layer', '/h', 'a']);
        expect(r.code).to.equal(1);
        expect((JSON.parse(r.stderr.trim().split('\n').pop() as string) as { code: string }).code).to.equal('ERR_ARGUMENT_INVALID');
        expect(r.unread, 'the input was not read').to.equal(true);
      });
    }
  });

  (onLinux ? describe : describe.skip)('handing it the job', () => {
    it('the import on that input takes it; one on another input starts its own and lets it go', async () => {
      const home = tempDir();
      const driver = await WindowsFilterDriver.open({ home });
      const dir = tempDir();
      const baseFile = path.join(dir, 'base.tar');
      const deltaFile = path.join(dir, 'delta.tar');
      fs.writeFileSync(baseFile, await buildLayerTar(baseLayer));
      fs.writeFileSync(deltaFile, await buildLayerTar(deltaLayer));
      const base = fs.openSync(baseFile, 'r');
      const opened = [base];
      try {
        await prestartImportWorker(['import', '--home', home, '--id', 'base'], base);
        expect(prestartedState()?.state).to.equal('waiting');
        const r = await driver.applyDiff('base', undefined, { fd: base });
        expect(prestartedState()?.state).to.equal('taken');
        expect(r.size).to.be.greaterThan(0);

        // Not the worker these jobs would start: another input, another layer id.
        // (A descriptor's offset is shared with the worker that read it: a fresh one each time.)
        for (const [id, started, file] of [
          ['delta', 'delta', deltaFile],
          ['delta2', 'other', baseFile],
        ] as const) {
          const early0 = fs.openSync(baseFile, 'r');
          const fd = file === baseFile ? early0 : fs.openSync(file, 'r');
          opened.push(...new Set([early0, fd]));
          await prestartImportWorker(['import', '--home', home, '--id', started], early0);
          const early = prestartedState()?.pid as number;
          expect(prestartedState()?.state).to.equal('waiting');
          await driver.applyDiff(id, 'base', { fd });
          expect(prestartedState()?.state, id).to.equal('released');
          expect(driver.exists(id)).to.equal(true);
          // Let go, it ends by itself.
          const end = Date.now() + 10_000;
          while (isAlive(early) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20));
          expect(isAlive(early), 'the worker let go has exited').to.equal(false);
        }
        releasePrestarted(); // nothing left to let go
        expect(prestartedState()?.state).to.equal('released');
      } finally {
        for (const fd of opened) fs.closeSync(fd);
      }
    });

    it('`winlayer import` that fails before its worker would start (a missing parent, a bad id) lets the early one go and exits', async () => {
      const home = tempDir();
      const tarFile = path.join(tempDir(), 'base.tar');
      fs.writeFileSync(tarFile, await buildLayerTar(baseLayer));
      for (const [args, status, code] of [
        [['--id', 'child', '--parent', 'missing'], 1, 'ERR_PARENT_NOT_FOUND'],
        [['--id', '../bad'], 2, 'ERR_ID_INVALID'],
      ] as const) {
        const fd = fs.openSync(tarFile, 'r');
        try {
          // The CLI exits only once the worker it started has (its pipes hold its event loop).
          const r = spawnSync(process.execPath, [cli, 'import', '--json', '--home', home, ...args], { stdio: [fd, 'pipe', 'pipe'], timeout: 20_000 });
          expect(r.status, r.stderr.toString()).to.equal(status);
          expect((JSON.parse(r.stderr.toString()) as { code: string }).code).to.equal(code);
        } finally {
          fs.closeSync(fd);
        }
      }
      expect(storeEntries(home).filter((n) => !n.startsWith('.'))).to.deep.equal([]);
      // And the same command line with what it lacked goes through.
      const fd = fs.openSync(tarFile, 'r');
      try {
        const r = spawnSync(process.execPath, [cli, 'import', '--home', home, '--id', 'base'], { stdio: [fd, 'pipe', 'pipe'], timeout: 20_000 });
        expect(r.status, r.stderr.toString()).to.equal(0);
      } finally {
        fs.closeSync(fd);
      }
    });
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('controller: what a worker killed by a signal reports', () => {
  const base = { timedOut: false, isCanceled: false, stderr: '', failed: true } as Parameters<typeof errorFromResult>[0];
  it('an import worker stopped by SIGTERM, SIGINT or SIGHUP before it could listen: ERR_CANCELED (nothing committed); SIGKILL and other jobs: ERR_WORKER_EXITED', () => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      expect(errorFromResult({ ...base, signal }, { command: 'write-layer', id: 'x' }).code, signal).to.equal('ERR_CANCELED');
      expect(errorFromResult({ ...base, signal }, { command: 'export-layer', id: 'x' }).code, signal).to.equal('ERR_WORKER_EXITED');
    }
    expect(errorFromResult({ ...base, signal: 'SIGKILL' }, { command: 'write-layer', id: 'x' }).code).to.equal('ERR_WORKER_EXITED');
  });
});
