/**
 * Our reader against an independent one: tar-stream, the tar parser most Node tools use,
 * reads the same archives to the same entries. The archives come from our Go-compatible
 * encoder (random entries) and from a whole layer export, so this also shows that what
 * winlayer writes is readable by the rest of the Node ecosystem.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import tarStream from 'tar-stream';
import { buildLayerTar } from '../../src/convert/layer-tar-builder.js';
import { cleanupTemp, exportTar, importTar, openStore, tempDir } from '../helpers/store.js';
import { everythingLayer } from '../store/round-trip.test.js';
import { arbitraryEntry, buildTar, readAll } from './tar-helpers.js';
import { feedInChunks } from '../helpers/chunks.js';

/** What both readers must agree on for one entry. */
interface Seen {
  name: string;
  type: string;
  size: number;
  linkname: string;
  mode: number;
  pax: Record<string, string>;
  body: string;
}

const TYPE_NAMES: Readonly<Record<string, string>> = { '0': 'file', '1': 'link', '2': 'symlink', '5': 'directory' };

async function withTarStream(tar: Buffer): Promise<Seen[]> {
  const extract = tarStream.extract();
  const out: Seen[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const h = entry.header;
      out.push({
        name: h.name,
        type: h.type ?? 'null',
        size: h.type === 'directory' || h.type === 'symlink' || h.type === 'link' ? 0 : h.size ?? -1,
        linkname: h.linkname ?? '',
        mode: h.mode ?? -1,
        pax: { ...(h.pax ?? {}) },
        body: Buffer.concat(chunks).toString('base64'),
      });
    }
  })();
  extract.end(tar);
  await done;
  return out;
}

async function withReadTar(tar: Buffer, chunk: number): Promise<Seen[]> {
  return (await readAll(feedInChunks(tar, chunk))).map((e) => ({
    name: e.header.name,
    type: TYPE_NAMES[e.header.typeflag] ?? e.header.typeflag,
    size: e.header.size,
    linkname: e.header.linkname,
    mode: e.header.mode,
    pax: { ...e.header.pax },
    body: e.body.toString('base64'),
  }));
}

describe('tar/interop with tar-stream', () => {
  after(cleanupTemp);

  it('random PAX archives from our encoder read the same in both readers', async () => {
    await fc.assert(fc.asyncProperty(fc.array(arbitraryEntry(), { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 4096 }), async (entries, chunk) => {
      const pax = entries.map((e) => ({ ...e, input: { ...e.input, format: 'pax' as const } }));
      const tar = buildTar(pax);
      const ours = await withReadTar(tar, chunk);
      expect(ours).to.have.length(pax.length);
      expect(ours).to.deep.equal(await withTarStream(tar));
    }), { numRuns: 60 });
  });

  it('a whole layer export (ADS, EAs, links, long paths, UtilityVM) reads the same in both readers', async () => {
    const store = await openStore();
    await importTar(store, 'everything', await buildLayerTar(everythingLayer));
    const exported = await exportTar(store, 'everything');
    const ours = await withReadTar(exported, 65536);
    expect(ours.length).to.be.greaterThan(everythingLayer.length); // ADS are entries of their own
    expect(ours.map((e) => e.type)).to.include.members(['file', 'directory', 'symlink', 'link']);
    expect(ours).to.deep.equal(await withTarStream(exported));
  });
});

describe('tar/interop with GNU tar', () => {
  after(cleanupTemp);

  it('imports a layer that GNU tar packed from a directory (`tar -C dir -cf - .`): its `./` root entry is no entry of the layer', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'Files', 'Windows'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Files', 'Windows', 'a.txt'), 'plain tar');
    fs.mkdirSync(path.join(dir, 'Hives'));
    const tar = execFileSync('tar', ['--sort=name', '--format=posix', '-C', dir, '-cf', '-', '.']);
    const names = (await readAll(feedInChunks(tar, 4096))).map((e) => e.header.name);
    expect(names[0]).to.equal('./');
    const store = await openStore();
    const result = await importTar(store, 'packed', tar);
    expect([result.size, result.entries]).to.deep.equal([9, names.length]);
    const exported = (await withReadTar(await exportTar(store, 'packed'), 65536)).map((e) => e.name);
    expect(exported).to.deep.equal(['Files', 'Files/Windows', 'Files/Windows/a.txt', 'Hives']);
  });
});
