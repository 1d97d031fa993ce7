/**
 * A push parser for Win32 backup streams (FORMATS.md §1). It never buffers payload: data
 * chunks are handed to the sink as sub-arrays of the input, so memory is bounded by the
 * 20-byte header plus the name cap whatever the stream holds.
 */
import { createError, type ErrorCode, type ErrorData } from '../errors.js';
import {
  BackupStreamId,
  DEFAULT_MAX_NAME_BYTES,
  isBackupStreamId,
  SPARSE_OFFSET_SIZE,
  STREAM_ID_SIZE,
} from './constants.js';
import { MAX_EA_STREAM_BYTES } from './ea.js';
import type { BackupHeader } from './header.js';

/**
 * NTFS's own limits on the metadata sub-streams: 64 KiB of security descriptor, 16 KiB of
 * reparse buffer, and an EA set of 64 KiB packed, which its FILE_FULL_EA_INFORMATION form
 * (the stream's) may double (MAX_EA_STREAM_BYTES).
 */
export const DEFAULT_MAX_METADATA_BYTES = 65536;
export const MAX_REPARSE_DATA_BYTES = 16 * 1024;

export interface BackupStreamSink {
  /** A sub-stream starts; its payload follows through `data` (`h.size` bytes in all). */
  header(h: BackupHeader): void;
  /** The next piece of the current sub-stream's payload (a view of the input: copy to keep). */
  data(chunk: Buffer): void;
}

export interface BackupStreamParserOptions {
  /** Cap on a sub-stream name, in bytes (default 1024). */
  maxNameBytes?: number;
  /**
   * Cap on a SECURITY or EA payload, in bytes (default 64 KiB for a security descriptor,
   * MAX_EA_STREAM_BYTES for EAs); reparse data is capped at 16 KiB.
   */
  maxMetadataBytes?: number;
  /** Entry the stream belongs to, for error messages. */
  entryName?: string;
}

/** The high word of a u64 at most Number.MAX_SAFE_INTEGER (2^53 − 1). */
const MAX_SAFE_HIGH_WORD = 0x1fffff;
const TWO_TO_32 = 0x1_0000_0000;

const enum State {
  Header,
  Name,
  Offset,
  Payload,
}

export class BackupStreamParser {
  readonly #sink: BackupStreamSink;
  readonly #maxName: number;
  readonly #maxMeta: number | undefined;
  #entry: string;
  #state = State.Header;
  /** Header, name or offset bytes gathered so far (they may straddle chunks). */
  #pending: Buffer = Buffer.alloc(STREAM_ID_SIZE);
  #pendingLength = 0;
  #need = STREAM_ID_SIZE;
  #id: BackupStreamId = BackupStreamId.Data;
  #attributes = 0;
  #size = 0;
  #name = '';
  #remaining = 0;
  #bytesRead = 0;
  #ended = false;

  constructor(sink: BackupStreamSink, options: BackupStreamParserOptions = {}) {
    this.#sink = sink;
    this.#maxName = options.maxNameBytes ?? DEFAULT_MAX_NAME_BYTES;
    this.#maxMeta = options.maxMetadataBytes;
    this.#entry = options.entryName ?? '';
  }

  /** Starts over on a new stream (of the entry `entryName`): one parser can serve a whole layer. */
  reset(entryName = ''): void {
    this.#entry = entryName;
    this.#state = State.Header;
    this.#pendingLength = 0;
    this.#need = STREAM_ID_SIZE;
    this.#id = BackupStreamId.Data;
    this.#attributes = 0;
    this.#size = 0;
    this.#name = '';
    this.#remaining = 0;
    this.#bytesRead = 0;
    this.#ended = false;
  }

  /** Bytes consumed so far. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Feeds the next chunk of the stream. */
  write(chunk: Buffer): void {
    if (this.#ended) throw this.#error('ERR_BACKUP_STREAM_INVALID', 'bytes after the end of the backup stream');
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.#state === State.Payload) {
        const n = Math.min(this.#remaining, len - pos);
        const piece = pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n);
        pos += n;
        this.#remaining -= n;
        this.#bytesRead += n;
        this.#sink.data(piece);
        if (this.#remaining === 0) this.#toHeader();
        continue;
      }
      const n = Math.min(this.#need - this.#pendingLength, len - pos);
      chunk.copy(this.#pending, this.#pendingLength, pos, pos + n);
      this.#pendingLength += n;
      this.#bytesRead += n;
      pos += n;
      if (this.#pendingLength === this.#need) this.#completeField();
    }
  }

  /** Declares the end of the stream: it must fall between sub-streams. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const midway = this.#state !== State.Header || this.#pendingLength !== 0;
    if (midway) {
      const what = this.#state === State.Header ? 'a sub-stream header' : this.#state === State.Payload ? `the payload of stream ${this.#id}` : `the name of stream ${this.#id}`;
      throw this.#error('ERR_BACKUP_STREAM_TRUNCATED', `backup stream ends inside ${what} after ${this.#bytesRead} bytes`);
    }
  }

  #toHeader(): void {
    this.#state = State.Header;
    this.#need = STREAM_ID_SIZE;
    this.#pendingLength = 0;
  }

  #completeField(): void {
    const p = this.#pending;
    switch (this.#state) {
      case State.Header: {
        const id = p.readUInt32LE(0);
        if (!isBackupStreamId(id)) {
          throw this.#error('ERR_BACKUP_STREAM_ID_UNKNOWN', `backup stream id ${id} is unknown`, { id, offset: this.#bytesRead - STREAM_ID_SIZE });
        }
        this.#id = id;
        this.#attributes = p.readUInt32LE(4);
        // A u64 read as two u32 halves: no BigInt unless it is out of range.
        const high = p.readUInt32LE(12);
        if (high > MAX_SAFE_HIGH_WORD) {
          throw this.#error('ERR_BACKUP_STREAM_INVALID', `backup stream ${id} declares ${p.readBigUInt64LE(8)} bytes`, { id });
        }
        this.#size = high * TWO_TO_32 + p.readUInt32LE(8);
        const nameSize = p.readUInt32LE(16);
        if (nameSize % 2 !== 0) throw this.#error('ERR_BACKUP_STREAM_INVALID', `backup stream ${id} has an odd name size ${nameSize}`, { id });
        if (nameSize > this.#maxName) {
          throw this.#error('ERR_METADATA_TOO_LARGE', `backup stream ${id} name of ${nameSize} bytes exceeds ${this.#maxName}`, { id, nameSize });
        }
        if (id === BackupStreamId.SparseBlock && this.#size < SPARSE_OFFSET_SIZE) {
          throw this.#error('ERR_BACKUP_STREAM_INVALID', `sparse block of ${this.#size} bytes cannot hold its 8-byte offset`, { id });
        }
        const cap =
          id === BackupStreamId.ReparseData
            ? Math.min(MAX_REPARSE_DATA_BYTES, this.#maxMeta ?? MAX_REPARSE_DATA_BYTES)
            : (this.#maxMeta ?? (id === BackupStreamId.EaData ? MAX_EA_STREAM_BYTES : DEFAULT_MAX_METADATA_BYTES));
        if ((id === BackupStreamId.SecurityData || id === BackupStreamId.EaData || id === BackupStreamId.ReparseData) && this.#size > cap) {
          throw this.#error('ERR_METADATA_TOO_LARGE', `backup stream ${id} of ${this.#size} bytes exceeds ${cap}`, { id, size: this.#size });
        }
        this.#name = '';
        if (nameSize > 0) {
          this.#state = State.Name;
          this.#need = nameSize;
          this.#pendingLength = 0;
          if (this.#pending.length < nameSize) this.#pending = Buffer.alloc(Math.max(nameSize, STREAM_ID_SIZE));
          return;
        }
        this.#afterName();
        return;
      }
      case State.Name: {
        const name = p.toString('utf16le', 0, this.#need);
        if (name.includes('\0')) throw this.#error('ERR_BACKUP_STREAM_INVALID', `backup stream ${this.#id} name contains NUL`, { id: this.#id });
        this.#name = name;
        this.#afterName();
        return;
      }
      case State.Offset: {
        const offset = p.readBigInt64LE(0);
        if (offset < 0n || offset > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw this.#error('ERR_BACKUP_STREAM_INVALID', `sparse block offset ${offset} is not a byte offset`, { id: this.#id });
        }
        this.#emit(this.#size - SPARSE_OFFSET_SIZE, Number(offset));
        return;
      }
      default:
        return;
    }
  }

  #afterName(): void {
    if (this.#id === BackupStreamId.SparseBlock) {
      this.#state = State.Offset;
      this.#need = SPARSE_OFFSET_SIZE;
      this.#pendingLength = 0;
      return;
    }
    this.#emit(this.#size, 0);
  }

  #emit(size: number, offset: number): void {
    this.#sink.header({ id: this.#id, attributes: this.#attributes, size, name: this.#name, offset });
    if (size === 0) {
      this.#toHeader();
      return;
    }
    this.#state = State.Payload;
    this.#remaining = size;
  }

  #error(code: ErrorCode, message: string, data: ErrorData = {}): Error {
    const prefix = this.#entry === '' ? '' : `${this.#entry}: `;
    return createError(code, prefix + message, this.#entry === '' ? data : { entry: this.#entry, ...data });
  }
}

/** One sub-stream with its whole payload (for small streams and tests). */
export interface BackupStreamRecord {
  header: BackupHeader;
  payload: Buffer;
}

/**
 * Parses a whole in-memory backup stream. Payloads are collected, so use this only for
 * metadata-sized input; large data goes through {@link BackupStreamParser}.
 */
export function parseBackupStreamBuffer(buf: Buffer, options: BackupStreamParserOptions = {}): BackupStreamRecord[] {
  const out: BackupStreamRecord[] = [];
  let parts: Buffer[] = [];
  const flush = (): void => {
    const last = out[out.length - 1];
    if (last !== undefined && parts.length > 0) last.payload = Buffer.concat(parts);
    parts = [];
  };
  const parser = new BackupStreamParser(
    {
      header(h) {
        flush();
        out.push({ header: h, payload: Buffer.alloc(0) });
      },
      data(chunk) {
        parts.push(Buffer.from(chunk));
      },
    },
    options,
  );
  parser.write(buf);
  parser.end();
  flush();
  return out;
}

/** An event of {@link readBackupStream}. */
export type BackupStreamEvent = { type: 'header'; header: BackupHeader } | { type: 'data'; chunk: Buffer };

/** Pull form: parses chunks from any (async) iterable, yielding headers and data in order. */
export async function* readBackupStream(
  source: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>,
  options: BackupStreamParserOptions = {},
): AsyncGenerator<BackupStreamEvent> {
  let queue: BackupStreamEvent[] = [];
  const parser = new BackupStreamParser(
    {
      header: (header) => queue.push({ type: 'header', header }),
      data: (chunk) => queue.push({ type: 'data', chunk }),
    },
    options,
  );
  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    parser.write(chunk);
    const ready = queue;
    queue = [];
    yield* ready;
  }
  parser.end();
}
