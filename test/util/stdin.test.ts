import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { WORKER_ENTRY } from '../../src/controller/spawn-worker.js';
import { nonBlocking } from '../../src/util/stdin.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

describe('util/stdin', () => {
  after(cleanupTemp);

  it('reads the blocking mode of a descriptor from /proc (Linux)', async function () {
    if (process.platform !== 'linux') this.skip();
    const fd = fs.openSync(path.join(tempDir(), 'f'), 'w');
    try {
      expect(nonBlocking(fd)).to.equal(false);
    } finally {
      fs.closeSync(fd);
    }
    const nb = fs.openSync(path.join(tempDir(), 'g'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NONBLOCK);
    try {
      expect(nonBlocking(nb)).to.equal(true);
    } finally {
      fs.closeSync(nb);
    }
    expect(nonBlocking(1 << 20)).to.equal(undefined);
  });

  it('imports from a blocking socket (a Node parent’s pipe) and from a non-blocking one', async function () {
    const size = 3 * 1024 * 1024 + 17;
    const tar = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/big.bin', data: Buffer.alloc(size, 5) },
    ]);
    // Blocking: spawnSync's input is a socket pair, blocking on the child's side.
    const home = tempDir();
    const w = spawnSync(process.execPath, [WORKER_ENTRY, 'write-layer', home, 'a'], { input: tar });
    expect(w.status, w.stderr.toString()).to.equal(0);
    expect(w.stdout.toString()).to.equal(`${size}\n`);
    // Non-blocking: libuv makes a child's stdin blocking, so python3 sets O_NONBLOCK on it before it starts the worker.
    if (spawnSync('python3', ['-c', '']).status !== 0) return this.skip();
    const setNonBlockingThenExec = 'import fcntl, os, sys; fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_NONBLOCK); os.execv(sys.argv[1], sys.argv[1:])';
    const worker = spawn('python3', ['-c', setNonBlockingThenExec, process.execPath, WORKER_ENTRY, 'write-layer', home, 'b'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    worker.stdout.on('data', (d: Buffer) => (out += d.toString()));
    worker.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // A worker that failed closes its stdin early: the exit code says so, not an EPIPE here.
    worker.stdin.on('error', () => undefined);
    // Slowly (after the worker has started): it finds its stdin empty between writes.
    for (let at = 0; at < tar.length; at += 512 * 1024) {
      worker.stdin.write(tar.subarray(at, at + 512 * 1024));
      await new Promise((r) => setTimeout(r, at === 0 ? 300 : 40));
    }
    worker.stdin.end();
    const [code] = (await once(worker, 'close')) as [number];
    expect(code, err).to.equal(0);
    expect(out).to.equal(`${size}\n`);
  });
});
