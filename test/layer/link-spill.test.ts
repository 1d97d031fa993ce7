import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LinkSpill, type SpilledLink } from '../../src/layer/link-spill.js';
import { namesSharingHash32 } from '../helpers/hash-collisions.js';
import { caseFoldKey } from '../../src/util/safe-path.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

function link(i: number, nameLength = 0): Omit<SpilledLink, 'offset'> {
  // Every third name spends 2, 3 and 4 UTF-8 bytes on some of its characters; the odd thousands pad with 3-byte ones.
  const pad = (i % 3 === 0 ? 'Ünï€𝔘-' : '') + (Math.floor(i / 1_000) % 2 === 0 ? 'n' : '€').repeat(nameLength);
  return {
    name: `Files/Windows/System32/${pad}File-${i}.dll`,
    target: `Files/Windows/WinSxS/amd64_${i}/file-${i}.dll`,
    host: `Files/Windows/System32/${pad}File-${i}.dll`,
    transport: i % 2 === 0,
    attributes: i,
    times: [BigInt(i), 0n, 2n ** 63n - 1n, 2n ** 70n + BigInt(i)],
  };
}

function longName(i: number): number {
  return i === 7_000 ? 200_000 : i % 1_000 === 0 ? 30_000 : i % 1_000 === 500 ? 10_000 + i : 0;
}

describe('layer/link-spill', () => {
  after(cleanupTemp);

  it('gives back every link in order, with offsets in that order, across reads and a record larger than a read', () => {
    const file = path.join(tempDir(), 'links');
    const spill = new LinkSpill(file);
    const offsets: number[] = [];
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      // One record of ~600 KB (longer than one read of the walk), some past the write buffer,
      // and some whose text fits the buffer only counted in bytes, not at 3 bytes a character.
      const long = longName(i);
      offsets.push(spill.append(link(i, long), caseFoldKey(link(i, long).name)));
    }
    expect(spill.size).to.equal(n);
    let i = 0;
    for (const r of spill.records()) {
      const long = longName(i);
      expect(r).to.deep.equal({ offset: offsets[i], ...link(i, long) });
      i++;
    }
    expect(i).to.equal(n);
    expect(offsets.every((o, k) => k === 0 || o > (offsets[k - 1] as number))).to.equal(true);
    spill.close(true);
    expect(fs.existsSync(file)).to.equal(false);
  });

  it('finds a link by its case-folded name, exactly, also while records are still buffered', () => {
    const spill = new LinkSpill(path.join(tempDir(), 'links'));
    try {
      for (let i = 0; i < 5_000; i++) spill.append(link(i), caseFoldKey(link(i).name));
      expect(spill.find(caseFoldKey('files/windows/system32/FILE-4321.DLL'), caseFoldKey)).to.include({ name: link(4321).name, attributes: 4321 });
      expect(spill.find(caseFoldKey(link(4999).name), caseFoldKey)?.target).to.equal(link(4999).target);
      expect(spill.find(caseFoldKey('Files/Windows/System32/File-5000.dll'), caseFoldKey)).to.equal(undefined);
      // A fold that tells every name apart from its key: a hash hit is not taken for a match.
      expect(spill.find(caseFoldKey(link(1).name), (name) => `not ${name}`)).to.equal(undefined);
    } finally {
      spill.close(true);
    }
  });

  it('tells apart two links whose names share a hash, whichever was recorded first', () => {
    const pair = namesSharingHash32((i) => `Files/Windows/System32/link-${i}.dll`, caseFoldKey);
    for (const order of [pair, [pair[1], pair[0]]]) {
      const spill = new LinkSpill(path.join(tempDir(), 'links'));
      try {
        order.forEach((name, i) => spill.append({ ...link(i), name, host: name }, caseFoldKey(name)));
        for (const [i, name] of order.entries()) expect(spill.find(caseFoldKey(name), caseFoldKey), name).to.include({ name, attributes: i });
        expect(spill.find(caseFoldKey('Files/Windows/System32/link-x.dll'), caseFoldKey)).to.equal(undefined);
      } finally {
        spill.close(true);
      }
    }
  });

  it('refuses to reuse a file that exists', () => {
    const file = path.join(tempDir(), 'links');
    fs.writeFileSync(file, 'planted');
    expect(() => new LinkSpill(file)).to.throw().with.property('code', 'EEXIST');
  });
});
