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
