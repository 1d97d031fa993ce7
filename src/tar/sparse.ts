/**
 * GNU sparse files in a tar, read as Go's archive/tar reads them: the entry's data is its
 * logical content, holes read as zeros, so a sparse file becomes a plain one (which is
 * what hcsshim's import makes of a PAX sparse entry). Pure: the sparse maps and their
 * checks; the reader streams the data (SparseBody in reader.ts).
 *
 * The four encodings:
 * - old GNU (`S` typeflag): up to four fragments in the header, more in 512-byte extension
 *   blocks between the header and the data (each 21 fragments and a continuation flag);
 * - PAX 0.0: `GNU.sparse.offset` and `GNU.sparse.numbytes` records, repeated in turns;
 * - PAX 0.1: `GNU.sparse.map` ("offset,length,...") and `GNU.sparse.numblocks`;
 * - PAX 1.0 (`GNU.sparse.major=1`, `minor=0`): the map in the data's first blocks, as
 *   decimal lines (the count, then offset and length of each fragment).
 * PAX 0.x and 1.0 give the real name in `GNU.sparse.name` and the logical size in
 * `GNU.sparse.size` or `GNU.sparse.realsize`.
 */
import { createError, type WinLayerError } from '../errors.js';

export const PAX_SPARSE_MAJOR = 'GNU.sparse.major';
export const PAX_SPARSE_MINOR = 'GNU.sparse.minor';
export const PAX_SPARSE_NAME = 'GNU.sparse.name';
export const PAX_SPARSE_SIZE = 'GNU.sparse.size';
export const PAX_SPARSE_REALSIZE = 'GNU.sparse.realsize';
export const PAX_SPARSE_MAP = 'GNU.sparse.map';
export const PAX_SPARSE_NUMBLOCKS = 'GNU.sparse.numblocks';
export const PAX_SPARSE_OFFSET = 'GNU.sparse.offset';
export const PAX_SPARSE_NUMBYTES = 'GNU.sparse.numbytes';

/** Where the fragments of a sparse entry are: [offset, length] pairs, flattened. */
export type SparseMap = number[];

/** How an entry's data is sparse. */
export type SparseSpec =
  /** The map is known from the headers (PAX 0.x, or an old GNU header without extensions). */
  | { kind: 'map'; map: SparseMap }
  /** Old GNU: the header's fragments, then extension blocks before the data. */
  | { kind: 'extended'; map: SparseMap }
  /** PAX 1.0: the map opens the data. */
  | { kind: 'in-data' };

/** GNU header: four fragments of two 12-byte numbers, a continuation flag, the logical size. */
export const OLD_GNU_SPARSE = { entries: 386, count: 4, isExtended: 482, realSize: 483 } as const;
/** An extension block: 21 fragments, then the continuation flag. */
export const OLD_GNU_EXTENSION = { entries: 0, count: 21, isExtended: 504 } as const;
export const SPARSE_ENTRY_FIELD = 12;

export function sparseInvalid(entry: string, what: string): WinLayerError {
  return createError('ERR_TAR_HEADER_INVALID', `${entry}: sparse map ${what}`, { entry });
}

/**
 * The fragments of one old-GNU sparse block (the header or an extension) into `map`, as
 * Go reads them: up to the first whose offset field starts with NUL. True when another
 * extension block follows.
 */
export function readOldGnuFragments(
  block: Buffer,
  layout: { readonly entries: number; readonly count: number; readonly isExtended: number },
  map: SparseMap,
  parse: (offset: number) => number,
): boolean {
  for (let i = 0; i < layout.count; i++) {
    const at = layout.entries + i * 2 * SPARSE_ENTRY_FIELD;
    if (block[at] === 0) break;
    map.push(parse(at), parse(at + SPARSE_ENTRY_FIELD));
  }
  return (block[layout.isExtended] ?? 0) > 0;
}

/**
 * The sparse map of PAX 0.0 or 0.1 records, or undefined for an unknown version (then the
 * entry is a plain file, as in Go). `offsets00` are the 0.0 records in the order given.
 */
export function paxSparseSpec(pax: Readonly<Record<string, string>>, entry: string): SparseSpec | undefined {
  const major = pax[PAX_SPARSE_MAJOR] ?? '';
  const minor = pax[PAX_SPARSE_MINOR] ?? '';
  if (major === '1' && minor === '0') return { kind: 'in-data' };
  const v0 = major === '0' && (minor === '0' || minor === '1');
  if (!v0 && (major !== '' || minor !== '')) return undefined;
  if (!v0 && (pax[PAX_SPARSE_MAP] ?? '') === '') return undefined;
  const count = decimal(pax[PAX_SPARSE_NUMBLOCKS] ?? '');
  const text = pax[PAX_SPARSE_MAP] ?? '';
  const parts = text === '' ? [] : text.split(',');
  if (count === undefined || parts.length !== 2 * count) throw sparseInvalid(entry, `has ${parts.length} numbers for ${pax[PAX_SPARSE_NUMBLOCKS] ?? 'no'} fragments`);
  const map: SparseMap = [];
  for (const part of parts) {
    const n = decimal(part);
    if (n === undefined) throw sparseInvalid(entry, `holds ${JSON.stringify(part)}, not a number`);
    map.push(n);
  }
  return { kind: 'map', map };
}

/** Logical size from GNU.sparse.size or .realsize, or undefined when neither is there. */
export function paxSparseSize(pax: Readonly<Record<string, string>>, entry: string): number | undefined {
  const text = pax[PAX_SPARSE_SIZE] || pax[PAX_SPARSE_REALSIZE] || '';
  if (text === '') return undefined;
  const n = decimal(text);
  if (n === undefined) throw sparseInvalid(entry, `size ${JSON.stringify(text)} is not a number`);
  return n;
}

/**
 * A PAX 1.0 map read from the start of the data, a block at a time (its lines may cross
 * blocks): feed() each block until it answers true; then `map` holds the fragments.
 */
export class MapInData {
  readonly map: SparseMap = [];
  #count: number | undefined;
  #token = '';
  readonly #entry: string;

  constructor(entry: string) {
    this.#entry = entry;
  }

  /** Reads one 512-byte block of the map; true once the map is whole (the data follows this block). */
  feed(block: Buffer): boolean {
    let start = 0;
    for (let i = 0; i < block.length; i++) {
      if (block[i] !== 0x0a) continue;
      const token = this.#token + block.toString('latin1', start, i);
      this.#token = '';
      start = i + 1;
      const n = decimal(token);
      if (n === undefined) throw sparseInvalid(this.#entry, `holds ${JSON.stringify(token.slice(0, 40))}, not a number`);
      if (this.#count === undefined) this.#count = n;
      else this.map.push(n);
      if (this.map.length === 2 * this.#count) return true;
    }
    // (The reader caps the blocks a map may take, and so the length of a line.)
    this.#token += block.toString('latin1', start);
    return false;
  }
}

/**
 * Checks a map as Go (and BSD tar) do: fragments in order, not overlapping, within the
 * logical size; and that their bytes are the entry's stored data, no more, no less.
 */
export function checkSparseMap(map: SparseMap, logicalSize: number, storedBytes: number, entry: string): void {
  let end = 0;
  let stored = 0;
  for (let i = 0; i < map.length; i += 2) {
    const offset = map[i] as number;
    const length = map[i + 1] as number;
    if (offset < end) throw sparseInvalid(entry, 'has fragments out of order or overlapping');
    end = offset + length;
    if (end > logicalSize) throw sparseInvalid(entry, `has a fragment past the file's size ${logicalSize}`);
    stored += length;
  }
  if (stored !== storedBytes) throw sparseInvalid(entry, `places ${stored} bytes, but the entry stores ${storedBytes}`);
}

/**
 * A number as Go's strconv.ParseInt reads it (a sign, then decimal digits, zeros in front
 * allowed), or undefined. A negative one is refused, as Go's checks of a map refuse it;
 * one past 2^53 too, which no file reaches.
 */
function decimal(text: string): number | undefined {
  const m = /^\+?0*([0-9]{1,16})$/.exec(text);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}
