/**
 * The tar reader: tar-stream does the framing and streams entry bodies; this module decides
 * what each header means, with Go's archive/tar rules, and rejects what tar-stream would get
 * silently wrong.
 *
 * Lifecycle of one `readTar` call:
 *   pumping   — a background loop feeds input chunks to tar-stream, respecting backpressure,
 *               and keeps references to them in a ChunkWindow;
 *   announced — tar-stream emits an entry; synchronously, the raw bytes from the end of the
 *               previous entry up to the end of this header are captured and the window
 *               released up to the end of this entry's data;
 *   yielded   — the captured bytes are re-checked (exact typeflag, strict numeric fields, strict
 *               PAX records, no end-of-archive block in between) and a TarEntry is handed out;
 *   skipped   — asking for the next entry drains whatever the caller left of the body;
 *   finished  — at the end, everything after the last entry must be zero blocks (at least one);
 *   closed    — on completion, error or abandonment, tar-stream is destroyed and the source
 *               iterator returned (which destroys a Node stream), without unhandled errors.
 *
 * Why re-check raw bytes: tar-stream reads numbers with parseInt (so "12x" is 10 and a bad
 * base-256 field is null, which stalls it, and a negative one is off by one), ignores malformed
 * PAX records, maps unknown type flags to null, reads data after symlinks, hard links and
 * '\0' + trailing slash entries (Go and Python do not), keeps parsing after the
 * end-of-archive blocks (Go stops, so later entries would be invisible to Go-based tools), and
 * prefers a PAX path over a GNU long name (Go does the opposite). Each of those is either
 * reproduced with Go's meaning or rejected.
 */

import { isUtf8 } from 'node:buffer';
import tarStream from 'tar-stream';
import { createError, isWinLayerError, type WinLayerError } from '../errors.js';
import {
  BLOCK_SIZE, FIELD, MAGIC_GNU, MAGIC_USTAR, TRAILER_STAR, VERSION_GNU, blockPaddingLength, computeChecksum,
  computeSignedChecksum, fieldEquals, isAllZero, readNumericField, readOctal, readStringField, type BlockField,
} from './block.js';
import { ChunkWindow } from './chunk-window.js';
import {
  PAX_ATIME, PAX_CTIME, PAX_GID, PAX_GNU_SPARSE_PREFIX, PAX_LINKPATH, PAX_MTIME, PAX_PATH, PAX_SIZE, PAX_UID,
  parseGoInt64, parsePaxRecords, parsePaxTime,
} from './pax.js';

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
  /** Every PAX record of this entry (global headers merged as tar-stream does). */
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
}

/** Default cap on the extended-header data of one entry (Go's maxSpecialFileSize). */
export const DEFAULT_MAX_PAX_BYTES = 1 << 20;
/** Room for header blocks and read-ahead on top of maxPaxBytes before the window counts as flooded. */
const WINDOW_SLACK_BYTES = 256 * 1024;

const TYPE_REG = '0';
const TYPE_REG_LEGACY = '\0';
const TYPE_DIR = '5';
const TYPE_PAX_LOCAL = 0x78; // 'x'
const TYPE_PAX_GLOBAL = 0x67; // 'g'
const TYPE_GNU_LONG_NAME = 0x4c; // 'L'
const TYPE_GNU_LONG_LINK = 0x4b; // 'K'
const TYPE_GNU_OLD_LONG_NAME = 0x4e; // 'N': tar-stream reads it as a long name, Go as a file
const TYPE_GNU_SPARSE = 'S';
/** Types Go treats as header-only: no data follows, whatever the size field says. */
const HEADER_ONLY_TYPES: ReadonlySet<string> = new Set(['1', '2', '3', '4', '5', '6']);
/** Global records that tar-stream would apply to later entries and Go ignores: they change names or framing. */
const GLOBAL_KEYS_REJECTED: ReadonlySet<string> = new Set([PAX_PATH, PAX_LINKPATH, PAX_SIZE]);
const NS_PER_SECOND = 1_000_000_000n;
const DIGIT_ZERO = 0x30;
const DIGIT_SEVEN = 0x37;
const SPACE = 0x20;
/** streamx's code for "read from a destroyed stream". */
const STREAM_DESTROYED = 'STREAM_DESTROYED';

/** The parts of a tar-stream entry stream (a streamx Readable) this module uses. */
interface SourceStream extends AsyncIterable<Buffer> {
  header: { size: number | null; type: string | null };
  offset: number;
  destroyed: boolean;
  resume(): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/** The parts of tar-stream's extractor (a streamx Writable) this module uses. */
interface Extractor extends AsyncIterable<SourceStream> {
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(err?: unknown): unknown;
  readonly destroyed: boolean;
  on(event: 'entry', listener: (header: SourceStream['header'], stream: SourceStream) => void): unknown;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/** What the 'entry' listener captured for one announced entry. */
interface Announcement {
  /** Offset of the end of the previous entry's data: where this entry's extended headers start. */
  regionStart: number;
  /** Raw bytes from regionStart through the end of the main header, or the error met while capturing. */
  region: Buffer | WinLayerError;
  /** Whether tar-stream will stream data for this entry. */
  tarStreamHasData: boolean;
}

type BodyState = 'fresh' | 'reading' | 'abandoned' | 'done' | 'stale';

/** The body of one entry: a one-shot view over tar-stream's entry stream. */
class EntryBody implements AsyncIterable<Buffer> {
  #stream: SourceStream | null;
  #reader: TarReader;
  #state: BodyState;

  constructor(stream: SourceStream | null, reader: TarReader) {
    this.#stream = stream;
    this.#reader = reader;
    this.#state = stream === null ? 'done' : 'fresh';
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const stream = this.#stream;
    if (this.#state === 'stale') {
      throw createError('ERR_ARGUMENT_INVALID', 'tar entry body: read after the reader moved on to the next entry');
    }
    if (stream === null || this.#state !== 'fresh') return { next: async () => ({ done: true, value: undefined }) };
    this.#state = 'reading';
    const inner = stream[Symbol.asyncIterator]();
    const reader = this.#reader;
    return {
      next: async () => {
        if (this.#state !== 'reading') return { done: true, value: undefined };
        try {
          const result = await inner.next();
          if (result.done === true) this.#state = 'done';
          return result;
        } catch (err) {
          throw await reader.settleError(err);
        }
      },
      // Never return the inner iterator: destroying an entry stream destroys tar-stream's
      // whole extractor. The rest of the body is drained when the next entry is asked for.
      return: async () => {
        if (this.#state === 'reading') this.#state = 'abandoned';
        return { done: true, value: undefined };
      },
    };
  }

  /** Reads and discards what is left of the data; afterwards the body is stale. */
  async drain(): Promise<void> {
    const stream = this.#stream;
    if (stream === null) return; // an empty body stays readable (as empty) forever
    const state = this.#state;
    this.#state = 'stale';
    if (state === 'done' || stream.destroyed) return;
    // Entry streams destroy themselves after 'end' (streamx), so 'close' always comes, also on errors.
    await new Promise<void>((resolve) => {
      stream.once('close', resolve);
      stream.resume();
    });
  }

  /** Drains the body but lets it still be iterated (empty) afterwards. */
  async skip(): Promise<void> {
    await this.drain();
    if (this.#state === 'stale') this.#state = 'done';
  }

  /** The reader was closed: the data is gone, so reading it is a caller error. */
  invalidate(): void {
    if (this.#stream !== null && this.#state !== 'done') this.#state = 'stale';
  }
}

/** A TarEntry whose body belongs to a reader. */
class ReaderEntry implements TarEntry {
  readonly header: TarHeader;
  readonly body: EntryBody;

  constructor(header: TarHeader, body: EntryBody) {
    this.header = header;
    this.body = body;
  }
}

function headerInvalid(offset: number, what: string, data: Record<string, string | number> = {}): WinLayerError {
  return createError('ERR_TAR_HEADER_INVALID', `tar header at byte ${offset}: ${what}`, { offset, ...data });
}

/** Maps tar-stream's untyped errors onto our codes (its messages are its only API for them). */
function fromTarStreamError(err: unknown): WinLayerError {
  const message = err instanceof Error ? err.message : String(err);
  if (message === 'Unexpected end of data') {
    return createError('ERR_TAR_TRUNCATED', 'tar archive: input ends inside a header or entry data', {}, err);
  }
  if (message === 'Header exceeds max size') {
    return createError('ERR_METADATA_TOO_LARGE', 'tar archive: an extended header is larger than tar-stream accepts (4 MiB)', {}, err);
  }
  return createError('ERR_TAR_HEADER_INVALID', `tar archive: ${message}`, {}, err);
}

function decodeName(bytes: Buffer, offset: number, what: string, fromPax: boolean): string {
  if (!isUtf8(bytes)) {
    // A name that is not UTF-8 cannot become a Windows name faithfully; tar-stream would decode it lossily.
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

/** What the extended headers in front of one entry said. */
interface Extensions {
  pax: Record<string, string> | null;
  paxRaw: Map<string, Buffer>;
  longName: Buffer | null;
  longLink: Buffer | null;
}

/** Drives tar-stream over one input and turns its entries into TarEntry values. */
class TarReader {
  readonly #source: AsyncIterable<Uint8Array | string>;
  readonly #maxPaxBytes: number;
  readonly #extract: Extractor;
  readonly #entries: AsyncIterator<SourceStream>;
  readonly #window = new ChunkWindow();
  readonly #announced = new WeakMap<SourceStream, Announcement>();
  #sourceIterator: AsyncIterator<Uint8Array | string> | null = null;
  #pumping: Promise<void> | null = null;
  /** End of the last announced entry's data, by tar-stream's framing. */
  #entryEnd = 0;
  #largestChunk = 0;
  #globalPax: Record<string, string> | null = null;
  #current: EntryBody | null = null;
  #sourceError: { error: unknown } | null = null;
  /** The error tar-stream's extractor was destroyed with, once it is known. */
  #failure: { error: unknown } | null = null;
  readonly #extractClosed: Promise<void>;
  #closed = false;

  constructor(source: AsyncIterable<Uint8Array | string>, options: ReadTarOptions) {
    const max = options.maxPaxBytes ?? DEFAULT_MAX_PAX_BYTES;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`maxPaxBytes\` to be an integer >= 0, got \`${String(max)}\` (${typeof max})`);
    }
    this.#source = source;
    this.#maxPaxBytes = max;
    this.#extract = tarStream.extract() as unknown as Extractor;
    // Runs in the same synchronous 'entry' emit as tar-stream's own iterator, before any later bytes are released.
    this.#extract.on('entry', (header, stream) => this.#announce(header, stream));
    this.#extract.on('error', (err) => {
      this.#failure ??= { error: err };
    });
    this.#extractClosed = new Promise((resolve) => this.#extract.on('close', resolve));
    this.#entries = this.#extract[Symbol.asyncIterator]();
  }

  /**
   * The error a body read should report. streamx's iterator can see an entry stream destroyed
   * before the 'error' event that says why arrives; then wait for tar-stream to close and
   * report its real failure instead of "Stream was destroyed".
   */
  async settleError(err: unknown): Promise<unknown> {
    if ((err as { code?: unknown } | null)?.code === STREAM_DESTROYED && !this.#closed) {
      await this.#extractClosed;
      if (this.#failure !== null) return this.wrapError(this.#failure.error);
    }
    return this.wrapError(err);
  }

  /** Turns any error met while reading into what the caller should see. */
  wrapError(err: unknown): unknown {
    if (this.#sourceError !== null && err === this.#sourceError.error) return err; // the input's own error
    if (isWinLayerError(err)) return err;
    return fromTarStreamError(err);
  }

  /** The next entry, or null at the end of the archive. */
  async next(): Promise<ReaderEntry | null> {
    if (this.#current !== null) {
      await this.#current.drain();
      this.#current = null;
    }
    this.#pumping ??= this.#pump();
    let result: IteratorResult<SourceStream>;
    try {
      result = await this.#entries.next();
    } catch (err) {
      throw this.wrapError(err);
    }
    if (result.done === true) {
      this.#checkEndOfArchive();
      return null;
    }
    const stream = result.value;
    const announcement = this.#announced.get(stream);
    if (announcement === undefined) throw headerInvalid(stream.offset, 'entry was not announced to the reader');
    this.#announced.delete(stream);
    const header = this.#decode(stream, announcement);
    const body = new EntryBody(header.size > 0 ? stream : null, this);
    this.#current = body;
    return new ReaderEntry(header, body);
  }

  /** Stops everything; safe to call more than once and from `finally`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current?.invalidate();
    this.#extract.destroy();
    // Returning the source iterator destroys a Node stream; an async generator that is busy
    // finishes its step first, so do not wait for it.
    const returned = this.#sourceIterator?.return?.();
    if (returned !== undefined) returned.catch(() => undefined);
  }

  /** Runs synchronously inside tar-stream when it has parsed a main header; must not throw. */
  #announce(header: SourceStream['header'], stream: SourceStream): void {
    const regionStart = this.#entryEnd;
    const headerEnd = stream.offset + BLOCK_SIZE;
    const size = header.size;
    // tar-stream's own framing: it streams data unless the size is 0 or the type is 'directory'.
    const tarStreamHasData = typeof size === 'number' && size > 0 && header.type !== 'directory';
    let region: Buffer | WinLayerError;
    if (!this.#window.covers(regionStart, headerEnd)) {
      region = headerInvalid(stream.offset, `raw header bytes from ${regionStart} are no longer available`);
    } else {
      region = this.#window.read(regionStart, headerEnd);
    }
    this.#entryEnd = headerEnd + (tarStreamHasData && typeof size === 'number' ? size + blockPaddingLength(size) : 0);
    this.#window.release(this.#entryEnd);
    this.#announced.set(stream, { regionStart, region, tarStreamHasData });
  }

  async #pump(): Promise<void> {
    const extract = this.#extract;
    try {
      const iterator = this.#source[Symbol.asyncIterator]();
      this.#sourceIterator = iterator;
      for (;;) {
        const result = await iterator.next();
        if (this.#closed || extract.destroyed) return;
        if (result.done === true) break;
        const chunk = toBuffer(result.value);
        if (chunk.length === 0) continue;
        this.#largestChunk = Math.max(this.#largestChunk, chunk.length);
        this.#window.push(chunk);
        this.#checkWindow();
        if (!extract.write(chunk)) await this.#drained();
        if (this.#closed || extract.destroyed) return;
      }
      extract.end();
    } catch (err) {
      if (this.#closed) return;
      if (!isWinLayerError(err)) this.#sourceError = { error: err };
      extract.destroy(err);
    }
  }

  /** A run of extended headers that never ends in an entry would otherwise pile up in the window. */
  #checkWindow(): void {
    const limit = this.#maxPaxBytes + WINDOW_SLACK_BYTES + 2 * this.#largestChunk;
    if (this.#window.liveBytes <= limit) return;
    this.#window.compactZeros();
    if (this.#window.liveBytes <= limit) return;
    throw createError('ERR_METADATA_TOO_LARGE', `tar archive: more than ${this.#maxPaxBytes} bytes of extended headers after byte ${this.#entryEnd} without an entry`, { offset: this.#entryEnd, limit: this.#maxPaxBytes });
  }

  #drained(): Promise<void> {
    const extract = this.#extract;
    return new Promise((resolve) => {
      const done = (): void => {
        extract.off('drain', done);
        extract.off('close', done);
        resolve();
      };
      extract.on('drain', done);
      extract.on('close', done);
    });
  }

  /** After the last entry, Go expects end-of-archive zero blocks; anything else is truncation or junk. */
  #checkEndOfArchive(): void {
    const start = this.#entryEnd;
    const end = this.#window.end;
    if (end === start) {
      throw createError('ERR_TAR_TRUNCATED', `tar archive: input ends at byte ${end} without the end-of-archive blocks`, { offset: end });
    }
    if (end < start || !this.#window.covers(start, end)) {
      throw createError('ERR_TAR_TRUNCATED', `tar archive: input ends at byte ${end}, inside the last entry`, { offset: end });
    }
    if (this.#window.isZero(start, end)) return;
    if (this.#window.isZero(start, start + BLOCK_SIZE)) {
      throw headerInvalid(start + BLOCK_SIZE, 'data after the end-of-archive block');
    }
    throw createError('ERR_TAR_TRUNCATED', `tar archive: input ends after extended headers at byte ${start} without their entry`, { offset: start });
  }

  /** Walks the extended headers in front of an entry, checking each as Go would. */
  #readExtensions(region: Buffer, regionStart: number): Extensions {
    const mainAt = region.length - BLOCK_SIZE;
    const found: Extensions = { pax: null, paxRaw: new Map(), longName: null, longLink: null };
    let pos = 0;
    let dataBytes = 0;
    while (pos < mainAt) {
      const offset = regionStart + pos;
      const block = region.subarray(pos, pos + BLOCK_SIZE);
      if (block.length < BLOCK_SIZE) throw headerInvalid(offset, 'extended header is cut short');
      if (isAllZero(block)) {
        // Go stops at an end-of-archive block; whatever follows would be invisible to Go-based tools.
        throw headerInvalid(offset, 'end-of-archive block followed by more entries');
      }
      this.#checkBlock(block, offset);
      const size = readNumericField(block, FIELD.size);
      if (size === undefined || size < 0n || size > BigInt(mainAt - pos - BLOCK_SIZE)) {
        throw headerInvalid(offset, 'extended header has an invalid size field');
      }
      const length = Number(size);
      dataBytes += length;
      if (dataBytes > this.#maxPaxBytes) {
        throw createError('ERR_METADATA_TOO_LARGE', `tar header at byte ${offset}: ${dataBytes} bytes of extended headers, more than ${this.#maxPaxBytes}`, { offset, bytes: dataBytes, limit: this.#maxPaxBytes });
      }
      const data = region.subarray(pos + BLOCK_SIZE, pos + BLOCK_SIZE + length);
      const flag = block[FIELD.typeflag.offset];
      const subject = `tar header at byte ${offset}`;
      if (flag === TYPE_PAX_LOCAL) {
        // As tar-stream does: this header's records over the global ones in force right now.
        const pax: Record<string, string> = Object.create(null) as Record<string, string>;
        if (this.#globalPax !== null) Object.assign(pax, this.#globalPax);
        found.paxRaw = new Map();
        for (const record of parsePaxRecords(data, subject)) {
          pax[record.key] = record.value;
          found.paxRaw.set(record.key, record.rawValue);
        }
        found.pax = pax;
      } else if (flag === TYPE_PAX_GLOBAL) {
        const global: Record<string, string> = Object.create(null) as Record<string, string>;
        for (const record of parsePaxRecords(data, subject)) {
          if (GLOBAL_KEYS_REJECTED.has(record.key)) {
            throw createError('ERR_PAX_RECORD_INVALID', `${subject}: global PAX record "${record.key}" would apply to later entries in tar-stream but not in Go`, { offset, key: record.key });
          }
          global[record.key] = record.value;
        }
        this.#globalPax = global;
      } else if (flag === TYPE_GNU_LONG_NAME) {
        found.longName = cString(data);
      } else if (flag === TYPE_GNU_LONG_LINK) {
        found.longLink = cString(data);
      } else if (flag === TYPE_GNU_OLD_LONG_NAME) {
        throw createError('ERR_ENTRY_TYPE_UNSUPPORTED', `${subject}: old GNU long-name type 'N' is not supported`, { offset });
      } else {
        throw headerInvalid(offset, `unexpected type 0x${(flag ?? 0).toString(16)} before an entry`);
      }
      pos += BLOCK_SIZE + length + blockPaddingLength(length);
    }
    if (pos !== mainAt) throw headerInvalid(regionStart + pos, 'extended headers do not end where the entry starts');
    return found;
  }

  /** Checks what tar-stream checked loosely: the checksum (strictly octal) and the format magic. */
  #checkBlock(block: Buffer, offset: number): 'ustar' | 'gnu' | 'star' {
    // tar-stream already matched the unsigned sum against its own parse of the field; when the
    // field is plain digits then NUL/space padding, both parses agree and the sum need not be redone.
    if (!isPlainOctalField(block, FIELD.checksum)) {
      const stored = readOctal(block, FIELD.checksum);
      if (stored === undefined || (Number(stored) !== computeChecksum(block) && Number(stored) !== computeSignedChecksum(block))) {
        throw headerInvalid(offset, 'checksum mismatch');
      }
    }
    if (fieldEquals(block, FIELD.magic, MAGIC_USTAR)) {
      return fieldEquals(block, FIELD.starTrailer, TRAILER_STAR) ? 'star' : 'ustar';
    }
    if (fieldEquals(block, FIELD.magic, MAGIC_GNU) && fieldEquals(block, FIELD.version, VERSION_GNU)) return 'gnu';
    throw headerInvalid(offset, 'unknown header format');
  }

  #numeric(block: Buffer, field: BlockField, offset: number, label: string): bigint {
    const value = readNumericField(block, field);
    if (value === undefined) throw headerInvalid(offset, `${label} field is not a valid number`);
    return value;
  }

  #decode(stream: SourceStream, announcement: Announcement): TarHeader {
    const { region, regionStart, tarStreamHasData } = announcement;
    if (!(region instanceof Buffer)) throw region;
    const offset = stream.offset;
    const extensions = this.#readExtensions(region, regionStart);
    const block = region.subarray(region.length - BLOCK_SIZE);
    const format = this.#checkBlock(block, offset);

    // Every numeric field must parse as Go parses it, even the ones we do not report.
    const mode = this.#numeric(block, FIELD.mode, offset, 'mode');
    this.#numeric(block, FIELD.uid, offset, 'uid');
    this.#numeric(block, FIELD.gid, offset, 'gid');
    const headerSize = this.#numeric(block, FIELD.size, offset, 'size');
    const headerSeconds = this.#numeric(block, FIELD.mtime, offset, 'mtime');
    this.#numeric(block, FIELD.devmajor, offset, 'devmajor');
    this.#numeric(block, FIELD.devminor, offset, 'devminor');

    const pax: Record<string, string> = extensions.pax ?? (Object.create(null) as Record<string, string>);
    const paxValue = (key: string): string | undefined => {
      const value = pax[key];
      return value === undefined || value === '' ? undefined : value; // Go ignores empty values
    };

    const name = this.#resolveName(block, format, extensions, offset, FIELD.name, PAX_PATH, extensions.longName, 'name');
    const linkname = this.#resolveName(block, format, extensions, offset, FIELD.linkname, PAX_LINKPATH, extensions.longLink, 'link name');

    const rawType = String.fromCharCode(block[FIELD.typeflag.offset] ?? 0);
    const typeflag = rawType === TYPE_REG_LEGACY ? (name.endsWith('/') ? TYPE_DIR : TYPE_REG) : rawType;
    if (typeflag === TYPE_GNU_SPARSE || Object.keys(pax).some((k) => k.startsWith(PAX_GNU_SPARSE_PREFIX))) {
      throw createError('ERR_SPARSE_UNSUPPORTED', `${name}: GNU sparse entries are not supported`, { entry: name });
    }

    const sizeText = paxValue(PAX_SIZE);
    let size = headerSize;
    if (sizeText !== undefined) {
      const parsed = parseGoInt64(sizeText);
      if (parsed === undefined) throw this.#paxInvalid(name, PAX_SIZE, sizeText);
      size = parsed;
    }
    if (size < 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) throw headerInvalid(offset, `size ${size} is out of range`, { entry: name });
    if (mode < BigInt(Number.MIN_SAFE_INTEGER) || mode > BigInt(Number.MAX_SAFE_INTEGER)) throw headerInvalid(offset, `mode ${mode} is out of range`);
    const dataSize = Number(size);
    if (stream.header.size !== dataSize) {
      throw headerInvalid(offset, `tar-stream framed ${String(stream.header.size)} data bytes where the header says ${dataSize}`, { entry: name });
    }
    const hasData = !HEADER_ONLY_TYPES.has(typeflag) && dataSize > 0;
    if (hasData !== tarStreamHasData) {
      // E.g. a symlink with a size: Go and Python read no data, tar-stream and GNU tar do.
      throw headerInvalid(offset, `type '${typeflag}' with size ${dataSize}: tar readers disagree on whether data follows`, { entry: name });
    }

    for (const key of [PAX_UID, PAX_GID]) {
      const text = paxValue(key);
      if (text !== undefined && parseGoInt64(text) === undefined) throw this.#paxInvalid(name, key, text);
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
      size: hasData ? dataSize : 0,
      mode: Number(mode),
      linkname,
      mtime: time(PAX_MTIME) ?? headerSeconds * NS_PER_SECOND,
      pax,
    };
    const atime = time(PAX_ATIME);
    if (atime !== undefined) header.atime = atime;
    const ctime = time(PAX_CTIME);
    if (ctime !== undefined) header.ctime = ctime;
    return header;
  }

  #paxInvalid(name: string, key: string, value: string): WinLayerError {
    return createError('ERR_PAX_RECORD_INVALID', `${name}: PAX ${key} "${value}" is not a decimal int64`, { entry: name, key });
  }

  /**
   * Name or link name with Go's precedence: the GNU long name wins over a PAX record, which
   * wins over the header fields. tar-stream lets PAX win, so the two must not disagree.
   */
  #resolveName(
    block: Buffer, format: 'ustar' | 'gnu' | 'star', extensions: Extensions, offset: number,
    field: BlockField, paxKey: string, long: Buffer | null, what: string,
  ): string {
    const paxRaw = extensions.paxRaw.get(paxKey);
    const fromPax = paxRaw !== undefined && paxRaw.length > 0 ? paxRaw : null;
    const fromLong = long !== null && long.length > 0 ? long : null;
    if (fromPax !== null && fromLong !== null && !fromPax.equals(fromLong)) {
      throw headerInvalid(offset, `GNU long ${what} and PAX ${paxKey} disagree`);
    }
    if (fromLong !== null) return decodeName(fromLong, offset, what, false);
    if (fromPax !== null) return decodeName(fromPax, offset, what, true);
    let bytes = readStringField(block, field);
    if (field === FIELD.name && format !== 'gnu') {
      const prefix = readStringField(block, format === 'star' ? FIELD.starPrefix : FIELD.prefix);
      if (prefix.length > 0) bytes = Buffer.concat([prefix, Buffer.from('/'), bytes]);
    }
    const text = decodeName(bytes, offset, what, false);
    if (text.includes('\0')) throw headerInvalid(offset, `${what} contains NUL`);
    return text;
  }
}

/** True for octal digits from the field's first byte, followed by nothing but NULs and spaces. */
function isPlainOctalField(block: Buffer, field: BlockField): boolean {
  let i = field.offset;
  const end = field.offset + field.length;
  while (i < end && (block[i] ?? 0) >= DIGIT_ZERO && (block[i] ?? 0) <= DIGIT_SEVEN) i++;
  if (i === field.offset) return false;
  for (; i < end; i++) if (block[i] !== 0 && block[i] !== SPACE) return false;
  return true;
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') {
    throw createError('ERR_ARGUMENT_INVALID', 'tar input: got a string chunk; read the input without an encoding');
  }
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Reads a tar as a pull stream of entries. The caller must consume `body` (or call `skipEntry(entry)`) before asking for the next entry; what it leaves is drained. */
export async function* readTar(
  source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  options: Readonly<ReadTarOptions> = {},
): AsyncGenerator<TarEntry> {
  const reader = new TarReader(source as AsyncIterable<Uint8Array | string>, options);
  try {
    for (;;) {
      const entry = await reader.next();
      if (entry === null) return;
      yield entry;
    }
  } finally {
    reader.close();
  }
}

/** Discards the rest of an entry's data. */
export async function skipEntry(entry: TarEntry): Promise<void> {
  if (entry instanceof ReaderEntry) {
    await entry.body.skip();
    return;
  }
  for await (const chunk of entry.body) void chunk;
}
