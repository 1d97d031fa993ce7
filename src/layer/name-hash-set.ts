/**
 * A set of names kept as 64-bit hashes in typed arrays, outside V8's heap: 8 bytes a slot,
 * at most three quarters of them full (11–21 bytes a name), where a Set of strings costs
 * ~80 bytes a name on the heap and several times that in resident memory once the
 * collector's headroom is counted. A layer writer
 * remembers every file it wrote; with this, a layer of hundreds of thousands of files stays
 * within the import's memory bound.
 *
 * `has` can answer true for a name never added (two names with one 64-bit hash: about one
 * chance in 10^8 for a million names), never false for one that was. Callers confirm a hit
 * before acting on it.
 */

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

/** Two independent 32-bit hashes of the UTF-16 code units (FNV-1a, and a multiplicative mix). */
export function hash64(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b ^= b >>> 16;
  // 0 marks an empty slot: nudge a zero hash.
  return [a >>> 0 || 1, b >>> 0];
}

export class NameHashSet {
  /** Pairs of (hash a, hash b); a = 0 is an empty slot. */
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(name: string): void {
    const [a, b] = hash64(name);
    if (this.#find(a, b) >= 0) return;
    if (mustGrow(this.#size, this.#mask + 1)) this.#grow();
    this.#insert(a, b);
    this.#size++;
  }

  /** False: never added. True: added, or (rarely) another name with the same hash was. */
  has(name: string): boolean {
    const [a, b] = hash64(name);
    return this.#find(a, b) >= 0;
  }

  #find(a: number, b: number): number {
    const slots = this.#slots;
    for (let i = a & this.#mask; ; i = (i + 1) & this.#mask) {
      const sa = slots[2 * i] as number;
      if (sa === EMPTY) return -1;
      if (sa === a && slots[2 * i + 1] === b) return i;
    }
  }

  #insert(a: number, b: number): void {
    const i = emptySlot(this.#slots, this.#mask, a);
    this.#slots[2 * i] = a;
    this.#slots[2 * i + 1] = b;
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

/** The first empty slot of the probe sequence of hash `a`. */
function emptySlot(slots: Uint32Array, mask: number, a: number): number {
  let i = a & mask;
  while (slots[2 * i] !== EMPTY) i = (i + 1) & mask;
  return i;
}

/**
 * Names' 64-bit hashes mapped to numbers (a record's offset in a file, say), outside the
 * heap: 16 bytes a slot, at most three quarters of them full (see mustGrow). Names that
 * share a hash keep a value each, so a lookup yields every value under the hash and the
 * caller confirms which is its.
 */
export class NameHashMap {
  /** Pairs of (hash a, hash b); a = 0 is an empty slot. */
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #values = new Float64Array(INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds `value` under `name` (a second value under the same name is kept too). */
  add(name: string, value: number): void {
    const [a, b] = hash64(name);
    if (mustGrow(this.#size, this.#mask + 1)) this.#grow();
    this.#insert(a, b, value);
    this.#size++;
  }

  /**
   * The `nth` value (from 0, in no set order) added under `name`'s hash, or undefined past
   * the last. A lookup makes no object: it runs once per entry once a layer has links.
   */
  valueAt(name: string, nth: number): number | undefined {
    if (this.#size === 0) return undefined;
    const [a, b] = hash64(name);
    let seen = 0;
    for (let i = a & this.#mask; ; i = (i + 1) & this.#mask) {
      const sa = this.#slots[2 * i] as number;
      if (sa === EMPTY) return undefined;
      if (sa === a && this.#slots[2 * i + 1] === b && seen++ === nth) return this.#values[i] as number;
    }
  }

  #insert(a: number, b: number, value: number): void {
    const i = emptySlot(this.#slots, this.#mask, a);
    this.#slots[2 * i] = a;
    this.#slots[2 * i + 1] = b;
    this.#values[i] = value;
  }

  #grow(): void {
    const slots = this.#slots;
    const values = this.#values;
    this.#slots = new Uint32Array(2 * slots.length);
    this.#values = new Float64Array(2 * values.length);
    this.#mask = 2 * values.length - 1;
    for (let i = 0; i < values.length; i++) {
      const a = slots[2 * i] as number;
      if (a !== EMPTY) this.#insert(a, slots[2 * i + 1] as number, values[i] as number);
    }
  }
}
