/**
 * The names visible through a chain of parent layers, after each layer's deletions:
 * what an opaque whiteout must delete, and what `changes` compares against. Built from
 * the layers' indexes (names only, no file data), from the base up, on first use.
 */
import { caseFoldKey, parentName } from '../util/safe-path.js';
import { readIndexEntriesSync } from './metadata-index.js';

export class ChainView {
  readonly #parents: readonly string[];
  /** case-folded name → name as spelled by the layer that added it */
  #names: Map<string, string> | undefined;
  /** case-folded parent → case-folded children */
  #children: Map<string, Set<string>> | undefined;

  /** `parents`: layer directories, nearest first. */
  constructor(parents: readonly string[]) {
    this.#parents = parents;
  }

  #build(): void {
    if (this.#names !== undefined) return;
    const names = new Map<string, string>();
    const children = new Map<string, Set<string>>();
    const drop = (key: string): void => {
      names.delete(key);
      const kids = children.get(key);
      if (kids !== undefined) {
        children.delete(key);
        for (const k of kids) drop(k);
      }
    };
    for (let i = this.#parents.length - 1; i >= 0; i--) {
      const records = readIndexEntriesSync(this.#parents[i] as string);
      for (const r of records) {
        if (r.kind !== 'whiteout') continue;
        const key = caseFoldKey(r.name);
        drop(key);
        children.get(caseFoldKey(parentName(r.name)))?.delete(key);
      }
      for (const r of records) {
        if (r.kind === 'whiteout') continue;
        // Walk up so that directories a layer created implicitly are visible too.
        let name = r.name;
        while (name !== '') {
          const key = caseFoldKey(name);
          const known = names.has(key);
          if (!known) names.set(key, name);
          const parent = parentName(name);
          const pk = caseFoldKey(parent);
          let set = children.get(pk);
          if (set === undefined) children.set(pk, (set = new Set()));
          set.add(key);
          if (known) break;
          name = parent;
        }
      }
    }
    this.#names = names;
    this.#children = children;
  }

  /** True when `name` is visible through the chain. */
  has(name: string): boolean {
    this.#build();
    return this.#names?.has(caseFoldKey(name)) === true;
  }

  /** The visible direct children of `dir`, sorted. */
  childrenOf(dir: string): string[] {
    this.#build();
    const kids = this.#children?.get(caseFoldKey(dir));
    if (kids === undefined) return [];
    const out: string[] = [];
    for (const k of kids) {
      const n = this.#names?.get(k);
      if (n !== undefined) out.push(n);
    }
    return out.sort();
  }
}
