/**
 * The tar reader: frames a tar stream into entries and decides what each header means with
 * Go's archive/tar rules, since Windows layer tars come from Go (go-winio's backuptar).
 *
 * Lifecycle of one `readTar` call:
 *   pulling  — input chunks are pulled from the source only when the caller needs more bytes
 *              (backpressure is the caller's pace); only the current chunk is referenced;
 *   header   — blocks are read one at a time: extended headers ('x', 'g', 'L', 'K') are
 *              collected, each checked as Go checks it, until the entry's own header;
 *   yielded  — a TarEntry is handed out; its body yields views of the input chunks;
 *   skipped  — asking for the next entry discards whatever the caller left of the body and
 *              the padding after it;
 *   finished — at the first zero block, everything up to the end of the input must be zero
 *              blocks;
 *   closed   — on completion, error or abandonment, the source iterator is returned (which
 *              destroys a Node stream), without unhandled errors.
 *
 * Beyond Go's rules, input on which the common tar readers disagree is refused rather than
 * read one way: a header-only type (link, device, '\0' with a trailing slash) that claims
 * data, where GNU tar, tar-stream and node-tar read data and Go does not; entries after an
 * end-of-archive block, which Go never sees; GNU long names that disagree with a PAX path;
 * a global PAX header between a local extended header and its entry, which Go reads as the
 * end of that entry's headers and others do not; global PAX records that would change later
 * entries in some readers only (names, sizes, times, Windows metadata); the other global
 * records apply to no entry, as in Go.
 */

import { isUtf8 } from 'node:buffer';
import { createError, isWinLayerError, shownEntry, type WinLayerError } from '../errors.js';
import { tarChunk } from './decompress.js';
import {
  BLOCK_SIZE, FIELD, blockPaddingLength, checksumMatches, isAllZero, readNumericField, readStringField, type BlockField,
} from './block.js';
import {
  PAX_ATIME, PAX_CTIME, PAX_GID, PAX_GNAME, PAX_GNU_SPARSE_PREFIX, PAX_LINKPATH, PAX_MTIME, PAX_PATH, PAX_SIZE, PAX_UID, PAX_UNAME,
  forEachPaxRecord, parseGoInt64, parsePaxTime, paxSubjectText,
} from './pax.js';
import {
  OLD_GNU_EXTENSION, OLD_GNU_SPARSE, PAX_SPARSE_MAP, PAX_SPARSE_NAME, PAX_SPARSE_NUMBYTES, PAX_SPARSE_OFFSET, SPARSE_ENTRY_FIELD,
  checkSparseMap, MapInData, paxSparseSize, paxSparseSpec, readOldGnuFragments, sparseInvalid, type SparseMap, type SparseSpec,
} from './sparse.js';

/** One entry's header, after PAX records and GNU long names are applied. */
export interface TarHeader {
  /** Entry name after PAX `path` / GNU long names. */
  name: string;
  /** One char; a legacy '\0' becomes '5' when the name ends with '/' and '0' otherwise (Go). */
  typeflag: string;
  /** Data bytes of this entry (PAX size honoured); 0 for header-only types such as directories. */
  size: number;
  mode: number;
  /** '' when none. */
  linkname: string;
  /** Unix ns: PAX mtime when present (parsePaxTime), else the header's whole seconds. */
  mtime: bigint;
  /** From PAX atime. */
  atime?: bigint;
  /** From PAX ctime. */
  ctime?: bigint;
  /** Every PAX record of this entry's own extended header (global records apply to none). */
  pax: Readonly<Record<string, string>>;
}

/** A header and its data. */
export interface TarEntry {
  header: TarHeader;
  /** The entry's data, iterable once (a second or late iteration is empty); chunks are views into the input, not copies. */
  body: AsyncIterable<Buffer>;
}

/** Options of `readTar`. */
export interface ReadTarOptions {
  /**
   * Most bytes of extended-header data (PAX records, GNU long names) in front of one entry;
   * more is ERR_METADATA_TOO_LARGE. At least 0. Go's own reader refuses more than 1 MiB.
   * @default 1048576
   */
  maxPaxBytes?: number;
  /**
   * Most bytes of holes in the sparse files of one tar, which are written out as zeros: a
   * tar of a few KB could otherwise claim terabytes. More is ERR_SPARSE_UNSUPPORTED.
   * @default 4294967296 (4 GiB)
   */
  maxSparseHoleBytes?: number;
}

/** Default cap on the holes of a tar's sparse files. */
export const DEFAULT_MAX_SPARSE_HOLE_BYTES = 4 * 1024 ** 3;

/** Default cap on the extended-header data of one entry (Go's maxSpecialFileSize). */
export const DEFAULT_MAX_PAX_BYTES = 1 << 20;

const TYPE_REG = '0';
const TYPE_REG_LEGACY = '\0';
const TYPE_DIR = '5';
const TYPE_PAX_LOCAL = 0x78; // 'x'
const TYPE_PAX_GLOBAL = 0x67; // 'g'
const TYPE_GNU_LONG_NAME = 0x4c; // 'L'
const TYPE_GNU_LONG_LINK = 0x4b; // 'K'
const TYPE_GNU_OLD_LONG_NAME = 0x4e; // 'N': an obsolete GNU long name; Go reads it as a file
const TYPE_GNU_SPARSE = 'S';
/** Types Go treats as header-only: no data follows, whatever the size field says. */
const HEADER_ONLY_TYPES: ReadonlySet<string> = new Set(['1', '2', '3', '4', '5', '6']);
/**
 * Global records that POSIX readers (GNU tar, libarchive) apply to every later entry and Go
 * ignores: they would change names or framing, or what a layer entry means (its times,
 * attributes, security descriptor, EAs, sparse map). A layer holding one means different
 * things to different readers, so it is refused.
 */
const GLOBAL_KEYS_REJECTED: ReadonlySet<string> = new Set([PAX_PATH, PAX_LINKPATH, PAX_SIZE, 'mtime', 'atime', 'ctime']);
const GLOBAL_PREFIXES_REJECTED: readonly string[] = ['MSWINDOWS.', 'LIBARCHIVE.', PAX_GNU_SPARSE_PREFIX];
/**
 * The PAX keys whose values anything here reads (the header fields, Windows metadata, sparse
 * maps): another key's long value (a `comment` of a megabyte) is not kept (see forEachPaxRecord).
 */
const READ_PAX_KEYS: ReadonlySet<string> = new Set([PAX_PATH, PAX_LINKPATH, PAX_SIZE, PAX_MTIME, PAX_ATIME, PAX_CTIME, PAX_UID, PAX_GID, PAX_UNAME, PAX_GNAME]);
const READ_PAX_PREFIXES: readonly string[] = ['MSWINDOWS.', 'LIBARCHIVE.', 'SCHILY.', PAX_GNU_SPARSE_PREFIX];
function isReadPaxKey(key: string): boolean {
  return READ_PAX_KEYS.has(key) || READ_PAX_PREFIXES.some((prefix) => key.startsWith(prefix));
}
const NS_PER_SECOND = 1_000_000_000n;
const DIGIT_ZERO = 0x30;
const DIGIT_SEVEN = 0x37;
const SPACE = 0x20;
const EMPTY = Buffer.alloc(0);
/**
 * The prototype of every `pax` object: empty, frozen, with no prototype of its own, so no
 * key (`constructor`, `__proto__`, …) resolves to anything but a record. Unlike objects made
 * by Object.create(null), which V8 keeps as hash tables, objects on this prototype keep
 * V8's fast layout: storing and reading the handful of records an entry has costs less.
 */
const PAX_PROTO: object = Object.freeze(Object.create(null) as object);
const NO_PAX: Readonly<Record<string, string>> = Object.freeze(Object.create(PAX_PROTO) as Record<string, string>);

/** Magic and version bytes at offsets 257..264, and the STAR trailer at 508. */
const MAGIC_OFFSET = FIELD.magic.offset;
const STAR_TRAILER_OFFSET = FIELD.starTrailer.offset;

function headerInvalid(offset: number, what: string, data: Record<string, string | number> = {}): WinLayerError {
  return createError('ERR_TAR_HEADER_INVALID', `tar header at byte ${offset}: ${what}`, { offset, ...data });
}

/** The input ended at `offset`; `entry` names the entry it ended in, when known. */
function truncated(offset: number, what: string, entry?: string): WinLayerError {
  if (entry === undefined) return createError('ERR_TAR_TRUNCATED', `tar archive: input ends at byte ${offset}, ${what}`, { offset });
  return createError('ERR_TAR_TRUNCATED', `${entry}: tar input ends at byte ${offset}, ${what}`, { offset, entry });
}

function decodeName(bytes: Buffer, offset: number, what: string, fromPax: boolean): string {
  if (!isUtf8(bytes)) {
    // A name that is not UTF-8 cannot become a Windows name faithfully.
    throw fromPax
      ? createError('ERR_PAX_RECORD_INVALID', `tar header at byte ${offset}: PAX ${what} is not valid UTF-8`, { offset })
      : headerInvalid(offset, `${what} is not valid UTF-8`);
  }
  return bytes.toString('utf8');
}

/** The string of a GNU long name/link entry: its data up to the first NUL (Go's parseString). */
function cString(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}

/** PAX headers from this size on are gathered into the reader's reused buffer. */
const PAX_SCRATCH_FROM = 16 * 1024;

/** `scratch` when it holds `n` bytes, else a buffer twice as large (at least `n`). */
function growScratch(scratch: Buffer | undefined, n: number): Buffer {
  return scratch !== undefined && scratch.length >= n ? scratch : Buffer.allocUnsafe(Math.max(n, 2 * (scratch?.length ?? 0)));
}

/** What the extended headers in front of one entry said. */
interface Extensions {
  pax: Record<string, string> | null;
  /** Raw values of `path` and `linkpath` in the local PAX header. */
  paxPath: Buffer | null;
  paxLinkpath: Buffer | null;
  longName: Buffer | null;
  longLink: Buffer | null;
  /** Data bytes of the extended headers so far. */
  bytes: number;
  /** A local record's key starts with GNU.sparse. */
  sparse: boolean;
}

/**
 * `error`, naming the entry whose header it is about (data.entry) when it does not and the
 * header's name can be read: the extended headers' name, else the name field as UTF-8 text
 * (a header refused for its checksum or a field names its entry as far as it can).
 */
function namingEntry(error: unknown, block: Buffer, ext: Extensions | null): unknown {
  if (!isWinLayerError(error) || error.data['entry'] !== undefined || (error.code !== 'ERR_TAR_HEADER_INVALID' && error.code !== 'ERR_ENTRY_TYPE_UNSUPPORTED')) return error;
  const text = (field: BlockField): string | undefined => {
    const end = block.indexOf(0, field.offset);
    const bytes = block.subarray(field.offset, end === -1 || end > field.offset + field.length ? field.offset + field.length : end);
    return bytes.length > 0 && isUtf8(bytes) ? bytes.toString('utf8') : undefined;
  };
  // A ustar header ("ustar\0") may hold the start of a long name in its prefix field.
  const m = MAGIC_OFFSET;
  const prefix = block[m] === 0x75 && block[m + 1] === 0x73 && block[m + 2] === 0x74 && block[m + 3] === 0x61 && block[m + 4] === 0x72 && block[m + 5] === 0 ? text(FIELD.prefix) : undefined;
  const field = text(FIELD.name);
  const name = (ext === null ? undefined : extensionsName(ext)) ?? (field === undefined ? undefined : prefix === undefined ? field : `${prefix}/${field}`);
  if (name === undefined || isAllZero(block)) return error;
  return createError(error.code, `${shownEntry(name)}: ${error.message}`, { ...error.data, entry: name }, error);
}

/** The entry's name as extended headers read so far give it (for errors), if they do. */
function extensionsName(ext: Extensions): string | undefined {
  const name = ext.longName !== null && ext.longName.length > 0 ? ext.longName : ext.paxPath;
  return name !== null && name.length > 0 && isUtf8(name) ? name.toString('utf8') : undefined;
}

function newExtensions(): Extensions {
  return { pax: null, paxPath: null, paxLinkpath: null, longName: null, longLink: null, bytes: 0, sparse: false };
}

/** A sparse entry's map, and the bytes the tar stores for it (its header's size). */
interface SparseEntry {
  spec: SparseSpec;
  stored: number;
}

type HeaderFormat = 'ustar' | 'gnu' | 'star';

/**
 * The input, pulled a chunk at a time. Only the current chunk is referenced; bytes that
 * straddle two chunks (a header cut by a chunk boundary) are copied together.
 */
class ByteSource {
  readonly #source: AsyncIterable<Uint8Array | string>;
  #iterator: AsyncIterator<Uint8Array | string> | null = null;
  #chunk: Buffer = EMPTY;
  #pos = 0;
  /** Absolute offset of `#chunk[0]`. */
  #base = 0;
  #ended = false;
  #closed = false;

  constructor(source: AsyncIterable<Uint8Array | string>) {
    this.#source = source;
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.#base + this.#pos;
  }

  /** Unread bytes of the current chunk. */
  get available(): number {
    return this.#chunk.length - this.#pos;
  }

  /** Loads the next non-empty chunk once the current one is used up; false at the end of the input. */
  async pull(): Promise<boolean> {
    if (this.#ended || this.#closed) return false;
    this.#iterator ??= this.#source[Symbol.asyncIterator]();
    for (;;) {
      const result = await this.#iterator.next(); // the input's own errors propagate unchanged
      if (this.#closed) return false;
      if (result.done === true) {
        this.#ended = true;
        return false;
      }
      const chunk = toBuffer(result.value);
      if (chunk.length === 0) continue;
      this.#base += this.#chunk.length;
      this.#chunk = chunk;
      this.#pos = 0;
      return true;
    }
  }

  /** `n` bytes as a view when the current chunk holds them all. */
  takeNow(n: number): Buffer | undefined {
    if (this.#chunk.length - this.#pos < n) return undefined;
    const out = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Up to `n` (> 0) bytes of the current chunk as a view; empty when it is used up. */
  takeSomeNow(n: number): Buffer {
    const end = Math.min(this.#chunk.length, this.#pos + n);
    const out = this.#chunk.subarray(this.#pos, end);
    this.#pos = end;
    return out;
  }

  /**
   * Exactly `n` bytes (copied together when they span chunks, into `into` when it is large
   * enough), or the count there was before the input ended.
   */
  async take(n: number, into?: Buffer): Promise<Buffer | number> {
    const now = this.takeNow(n);
    if (now !== undefined) return now;
    const out = into !== undefined && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (this.available === 0 && !(await this.pull())) return got;
      const part = this.takeSomeNow(n - got);
      out.set(part, got);
      got += part.length;
    }
    return out;
  }

  /** Discards up to `n` bytes; returns how many there were. */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      if (this.available === 0 && !(await this.pull())) break;
      done += this.takeSomeNow(n - done).length;
    }
    return done;
  }

  /** Stops reading: returning the iterator destroys a Node stream. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunk = EMPTY;
    this.#pos = 0;
    // An async generator that is busy finishes its step first, so do not wait for it.
    const returned = this.#iterator?.return?.();
    if (returned !== undefined) returned.catch(() => undefined);
  }
}

type BodyState = 'fresh' | 'reading' | 'abandoned' | 'done' | 'stale';

/** The body of one entry: a one-shot view over the input. */
class EntryBody implements AsyncIterable<Buffer> {
  readonly #input: ByteSource;
  /** The entry's name, for errors. */
  readonly #entry: string;
  /** Data bytes not yet handed out or skipped. */
  #remaining: number;
  /** Padding still to skip after the data. */
  #padding: number;
  #state: BodyState;

  constructor(input: ByteSource, size: number, entry: string) {
    this.#input = input;
    this.#entry = entry;
    this.#remaining = size;
    this.#padding = blockPaddingLength(size);
    this.#state = size === 0 ? 'done' : 'fresh';
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (!this.#begin()) return { next: async () => ({ done: true, value: undefined }) };
    return {
      next: async () => {
        const chunk = this.#state === 'reading' ? await this.#read() : undefined;
        return chunk === undefined ? { done: true, value: undefined } : { done: false, value: chunk };
      },
      // The rest of the body is discarded when the next entry is asked for.
      return: async () => {
        if (this.#state === 'reading') this.#state = 'abandoned';
        return { done: true, value: undefined };
      },
    };
  }

  /**
   * Hands the whole data to `write`, chunk by chunk, without an iterator: synchronously
   * while the input has the bytes (a small file is one call). Like a full iteration.
   * When `write` returns a promise, the next chunk waits for it. Returns undefined when
   * everything was handed over at once (a small file: no promise to make and wait for).
   */
  forEach(write: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void> | undefined {
    if (!this.#begin()) return undefined;
    while (this.#remaining > 0) {
      if (this.#input.available === 0) return this.#forEachRest(write);
      const wait = write(this.#take());
      if (wait !== undefined) return wait.then(() => this.#forEachRest(write));
    }
    this.#state = 'done';
    return undefined;
  }

  async #forEachRest(write: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void> {
    while (this.#remaining > 0) {
      if (this.#input.available === 0) await this.#fill();
      const wait = write(this.#take());
      if (wait !== undefined) await wait;
    }
    this.#state = 'done';
  }

  /** Starts reading a fresh body; false when there is nothing to read (read, or empty). */
  #begin(): boolean {
    if (this.#state === 'stale') {
      throw createError('ERR_ARGUMENT_INVALID', 'tar entry body: read after the reader moved on to the next entry');
    }
    if (this.#state !== 'fresh') return false;
    this.#state = 'reading';
    return true;
  }

  async #read(): Promise<Buffer | undefined> {
    if (this.#remaining === 0) {
      this.#state = 'done';
      return undefined;
    }
    if (this.#input.available === 0) await this.#fill();
    return this.#take();
  }

  /** Pulls the next input chunk; the input ending inside the data is truncation. */
  async #fill(): Promise<void> {
    const input = this.#input;
    if (!(await input.pull())) throw truncated(input.offset, `inside its data, ${this.#remaining} bytes short`, this.#entry);
  }

  /** The next piece of data the input holds (it holds some). */
  #take(): Buffer {
    const chunk = this.#input.takeSomeNow(this.#remaining);
    this.#remaining -= chunk.length;
    return chunk;
  }

  /**
   * Discards what is left of the data and the padding; afterwards the body is stale.
   * Undefined when the input held all of it (nothing to wait for), else a promise.
   */
  drain(): Promise<void> | undefined {
    if (this.#state !== 'done') this.#state = 'stale';
    const rest = this.#remaining + this.#padding;
    if (rest === 0) return undefined;
    this.#remaining = 0;
    this.#padding = 0;
    return this.#input.takeNow(rest) === undefined ? this.#skipInput(rest) : undefined;
  }

  async #skipInput(rest: number): Promise<void> {
    const input = this.#input;
    if ((await input.skip(rest)) !== rest) throw truncated(input.offset, 'inside its data or its padding', this.#entry);
  }

  /** Drains the body but lets it still be iterated (empty) afterwards; undefined as drain(). */
  skip(): Promise<void> | undefined {
    const drained = this.drain();
    if (drained === undefined) {
      this.#settleSkipped();
      return undefined;
    }
    return drained.then(() => this.#settleSkipped());
  }

  #settleSkipped(): void {
    if (this.#state === 'stale') this.#state = 'done';
  }

  /** The reader was closed: the data is gone, so reading it is a caller error. */
  invalidate(): void {
    if (this.#state !== 'done') this.#state = 'stale';
  }
}

/** Zeros for the holes of sparse files: never written to, handed out as views. */
const ZEROS = Buffer.alloc(64 * 1024);

/**
 * The body of a sparse entry: its logical content, holes as zeros, from the fragments the
 * tar stores (sparse.ts). Reads what the tar holds after the header in order: an old GNU
 * header's extension blocks, then the stored data (a PAX 1.0 map first), then padding.
 */
class SparseBody implements AsyncIterable<Buffer> {
  readonly #input: ByteSource;
  readonly #spec: SparseSpec;
  readonly #stored: number;
  readonly #size: number;
  readonly #entry: string;
  readonly #maxMapBytes: number;
  /** The stored data (and padding), once what comes before it was read. */
  #data: EntryBody | undefined;
  #map: SparseMap | undefined;
  #started = false;
  #dead = false;

  /** Counts holes the header could not tell (a PAX 1.0 map's own blocks are not data); throws past the cap. */
  readonly #countHoles: (bytes: number) => void;

  constructor(input: ByteSource, spec: SparseSpec, stored: number, size: number, entry: string, maxMapBytes: number, countHoles: (bytes: number) => void) {
    this.#countHoles = countHoles;
    this.#input = input;
    this.#spec = spec;
    this.#stored = stored;
    this.#size = size;
    this.#entry = entry;
    this.#maxMapBytes = maxMapBytes;
    if (spec.kind === 'map') {
      this.#data = new EntryBody(input, stored, entry);
      this.#map = spec.map;
    }
  }

  /** Reads the extension blocks of an old GNU header, then makes the data's body. */
  async #extensions(): Promise<EntryBody> {
    if (this.#data !== undefined) return this.#data;
    const map = this.#spec.kind === 'extended' ? [...this.#spec.map] : [];
    let bytes = 0;
    for (let more = this.#spec.kind === 'extended'; more; ) {
      const offset = this.#input.offset;
      const block = await this.#input.take(BLOCK_SIZE);
      if (typeof block === 'number') throw truncated(this.#input.offset, 'inside its sparse header extension', this.#entry);
      bytes += BLOCK_SIZE;
      if (bytes > this.#maxMapBytes) throw createError('ERR_METADATA_TOO_LARGE', `${this.#entry}: sparse map of more than ${this.#maxMapBytes} bytes`, { entry: this.#entry, limit: this.#maxMapBytes });
      more = readOldGnuFragments(block, OLD_GNU_EXTENSION, map, (at) => safeNumber(numericField(block, { offset: at, length: SPARSE_ENTRY_FIELD }, offset, 'sparse map'), offset));
    }
    if (this.#spec.kind === 'extended') {
      checkSparseMap(map, this.#size, this.#stored, this.#entry);
      this.#map = map;
    }
    this.#data = new EntryBody(this.#input, this.#stored, this.#entry);
    return this.#data;
  }

  /** The stored data's chunks, and what is left of the last one taken. */
  #storedChunks: AsyncIterator<Buffer> | undefined;
  #pending: Buffer = EMPTY;

  async #nextStored(): Promise<Buffer> {
    const r = await (this.#storedChunks as AsyncIterator<Buffer>).next();
    if (r.done === true) throw sparseInvalid(this.#entry, 'places more bytes than the entry stores');
    return r.value;
  }

  /**
   * Reads what comes before the fragments (extension blocks; a PAX 1.0 map) and checks the
   * map: the bytes left of the stored data are the fragments'.
   */
  async #prepare(): Promise<SparseMap> {
    const data = await this.#extensions();
    this.#storedChunks ??= data[Symbol.asyncIterator]();
    let map = this.#map;
    let pending = this.#pending;
    let storedLeft = this.#stored;
    if (map === undefined) {
      // PAX 1.0: the map is the data's first blocks.
      const parser = new MapInData(this.#entry);
      const block = Buffer.alloc(BLOCK_SIZE);
      for (let filled = 0, mapBytes = 0; ; ) {
        if (pending.length === 0) pending = await this.#nextStored();
        const part = pending.subarray(0, BLOCK_SIZE - filled);
        pending = pending.subarray(part.length);
        block.set(part, filled);
        filled += part.length;
        if (filled < BLOCK_SIZE) continue;
        filled = 0;
        mapBytes += BLOCK_SIZE;
        if (mapBytes > this.#maxMapBytes) throw createError('ERR_METADATA_TOO_LARGE', `${this.#entry}: sparse map of more than ${this.#maxMapBytes} bytes`, { entry: this.#entry, limit: this.#maxMapBytes });
        if (!parser.feed(block)) continue;
        map = parser.map;
        storedLeft -= mapBytes;
        // The header counted the holes as if the map's blocks were data.
        this.#countHoles(Math.max(0, this.#size - storedLeft) - Math.max(0, this.#size - this.#stored));
        checkSparseMap(map, this.#size, storedLeft, this.#entry);
        break;
      }
      this.#map = map;
    }
    this.#pending = pending;
    return map;
  }

  async *#chunks(): AsyncGenerator<Buffer> {
    const map = await this.#prepare();
    let pending = this.#pending;
    let at = 0;
    for (let i = 0; i <= map.length; i += 2) {
      const offset = i < map.length ? (map[i] as number) : this.#size;
      for (let hole = offset - at; hole > 0; hole -= ZEROS.length) yield ZEROS.subarray(0, Math.min(hole, ZEROS.length));
      at = offset;
      if (i === map.length) break;
      for (let need = map[i + 1] as number; need > 0; ) {
        if (pending.length === 0) pending = await this.#nextStored();
        const part = pending.subarray(0, need);
        pending = pending.subarray(part.length);
        need -= part.length;
        at += part.length;
        yield part;
      }
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#started || this.#dead) return { next: async () => ({ done: true, value: undefined }) };
    this.#started = true;
    return this.#chunks();
  }

  forEach(write: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void> | undefined {
    if (this.#started || this.#dead) return undefined;
    return (async () => {
      for await (const chunk of this) {
        const wait = write(chunk);
        if (wait !== undefined) await wait;
      }
    })();
  }

  /**
   * Discards what is left; afterwards the body reads empty. A map not read yet is read and
   * checked first (extension blocks, a PAX 1.0 map), as Go reads it before the entry:
   * a skipped entry's bad map is an error too.
   */
  drain(): Promise<void> | undefined {
    this.#dead = true;
    if (this.#map !== undefined && this.#data !== undefined) return this.#data.drain();
    return this.#prepare().then(() => (this.#data as EntryBody).drain());
  }

  skip(): Promise<void> | undefined {
    return this.drain();
  }

  invalidate(): void {
    this.#dead = true;
    this.#data?.invalidate();
  }
}

/** A number that a safe integer holds: fragment offsets and sizes past 2^53 are refused. */
function safeNumber(n: number | bigint, offset: number): number {
  if (typeof n === 'bigint' || n < 0 || !Number.isSafeInteger(n)) throw headerInvalid(offset, `sparse map number ${String(n)} is out of range`);
  return n;
}

/** A TarEntry whose body belongs to a reader. */
class ReaderEntry implements TarEntry {
  readonly header: TarHeader;
  readonly body: EntryBody | SparseBody;

  constructor(header: TarHeader, body: EntryBody | SparseBody) {
    this.header = header;
    this.body = body;
  }
}

/** Frames one input into TarEntry values. */
class TarReader {
  readonly #input: ByteSource;
  readonly #maxPaxBytes: number;
  /** Where large PAX headers are gathered (see #readExtensionRest). */
  #paxScratch: Buffer | undefined;
  readonly #maxHoleBytes: number;
  /** Bytes of holes of the sparse files so far. */
  #holeBytes = 0;
  #current: EntryBody | SparseBody | null = null;
  #finished = false;
  #closed = false;
  /** Extended headers read for the entry being framed. */
  #ext: Extensions | null = null;
  /** An input wait nextNow() started (the previous entry's rest, an extended header, the end); next() awaits it. */
  #pending: Promise<void> | undefined;

  constructor(source: AsyncIterable<Uint8Array | string>, options: ReadTarOptions) {
    const max = options.maxPaxBytes ?? DEFAULT_MAX_PAX_BYTES;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`maxPaxBytes\` to be an integer >= 0, got \`${String(max)}\` (${typeof max})`);
    }
    this.#input = new ByteSource(source);
    this.#maxPaxBytes = max;
    this.#maxHoleBytes = options.maxSparseHoleBytes ?? DEFAULT_MAX_SPARSE_HOLE_BYTES;
  }

  /**
   * The next entry when the input already holds it, with what is left of the previous one
   * (nearly always, for a layer of small files: no promise is made); null at the end of
   * the archive; undefined when that needs input: then next() goes on from where this
   * stopped.
   */
  nextNow(): ReaderEntry | null | undefined {
    if (this.#pending !== undefined) return undefined;
    if (this.#current !== null) {
      const body = this.#current;
      this.#current = null;
      const drained = body.drain();
      if (drained !== undefined) {
        this.#wait(drained);
        return undefined;
      }
    }
    if (this.#finished || this.#closed) return null;
    const input = this.#input;
    for (;;) {
      const offset = input.offset;
      const block = input.takeNow(BLOCK_SIZE);
      if (block === undefined) return undefined;
      const framed = this.#frame(block, offset);
      if (framed !== undefined || this.#pending !== undefined) return framed;
    }
  }

  /** The next entry, or null at the end of the archive. */
  async next(): Promise<ReaderEntry | null> {
    for (;;) {
      if (this.#pending !== undefined) {
        const pending = this.#pending;
        this.#pending = undefined;
        await pending;
      }
      const now = this.nextNow();
      if (now !== undefined) return now;
      if (this.#pending !== undefined) continue;
      // A header block that spans input chunks, or is not there yet.
      const offset = this.#input.offset;
      const framed = this.#frame(await this.#takeBlock(this.#ext), offset);
      if (framed !== undefined) return framed;
    }
  }

  /**
   * Keeps `wait` for next() to await. Its failure is marked handled here: a reader closed
   * before next() came (the caller stopped) must not leave an unhandled rejection; next()
   * still sees the failure when it awaits.
   */
  #wait(wait: Promise<void>): void {
    wait.catch(() => undefined);
    this.#pending = wait;
  }

  /**
   * One header block read at `offset`: the entry it starts, or undefined when headers for
   * that entry follow (extended headers) or the input must be waited for (#pending).
   */
  #frame(block: Buffer, offset: number): ReaderEntry | undefined {
    try {
      return this.#frameOf(block, offset);
    } catch (error) {
      throw namingEntry(error, block, this.#ext);
    }
  }

  #frameOf(block: Buffer, offset: number): ReaderEntry | undefined {
    if (isAllZero(block)) {
      if (this.#ext !== null) throw truncated(offset, 'after extended headers, without their entry', extensionsName(this.#ext));
      this.#wait(this.#finishArchive(offset));
      return undefined;
    }
    const format = checkBlock(block, offset);
    const flag = block[FIELD.typeflag.offset] ?? 0;
    if (flag === TYPE_PAX_GLOBAL) {
      // Go hands a global header to its caller as an entry of its own and forgets the local
      // headers before it; other readers (GNU tar, tar-stream, node-tar) keep them for the
      // next entry, whose name, size and so framing then differ between the two.
      if (this.#ext !== null) throw headerInvalid(offset, 'a global PAX header between a local extended header and its entry: tar readers disagree on which entry the local header belongs to');
      const read = this.#readExtension(block, offset, flag, newExtensions());
      if (read !== undefined) this.#wait(read);
      return undefined;
    }
    if (flag === TYPE_PAX_LOCAL || flag === TYPE_GNU_LONG_NAME || flag === TYPE_GNU_LONG_LINK) {
      this.#ext ??= newExtensions();
      const read = this.#readExtension(block, offset, flag, this.#ext);
      if (read !== undefined) this.#wait(read);
      return undefined;
    }
    if (flag === TYPE_GNU_OLD_LONG_NAME) {
      throw createError('ERR_ENTRY_TYPE_UNSUPPORTED', `tar header at byte ${offset}: old GNU long-name type 'N' is not supported`, { offset });
    }
    const header = this.#decode(block, offset, format, this.#ext);
    this.#ext = null;
    const sparse = this.#sparse;
    if (sparse !== undefined) {
      this.#sparse = undefined;
      const body = new SparseBody(this.#input, sparse.spec, sparse.stored, header.size, header.name, this.#maxPaxBytes, (bytes) => this.#countHoles(bytes, header.name));
      this.#current = body;
      return new ReaderEntry(header, body);
    }
    const body = new EntryBody(this.#input, header.size, header.name);
    this.#current = body;
    return new ReaderEntry(header, body);
  }

  /** Stops everything; safe to call more than once and from `finally`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current?.invalidate();
    this.#input.close();
  }

  /** One header block that spans chunks or is not there yet; `ext`: the extended headers read before it. */
  async #takeBlock(ext: Extensions | null): Promise<Buffer> {
    const input = this.#input;
    const offset = input.offset;
    const block = await input.take(BLOCK_SIZE);
    if (typeof block !== 'number') return block;
    const entry = ext === null ? undefined : extensionsName(ext);
    if (block > 0) throw truncated(offset + block, 'inside a header block', entry);
    if (ext !== null) throw truncated(offset, 'after extended headers, without their entry', entry);
    throw truncated(offset, 'without the end-of-archive blocks');
  }

  /**
   * After the first end-of-archive block, the rest of the input must be zeros. Go stops
   * reading at the end-of-archive, so entries after it would be invisible to Go-based tools.
   * Zeros past the two end-of-archive blocks may be any number (padding to a record, or
   * past it), as Go never reads them; one block and part of the second is a cut archive,
   * as in Go.
   */
  async #finishArchive(zeroAt: number): Promise<void> {
    const input = this.#input;
    let trailing = BLOCK_SIZE;
    for (;;) {
      if (input.available === 0 && !(await input.pull())) break;
      const at = input.offset;
      const part = input.takeSomeNow(Number.MAX_SAFE_INTEGER);
      if (!isAllZero(part)) {
        const first = at + part.findIndex((b) => b !== 0);
        const blockStart = zeroAt + Math.floor((first - zeroAt) / BLOCK_SIZE) * BLOCK_SIZE;
        throw headerInvalid(blockStart, 'data after the end-of-archive block');
      }
      trailing += part.length;
    }
    if (trailing > BLOCK_SIZE && trailing < 2 * BLOCK_SIZE) throw truncated(zeroAt + trailing, 'inside the second end-of-archive block');
    this.#finished = true;
  }

  /** Reads one extended header's data and checks it as Go would. */
  #readExtension(block: Buffer, offset: number, flag: number, ext: Extensions): Promise<void> | undefined {
    // A number, but for sizes past 2^53 (a BigInt then, refused just below).
    const size = numericField(block, FIELD.size, offset, 'extended header size');
    const max = this.#maxPaxBytes;
    if (size < 0) throw headerInvalid(offset, 'extended header has an invalid size field');
    if (size > max - ext.bytes) {
      const bytes = BigInt(ext.bytes) + BigInt(size);
      throw createError('ERR_METADATA_TOO_LARGE', `tar header at byte ${offset}: ${bytes} bytes of extended headers, more than ${max}`, {
        offset, bytes: Number(bytes), limit: max,
      });
    }
    const length = Number(size);
    ext.bytes += length;
    const input = this.#input;
    const padding = blockPaddingLength(length);
    // At once when the input holds the data and its padding (nearly always): no promise.
    const data = input.takeNow(length);
    if (data !== undefined && (padding === 0 || input.takeNow(padding) !== undefined)) {
      this.#applyExtension(data, offset, flag, ext);
      return undefined;
    }
    return this.#readExtensionRest(data, length, padding, offset, flag, ext);
  }

  async #readExtensionRest(taken: Buffer | undefined, length: number, padding: number, offset: number, flag: number, ext: Extensions): Promise<void> {
    const input = this.#input;
    let data = taken;
    // Large PAX records (a 64 KB security descriptor is 87 KB of base64) are gathered in one
    // buffer reused from entry to entry: a new one each time, outside V8's heap, waited for a
    // full collection, and 1,000 such entries took an import past 150 MiB. What the entry
    // keeps of them (its path, its link path) is copied out.
    const scratch = flag === TYPE_PAX_LOCAL && length >= PAX_SCRATCH_FROM ? (this.#paxScratch = growScratch(this.#paxScratch, length)) : undefined;
    if (data === undefined) {
      const read = await input.take(length, scratch);
      if (typeof read === 'number') throw truncated(input.offset, 'inside an extended header', extensionsName(ext));
      data = read;
    }
    if (padding > 0 && input.takeNow(padding) === undefined && (await input.skip(padding)) !== padding) {
      throw truncated(input.offset, 'inside an extended header', extensionsName(ext));
    }
    this.#applyExtension(data, offset, flag, ext);
    if (scratch !== undefined) {
      if (ext.paxPath !== null) ext.paxPath = Buffer.from(ext.paxPath);
      if (ext.paxLinkpath !== null) ext.paxLinkpath = Buffer.from(ext.paxLinkpath);
    }
  }

  /** An extended header's data, checked as Go checks it, into `ext`. */
  #applyExtension(data: Buffer, offset: number, flag: number, ext: Extensions): void {
    const subject = offset; // see PaxSubject
    if (flag === TYPE_PAX_LOCAL) {
      // This header's own records only: global ones never apply, as in Go (see below).
      const pax: Record<string, string> = Object.create(PAX_PROTO) as Record<string, string>;
      ext.paxPath = null;
      ext.paxLinkpath = null;
      ext.sparse = false;
      // GNU sparse 0.0: offset and numbytes records in turns, gathered into a map as Go does.
      let sparse00: string[] | undefined;
      forEachPaxRecord(data, subject, (key, value, start, end) => {
        if (key === PAX_SPARSE_OFFSET || key === PAX_SPARSE_NUMBYTES) {
          sparse00 ??= [];
          if ((key === PAX_SPARSE_OFFSET) !== (sparse00.length % 2 === 0) || value.includes(',')) {
            throw createError('ERR_PAX_RECORD_INVALID', `${paxSubjectText(subject)}: ${key} out of turn in a sparse map`, { offset, key });
          }
          sparse00.push(value);
        } else {
          pax[key] = value;
        }
        if (key === PAX_SPARSE_NAME && !isUtf8(data.subarray(start, end))) {
          // The name the entry takes, as `path` is: one that is not UTF-8 is refused alike.
          throw createError('ERR_PAX_RECORD_INVALID', `${paxSubjectText(subject)}: PAX ${key} is not valid UTF-8`, { offset, key });
        }
        if (key === PAX_PATH) ext.paxPath = data.subarray(start, end);
        else if (key === PAX_LINKPATH) ext.paxLinkpath = data.subarray(start, end);
        else if (key.startsWith(PAX_GNU_SPARSE_PREFIX)) ext.sparse = true;
      }, isReadPaxKey);
      if (sparse00 !== undefined) pax[PAX_SPARSE_MAP] = sparse00.join(',');
      ext.pax = pax;
    } else if (flag === TYPE_PAX_GLOBAL) {
      // Checked, then dropped: Go hands a global header to its caller and applies it to
      // nothing, and the records allowed here mean nothing to a layer entry.
      forEachPaxRecord(data, subject, (key) => {
        if (GLOBAL_KEYS_REJECTED.has(key) || GLOBAL_PREFIXES_REJECTED.some((prefix) => key.startsWith(prefix))) {
          throw createError('ERR_PAX_RECORD_INVALID', `${paxSubjectText(subject)}: global PAX record "${key}" would change later entries in some readers but not in Go`, {
            offset, key,
          });
        }
      });
    } else if (flag === TYPE_GNU_LONG_NAME) {
      ext.longName = cString(data);
    } else {
      ext.longLink = cString(data);
    }
  }

  /** Adds `bytes` to the holes of the tar's sparse files; ERR_SPARSE_UNSUPPORTED past the cap. */
  #countHoles(bytes: number, entry: string): void {
    this.#holeBytes += bytes;
    if (this.#holeBytes > this.#maxHoleBytes) {
      throw createError('ERR_SPARSE_UNSUPPORTED', `${entry}: the sparse files so far hold ${this.#holeBytes} bytes of holes, more than the ${this.#maxHoleBytes} written out as zeros`, {
        entry,
        holeBytes: this.#holeBytes,
        limit: this.#maxHoleBytes,
      });
    }
  }

  /** What #decode found beside the header it returned: set for a sparse entry only. */
  #sparse: SparseEntry | undefined;

  #decode(block: Buffer, offset: number, format: HeaderFormat, ext: Extensions | null): TarHeader {
    // Every numeric field must parse as Go parses it, even the ones we do not report.
    const mode = numericField(block, FIELD.mode, offset, 'mode');
    numericField(block, FIELD.uid, offset, 'uid');
    numericField(block, FIELD.gid, offset, 'gid');
    const headerSize = numericField(block, FIELD.size, offset, 'size');
    const headerSeconds = numericField(block, FIELD.mtime, offset, 'mtime');
    numericField(block, FIELD.devmajor, offset, 'devmajor');
    numericField(block, FIELD.devminor, offset, 'devminor');

    const pax = ext?.pax ?? NO_PAX;
    const paxValue = (key: string): string | undefined => {
      const value = pax[key];
      return value === undefined || value === '' ? undefined : value; // Go ignores empty values
    };

    // A GNU header's access and change times, read as Go reads them: when they do not
    // parse, they are dropped, and the field, if ASCII, is the USTAR prefix that Go's
    // writers before 1.8 put there (golang.org/issue/12594).
    let headerAtime: bigint | undefined;
    let headerCtime: bigint | undefined;
    let nameFormat = format;
    if (format === 'gnu') {
      const at = (field: BlockField): bigint | undefined =>
        block[field.offset] === 0 ? undefined : BigInt(numericField(block, field, offset, 'time')) * NS_PER_SECOND;
      try {
        headerAtime = at(FIELD.gnuAtime);
        headerCtime = at(FIELD.gnuCtime);
      } catch {
        headerAtime = headerCtime = undefined;
        if (asciiFieldText(block, FIELD.prefix) !== undefined) nameFormat = 'ustar';
      }
    } else if (format === 'star') {
      headerAtime = BigInt(numericField(block, FIELD.starAtime, offset, 'atime')) * NS_PER_SECOND;
      headerCtime = BigInt(numericField(block, FIELD.starCtime, offset, 'ctime')) * NS_PER_SECOND;
    }
    let name = resolveName(block, nameFormat, offset, FIELD.name, PAX_PATH, ext?.paxPath ?? null, ext?.longName ?? null, 'name');
    const linkname = resolveName(block, format, offset, FIELD.linkname, PAX_LINKPATH, ext?.paxLinkpath ?? null, ext?.longLink ?? null, 'link name');

    const rawType = String.fromCharCode(block[FIELD.typeflag.offset] ?? 0);
    let typeflag = rawType === TYPE_REG_LEGACY ? (name.endsWith('/') ? TYPE_DIR : TYPE_REG) : rawType;
    // A sparse file (see sparse.ts): its header's size is what the tar stores, its logical
    // size comes from the sparse records; an old GNU one is a regular file like the others.
    let sparseSpec: SparseSpec | undefined;
    let logicalSize: number | undefined;
    if (typeflag === TYPE_GNU_SPARSE) {
      if (format !== 'gnu') throw headerInvalid(offset, `a sparse entry (type 'S') in a ${format} header`, { entry: name });
      const map: SparseMap = [];
      const extended = readOldGnuFragments(block, OLD_GNU_SPARSE, map, (at) => safeNumber(numericField(block, { offset: at, length: SPARSE_ENTRY_FIELD }, offset, 'sparse map'), offset));
      logicalSize = safeNumber(numericField(block, { offset: OLD_GNU_SPARSE.realSize, length: SPARSE_ENTRY_FIELD }, offset, 'sparse real size'), offset);
      sparseSpec = extended ? { kind: 'extended', map } : { kind: 'map', map };
      typeflag = TYPE_REG;
    } else if (ext?.sparse === true) {
      sparseSpec = paxSparseSpec(ext.pax ?? NO_PAX, name);
      if (sparseSpec !== undefined) {
        name = ext.pax?.[PAX_SPARSE_NAME] || name;
        logicalSize = paxSparseSize(ext.pax ?? NO_PAX, name);
        if (typeflag !== TYPE_REG) throw headerInvalid(offset, `a sparse entry of type '${typeflag}'`, { entry: name });
      }
    }

    const sizeText = paxValue(PAX_SIZE);
    let size = headerSize;
    if (sizeText !== undefined) {
      const parsed = parseGoInt64(sizeText);
      if (parsed === undefined) throw paxInvalid(name, PAX_SIZE, sizeText);
      size = parsed;
    }
    if (size < 0 || size > Number.MAX_SAFE_INTEGER) throw headerInvalid(offset, `size ${size} is out of range`, { entry: name });
    if (!Number.isSafeInteger(mode)) throw headerInvalid(offset, `mode ${mode} is out of range`);
    const dataSize = Number(size);
    const headerOnly = HEADER_ONLY_TYPES.has(typeflag);
    if (headerOnly && dataSize > 0) {
      // E.g. a symlink with a size: Go reads no data, GNU tar, tar-stream and node-tar do.
      // A directory too: Go and GNU tar read none, tar-stream and bsdtar (given the size in
      // a PAX record) take the next blocks for its data, so the entry there is theirs unseen.
      throw headerInvalid(offset, `type '${typeflag}' with size ${dataSize}: tar readers disagree on whether data follows`, { entry: name });
    }
    if (typeflag === TYPE_REG && name.endsWith('/')) {
      // Go reads a regular file (sparse too) named `x/` as one; bsdtar and node-tar take
      // it for a directory and its data blocks for the next headers, entries only they see.
      throw headerInvalid(offset, `a regular file named with a trailing slash: tar readers disagree on whether it is a directory and whether data follows`, { entry: name });
    }

    if (pax !== NO_PAX) {
      for (const key of [PAX_UID, PAX_GID]) {
        const text = paxValue(key);
        if (text !== undefined && parseGoInt64(text) === undefined) throw paxInvalid(name, key, text);
      }
    }
    const time = (key: string): bigint | undefined => {
      const text = paxValue(key);
      if (text === undefined) return undefined;
      try {
        return parsePaxTime(text);
      } catch (err) {
        throw createError('ERR_PAX_RECORD_INVALID', `${name}: PAX ${key} "${text}" is not a PAX time`, { entry: name, key }, err);
      }
    };
    const header: TarHeader = {
      name,
      typeflag,
      size: headerOnly ? 0 : (logicalSize ?? dataSize),
      mode: Number(mode),
      linkname,
      mtime: time(PAX_MTIME) ?? BigInt(headerSeconds) * NS_PER_SECOND,
      pax,
    };
    // PAX records win over a GNU or STAR header's own times.
    const atime = time(PAX_ATIME) ?? headerAtime;
    if (atime !== undefined) header.atime = atime;
    const ctime = time(PAX_CTIME) ?? headerCtime;
    if (ctime !== undefined) header.ctime = ctime;
    if (sparseSpec !== undefined) {
      if (sparseSpec.kind === 'map') checkSparseMap(sparseSpec.map, header.size, dataSize, name);
      this.#countHoles(Math.max(0, header.size - dataSize), name);
      this.#sparse = { spec: sparseSpec, stored: dataSize };
    }
    return header;
  }
}

function paxInvalid(name: string, key: string, value: string): WinLayerError {
  return createError('ERR_PAX_RECORD_INVALID', `${name}: PAX ${key} "${value}" is not a decimal int64`, { entry: name, key });
}

/**
 * A numeric field as Go's parser reads it, as a number or a bigint beyond 2^53 (base-256
 * fields can hold int64). Plain octal digits, the common case, are read without a bigint.
 */
function numericField(block: Buffer, field: BlockField, offset: number, label: string): number | bigint {
  const end = field.offset + field.length;
  let i = field.offset;
  let x = 0;
  while (i < end) {
    const c = block[i] ?? 0;
    if (c < DIGIT_ZERO || c > DIGIT_SEVEN) break;
    x = x * 8 + (c - DIGIT_ZERO);
    i++;
  }
  if (i > field.offset && (i === end || block[i] === 0 || block[i] === SPACE)) {
    // Digits from the first byte, then a NUL or space: Go trims trailing NULs and spaces,
    // then reads up to the first NUL; a space before later digits fails there.
    let j = i;
    while (j < end && (block[j] === SPACE || block[j] === 0)) j++;
    if (j === end || block[i] === 0) return x;
  }
  const value = readNumericField(block, field);
  if (value === undefined) throw headerInvalid(offset, `${label} field is not a valid number`);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** Checks the checksum (strictly octal, unsigned or signed sum, as Go) and the format magic. */
function checkBlock(block: Buffer, offset: number): HeaderFormat {
  if (!checksumMatches(block)) throw headerInvalid(offset, 'checksum mismatch');
  // "ustar\0" + "00" (USTAR/PAX; STAR adds "tar\0" at 508), or "ustar " + " \0" (GNU).
  const m = MAGIC_OFFSET;
  if (block[m] === 0x75 && block[m + 1] === 0x73 && block[m + 2] === 0x74 && block[m + 3] === 0x61 && block[m + 4] === 0x72) {
    if (block[m + 5] === 0) {
      const t = STAR_TRAILER_OFFSET;
      return block[t] === 0x74 && block[t + 1] === 0x61 && block[t + 2] === 0x72 && block[t + 3] === 0 ? 'star' : 'ustar';
    }
    if (block[m + 5] === SPACE && block[m + 6] === SPACE && block[m + 7] === 0) return 'gnu';
  }
  throw headerInvalid(offset, 'unknown header format');
}

/**
 * Name or link name with Go's precedence: the GNU long name wins over a PAX record, which
 * wins over the header fields. Readers that let PAX win would see another name, so the two
 * must not disagree.
 */
function resolveName(
  block: Buffer, format: HeaderFormat, offset: number, field: BlockField, paxKey: string,
  paxRaw: Buffer | null, long: Buffer | null, what: string,
): string {
  const fromPax = paxRaw !== null && paxRaw.length > 0 ? paxRaw : null;
  const fromLong = long !== null && long.length > 0 ? long : null;
  if (fromPax !== null && fromLong !== null && !fromPax.equals(fromLong)) {
    throw headerInvalid(offset, `GNU long ${what} and PAX ${paxKey} disagree`);
  }
  if (fromLong !== null) return decodeName(fromLong, offset, what, false);
  if (fromPax !== null) return decodeName(fromPax, offset, what, true);
  const prefixField = field === FIELD.name && format !== 'gnu' ? (format === 'star' ? FIELD.starPrefix : FIELD.prefix) : undefined;
  if (prefixField === undefined || block[prefixField.offset] === 0) {
    const ascii = asciiFieldText(block, field);
    if (ascii !== undefined) return ascii;
  }
  let bytes = readStringField(block, field);
  if (prefixField !== undefined) {
    const prefix = readStringField(block, prefixField);
    if (prefix.length > 0) bytes = Buffer.concat([prefix, Buffer.from('/'), bytes]);
  }
  const text = decodeName(bytes, offset, what, false);
  if (text.includes('\0')) throw headerInvalid(offset, `${what} contains NUL`);
  return text;
}

/**
 * A string field up to its first NUL when every byte before it is ASCII (which reads the
 * same as UTF-8 or Latin-1), else undefined. Most names and nearly every empty link name
 * and prefix take this path: no sub-buffer, no UTF-8 check, one Latin-1 slice.
 */
function asciiFieldText(block: Buffer, field: BlockField): string | undefined {
  const start = field.offset;
  const end = start + field.length;
  let i = start;
  let bits = 0;
  while (i < end) {
    const c = block[i] as number;
    if (c === 0) break;
    bits |= c;
    i++;
  }
  if (bits >= 0x80) return undefined;
  return i === start ? '' : block.toString('latin1', start, i);
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  const bytes = tarChunk(chunk);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The entries of a tar, as an async iterator with a synchronous fast path (nextNow). Once
 * it ends, fails or is returned, its reader is closed.
 */
export class TarEntries implements AsyncIterableIterator<TarEntry> {
  readonly #source: AsyncIterable<Uint8Array | string>;
  readonly #options: Readonly<ReadTarOptions>;
  #reader: TarReader | undefined;
  #done = false;

  constructor(source: AsyncIterable<Uint8Array | string>, options: Readonly<ReadTarOptions>) {
    this.#source = source;
    this.#options = options;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * The next entry when the input holds it; null at the end; undefined when next() must be
   * called (it waits for input). One step at a time: not while a next() is pending.
   */
  nextNow(): TarEntry | null | undefined {
    if (this.#done) return null;
    try {
      const entry = this.#open().nextNow();
      if (entry === null) this.#finish();
      return entry;
    } catch (error) {
      this.#finish();
      throw error;
    }
  }

  async next(): Promise<IteratorResult<TarEntry>> {
    if (this.#done) return { done: true, value: undefined };
    try {
      const entry = await this.#open().next();
      if (entry !== null) return { done: false, value: entry };
    } catch (error) {
      this.#finish();
      throw error;
    }
    this.#finish();
    return { done: true, value: undefined };
  }

  /** Stops (the value is ignored, as for a generator that finished its work). */
  async return(value?: unknown): Promise<IteratorResult<TarEntry>> {
    void value;
    this.#finish();
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<TarEntry>> {
    this.#finish();
    throw error;
  }

  /** The reader, made on first use (as a generator's body runs at the first next()). */
  #open(): TarReader {
    this.#reader ??= new TarReader(this.#source, this.#options);
    return this.#reader;
  }

  #finish(): void {
    this.#done = true;
    this.#reader?.close();
  }
}

/** Reads a tar as a pull stream of entries. The caller must consume `body` (or call `skipEntry(entry)`) before asking for the next entry; what it leaves is drained. */
export function readTar(source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, options: Readonly<ReadTarOptions> = {}): TarEntries {
  return new TarEntries(source as AsyncIterable<Uint8Array | string>, options);
}

/**
 * Hands every chunk of an entry's data to `write` (cheaper than iterating `body`). Returns
 * undefined when it is done at once (a small file whose bytes are at hand), else a promise.
 */
export function forEachBodyChunk(entry: TarEntry, write: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void> | undefined {
  if (entry instanceof ReaderEntry) return entry.body.forEach(write);
  return (async () => {
    for await (const chunk of entry.body) {
      const wait = write(chunk);
      if (wait !== undefined) await wait;
    }
  })();
}

/** Discards the rest of an entry's data; undefined when it is done at once, else a promise. */
export function skipEntry(entry: TarEntry): Promise<void> | undefined {
  if (entry instanceof ReaderEntry) return entry.body.skip();
  return (async () => {
    for await (const chunk of entry.body) void chunk;
  })();
}
