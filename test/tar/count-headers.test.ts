/** countHeaderBlocks: the header walk the controller does before an import worker starts. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { BLOCK_SIZE, blockPaddingLength, FIELD, MAGIC_USTAR, VERSION_USTAR, writeChecksum, writeOctalNumber, writeStringField } from '../../src/tar/block.js';
import { countHeaderBlocks } from '../../src/tar/count-headers.js';
import { filesLayer } from '../helpers/layers.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

describe('tar/count-headers', () => {
  after(cleanupTemp);
  const withFile = <T>(bytes: Uint8Array, fn: (fd: number) => T): T => {
    const file = path.join(tempDir(), 'input');
    fs.writeFileSync(file, bytes);
    const fd = fs.openSync(file, 'r');
    try {
      return fn(fd);
    } finally {
      fs.closeSync(fd);
    }
  };

  it('counts every header block, PAX headers included, skipping data by its size', async () => {
    // Each entry of a layer tar is a PAX header then its own header.
    const tar = await buildLayerTar([...filesLayer(3, 70_000), { type: 'symlink', name: 'Files/link', target: 'f0.bin' }, { type: 'link', name: 'Files/hard', target: 'Files/f1.bin' }]);
    expect(withFile(tar, (fd) => countHeaderBlocks(fd, 1000))).to.equal(2 * 6);
    expect(withFile(tar, (fd) => countHeaderBlocks(fd, 5)), 'stops at the limit').to.equal(5);
    expect(withFile(Buffer.alloc(0), (fd) => countHeaderBlocks(fd, 10)), 'an empty file').to.equal(0);
    expect(withFile(Buffer.alloc(1024), (fd) => countHeaderBlocks(fd, 10)), 'only the end-of-archive blocks').to.equal(0);
  });

  it('reads with positional reads: the descriptor stays where it was for the worker', async () => {
    const tar = await buildLayerTar(filesLayer(2, 10));
    withFile(tar, (fd) => {
      expect(countHeaderBlocks(fd, 100)).to.equal(6);
      const first = Buffer.alloc(512);
      expect(fs.readSync(fd, first, 0, 512, null)).to.equal(512);
      expect(first.equals(tar.subarray(0, 512))).to.equal(true);
    });
  });

  it('follows a PAX size record over the header field, as the import does, so a lying field cannot hide entries', () => {
    const entries = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => [header(`Files/e${i}`, '0', 0)]).flat();
    // A file whose header field says 8 GiB but whose PAX record says 3 bytes, then 10 more entries.
    const lying = Buffer.concat([pax(record('size', '3')), header('Files/a', '0', 0o77777777777), data('abc'), ...entries(10), Buffer.alloc(1024)]);
    expect(withFile(lying, (fd) => countHeaderBlocks(fd, 100))).to.equal(2 + 10);
    // A size record only applies to the entry right after it.
    const once = Buffer.concat([pax(record('size', '3')), header('Files/a', '0', 0), data('abc'), header('Files/b', '0', 0), Buffer.alloc(1024)]);
    expect(withFile(once, (fd) => countHeaderBlocks(fd, 100))).to.equal(3);
    // A global size record, or one that is not a plain number, cannot be followed.
    expect(withFile(Buffer.concat([pax(record('size', '3'), 'g'), header('Files/a', '0', 0), Buffer.alloc(1024)]), (fd) => countHeaderBlocks(fd, 100))).to.equal(undefined);
    expect(withFile(Buffer.concat([pax(record('size', '-3')), header('Files/a', '0', 0), Buffer.alloc(1024)]), (fd) => countHeaderBlocks(fd, 100))).to.equal(undefined);
  });

  it('cannot tell (undefined) for a compressed tar, a damaged header or a cut header', async () => {
    const tar = await buildLayerTar(filesLayer(2, 100));
    expect(withFile(gzipSync(tar), (fd) => countHeaderBlocks(fd, 100))).to.equal(undefined);
    const damaged = Buffer.from(tar);
    damaged[10] = (damaged[10] as number) ^ 1; // in the first header's name: its checksum no longer holds
    expect(withFile(damaged, (fd) => countHeaderBlocks(fd, 100))).to.equal(undefined);
    expect(withFile(tar.subarray(0, 1024 + 100), (fd) => countHeaderBlocks(fd, 100))).to.equal(undefined);
  });

  it('cannot tell (undefined) for a pipe, which has no positional reads', function () {
    if (process.platform === 'win32') this.skip(); // mkfifo
    const [readEnd, writeEnd] = pipe();
    try {
      expect(countHeaderBlocks(readEnd, 100)).to.equal(undefined);
    } finally {
      fs.closeSync(readEnd);
      fs.closeSync(writeEnd);
    }
  });
});

/** A USTAR header block: `name`, `typeflag`, and `size` written into the size field. */
function header(name: string, typeflag: string, size: number): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  writeStringField(block, FIELD.name, Buffer.from(name));
  writeOctalNumber(block, FIELD.mode, 0o100000);
  writeOctalNumber(block, FIELD.size, size);
  block.write(typeflag, FIELD.typeflag.offset, 'latin1');
  MAGIC_USTAR.copy(block, FIELD.magic.offset);
  VERSION_USTAR.copy(block, FIELD.version.offset);
  writeChecksum(block);
  return block;
}

/** `bytes` padded to whole blocks. */
function data(bytes: string): Buffer {
  const b = Buffer.from(bytes);
  return Buffer.concat([b, Buffer.alloc(blockPaddingLength(b.length))]);
}

/** One PAX record, its length field counting itself. */
function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length++;
  return `${length}${body}`;
}

/** A PAX extended header ('x', or 'g' for global) holding `records`. */
function pax(records: string, typeflag = 'x'): Buffer {
  return Buffer.concat([header('PaxHeaders.0/x', typeflag, Buffer.byteLength(records)), data(records)]);
}

/** A pipe's two descriptors, from a FIFO (Node has no pipe(2)). */
function pipe(): [number, number] {
  const fifo = path.join(tempDir(), 'fifo');
  expect(spawnSync('mkfifo', [fifo]).status).to.equal(0);
  const readEnd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writeEnd = fs.openSync(fifo, fs.constants.O_WRONLY);
  return [readEnd, writeEnd];
}
