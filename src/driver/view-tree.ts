/**
 * The names of a view (resolveView) as a tree kept in typed arrays: for each node its
 * parent, children (a doubly linked list), kind, layer and the place of its record in
 * that layer's index, and one string, its own last name. A node is found by its parent
 * and its case-folded name through a hash table of 32-bit hashes; a hit is confirmed by
 * folding the node's name. A Map of ViewEntry objects keyed by the folded path held each
 * path twice and ~460 bytes an entry: a 143,000-entry chain took 64 MiB of heap to
 * resolve, 145 MiB peak RSS to mount and 210 MiB to export its read-write layer.
 *
 * Nodes are never reused: a name replaced by a file of a nearer layer gets a new node, and
 * the old one stays, dead, for a hard link that reached its content. A directory
 * replaced by a directory keeps its node (and its children); directories a layer made
 * implicitly (it holds `a/b/c` and not `a/b`) are nodes of kind IMPLICIT.
 */
import { createError } from '../errors.js';
import { keyedHash32, mustGrow } from '../layer/name-hash-set.js';
import { caseFoldKey } from '../util/safe-path.js';

export const NONE = -1;

/** Kinds as stored: an index record's, or a directory no layer names. */
const KINDS = ['file', 'directory', 'symlink', 'link', 'whiteout', 'implicit'] as const;
export type NodeKind = (typeof KINDS)[number];
const KIND_CODE: Readonly<Record<NodeKind, number>> = { file: 0, directory: 1, symlink: 2, link: 3, whiteout: 4, implicit: 5 };

const ALIVE = 1;
const MARKED = 2;

const INITIAL_NODES = 1 << 10;
const INITIAL_SLOTS = 1 << 11;
/** A slot whose node was taken out: probes pass it, inserts reuse it. */
const TOMBSTONE = 0xffffffff;
/** A name's chunk while it waits in #pending. */
const PENDING = 0xffffffff;
/** Names gathered before they are joined into a chunk: at most this many, or this many UTF-16 units. */
const PENDING_NAMES = 4096;
const PENDING_UNITS = 256 * 1024;

function grown<T extends Int32Array | Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, size: number): T {
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

export class ViewTree {
  #count = 0;
  #parent = new Int32Array(INITIAL_NODES);
  #first = new Int32Array(INITIAL_NODES);
  #next = new Int32Array(INITIAL_NODES);
  #prev = new Int32Array(INITIAL_NODES);
  #linkTo = new Int32Array(INITIAL_NODES);
  #kind = new Uint8Array(INITIAL_NODES);
  #flags = new Uint8Array(INITIAL_NODES);
  #layer = new Uint16Array(INITIAL_NODES);
  #offset = new Float64Array(INITIAL_NODES);
  #length = new Uint32Array(INITIAL_NODES);
  /**
   * Each node's own name as its layer spells it (a detached node: its whole record name):
   * the chunk of #chunks and the place in it. Names are gathered in #pending, then joined
   * into one flat string: a string a name (a slice of its record's name, which V8 keeps
   * whole behind it) took ~170 bytes of heap a node.
   */
  #nameChunk = new Uint32Array(INITIAL_NODES);
  #nameStart = new Uint32Array(INITIAL_NODES);
  #nameLength = new Uint16Array(INITIAL_NODES);
  readonly #chunks: string[] = [];
  #pending: string[] = [];
  #pendingNodes: number[] = [];
  #pendingUnits = 0;
  /** Pairs (hash, node + 1) of attached live nodes; 0 an empty slot. */
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  /** Slots taken, tombstones included. */
  #used = 0;
  #live = 0;

  /** The root (`Files`), an implicit directory until a layer names it. */
  readonly root: number;

  constructor() {
    this.root = this.#make(NONE, '', 'implicit', 0, -1, 0);
    this.#flags[this.root] = ALIVE;
  }

  /** Live nodes other than implicit directories. */
  get size(): number {
    return this.#live;
  }

  /** Every node ever made, dead ones included: ids are below this. */
  get capacity(): number {
    return this.#count;
  }

  kind(id: number): NodeKind {
    return KINDS[this.#kind[id] as number] as NodeKind;
  }

  isAlive(id: number): boolean {
    return ((this.#flags[id] as number) & ALIVE) !== 0;
  }

  /** Alive and named by a layer (not an implicit directory). */
  isEntry(id: number): boolean {
    return this.isAlive(id) && this.#kind[id] !== KIND_CODE.implicit;
  }

  isMarked(id: number): boolean {
    return ((this.#flags[id] as number) & MARKED) !== 0;
  }

  mark(id: number): void {
    this.#flags[id] = (this.#flags[id] as number) | MARKED;
  }

  layer(id: number): number {
    return this.#layer[id] as number;
  }

  /** The byte offset of the node's record in its layer's index, -1 for a record kept elsewhere. */
  offset(id: number): number {
    return this.#offset[id] as number;
  }

  length(id: number): number {
    return this.#length[id] as number;
  }

  linkTo(id: number): number {
    return this.#linkTo[id] as number;
  }

  setLinkTo(id: number, target: number): void {
    this.#linkTo[id] = target;
  }

  parent(id: number): number {
    return this.#parent[id] as number;
  }

  /** The node's own name (a detached node's: its record name). */
  name(id: number): string {
    const chunk = this.#nameChunk[id] as number;
    const start = this.#nameStart[id] as number;
    if (chunk === PENDING) return this.#pending[start] as string;
    return (this.#chunks[chunk] as string).slice(start, start + (this.#nameLength[id] as number));
  }

  #setName(id: number, name: string): void {
    // No import writes one (a segment is at most 255 units, a path 32,767): an index edited since.
    if (name.length > 0xffff) throw createError('ERR_LAYER_CORRUPT', `a name of ${name.length} characters in a layer index`, { length: name.length });
    this.#nameChunk[id] = PENDING;
    this.#nameStart[id] = this.#pending.length;
    this.#nameLength[id] = name.length;
    this.#pending.push(name);
    this.#pendingNodes.push(id);
    this.#pendingUnits += name.length;
    if (this.#pending.length >= PENDING_NAMES || this.#pendingUnits >= PENDING_UNITS) this.#flushNames();
  }

  /** Joins the pending names into a chunk, each node pointed at its place there (an older spelling of a node renamed since is left out). */
  #flushNames(): void {
    const chunk = this.#chunks.length;
    const kept: string[] = [];
    let at = 0;
    for (const [i, id] of this.#pendingNodes.entries()) {
      if (this.#nameChunk[id] !== PENDING || this.#nameStart[id] !== i) continue;
      const name = this.#pending[i] as string;
      kept.push(name);
      this.#nameChunk[id] = chunk;
      this.#nameStart[id] = at;
      at += name.length;
    }
    this.#chunks.push(kept.join(''));
    this.#pending = [];
    this.#pendingNodes = [];
    this.#pendingUnits = 0;
  }

  /** The path below the root, each name as its node spells it ('' for the root). */
  pathOf(id: number): string {
    if (id === this.root) return '';
    let out = this.name(id);
    for (let p = this.#parent[id] as number; p !== this.root && p !== NONE; p = this.#parent[p] as number) out = `${this.name(p)}/${out}`;
    return out;
  }

  /** The live child of `parent` whose case-folded name is `key`, or NONE. */
  child(parent: number, key: string): number {
    const h = this.#hash(parent, key);
    const slots = this.#slots;
    for (let s = h & this.#mask; ; s = (s + 1) & this.#mask) {
      const v = slots[2 * s + 1] as number;
      if (v === 0) return NONE;
      if (v !== TOMBSTONE && slots[2 * s] === h) {
        const id = v - 1;
        // Confirmed, not trusted: another name may share the hash.
        if (this.#parent[id] === parent && (this.#nameLength[id] as number) === key.length && caseFoldKey(this.name(id)) === key) return id;
      }
    }
  }

  /** The live node of the case-folded path `key` ('' is the root), or NONE. */
  find(key: string): number {
    let id = this.root;
    if (key === '') return id;
    let from = 0;
    for (;;) {
      const slash = key.indexOf('/', from);
      id = this.child(id, slash === -1 ? key.slice(from) : key.slice(from, slash));
      if (id === NONE || slash === -1) return id;
      from = slash + 1;
    }
  }

  /** The live children of `id`, in the order they were made. */
  *children(id: number): Generator<number> {
    for (let c = this.#first[id] as number; c !== NONE; c = this.#next[c] as number) yield c;
  }

  /** A new live node below `parent`, which has no live child of its name. */
  add(parent: number, name: string, kind: NodeKind, layer: number, offset: number, length: number): number {
    const id = this.#make(parent, name, kind, layer, offset, length);
    this.#flags[id] = ALIVE;
    if (kind !== 'implicit') this.#live++;
    const head = this.#first[parent] as number;
    this.#next[id] = head;
    if (head !== NONE) this.#prev[head] = id;
    this.#first[parent] = id;
    if (mustGrow(this.#used, this.#mask + 1)) this.#rehash();
    this.#insert(this.#hash(parent, caseFoldKey(name)), id + 1);
    return id;
  }

  /** A node outside the tree (a hard link's target in a layer's UtilityVM): never found, never alive. */
  addDetached(name: string, kind: NodeKind, layer: number): number {
    return this.#make(NONE, name, kind, layer, -1, 0);
  }

  /** Gives the live node `id` another record (a directory a nearer layer names again); its children stay. */
  update(id: number, name: string, kind: NodeKind, layer: number, offset: number, length: number): void {
    if (this.#kind[id] === KIND_CODE.implicit && kind !== 'implicit') this.#live++;
    // Same folded name, same slot: only the spelling changes.
    if (name !== this.name(id)) this.#setName(id, name);
    this.#kind[id] = KIND_CODE[kind];
    this.#layer[id] = layer;
    this.#offset[id] = offset;
    this.#length[id] = length;
  }

  /**
   * Takes the live node `id` and everything below it out of the tree; `dying` hears each
   * node taken (parents before their children), while its path can still be told.
   */
  remove(id: number, dying?: (id: number) => void): void {
    this.#unlink(id);
    this.#kill(id, dying);
    this.removeChildren(id, dying);
  }

  /** Takes everything below the live node `id` out of the tree (see remove). */
  removeChildren(id: number, dying?: (id: number) => void): void {
    const stack: number[] = [];
    for (let c = this.#first[id] as number; c !== NONE; c = this.#next[c] as number) stack.push(c);
    this.#first[id] = NONE;
    for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
      this.#kill(n, dying);
      for (let c = this.#first[n] as number; c !== NONE; c = this.#next[c] as number) stack.push(c);
      this.#first[n] = NONE;
    }
  }

  #kill(id: number, dying: ((id: number) => void) | undefined): void {
    dying?.(id);
    this.#flags[id] = 0;
    if (this.#kind[id] !== KIND_CODE.implicit) this.#live--;
    const h = this.#hash(this.#parent[id] as number, caseFoldKey(this.name(id)));
    const slots = this.#slots;
    for (let s = h & this.#mask; ; s = (s + 1) & this.#mask) {
      const v = slots[2 * s + 1] as number;
      if (v === 0) return;
      if (v === id + 1) {
        slots[2 * s + 1] = TOMBSTONE;
        return;
      }
    }
  }

  /** Takes `id` out of its parent's list of children. */
  #unlink(id: number): void {
    const parent = this.#parent[id] as number;
    if (parent === NONE) return;
    const prev = this.#prev[id] as number;
    const next = this.#next[id] as number;
    if (prev === NONE) this.#first[parent] = next;
    else this.#next[prev] = next;
    if (next !== NONE) this.#prev[next] = prev;
  }

  #make(parent: number, name: string, kind: NodeKind, layer: number, offset: number, length: number): number {
    const id = this.#count++;
    if (id >= this.#parent.length) {
      // By half: a tree of 440,000 nodes in arrays of 2^19 left 15% of them unused.
      const n = Math.ceil(1.5 * this.#parent.length);
      this.#parent = grown(this.#parent, n);
      this.#first = grown(this.#first, n);
      this.#next = grown(this.#next, n);
      this.#prev = grown(this.#prev, n);
      this.#linkTo = grown(this.#linkTo, n);
      this.#kind = grown(this.#kind, n);
      this.#flags = grown(this.#flags, n);
      this.#layer = grown(this.#layer, n);
      this.#offset = grown(this.#offset, n);
      this.#length = grown(this.#length, n);
      this.#nameChunk = grown(this.#nameChunk, n);
      this.#nameStart = grown(this.#nameStart, n);
      this.#nameLength = grown(this.#nameLength, n);
    }
    this.#parent[id] = parent;
    this.#first[id] = NONE;
    this.#next[id] = NONE;
    this.#prev[id] = NONE;
    this.#linkTo[id] = NONE;
    this.#kind[id] = KIND_CODE[kind];
    this.#flags[id] = 0;
    this.#layer[id] = layer;
    this.#offset[id] = offset;
    this.#length[id] = length;
    this.#setName(id, name);
    return id;
  }

  /** A 32-bit hash of the case-folded name `key` below `parent`, keyed as the name tables' are (see name-hash-set.ts). */
  #hash(parent: number, key: string): number {
    return keyedHash32(key, parent);
  }

  #insert(h: number, value: number): void {
    const slots = this.#slots;
    let s = h & this.#mask;
    for (;;) {
      const v = slots[2 * s + 1] as number;
      if (v === 0) {
        this.#used++;
        break;
      }
      if (v === TOMBSTONE) break;
      s = (s + 1) & this.#mask;
    }
    slots[2 * s] = h;
    slots[2 * s + 1] = value;
  }

  /** A table sized for the live nodes, without tombstones. */
  #rehash(): void {
    const old = this.#slots;
    let slotCount = this.#mask + 1;
    let live = 0;
    for (let s = 1; s < old.length; s += 2) if (old[s] !== 0 && old[s] !== TOMBSTONE) live++;
    // At most half full after: room to grow before the next rehash, not more (a table of
    // 2^21 slots for 440,000 names was 16 MiB).
    while (2 * (live + 1) > slotCount) slotCount *= 2;
    this.#slots = new Uint32Array(2 * slotCount);
    this.#mask = slotCount - 1;
    this.#used = 0;
    for (let s = 0; s < old.length; s += 2) {
      const v = old[s + 1] as number;
      if (v !== 0 && v !== TOMBSTONE) this.#insert(old[s] as number, v);
    }
  }
}
