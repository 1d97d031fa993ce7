/**
 * The names visible through a chain of parent layers, after each layer's deletions:
 * what an opaque whiteout must delete, and what `changes` compares against. Built from
 * the layers' indexes (names only, no file data), from the base up, on first use.
 */
import { caseFoldKey, parentName } from '../util/safe-path.js';
import { indexEntriesSync } from './metadata-index.js';

/**
 * Opaque whiteouts answered by a pass over the parents' indexes each, before the whole
 * view is built in memory: a layer has few of them, and a parent of 100,000 entries made
 * the whole view ~100 MB of heap. Past this many, one build serves the rest.
 */
const STREAMED_QUERIES = 8;

export class ChainView {
  readonly #parents: readonly string[];
  readonly #checkpoint: (() => void) | undefined;
  /** case-folded name → name as spelled by the layer that added it */
  #names: Map<string, string> | undefined;
  /** case-folded parent → case-folded children */
  #children: Map<string, Set<string>> | undefined;

  /**
   * `parents`: layer directories, nearest first. `checkpoint` is called once a record
   * read while the view is built; it throws to stop (a worker whose controller is gone).
   */
  constructor(parents: readonly string[], checkpoint?: () => void) {
    this.#parents = parents;
    this.#checkpoint = checkpoint;
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
      const layer = this.#parents[i] as string;
      // Streamed twice (deletions, then entries) rather than read whole beside the view.
      for (const r of indexEntriesSync(layer)) {
        this.#checkpoint?.();
        const key = caseFoldKey(r.name);
        if (r.kind !== 'whiteout') {
          // A file or link in place of a directory takes what the layers below had in it.
          const kids = r.kind === 'directory' ? undefined : children.get(key);
          if (kids !== undefined) {
            children.delete(key);
            for (const k of kids) drop(k);
          }
          continue;
        }
        drop(key);
        children.get(caseFoldKey(parentName(r.name)))?.delete(key);
      }
      for (const r of indexEntriesSync(layer)) {
        this.#checkpoint?.();
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

  #streamedQueries = 0;
  /** Children found ahead by prefetchChildren, by case-folded directory, each taken once. */
  readonly #prefetched = new Map<string, string[]>();

  /**
   * Finds the visible children of every directory of `dirs` in one pass over the parents'
   * indexes (whatever their number: nine opaque whiteouts built the whole view, 150 MiB
   * over a parent of 400,000 entries), for childrenOf to hand out. Returns them too.
   */
  prefetchChildren(dirs: readonly string[]): ReadonlyMap<string, readonly string[]> {
    const found = new Map<string, string[]>();
    if (this.#names !== undefined) {
      for (const d of dirs) found.set(caseFoldKey(d), this.childrenOf(d));
    } else {
      for (const [key, kids] of this.#childrenStreamedOf(dirs)) found.set(key, kids);
    }
    for (const [key, kids] of found) this.#prefetched.set(key, kids);
    return found;
  }

  /** The visible direct children of `dir`, sorted. */
  childrenOf(dir: string): string[] {
    const ahead = this.#prefetched.get(caseFoldKey(dir));
    if (ahead !== undefined) {
      this.#prefetched.delete(caseFoldKey(dir));
      return ahead;
    }
    if (this.#names === undefined && this.#streamedQueries < STREAMED_QUERIES) {
      this.#streamedQueries++;
      return this.#childrenStreamed(dir);
    }
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

  /**
   * childrenOf without the whole view: each layer from the base up, its deletions then its
   * additions, as #build applies them, keeping only `dir`'s direct children. One pass a
   * layer: its deletions act on what the layers below left, its additions under `dir` wait
   * for the end of the pass.
   */
  #childrenStreamed(dir: string): string[] {
    return this.#childrenStreamedOf([dir]).get(caseFoldKey(dir)) ?? [];
  }

  /** #childrenStreamed of several directories in one pass a layer, by case-folded directory. */
  #childrenStreamedOf(dirs: readonly string[]): Map<string, string[]> {
    /** case-folded directory → (case-folded child → name as spelled by the layer that added it) */
    const kidsOf = new Map<string, Map<string, string>>();
    for (const d of dirs) kidsOf.set(caseFoldKey(d), new Map());
    /** The directories of `kidsOf` and all their ancestors: only a deletion or a file at one of these names can empty one. */
    const covers = new Set<string>();
    for (const dk of kidsOf.keys()) for (let p = dk; p !== '' && !covers.has(p); p = parentName(p)) covers.add(p);
    const clearAtOrBelow = (key: string): void => {
      if (!covers.has(key)) return;
      for (const [dk, kids] of kidsOf) if (key === dk || dk.startsWith(key + '/')) kids.clear();
    };
    /** The directory of `kidsOf` that `key` is below (itself excluded), the nearest, or undefined. */
    const dirAbove = (key: string): string | undefined => {
      for (let p = parentName(key); p !== ''; p = parentName(p)) if (kidsOf.has(p)) return p;
      return undefined;
    };
    for (let i = this.#parents.length - 1; i >= 0; i--) {
      const layer = this.#parents[i] as string;
      // The first layer read (the base) has nothing below it to delete: its deletions are
      // skipped and what it adds goes straight in (no second map of them: an opaque
      // whiteout over a directory of 200,000 names held both).
      const base = i === this.#parents.length - 1;
      const added = new Map<string, Map<string, string>>();
      for (const r of indexEntriesSync(layer)) {
        this.#checkpoint?.();
        const key = caseFoldKey(r.name);
        if (r.kind === 'whiteout') {
          if (base) continue;
          // A directory itself or one of its ancestors: everything below it goes.
          clearAtOrBelow(key);
          kidsOf.get(parentName(key))?.delete(key);
          continue;
        }
        // A file or link in place of a directory takes what the layers below had in it (its
        // own layer has nothing below it).
        if (r.kind !== 'directory' && !base) clearAtOrBelow(key);
        // Every directory of the set that the entry is below (they may nest) sees one child.
        for (let dk = dirAbove(key); dk !== undefined; dk = dirAbove(dk)) {
          const slash = key.indexOf('/', dk.length + 1);
          const childKey = slash === -1 ? key : key.slice(0, slash);
          let got = base ? kidsOf.get(dk) : added.get(dk);
          if (got === undefined) added.set(dk, (got = new Map()));
          // Case folding keeps lengths (unit by unit), so the spelling is the same-length prefix.
          if (!got.has(childKey)) got.set(childKey, r.name.slice(0, childKey.length));
        }
      }
      for (const [dk, got] of added) {
        const kids = kidsOf.get(dk) as Map<string, string>;
        for (const [childKey, spelled] of got) if (!kids.has(childKey)) kids.set(childKey, spelled);
      }
    }
    const out = new Map<string, string[]>();
    for (const [dk, kids] of kidsOf) out.set(dk, [...kids.values()].sort());
    return out;
  }
}
