/**
 * The directories a layer writer made, by case-folded name: host path (the spelling on
 * disk) and whether the directory was a plain entry of its own. A layer can hold tens of
 * thousands of directories (WinSxS), kept until its end; a Map keyed by the folded name
 * holds each path twice (folded and host). Here the key is a 64-bit hash in a typed array,
 * and a hit is confirmed by folding the host path, which always folds to the key (each of
 * its segments is its entry's segment or its parent's host spelling).
 *
 * A host path is kept as its parent directory's record and its last segment, not whole:
 * memory grows with the lengths of the names, not of the paths. 40,000 directories 3,400
 * characters deep held 94 MB of paths; their own names take a few. A record's host never
 * changes once made: one set again to another spelling (the directories below it were
 * made under the old one) gets a new record, and the old stays for them to name their
 * parent by.
 */
import { caseFoldKey, flatString } from '../util/safe-path.js';
import { hash64, mustGrow } from './name-hash-set.js';

const INITIAL_SLOTS = 1 << 10;

/** Bit 0 of a record's flags: a plain directory entry of its own (not an implicit parent). */
const PLAIN = 1;
/** Bit 1: no longer the directory of its key (deleted, or set again to another spelling). */
const GONE = 2;

export class DirTable {
  /** Triples (hash a, hash b, record + 1); a zero third word is an empty slot. */
  #slots = new Uint32Array(3 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #used = 0;
  /** Each record's last segment, or its whole host path when it has no parent record. */
  readonly #names: string[] = [];
  /** Each record's parent record, or -1. */
  #parents = new Int32Array(INITIAL_SLOTS);
  #flags = new Uint8Array(INITIAL_SLOTS);
  /** The host path made last, and its record: the files of a directory come together. */
  #lastRecord = -1;
  #lastHost = '';

  /** The host path of the directory `key`. */
  get(key: string): string | undefined {
    const i = this.#find(key);
    return i === -1 ? undefined : this.#hostOf(i);
  }

  has(key: string): boolean {
    return this.#find(key) !== -1;
  }

  /** Whether `key` was a plain directory entry (see markPlain). */
  isPlain(key: string): boolean {
    const i = this.#find(key);
    return i !== -1 && ((this.#flags[i] as number) & PLAIN) !== 0;
  }

  /**
   * Records (or replaces) the host path of `key`; a replaced one is no longer plain.
   * Returns the record, whose host path `hostAt` gives for as long as the table lives.
   */
  set(key: string, host: string): number {
    const found = this.#find(key);
    if (found !== -1) {
      if (this.#hostOf(found) === host) {
        this.#flags[found] = 0;
        return found;
      }
      // Its slot stays, skipped as a gone record's is: the table never shrinks.
      this.#flags[found] = GONE;
    }
    const i = this.#names.length;
    if (i >= this.#flags.length) {
      const flags = new Uint8Array(2 * this.#flags.length);
      flags.set(this.#flags);
      this.#flags = flags;
      const parents = new Int32Array(2 * this.#parents.length);
      parents.set(this.#parents);
      this.#parents = parents;
    }
    // Below its parent's record when the path continues the parent's host path (it nearly
    // always does); else whole. A flat copy of the segment: a slice would keep the path.
    const slash = host.lastIndexOf('/');
    const keySlash = key.lastIndexOf('/');
    const parent = slash > 0 && keySlash > 0 ? this.#find(key.slice(0, keySlash)) : -1;
    if (parent !== -1 && this.#hostOf(parent).length === slash && host.startsWith(this.#hostOf(parent))) {
      this.#names.push(flatString(host.slice(slash + 1)));
      this.#parents[i] = parent;
    } else {
      this.#names.push(flatString(host));
      this.#parents[i] = -1;
    }
    this.#flags[i] = 0;
    if (mustGrow(this.#used, this.#mask + 1)) this.#grow();
    const [a, b] = hash64(key);
    this.#insert(a, b, i + 1);
    this.#used++;
    return i;
  }

  /** Marks `key` (already set) as a plain directory entry of its own. */
  markPlain(key: string): void {
    const i = this.#find(key);
    if (i !== -1) this.#flags[i] = (this.#flags[i] as number) | PLAIN;
  }

  /** The record of `key`, or -1. */
  recordOf(key: string): number {
    return this.#find(key);
  }

  /** The host path of a record `set` returned (a deleted or replaced one's too). */
  hostAt(record: number): string {
    return this.#hostOf(record);
  }

  /** The host path of every directory recorded and not deleted or replaced. */
  *hosts(): Generator<string> {
    for (let i = 0; i < this.#names.length; i++) if (((this.#flags[i] as number) & GONE) === 0) yield this.#hostOf(i);
  }

  delete(key: string): void {
    const i = this.#find(key);
    if (i === -1) return;
    this.#flags[i] = GONE;
  }

  #hostOf(i: number): string {
    if (i === this.#lastRecord) return this.#lastHost;
    const parent = this.#parents[i] as number;
    const name = this.#names[i] as string;
    let host: string;
    if (parent === -1) host = name;
    else if (parent === this.#lastRecord) host = this.#lastHost + '/' + name;
    else {
      const parts = [name];
      for (let p = parent; p !== -1; p = this.#parents[p] as number) parts.push(this.#names[p] as string);
      host = parts.reverse().join('/');
    }
    this.#lastRecord = i;
    this.#lastHost = host;
    return host;
  }

  /** Index of `key`'s live record, or -1. */
  #find(key: string): number {
    const [a, b] = hash64(key);
    const slots = this.#slots;
    for (let s = a & this.#mask; ; s = (s + 1) & this.#mask) {
      const index = slots[3 * s + 2] as number;
      if (index === 0) return -1;
      if (slots[3 * s] === a && slots[3 * s + 1] === b && ((this.#flags[index - 1] as number) & GONE) === 0) {
        // Confirmed, not trusted: another name may share the hash.
        if (caseFoldKey(this.#hostOf(index - 1)) === key) return index - 1;
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
