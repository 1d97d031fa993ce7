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
import { createError } from '../errors.js';
import { metadataFromPayloads, type EntryMetadata } from '../convert/metadata.js';
import { FILE_ATTRIBUTE_DIRECTORY, type FileBasicInfo } from '../util/windows.js';
import { readAt } from '../util/lines.js';
import { WCIDIRS_SUFFIX } from '../util/safe-path.js';
import { isTransportRecord } from './layer-writer.js';
import {
  INDEX_DIR,
  STREAMS_FILE,
  infoFromRecord,
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

/** Streams the entries of the layer at `layerRoot`, inherited (cloned UtilityVM) entries left out. */
export async function* readLayerEntries(layerRoot: string, info: LayerInfo = readLayerInfo(layerRoot)): AsyncGenerator<ExportItem> {
  const merged = new Map<string, IndexEntry>();
  for (const m of info.merged ?? []) merged.set(m.name, m);
  const streamsFile = path.join(layerRoot, INDEX_DIR, STREAMS_FILE);
  for await (const record of readIndexEntries(layerRoot)) {
    if (record.inherited === true) continue;
    // Only a directory record was merged; a deletion of the same name before it stays one.
    const r = record.kind === 'directory' ? (merged.get(record.name) ?? record) : record;
    yield itemFromRecord(layerRoot, streamsFile, r);
  }
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
      return { kind: 'entry', name: r.name, info, hasData: scan.data !== undefined, data: scan.data, meta: scan.meta, streams: scan.streams };
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
      throw createError('ERR_LAYER_CORRUPT', `${r.name}: its data file is missing`, { entry: r.name }, cause);
    }
    data = { file: host, offset: 0, length: st.size };
  }
  return { kind: 'entry', name: r.name, info, hasData: r.kind === 'file' && r.dataless !== true, data, meta, streams };
}

function openExisting(file: string, entry: string): number {
  try {
    return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (cause) {
    throw createError('ERR_LAYER_CORRUPT', `${entry}: cannot open ${file}: ${(cause as Error).message}`, { entry }, cause);
  }
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
