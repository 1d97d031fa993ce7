/**
 * The layer's metadata index, `<layer>/.winlayer/`: what a POSIX file system cannot hold.
 *
 * - `entries.jsonl`: one JSON record per layer entry, in tar order (so export is
 *   deterministic and keeps the producer's order). Each record holds the four
 *   FILETIMEs (decimal strings: 64-bit values do not fit a JSON number) and the
 *   attributes; entries outside the transport-format area also point into
 *   `streams.bin` for their non-data backup sub-streams (SD, EA, reparse, ADS).
 * - `streams.bin`: those sub-streams, concatenated, in backup-stream encoding.
 * - `layer.json`: the summary, written last; its `version` guards the format.
 *
 * Records are streamed to disk as the import goes, so memory stays flat whatever the
 * entry count.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crashPoint } from '../util/crash-point.js';
import { createRequire } from 'node:module';
import { createError, isWinLayerError, layerFileError } from '../errors.js';
import { LineWriter, readAt, readLinesSync, type LineSpan } from '../util/lines.js';
import { recentTexts } from '../util/recent-texts.js';
import type { FileBasicInfo } from '../util/windows.js';
import { caseFoldKey } from '../util/safe-path.js';

export const INDEX_DIR = '.winlayer';
export const LAYER_INFO_FILE = 'layer.json';
export const ENTRIES_FILE = 'entries.jsonl';
export const STREAMS_FILE = 'streams.bin';
export const INDEX_VERSION = 1;


export type EntryKind = 'file' | 'directory' | 'symlink' | 'link' | 'whiteout';

/** The four times as decimal FILETIME strings, then the attributes. */
export type IndexTimes = readonly [string, string, string, string];

/** One record of entries.jsonl. */
export interface IndexEntry {
  kind: EntryKind;
  name: string;
  /** FILETIMEs: creation, last access, last write, change. Absent for whiteouts. */
  times?: IndexTimes;
  attributes?: number;
  /** Data stream size of files (0 for others). */
  size?: number;
  /** [offset, length] of this entry's non-data sub-streams in streams.bin (direct entries only). */
  streams?: readonly [number, number];
  /** Hard-link target (layer path) for kind 'link'. */
  target?: string;
  /** The spelling on disk when it differs from `name` (case-insensitive parent reuse). */
  host?: string;
  /** Cloned from the parent's UtilityVM: part of the layer's view, not of its diff. */
  inherited?: boolean;
  /**
   * A `Files`/`Hives` entry restored in place (a base layer written by a native backend, as
   * hcsshim's base-layer writer does): a host file or directory with its other sub-streams
   * in streams.bin, not the transport format its name would otherwise mean.
   */
  direct?: boolean;
  /**
   * A file whose backup stream had no DATA stream: an empty file as some Windows builds
   * back it up, said by its tar header (mode without the regular-file bit) or, outside the
   * transport format, by the backup stream itself. Its tar header then has no regular-file
   * mode bit again, as go-winio writes it. A transport-format file keeps an empty DATA
   * stream all the same, as hcsshim's writer gives every file.
   */
  dataless?: boolean;
  /**
   * A hard link (kind 'link') whose target its layer did not hold yet when the link came
   * in the tar: it is the parents' file of that name, as hcsshim's writer resolves it,
   * whatever the layer added under that name later.
   */
  parentTarget?: boolean;
}

/** Summary of a committed layer, `.winlayer/layer.json`. */
export interface LayerInfo {
  version: number;
  id: string;
  /** Sum of regular-file data sizes (ADS not counted), as windowsfilter reports. */
  size: number;
  /** Tar entries read (headers; ADS and whiteout entries included). */
  entries: number;
  /** sha256 of the tar bytes read, `sha256:<hex>`. */
  digest: string;
  /** Index records written (layer entries, including inherited ones). */
  records: number;
  hasUtilityVM: boolean;
  isBaseLayer: boolean;
  /** Directory records that a repeated directory entry replaced (the later metadata wins, the first place stays). */
  merged?: IndexEntry[];
}

export function timesFromInfo(info: FileBasicInfo): IndexTimes {
  return [filetimeString(info.creationTime), filetimeString(info.lastAccessTime), filetimeString(info.lastWriteTime), filetimeString(info.changeTime)];
}

/** The decimal string of a FILETIME, the last four remembered (four per entry, most of them alike). */
export const filetimeString: (t: bigint) => string = recentTexts(4, (t) => String(t));

/**
 * One record as a line of JSON, the fields in IndexEntry's order. What JSON.stringify
 * gives for a record built in that order, without walking the object generically: this
 * runs once per entry and was the import's largest single function after the parser.
 */
export function recordLine(e: IndexEntry): string {
  let s = '{"kind":' + jsonString(e.kind) + ',"name":' + jsonString(e.name);
  const t = e.times;
  if (t !== undefined) s += ',"times":[' + jsonString(t[0]) + ',' + jsonString(t[1]) + ',' + jsonString(t[2]) + ',' + jsonString(t[3]) + ']';
  if (e.attributes !== undefined) s += ',"attributes":' + jsonNumber(e.attributes);
  if (e.size !== undefined) s += ',"size":' + jsonNumber(e.size);
  if (e.streams !== undefined) s += ',"streams":[' + jsonNumber(e.streams[0]) + ',' + jsonNumber(e.streams[1]) + ']';
  if (e.target !== undefined) s += ',"target":' + jsonString(e.target);
  if (e.host !== undefined) s += ',"host":' + jsonString(e.host);
  if (e.inherited !== undefined) s += ',"inherited":' + (e.inherited ? 'true' : 'false');
  if (e.direct !== undefined) s += ',"direct":' + (e.direct ? 'true' : 'false');
  if (e.dataless !== undefined) s += ',"dataless":' + (e.dataless ? 'true' : 'false');
  if (e.parentTarget !== undefined) s += ',"parentTarget":' + (e.parentTarget ? 'true' : 'false');
  return s + '}';
}

/** Characters JSON.stringify writes as escapes (quote, backslash, controls) or may (surrogates). */
// eslint-disable-next-line no-control-regex -- control characters are what must be escaped
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

function jsonString(s: string): string {
  return JSON_ESCAPED.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

function jsonNumber(n: number): string {
  // JSON has no NaN or infinities; JSON.stringify writes null, and so does this.
  return Number.isFinite(n) ? String(n) : 'null';
}

export function infoFromRecord(e: IndexEntry): FileBasicInfo {
  const t = e.times;
  if (t === undefined) throw createError('ERR_LAYER_CORRUPT', `index record ${e.name} has no times`, { entry: e.name });
  return {
    creationTime: BigInt(t[0]),
    lastAccessTime: BigInt(t[1]),
    lastWriteTime: BigInt(t[2]),
    changeTime: BigInt(t[3]),
    fileAttributes: e.attributes ?? 0,
  };
}

/** Appends records and stream bytes; everything is synchronous (the caller is a worker process). */
export class MetadataIndexWriter {
  readonly #dir: string;
  readonly #entriesFd: number;
  readonly #streamsFd: number;
  /** Records not yet written, as UTF-8 lines: a line is garbage as soon as it is encoded. */
  readonly #lines: LineWriter;
  #streamsOffset = 0;
  #records = 0;
  #closed = false;

  constructor(layerRoot: string) {
    this.#dir = path.join(layerRoot, INDEX_DIR);
    fs.mkdirSync(this.#dir);
    this.#entriesFd = fs.openSync(path.join(this.#dir, ENTRIES_FILE), 'wx');
    this.#streamsFd = fs.openSync(path.join(this.#dir, STREAMS_FILE), 'wx');
    this.#lines = new LineWriter(this.#entriesFd);
  }

  get records(): number {
    return this.#records;
  }

  /** Appends one record. */
  append(entry: IndexEntry): void {
    this.#lines.add(recordLine(entry));
    this.#records++;
  }

  /** Appends raw sub-stream bytes; returns their offset in streams.bin. */
  appendStreams(chunk: Uint8Array): number {
    const at = this.#streamsOffset;
    let done = 0;
    while (done < chunk.length) done += fs.writeSync(this.#streamsFd, chunk, done, chunk.length - done);
    this.#streamsOffset += chunk.length;
    return at;
  }

  get streamsOffset(): number {
    return this.#streamsOffset;
  }


  /** Flushes records and writes layer.json; with `durable`, data reaches the disk before returning. */
  finish(info: Omit<LayerInfo, 'version' | 'records'>, durable: boolean): void {
    this.#lines.flush();
    if (durable) {
      fs.fsyncSync(this.#entriesFd);
      fs.fsyncSync(this.#streamsFd);
    }
    this.close();
    const full: LayerInfo = { version: INDEX_VERSION, ...info, records: this.#records };
    const fd = fs.openSync(path.join(this.#dir, LAYER_INFO_FILE), 'wx');
    try {
      const text = JSON.stringify(full, null, 2) + '\n';
      fs.writeSync(fd, text.slice(0, text.length >> 1));
      crashPoint('index');
      fs.writeSync(fd, text.slice(text.length >> 1));
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Closes the files without writing the summary (abort path). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#entriesFd);
    fs.closeSync(this.#streamsFd);
  }
}

/**
 * Opens `file`, a file of a stored layer, for reading: never through a symbolic link, and
 * only a regular file. A directory, FIFO, socket or device where the layer has a file is
 * damage (ERR_LAYER_CORRUPT; a FIFO opened for reading would wait for a writer for ever),
 * as is a file that is not there; a failure of the system's is ERR_IO (layerFileError).
 */
export function openLayerFile(file: string, context: string, data: Record<string, string> = {}): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (cause) {
    throw layerFileError(cause, `${context}: cannot open ${file}`, data);
  }
  let regular: boolean;
  try {
    regular = fs.fstatSync(fd).isFile();
  } catch (cause) {
    fs.closeSync(fd);
    throw layerFileError(cause, `${context}: cannot open ${file}`, data);
  }
  if (!regular) {
    fs.closeSync(fd);
    throw createError('ERR_LAYER_CORRUPT', `${context}: ${file} is not a regular file`, data);
  }
  return fd;
}

/** Whether `error`, from openLayerFile or readLayerText, says the file is not there (a layer may lack it). */
export function isMissingLayerFile(error: unknown): boolean {
  return isWinLayerError(error) && error.data['errno'] === 'ENOENT';
}

/** The text of `file`, a file of a stored layer (openLayerFile). */
export function readLayerText(file: string, context: string, data: Record<string, string> = {}): string {
  const fd = openLayerFile(file, context, data);
  try {
    return fs.readFileSync(fd, 'utf8');
  } catch (cause) {
    throw layerFileError(cause, `${context}: cannot read ${file}`, data);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads layer.json and checks its version. */
export function readLayerInfo(layerRoot: string): LayerInfo {
  const file = path.join(layerRoot, INDEX_DIR, LAYER_INFO_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readLayerText(file, layerRoot, { path: layerRoot }));
  } catch (cause) {
    if (isMissingLayerFile(cause)) throw createError('ERR_LAYER_CORRUPT', `${layerRoot}: no metadata index (${INDEX_DIR}/${LAYER_INFO_FILE})`, { path: layerRoot, errno: 'ENOENT' }, cause);
    throw layerFileError(cause, `${layerRoot}: unreadable ${LAYER_INFO_FILE}`, { path: layerRoot });
  }
  const info = parsed as Partial<LayerInfo>;
  if (typeof info !== 'object' || info === null || typeof info.version !== 'number') {
    throw createError('ERR_LAYER_CORRUPT', `${layerRoot}: ${LAYER_INFO_FILE} is not a layer summary`, { path: layerRoot });
  }
  if (info.version !== INDEX_VERSION) {
    throw createError('ERR_INDEX_VERSION', `${layerRoot}: metadata index version ${info.version}, this winlayer reads ${INDEX_VERSION}`, {
      path: layerRoot,
      version: info.version,
    });
  }
  // Each field as the writer writes it: an edited summary must not pass its wrong size or
  // digest on (to diff-size, ls, an import's result) as if it were the layer's.
  const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (
    typeof info.id !== 'string' ||
    !count(info.size) ||
    !count(info.entries) ||
    !count(info.records) ||
    typeof info.digest !== 'string' ||
    !/^sha256:[0-9a-f]{64}$/.test(info.digest) ||
    typeof info.hasUtilityVM !== 'boolean' ||
    typeof info.isBaseLayer !== 'boolean' ||
    (info.merged !== undefined && !Array.isArray(info.merged))
  ) {
    throw createError('ERR_LAYER_CORRUPT', `${layerRoot}: ${LAYER_INFO_FILE} has a field missing or of the wrong type`, { path: layerRoot });
  }
  return info as LayerInfo;
}

/**
 * Streams the records of entries.jsonl in order, reading the file only as the caller takes
 * records. (readline's async iterator read ahead of a slow consumer: exporting a layer of
 * 105,000 entries held ~20 MB of queued lines.) Its reads stay asynchronous: the same walk
 * over indexEntriesSync raised that export from 73 to 108–113 MiB peak RSS, the export
 * getting no turn of the event loop between index reads to write out what it had made.
 */
export async function* readIndexEntries(layerRoot: string): AsyncGenerator<IndexEntry> {
  const file = path.join(layerRoot, INDEX_DIR, ENTRIES_FILE);
  // Loaded on first use: an import worker never reads an index this way, and starts without them.
  const { StringDecoder } = createRequire(import.meta.url)('node:string_decoder') as typeof import('node:string_decoder');
  let handle: import('node:fs/promises').FileHandle;
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (cause) {
    throw indexOpenError(layerRoot, cause);
  }
  try {
    if (!(await handle.stat()).isFile()) throw createError('ERR_LAYER_CORRUPT', `${layerRoot}: ${file} is not a regular file`, { path: layerRoot });
  } catch (error) {
    await handle.close();
    throw layerFileError(error, `${layerRoot}: cannot open ${file}`, { path: layerRoot });
  }
  try {
    const buffer = Buffer.allocUnsafe(INDEX_READ_BYTES);
    const decoder = new StringDecoder('utf8');
    let carry = '';
    let n = 0;
    let count = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null).catch((cause: unknown) => {
        throw layerFileError(cause, `${layerRoot}: cannot read ${file}`, { path: layerRoot });
      });
      const text = bytesRead === 0 ? carry + decoder.end() : carry + decoder.write(buffer.subarray(0, bytesRead));
      let start = 0;
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        n++;
        const line = text.slice(start, end);
        start = end + 1;
        if (line.length > 0) {
          count++;
          yield parseIndexLine(line, file, n);
        }
      }
      carry = text.slice(start);
      if (bytesRead === 0) break;
    }
    // A last line without its newline.
    if (carry.length > 0) {
      count++;
      yield parseIndexLine(carry, file, n + 1);
    }
    checkRecordCount(layerRoot, file, count);
  } finally {
    await handle.close();
  }
}

const INDEX_READ_BYTES = 256 * 1024;

function parseIndexLine(line: string, file: string, n: number): IndexEntry {
  let e: IndexEntry;
  try {
    e = JSON.parse(line) as IndexEntry;
  } catch (cause) {
    throw createError('ERR_LAYER_CORRUPT', `${file}:${n}: not a JSON record`, { path: file, line: n }, cause);
  }
  if (typeof e !== 'object' || e === null || typeof e.name !== 'string' || typeof e.kind !== 'string') {
    throw createError('ERR_LAYER_CORRUPT', `${file}:${n}: not an index record`, { path: file, line: n });
  }
  // Names are joined to the layer's directory, the view's and a tar's: one edited to climb
  // out (`Files/../../x`) must reach none of them.
  if (!isInsidePath(e.name) || (e.host !== undefined && (typeof e.host !== 'string' || !isInsidePath(e.host))) || (e.target !== undefined && (typeof e.target !== 'string' || !isInsidePath(e.target)))) {
    throw createError('ERR_LAYER_CORRUPT', `${file}:${n}: a record whose name, place or link target leaves the layer`, { path: file, line: n });
  }
  return e;
}

/** A relative slash path without an empty, `.` or `..` segment, a backslash or a NUL. */
function isInsidePath(p: string): boolean {
  return p.length > 0 && !INSIDE_PATH_BREAKER.test(p);
}
const INSIDE_PATH_BREAKER = /^\/|\/$|\/\/|(^|\/)\.\.?(\/|$)|[\\\0]/;

/** ERR_LAYER_CORRUPT unless the index of `layerRoot` held the records its layer.json counts. */
function checkRecordCount(layerRoot: string, file: string, count: number): void {
  const expected = readLayerInfo(layerRoot).records;
  if (count !== expected) {
    throw createError('ERR_LAYER_CORRUPT', `${file}: ${count} records where layer.json counts ${expected}`, { path: file, records: count, expected });
  }
}

/**
 * The records of entries.jsonl in order, read 256 KiB at a time as they are taken:
 * memory stays flat whatever the index size. Synchronous, for the writer, whose callers
 * are; the file is closed when the walk ends or is left.
 */
export function* indexEntriesSync(layerRoot: string, span?: LineSpan): Generator<IndexEntry> {
  const { file, fd } = openIndexSync(layerRoot);
  try {
    let n = 0;
    let count = 0;
    for (const line of readLinesSync(fd, span)) {
      n++;
      if (line.length > 0) {
        count++;
        yield parseIndexLine(line, file, n);
      }
    }
    if (span === undefined) checkRecordCount(layerRoot, file, count);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The record at `span` of the index of `layerRoot` (a place indexEntriesSync reported), read
 * back alone; it must be the record of `name`, else the index changed: ERR_LAYER_CORRUPT.
 */
export function indexEntryAt(layerRoot: string, span: LineSpan, name: string): IndexEntry {
  const reader = new IndexRecordReader(layerRoot);
  try {
    return reader.at(span, name);
  } finally {
    reader.close();
  }
}

/**
 * Reads records of one layer's index back by their place, as indexEntryAt does, with the
 * index opened once (on the first read) for many reads; `close` when done. With
 * `readAhead`, each read takes that many bytes from the record on, and later records
 * inside them come from memory: a walk in index order then reads the file in blocks.
 */
export class IndexRecordReader {
  readonly #layerRoot: string;
  readonly #readAhead: number;
  #open: { file: string; fd: number } | undefined;
  #block: Buffer = Buffer.alloc(0);
  /** File offsets of the bytes #block holds. */
  #blockStart = 0;
  #blockEnd = 0;

  constructor(layerRoot: string, readAhead = 0) {
    this.#layerRoot = layerRoot;
    this.#readAhead = readAhead;
  }

  /** The record of `name` at `span`. */
  at(span: LineSpan, name: string): IndexEntry {
    this.#open ??= openIndexSync(this.#layerRoot);
    const { file, fd } = this.#open;
    if (span.offset < this.#blockStart || span.offset + span.length > this.#blockEnd) {
      const size = Math.max(this.#readAhead, span.length);
      if (this.#block.length < size) this.#block = Buffer.allocUnsafe(size);
      // Emptied first: a read that fails leaves no stale bytes behind for the next call.
      this.#blockStart = 0;
      this.#blockEnd = 0;
      const got = readAt(fd, this.#block.subarray(0, size), span.offset);
      this.#blockStart = span.offset;
      this.#blockEnd = span.offset + got;
    }
    let record: IndexEntry | undefined;
    try {
      const at = span.offset - this.#blockStart;
      if (span.offset + span.length <= this.#blockEnd) record = parseIndexLine(this.#block.toString('utf8', at, at + span.length), file, 0);
    } catch {
      record = undefined; // reported below, by where it was looked for
    }
    // The view spells a directory above a record as its nearest layer does, which may differ in case.
    if (record === undefined || (record.name !== name && caseFoldKey(record.name) !== caseFoldKey(name))) {
      throw createError('ERR_LAYER_CORRUPT', `${file}: the record of ${name} is no longer at byte ${span.offset}`, { path: file, entry: name });
    }
    return record;
  }

  close(): void {
    if (this.#open === undefined) return;
    const { fd } = this.#open;
    this.#open = undefined;
    fs.closeSync(fd);
  }
}

/** entries.jsonl of `layerRoot`, opened for reading (never through a symbolic link). */
function openIndexSync(layerRoot: string): { file: string; fd: number } {
  const file = path.join(layerRoot, INDEX_DIR, ENTRIES_FILE);
  return { file, fd: openLayerFile(file, layerRoot, { path: layerRoot }) };
}

/** A missing entries.jsonl is a damaged layer; one the system cannot read now is ERR_IO (layerFileError). */
function indexOpenError(layerRoot: string, cause: unknown): unknown {
  if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') return layerFileError(cause, `${layerRoot}: cannot open ${INDEX_DIR}/${ENTRIES_FILE}`, { path: layerRoot });
  return createError('ERR_LAYER_CORRUPT', `${layerRoot}: no ${ENTRIES_FILE}`, { path: layerRoot }, cause);
}

/** Reads all records synchronously (small layers, chain lookups). */
export function readIndexEntriesSync(layerRoot: string): IndexEntry[] {
  const file = path.join(layerRoot, INDEX_DIR, ENTRIES_FILE);
  const text = readLayerText(file, layerRoot, { path: layerRoot });
  const out: IndexEntry[] = [];
  let start = 0;
  let n = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    n++;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    try {
      out.push(JSON.parse(line) as IndexEntry);
    } catch (cause) {
      throw createError('ERR_LAYER_CORRUPT', `${file}:${n}: not a JSON record`, { path: file, line: n }, cause);
    }
  }
  return out;
}
