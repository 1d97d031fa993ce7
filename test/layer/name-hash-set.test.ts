import { expect } from 'chai';
import { NameHashSet } from '../../src/layer/name-hash-set.js';

describe('layer/name-hash-set', () => {
  it('holds every name added, through many growths, and not the ones never added', () => {
    const set = new NameHashSet();
    const n = 200_000;
    for (let i = 0; i < n; i++) set.add(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.DLL`);
    set.add('FILES/WINDOWS/WINSXS/DIR-0/FILE-0.DLL'); // again: no change
    expect(set.size).to.equal(n);
    let missing = 0;
    for (let i = 0; i < n; i++) if (!set.has(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.DLL`)) missing++;
    expect(missing).to.equal(0);
    let falseHits = 0;
    for (let i = 0; i < n; i++) if (set.has(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.EXE`)) falseHits++;
    expect(falseHits).to.equal(0);
  });

  it('tells apart names that differ in one unit, in length, or only beyond the BMP', () => {
    const set = new NameHashSet();
    for (const name of ['', 'A', 'AB', 'FILES/X', 'FILES/𝄞']) set.add(name);
    for (const name of ['', 'A', 'AB', 'FILES/X', 'FILES/𝄞']) expect(set.has(name), name).to.equal(true);
    for (const name of ['B', 'BA', 'A\0', 'FILES/Y', 'FILES/𝄟', 'FILES/X/']) expect(set.has(name), name).to.equal(false);
  });
});
