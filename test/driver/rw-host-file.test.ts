import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostFileChunks } from '../../src/driver/rw-diff.js';
import { cleanupTemp, rejectionCode, tempDir } from '../helpers/store.js';

async function read(file: string, st: fs.BigIntStats): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of hostFileChunks(file, st, 'Files/f')) parts.push(c);
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
});
