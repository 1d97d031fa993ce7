import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostFileChunks } from '../../src/driver/rw-diff.js';
import { cleanupTemp, rejectionCode, tempDir } from '../helpers/store.js';

async function read(file: string, st: fs.BigIntStats, rwDir = path.dirname(file)): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of hostFileChunks(file, st, 'Files/f', rwDir)) parts.push(c);
  return Buffer.concat(parts);
}

describe('driver: a container file read for the export', () => {
  after(cleanupTemp);

  it('is the file the export found: a link, another file or a FIFO put in its place since is ERR_IO, never read', async function () {
    const dir = tempDir();
    const file = path.join(dir, 'f');
    const secret = path.join(dir, 'secret');
    fs.writeFileSync(secret, 'not the container file');
    fs.writeFileSync(file, 'container data');
    const st = fs.lstatSync(file, { bigint: true });
    // It grew since: what it held when found.
    fs.appendFileSync(file, ' and more');
    expect((await read(file, st)).toString()).to.equal('container data');
    fs.renameSync(file, `${file}.aside`);
    fs.symlinkSync(secret, file);
    expect(await rejectionCode(() => read(file, st))).to.equal('ERR_IO');
    fs.unlinkSync(file);
    fs.copyFileSync(secret, file);
    expect(await rejectionCode(() => read(file, st))).to.equal('ERR_IO');
    if (process.platform === 'win32') return;
    fs.unlinkSync(file);
    execFileSync('mkfifo', [file]);
    expect(await rejectionCode(() => read(file, st))).to.equal('ERR_IO');
  });

  it('is read only from below the writable directory: a directory above it swapped for a link to the host is ERR_IO', async function () {
    if (!fs.existsSync('/proc/self/fd')) this.skip();
    const dir = tempDir();
    const rw = path.join(dir, 'rw');
    const host = path.join(dir, 'host');
    fs.mkdirSync(path.join(rw, 'zz'), { recursive: true });
    fs.mkdirSync(host);
    fs.writeFileSync(path.join(host, 'passwd'), 'host secret');
    fs.writeFileSync(path.join(rw, 'zz', 'passwd'), 'container');
    expect((await read(path.join(rw, 'zz', 'passwd'), fs.lstatSync(path.join(rw, 'zz', 'passwd'), { bigint: true }), rw)).toString()).to.equal('container');
    // The container swaps `zz` for a link; the export's stat and open both go through it.
    fs.renameSync(path.join(rw, 'zz'), path.join(rw, 'zz.aside'));
    fs.symlinkSync(host, path.join(rw, 'zz'));
    const file = path.join(rw, 'zz', 'passwd');
    expect(await rejectionCode(() => read(file, fs.lstatSync(file, { bigint: true }), rw))).to.equal('ERR_IO');
  });
});
