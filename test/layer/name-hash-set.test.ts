import { expect } from 'chai';
import { NameHashMap, NameHashSet, halfSipHash32, hash32, hash64 } from '../../src/layer/name-hash-set.js';
import { namesSharingHash32, namesSharingUnseededFnv1a, unseededFnv1a32 } from '../helpers/hash-collisions.js';

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

  it('with 32-bit hashes, holds every name added through many growths, and a name sharing a hash with one added is a hit', () => {
    const set = new NameHashSet(32);
    const n = 200_000;
    for (let i = 0; i < n; i++) set.add(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.DLL`);
    let missing = 0;
    for (let i = 0; i < n; i++) if (!set.has(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.DLL`)) missing++;
    expect(missing).to.equal(0);
    let falseHits = 0;
    for (let i = 0; i < n; i++) if (set.has(`FILES/WINDOWS/WINSXS/DIR-${i % 997}/FILE-${i}.EXE`)) falseHits++;
    // Some of these names share a hash with one added: a few hits to confirm, no more
    // (n²/2³² ≈ 9.3 expected under a random key: 20 or more about once in 600 runs, 35 or
    // more less than once in 10^10).
    expect(falseHits).to.be.below(35);
    const [x, y] = namesSharingHash32((i) => `FILES/WINDOWS/SYSTEM32/LINK-${i}.DLL`);
    const pair = new NameHashSet(32);
    pair.add(x);
    expect([pair.has(x), pair.has(y), pair.has('FILES/OTHER')]).to.deep.equal([true, true, false]);
    const wide = new NameHashSet();
    wide.add(x);
    expect([wide.has(x), wide.has(y)]).to.deep.equal([true, false]);
  });

  it('maps names to values through many growths, keeping each value added under one name', () => {
    const map = new NameHashMap();
    const n = 50_000;
    for (let i = 0; i < n; i++) map.add(`FILES/WINDOWS/SYSTEM32/FILE-${i}.DLL`, i * 300);
    map.add('FILES/WINDOWS/SYSTEM32/FILE-7.DLL', 0xffffffff); // a second value under one name
    expect(map.size).to.equal(n + 1);
    let wrong = 0;
    const valuesOf = (m: NameHashMap, name: string): number[] => {
      const out: number[] = [];
      for (let v = m.valueAt(name, 0); v !== undefined; v = m.valueAt(name, out.length)) out.push(v);
      return out;
    };
    for (let i = 0; i < n; i++) if (!valuesOf(map, `FILES/WINDOWS/SYSTEM32/FILE-${i}.DLL`).includes(i * 300)) wrong++;
    expect(wrong).to.equal(0);
    expect(valuesOf(map, 'FILES/WINDOWS/SYSTEM32/FILE-7.DLL').sort((x, y) => x - y)).to.deep.equal([2100, 0xffffffff]);
    expect(valuesOf(map, 'FILES/WINDOWS/SYSTEM32/FILE-50000.DLL')).to.deep.equal([]);
    expect(valuesOf(new NameHashMap(), 'A')).to.deep.equal([]);
  });

  it('gives names crafted to share an unseeded FNV-1a hash hashes of their own', () => {
    const target = 'FILES/TARGET';
    const names = namesSharingUnseededFnv1a(target, 'FILES/C', 64);
    expect(new Set([target, ...names].map(unseededFnv1a32)).size).to.equal(1);
    expect(new Set([target, ...names].map(hash32)).size).to.equal(names.length + 1);
    expect(new Set([target, ...names].map((n) => hash64(n)[0])).size).to.equal(names.length + 1);
    const set = new NameHashSet(32);
    set.add(target);
    expect(names.filter((n) => set.has(n))).to.deep.equal([]);
    const map = new NameHashMap();
    map.add(target, 1);
    expect(names.filter((n) => map.valueAt(n, 0) !== undefined)).to.deep.equal([]);
  });

  it('is HalfSipHash: the reference 2-4 vectors (key 00..07, message 00..n-1) come out', () => {
    // The message as the hash takes it: a first 32-bit word, then UTF-16 units.
    const vectors: Record<number, number> = { 4: 0x89466e2a, 6: 0x23fc6358, 8: 0x8f84b8d0, 10: 0x3479b094, 12: 0x2f87f057, 14: 0x7cf8ffd6 };
    for (const [n, want] of Object.entries(vectors)) {
      let units = '';
      for (let b = 4; b < Number(n); b += 2) units += String.fromCharCode(b | ((b + 1) << 8));
      expect(halfSipHash32(0x03020100, 0x07060504, units, 0x03020100, 2, 4), `${n} bytes`).to.equal(want);
    }
  });

  it('spreads over the low bits names that differ only in the high bits of their units', () => {
    // Their FNV-1a states agree in the low 15 bits whatever the seed: one slot for all.
    const names = Array.from({ length: 256 }, (_, i) => Array.from({ length: 8 }, (_, bit) => ((i >> bit) & 1) === 1 ? '\u8041' : 'A').join(''));
    expect(new Set(names.map((n) => unseededFnv1a32(n) & 0x7fff)).size).to.equal(1);
    expect(new Set(names.map((n) => hash32(n) & 0xfff)).size).to.be.above(200);
    expect(new Set(names.map((n) => hash64(n)[0] & 0xfff)).size).to.be.above(200);
  });

  it('keeps every value under a hash two names share, and takes only 32-bit unsigned values', () => {
    const [x, y] = namesSharingHash32((i) => `FILES/WINDOWS/SYSTEM32/LINK-${i}.DLL`);
    expect(x).to.not.equal(y);
    const map = new NameHashMap();
    map.add(x, 1);
    map.add('FILES/OTHER', 2);
    map.add(y, 3);
    const values = [map.valueAt(x, 0), map.valueAt(x, 1), map.valueAt(x, 2)];
    expect(values.slice(0, 2).sort()).to.deep.equal([1, 3]);
    expect(values[2]).to.equal(undefined);
    expect(map.valueAt('FILES/OTHER', 0)).to.equal(2);
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) expect(() => map.add('A', bad), String(bad)).to.throw(RangeError);
    expect(map.size).to.equal(3);
  });
});
