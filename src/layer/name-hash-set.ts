/**
 * A set of names kept as 64-bit (or 32-bit) hashes in typed arrays, outside V8's heap:
 * 8 (or 4) bytes a slot, at most three quarters of them full (11–21 bytes a name with
 * 64-bit hashes), where a Set of strings costs
 * ~80 bytes a name on the heap and several times that in resident memory once the
 * collector's headroom is counted. A layer writer
 * remembers every file it wrote; with this, a layer of hundreds of thousands of files stays
 * within the import's memory bound.
 *
 * `has` can answer true for a name never added (two names with one 64-bit hash: about one
 * chance in 10^7 for a million names; with 32-bit hashes, a few pairs among 100,000),
 * never false for one that was. Callers confirm a hit
 * before acting on it.
 *
 * The hashes are keyed: HalfSipHash-1-3 (the 32-bit SipHash, made against hash flooding)
 * under a 64-bit key drawn at random once a process. Confirming a hit costs more than a
 * probe (a wait for the file thread and a directory listing, a link record read back),
 * and unkeyed FNV-1a is inverted in a moment: a tar could give thousands of names one
 * hash and make the import quadratic (8,000 such names: 88 s instead of 1 s). FNV-1a
 * with a seed was not enough: names crafted against it kept sharing hashes under 1.1% of
 * seeds. No hash is stored or leaves the process, so a key of its own costs nothing.
 */
import { randomBytes } from 'node:crypto';

const KEY = randomBytes(8);
const K0 = KEY.readInt32LE(0);
const K1 = KEY.readInt32LE(4);

const EMPTY = 0;
const INITIAL_SLOTS = 1 << 12;

/**
 * Whether a table of `slots` slots (open addressing, linear probing) must grow before it
 * takes entry number `used + 1`: at most three quarters full. Half full, as before, took
 * twice the memory for the 300,000 names of a base layer (8 MiB for one table, and 12 MiB
 * while it grew) to save about two probes a lookup, in slots next to each other.
 */
export function mustGrow(used: number, slots: number): boolean {
  return 4 * (used + 1) > 3 * slots;
}

/**
 * HalfSipHash-1-3 under this process's key of `first` (a 32-bit word: the view tree's
 * parent node) followed by the UTF-16 code units of `s`, two to a word, little-endian.
 * One SipRound a word and three to finish, as SipHash-1-3 (what Rust's HashMap uses).
 */
export function keyedHash32(s: string, first = 0): number {
  return halfSipHash32(K0, K1, s, first, 1, 3);
}

/**
 * HalfSipHash-c-d with the key (`k0`, `k1`) of the bytes of `first` (4, little-endian)
 * then of `s`'s UTF-16 code units (2 each, little-endian); sets `second` too.
 */
export function halfSipHash32(k0: number, k1: number, s: string, first: number, c: number, d: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  const n = s.length;
  // Words: `first`, the full pairs of units, then the last block (a last unit, and the
  // message's length in bytes); then the finishing rounds.
  const words = (n >> 1) + 2;
  for (let w = 0; w < words + 1; w++) {
    let m = 0;
    let rounds = c;
    if (w === 0) m = first | 0;
    else if (w < words - 1) m = s.charCodeAt(2 * w - 2) | (s.charCodeAt(2 * w - 1) << 16);
    else if (w === words - 1) m = ((((4 + 2 * n) & 0xff) << 24) | ((n & 1) === 1 ? s.charCodeAt(n - 1) : 0)) | 0;
    else {
      v2 ^= 0xff;
      rounds = d;
    }
    v3 ^= m;
    for (let r = 0; r < rounds; r++) {
      v0 = (v0 + v1) | 0;
      v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
      v0 = (v0 << 16) | (v0 >>> 16);
      v2 = (v2 + v3) | 0;
      v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
      v0 = (v0 + v3) | 0;
      v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
      v2 = (v2 + v1) | 0;
      v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
      v2 = (v2 << 16) | (v2 >>> 16);
    }
    v0 ^= m;
  }
  second = (v0 ^ v2) >>> 0;
  return (v1 ^ v3) >>> 0;
}

/** The other half of the last state halfSipHash32 reached, for hash64: a second hash of the same name at no cost. */
let second = 0;

/** The first of hash64's two hashes (keyedHash32), never 0. */
export function hash32(s: string): number {
  return keyedHash32(s) || 1;
}

/** Two 32-bit hashes of the UTF-16 code units: hash32's, which places a name, and a second from the same state, which spares confirming most hits the first leaves. */
export function hash64(s: string): [number, number] {
  const a = hash32(s);
  return [a, second];
}

export class NameHashSet {
  /** Per slot: hash a, then (wide sets) hash b; a = 0 is an empty slot. */
  #slots: Uint32Array;
  /** Words a slot: 2 (64-bit hashes) or 1 (32-bit). */
  readonly #width: 1 | 2;
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  /**
   * With `hashBits` 32 a slot takes 4 bytes instead of 8, for callers whose confirmation of
   * a hit is cheap: among n names about n²/2^33 pairs share a 32-bit hash (~10 among
   * 300,000), and a lookup of such a name is a hit to confirm.
   */
  constructor(hashBits: 32 | 64 = 64) {
    this.#width = hashBits === 64 ? 2 : 1;
    this.#slots = new Uint32Array(this.#width * INITIAL_SLOTS);
  }

  get size(): number {
    return this.#size;
  }

  add(name: string): void {
    const [a, b] = this.#hash(name);
    if (this.#find(a, b) >= 0) return;
    if (mustGrow(this.#size, this.#mask + 1)) this.#grow();
    this.#insert(a, b);
    this.#size++;
  }

  /** False: never added. True: added, or (rarely) another name with the same hash was. */
  has(name: string): boolean {
    const [a, b] = this.#hash(name);
    return this.#find(a, b) >= 0;
  }

  #hash(name: string): [number, number] {
    return this.#width === 2 ? hash64(name) : [hash32(name), 0];
  }

  #find(a: number, b: number): number {
    const slots = this.#slots;
    const w = this.#width;
    for (let i = a & this.#mask; ; i = (i + 1) & this.#mask) {
      const sa = slots[w * i] as number;
      if (sa === EMPTY) return -1;
      if (sa === a && (w === 1 || slots[w * i + 1] === b)) return i;
    }
  }

  #insert(a: number, b: number): void {
    const w = this.#width;
    const i = emptySlot(this.#slots, this.#mask, a, w);
    this.#slots[w * i] = a;
    if (w === 2) this.#slots[w * i + 1] = b;
  }

  #grow(): void {
    const old = this.#slots;
    const w = this.#width;
    this.#slots = new Uint32Array(2 * old.length);
    this.#mask = (2 * old.length) / w - 1;
    for (let i = 0; i < old.length; i += w) {
      const a = old[i] as number;
      if (a !== EMPTY) this.#insert(a, w === 2 ? (old[i + 1] as number) : 0);
    }
  }
}

/** The first empty slot of the probe sequence of hash `a`, in a table of `width` words a slot. */
function emptySlot(slots: Uint32Array, mask: number, a: number, width: number): number {
  let i = a & mask;
  while (slots[width * i] !== EMPTY) i = (i + 1) & mask;
  return i;
}

/**
 * Names' 32-bit hashes mapped to 32-bit unsigned values (a record's offset in a file, say),
 * outside the heap: 8 bytes a slot, at most three quarters of them full (see mustGrow).
 * One 32-bit hash is enough here because every hit is confirmed by its caller, which must
 * tell apart names that share a hash anyway (among 100,000 names, a pair or so do), and a
 * lookup that lands on another name's hash by chance costs one extra confirmation in about
 * 10^9. With 64-bit hashes and 64-bit values (16 bytes a slot) the hard links of a base
 * layer (100,000) took 4 MiB, and 12 MiB while the table grew. A lookup yields every value
 * under the hash.
 */
export class NameHashMap {
  /** Pairs of (hash, value); hash 0 is an empty slot. */
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds `value` (an integer from 0 to 2^32 - 1) under `name`; a second value under the same name is kept too. */
  add(name: string, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`NameHashMap: ${value} is not a 32-bit unsigned value`);
    if (mustGrow(this.#size, this.#mask + 1)) this.#grow();
    this.#insert(hash32(name), value);
    this.#size++;
  }

  /**
   * The `nth` value (from 0, in no set order) added under `name`'s hash, or undefined past
   * the last. A lookup makes no object: it runs once per entry once a layer has links.
   */
  valueAt(name: string, nth: number): number | undefined {
    if (this.#size === 0) return undefined;
    const a = hash32(name);
    const slots = this.#slots;
    let seen = 0;
    for (let i = a & this.#mask; ; i = (i + 1) & this.#mask) {
      const sa = slots[2 * i] as number;
      if (sa === EMPTY) return undefined;
      if (sa === a && seen++ === nth) return slots[2 * i + 1] as number;
    }
  }

  #insert(a: number, value: number): void {
    const i = emptySlot(this.#slots, this.#mask, a, 2);
    this.#slots[2 * i] = a;
    this.#slots[2 * i + 1] = value;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(2 * old.length);
    this.#mask = old.length - 1;
    for (let i = 0; i < old.length; i += 2) {
      const a = old[i] as number;
      if (a !== EMPTY) this.#insert(a, old[i + 1] as number);
    }
  }
}
