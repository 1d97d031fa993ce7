/**
 * The headers of the layer entries whose mode is not just a type bit of the backup stream's
 * content, against the bytes Go's archive/tar wrote for them (test/fixtures/tar): a hard
 * link as hcsshim's ociwclayer export writes it (mode 0644), and an empty file backed up
 * without a DATA stream (mode 0) beside one backed up with an empty one (0100000).
 */
import { expect } from 'chai';
import { fileInfoFromTarHeader } from '../../src/convert/file-info.js';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { linkTarHeader, tarHeaderFromEntry } from '../../src/convert/tar-header.js';
import { encodeTarHeader } from '../../src/tar/encode.js';
import { readTar, type TarHeader } from '../../src/tar/reader.js';
import { golden, readGoldenFile } from '../fixtures/tar/index.js';
import { feedInChunks } from '../helpers/chunks.js';

const file = golden.files.find((f) => f.file === 'golden-winio.tar');
if (file === undefined) throw new Error('golden-winio.tar is not in golden.json');
const bytes = readGoldenFile(file);

async function header(name: string): Promise<{ h: TarHeader; go: Buffer }> {
  const entry = file?.entries.find((e) => e.input.name === name);
  if (entry === undefined) throw new Error(`${name} is not in golden-winio.tar`);
  for await (const e of readTar(feedInChunks(bytes, 1 << 20))) {
    for await (const _ of e.body) void _;
    if (e.header.name === name) return { h: e.header, go: bytes.subarray(entry.offset, entry.offset + entry.headerLength) };
  }
  throw new Error(`${name} was not read back`);
}

const noMeta = { securityDescriptor: undefined, extendedAttributes: [], reparse: undefined };

describe('convert/tar-header: modes as go-winio and hcsshim write them', () => {
  it('a hard link: mode 0644, type 1, the link target, the basic-info records', async () => {
    const { h, go } = await header('Files/hardlink.txt');
    const ours = encodeTarHeader(linkTarHeader(h.name, h.linkname, fileInfoFromTarHeader(h, h.name)));
    expect(h.mode).to.equal(0o644);
    expect(ours.equals(go)).to.equal(true);
  });

  it('an empty file: mode 0 without a DATA stream, 0100000 with an empty one', async () => {
    for (const [name, hasData, mode] of [
      ['Files/empty-nodata.txt', false, 0],
      ['Files/empty.txt', true, 0o100000],
    ] as const) {
      const { h, go } = await header(name);
      expect(h.mode, name).to.equal(mode);
      const ours = encodeTarHeader(tarHeaderFromEntry(h.name, fileInfoFromTarHeader(h, h.name), 0, hasData, noMeta));
      expect(ours.equals(go), name).to.equal(true);
    }
  });
});

describe('convert/layer-tar-builder: whiteouts', () => {
  it('puts the .wh. prefix on the last name, a name without a directory included', async () => {
    const names: string[] = [];
    const tar = await buildLayerTar([
      { type: 'whiteout', name: 'Files/a/b.txt' },
      { type: 'whiteout', name: 'Files' },
    ]);
    for await (const e of readTar(feedInChunks(tar, 1 << 16))) {
      names.push(e.header.name);
      for await (const _ of e.body) void _;
    }
    expect(names).to.deep.equal(['Files/a/.wh.b.txt', '.wh.Files']);
  });
});
