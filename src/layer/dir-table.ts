/**
 * The directories a layer writer made, by case-folded name: host path (the spelling on
 * disk) and whether the directory was a plain entry of its own. A layer can hold tens of
 * thousands of directories (WinSxS), kept until its end; a Map keyed by the folded name
 * holds each path twice (folded and host). Here the key is a 64-bit hash in a typed array,
 * and a hit is confirmed by folding the host path, which always folds to the key (each of
 * its segments is its entry's segment or its parent's host spelling).
 */
import { caseFoldKey } from '../util/safe-path.js';
import { hash64, mustGrow } from './name-hash-set.js';

const INITIAL_SLOTS = 1 << 10;

export class DirTable {
  /** Triples (hash a, hash b, index + 1); a zero third word is an empty slot. */
  #slots = new Uint32Array(3 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #used = 0;
  /** Host paths by index; undefined once deleted. */
  readonly #hosts: (string | undefined)[] = [];
  /** Bit 1: a plain directory entry of its own (not an implicit parent). */
  #flags = new Uint8Array(INITIAL_SLOTS);

  /** The host path of the directory `key`. */
  get(key: string): string | undefined {
    const i = this.#find(key);
    return i === -1 ? undefined : this.#hosts[i];
  }

  has(key: string): boolean {
    return this.#find(key) !== -1;
  }

  /** Whether `key` was a plain directory entry (see markPlain). */
  isPlain(key: string): boolean {
    const i = this.#find(key);
    return i !== -1 && (this.#flags[i] as number) !== 0;
  }

  /** Records (or replaces) the host path of `key`; a replaced one is no longer plain. */
  set(key: string, host: string): void {
    const found = this.#find(key);
    if (found !== -1) {
      this.#hosts[found] = host;
      this.#flags[found] = 0;
      return;
    }
    const i = this.#hosts.length;
    this.#hosts.push(host);
    if (i >= this.#flags.length) {
      const grown = new Uint8Array(2 * this.#flags.length);
      grown.set(this.#flags);
      this.#flags = grown;
    }
    if (mustGrow(this.#used, this.#mask + 1)) this.#grow();
    const [a, b] = hash64(key);
    this.#insert(a, b, i + 1);
    this.#used++;
  }

  /** Marks `key` (already set) as a plain directory entry of its own. */
  markPlain(key: string): void {
    const i = this.#find(key);
    if (i !== -1) this.#flags[i] = 1;
  }

  /** The host path of every directory recorded and not deleted, in the order they were set. */
  *hosts(): Generator<string> {
    for (const host of this.#hosts) if (host !== undefined) yield host;
  }

  delete(key: string): void {
    const i = this.#find(key);
    if (i === -1) return;
    this.#hosts[i] = undefined;
    this.#flags[i] = 0;
  }

  /** Index of `key`'s live record, or -1. */
  #find(key: string): number {
    const [a, b] = hash64(key);
    const slots = this.#slots;
    for (let s = a & this.#mask; ; s = (s + 1) & this.#mask) {
      const index = slots[3 * s + 2] as number;
      if (index === 0) return -1;
      if (slots[3 * s] === a && slots[3 * s + 1] === b) {
        const host = this.#hosts[index - 1];
        // Confirmed, not trusted: another name may share the hash.
        if (host !== undefined && caseFoldKey(host) === key) return index - 1;
      }
    }
  }

  #insert(a: number, b: number, index: number): void {
    const slots = this.#slots;
    let s = a & this.#mask;
    while (slots[3 * s + 2] !== 0) s = (s + 1) & this.#mask;
    slots[3 * s] = a;
    slots[3 * s + 1] = b;
    slots[3 * s + 2] = index;
  }

  #grow(): void {
    const old = this.#slots;
    const slotCount = 2 * (this.#mask + 1);
    this.#slots = new Uint32Array(3 * slotCount);
    this.#mask = slotCount - 1;
    for (let s = 0; s < old.length; s += 3) {
      if (old[s + 2] !== 0) this.#insert(old[s] as number, old[s + 1] as number, old[s + 2] as number);
    }
  }
}
