/**
 * Reads a stored layer back as entries, the role of hcsshim's legacyLayerReader, in
 * the order they were imported (so exports are deterministic and keep the producer's
 * order). For each entry it finds the sub-streams by reading only their headers
 * (positioned reads that skip payloads); metadata payloads are read with a cap, data
 * and alternate data streams are handed out as byte ranges to stream later.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupStreamId, STREAM_ID_SIZE } from '../backup/constants.js';
import { createError, layerFileError } from '../errors.js';
import { metadataFromPayloads, type EntryMetadata } from '../convert/metadata.js';
import { FILE_ATTRIBUTE_DIRECTORY, type FileBasicInfo } from '../util/windows.js';
import { readAt } from '../util/lines.js';
import { WCIDIRS_SUFFIX, caseFoldKey, parentName } from '../util/safe-path.js';
import { isTransportRecord } from './layer-writer.js';
import {
  INDEX_DIR,
  STREAMS_FILE,
  infoFromRecord,
  openLayerFile,
  readIndexEntries,
  readLayerInfo,
  type IndexEntry,
  type LayerInfo,
} from './metadata-index.js';

/** The most metadata (SD, EA, reparse) read for one entry. */
export const MAX_ENTRY_METADATA_BYTES = 1024 * 1024;

/** A byte range of a file on disk. */
export interface ByteRange {
  file: string;
  offset: number;
  length: number;
  /** The bytes themselves, when the reader already holds them (a small file read whole). */
  bytes?: Buffer;
}

/** Transport files up to this size are read with one call, then served from memory. */
export const SMALL_FILE_READ_BYTES = 256 * 1024;

export interface ExportAlternateStream {
  /** Backup-stream name, `:name:$DATA`. */
  name: string;
  range: ByteRange;
}

export type ExportItem =
  | { kind: 'whiteout'; name: string }
  | { kind: 'link'; name: string; target: string; info: FileBasicInfo }
  | {
      kind: 'entry';
      name: string;
      info: FileBasicInfo;
      hasData: boolean;
      /** Where the data stream is (absent for directories, symlinks, files without DATA). */
      data: ByteRange | undefined;
      meta: EntryMetadata;
      streams: ExportAlternateStream[];
    };

/**
 * Streams the entries of the layer at `layerRoot`, inherited (cloned UtilityVM) entries
 * left out. Every entry comes after the directories above it, as Windows' import needs
 * (it makes each entry inside its parent and never makes a missing one): a directory the
 * tar named only after entries below it comes before the first of them, and one it never
 * named (a plain `tar` of a list of files) comes as a plain directory there, with that
 * entry's times and no security descriptor (Windows gives it the inherited one).
 */
export async function* readLayerEntries(layerRoot: string, info: LayerInfo = readLayerInfo(layerRoot)): AsyncGenerator<ExportItem> {
  const merged = new Map<string, IndexEntry>();
  for (const m of info.merged ?? []) merged.set(m.name, m);
  const streamsFile = path.join(layerRoot, INDEX_DIR, STREAMS_FILE);
  /** Case-folded names of the directories out so far (or there on Windows: cloned ones). */
  const present = new Set<string>();
  /** Directories moved before their first entry, skipped where their record comes. */
  const hoisted = new Set<string>();
  let directories: LayerDirectories | undefined;
  let lastParent = '';
  for await (const record of readIndexEntries(layerRoot)) {
    if (record.inherited === true) continue;
    // Only a directory record was merged; a deletion of the same name before it stays one.
    const r = record.kind === 'directory' ? (merged.get(record.name) ?? record) : record;
    if (r.kind !== 'whiteout') {
      const parent = parentName(r.name);
      if (parent !== lastParent) {
        const missing: string[] = [];
        for (let d = parent; d !== '' && !present.has(caseFoldKey(d)); d = parentName(d)) missing.push(d);
        if (missing.length > 0) {
          directories ??= await layerDirectories(layerRoot);
          for (let i = missing.length - 1; i >= 0; i--) {
            const name = missing[i] as string;
            const key = caseFoldKey(name);
            present.add(key);
            if (directories.inherited.has(key)) continue;
            const own = directories.own.get(key);
            if (own !== undefined) {
              hoisted.add(key);
              yield itemFromRecord(layerRoot, streamsFile, merged.get(own.name) ?? own);
            } else {
              yield plainDirectory(name, r);
            }
          }
        }
        lastParent = parent;
      }
      if (isDirectoryRecord(r)) {
        const key = caseFoldKey(r.name);
        if (hoisted.delete(key)) continue;
        present.add(key);
      }
    }
    yield itemFromRecord(layerRoot, streamsFile, r);
  }
}

function isDirectoryRecord(r: IndexEntry): boolean {
  return r.kind === 'directory' || (r.kind === 'symlink' && ((r.attributes ?? 0) & FILE_ATTRIBUTE_DIRECTORY) !== 0);
}

interface LayerDirectories {
  /** The layer's own directory records, by case-folded name. */
  own: Map<string, IndexEntry>;
  /** Case-folded names of the directories cloned from the parent (the UtilityVM). */
  inherited: Set<string>;
}

/** Read only for a layer with an entry whose parent directory did not come before it. */
async function layerDirectories(layerRoot: string): Promise<LayerDirectories> {
  const own = new Map<string, IndexEntry>();
  const inherited = new Set<string>();
  for await (const r of readIndexEntries(layerRoot)) {
    if (!isDirectoryRecord(r)) continue;
    if (r.inherited === true) inherited.add(caseFoldKey(r.name));
    else if (!own.has(caseFoldKey(r.name))) own.set(caseFoldKey(r.name), r);
  }
  return { own, inherited };
}

/** A directory the tar never named, before `first`, the first entry below it. */
function plainDirectory(name: string, first: IndexEntry): ExportItem {
  const times = infoFromRecord(first);
  return {
    kind: 'entry',
    name,
    info: { ...times, fileAttributes: FILE_ATTRIBUTE_DIRECTORY },
    hasData: false,
    data: undefined,
    meta: { securityDescriptor: undefined, extendedAttributes: [], reparse: undefined },
    streams: [],
  };
}

/** Builds the export item of one index record. */
export function itemFromRecord(layerRoot: string, streamsFile: string, r: IndexEntry): ExportItem {
  switch (r.kind) {
    case 'whiteout':
      return { kind: 'whiteout', name: r.name };
    case 'link':
      if (typeof r.target !== 'string') throw createError('ERR_LAYER_CORRUPT', `${r.name}: link record without a target`, { entry: r.name });
      return { kind: 'link', name: r.name, target: r.target, info: infoFromRecord(r) };
    case 'file':
    case 'directory':
    case 'symlink':
      break;
    default:
      throw createError('ERR_LAYER_CORRUPT', `${r.name}: unknown record kind ${String(r.kind)}`, { entry: r.name });
  }
  const info = infoFromRecord(r);
  const host = path.join(layerRoot, r.host ?? r.name);
  if (isTransportRecord(r)) {
    // Directories, directory symlinks and junctions are a directory plus its sidecar.
    const file = (info.fileAttributes & FILE_ATTRIBUTE_DIRECTORY) !== 0 ? host + WCIDIRS_SUFFIX : host;
    const fd = openExisting(file, r.name);
    try {
      const size = fs.fstatSync(fd).size;
      // Most files are small: one read, then headers and data come from memory.
      let whole: Buffer | undefined;
      if (size <= SMALL_FILE_READ_BYTES) {
        whole = Buffer.allocUnsafe(size);
        whole = whole.subarray(0, readAt(fd, whole, 0));
      }
      const attrs = Buffer.alloc(4);
      const attrBytes = whole !== undefined ? whole.copy(attrs, 0, 0, 4) : fs.readSync(fd, attrs, 0, 4, 0);
      if (attrBytes !== 4) throw createError('ERR_LAYER_CORRUPT', `${r.name}: ${file} is shorter than its attributes`, { entry: r.name });
      info.fileAttributes = attrs.readUInt32LE(0);
      const scan = scanBackupStream(fd, file, 4, whole?.length ?? size, r.name, whole);
      return { kind: 'entry', name: r.name, info, hasData: scan.data !== undefined && r.dataless !== true, data: scan.data, meta: scan.meta, streams: scan.streams };
    } finally {
      fs.closeSync(fd);
    }
  }
  let meta: EntryMetadata = { securityDescriptor: undefined, extendedAttributes: [], reparse: undefined };
  let streams: ExportAlternateStream[] = [];
  if (r.streams !== undefined) {
    const fd = openExisting(streamsFile, r.name);
    try {
      const scan = scanBackupStream(fd, streamsFile, r.streams[0], r.streams[0] + r.streams[1], r.name);
      meta = scan.meta;
      streams = scan.streams;
    } finally {
      fs.closeSync(fd);
    }
  }
  let data: ByteRange | undefined;
  if (r.kind === 'file') {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(host);
    } catch (cause) {
      throw layerFileError(cause, `${r.name}: its data file ${host}`, { entry: r.name });
    }
    data = { file: host, offset: 0, length: st.size };
  }
  return { kind: 'entry', name: r.name, info, hasData: r.kind === 'file' && r.dataless !== true, data, meta, streams };
}

function openExisting(file: string, entry: string): number {
  return openLayerFile(file, entry, { entry });
}

interface ScanResult {
  data: ByteRange | undefined;
  meta: EntryMetadata;
  streams: ExportAlternateStream[];
}

/**
 * Walks the sub-stream headers between `start` and `end` of an open file, reading
 * metadata payloads (capped) and recording where data and ADS payloads are.
 */
export function scanBackupStream(fd: number, file: string, start: number, end: number, entry: string, whole?: Buffer): ScanResult {
  const head = Buffer.alloc(STREAM_ID_SIZE);
  let pos = start;
  let metaBytes = 0;
  let data: ByteRange | undefined;
  const payloads: { securityDescriptor?: Buffer; eaData?: Buffer; reparseData?: Buffer } = {};
  const streams: ExportAlternateStream[] = [];
  const readExact = (buf: Buffer, at: number): void => {
    const n = whole !== undefined ? whole.copy(buf, 0, at, at + buf.length) : fs.readSync(fd, buf, 0, buf.length, at);
    if (n !== buf.length) {
      throw createError('ERR_BACKUP_STREAM_TRUNCATED', `${entry}: backup stream in ${file} ends early at byte ${at}`, { entry });
    }
  };
  while (pos < end) {
    if (end - pos < STREAM_ID_SIZE) throw createError('ERR_BACKUP_STREAM_TRUNCATED', `${entry}: partial stream header at byte ${pos}`, { entry });
    readExact(head, pos);
    const id = head.readUInt32LE(0);
    const sizeBig = head.readBigUInt64LE(8);
    const nameSize = head.readUInt32LE(16);
    if (sizeBig > BigInt(Number.MAX_SAFE_INTEGER) || nameSize % 2 !== 0 || nameSize > 65534) {
      throw createError('ERR_BACKUP_STREAM_INVALID', `${entry}: bad stream header at byte ${pos}`, { entry });
    }
    const size = Number(sizeBig);
    pos += STREAM_ID_SIZE;
    let name = '';
    if (nameSize > 0) {
      const nb = Buffer.alloc(nameSize);
      readExact(nb, pos);
      name = nb.toString('utf16le');
      pos += nameSize;
    }
    if (pos + size > end) throw createError('ERR_BACKUP_STREAM_TRUNCATED', `${entry}: stream ${id} of ${size} bytes runs past the end`, { entry });
    const readPayload = (): Buffer => {
      metaBytes += size;
      if (metaBytes > MAX_ENTRY_METADATA_BYTES) {
        throw createError('ERR_METADATA_TOO_LARGE', `${entry}: more than ${MAX_ENTRY_METADATA_BYTES} bytes of metadata`, { entry });
      }
      const b = Buffer.alloc(size);
      readExact(b, pos);
      return b;
    };
    switch (id) {
      case BackupStreamId.Data:
        if (data !== undefined) throw createError('ERR_BACKUP_STREAM_INVALID', `${entry}: two data streams`, { entry });
        data = { file, offset: pos, length: size, ...(whole !== undefined ? { bytes: whole.subarray(pos, pos + size) } : {}) };
        break;
      case BackupStreamId.SecurityData:
        payloads.securityDescriptor = readPayload();
        break;
      case BackupStreamId.EaData:
        payloads.eaData = readPayload();
        break;
      case BackupStreamId.ReparseData:
        payloads.reparseData = readPayload();
        break;
      case BackupStreamId.AlternateData:
        streams.push({ name, range: { file, offset: pos, length: size, ...(whole !== undefined ? { bytes: whole.subarray(pos, pos + size) } : {}) } });
        break;
      case BackupStreamId.SparseBlock:
        throw createError('ERR_SPARSE_UNSUPPORTED', `${entry}: sparse data cannot be exported yet`, { entry });
      case BackupStreamId.Link:
      case BackupStreamId.PropertyData:
      case BackupStreamId.ObjectId:
      case BackupStreamId.TxfsData:
        break; // not representable in a tar (FORMATS.md §2.6), as in every reference
      default:
        throw createError('ERR_BACKUP_STREAM_ID_UNKNOWN', `${entry}: unknown backup stream id ${id}`, { entry, id });
    }
    pos += size;
  }
  return { data, meta: metadataFromPayloads(payloads, entry), streams };
}
