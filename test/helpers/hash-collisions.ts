import { hash32 } from '../../src/layer/name-hash-set.js';

/**
 * Two of the names `nameOf(0)`, `nameOf(1)`, … whose keys (`keyOf`, the name itself by
 * default) share a 32-bit name-table hash: a birthday search, ~80,000 names.
 */
export function namesSharingHash32(nameOf: (i: number) => string, keyOf: (name: string) => string = (name) => name): [string, string] {
  const byHash = new Map<number, string>();
  for (let i = 0; ; i++) {
    const name = nameOf(i);
    const h = hash32(keyOf(name));
    const other = byHash.get(h);
    if (other !== undefined) return [other, name];
    byHash.set(h, name);
  }
}

/** 32-bit FNV-1a of the UTF-16 code units without a seed: what the name tables once used. */
export function unseededFnv1a32(s: string): number {
  let a = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) a = Math.imul(a ^ s.charCodeAt(i), FNV_PRIME);
  return a >>> 0;
}

const FNV_PRIME = 0x01000193;
const CJK_FIRST = 0x4e00;
const CJK_END = 0xa000;

/**
 * `count` names `${prefix}${i}` followed by three CJK ideographs, all with the unseeded
 * FNV-1a hash of `target`: FNV-1a is inverted in its last step, so for each name two
 * units are tried until the third that lands on the target falls among the ideographs.
 */
export function namesSharingUnseededFnv1a(target: string, prefix: string, count: number): string[] {
  let inverse = 1; // of FNV_PRIME mod 2^32, by Newton's iteration
  for (let i = 0; i < 5; i++) inverse = Math.imul(inverse, 2 - Math.imul(FNV_PRIME, inverse));
  const beforeLast = Math.imul(unseededFnv1a32(target), inverse) >>> 0;
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const s0 = unseededFnv1a32(`${prefix}${i}`);
    search: for (let c1 = CJK_FIRST; c1 < CJK_END; c1++) {
      const s1 = Math.imul(s0 ^ c1, FNV_PRIME);
      for (let c2 = CJK_FIRST; c2 < CJK_END; c2++) {
        const c3 = (Math.imul(s1 ^ c2, FNV_PRIME) ^ beforeLast) >>> 0;
        if (c3 >= CJK_FIRST && c3 < CJK_END) {
          out.push(`${prefix}${i}${String.fromCharCode(c1, c2, c3)}`);
          break search;
        }
      }
    }
  }
  return out;
}
