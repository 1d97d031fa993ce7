/** The WIN32_STREAM_ID header: encoding (decoding is the parser's). */
import { createError } from '../errors.js';
import { BackupStreamId, isBackupStreamId, SPARSE_OFFSET_SIZE, STREAM_ID_SIZE } from './constants.js';

/** A decoded sub-stream header. */
export interface BackupHeader {
  id: BackupStreamId;
  /** u32 stream attribute bits. */
  attributes: number;
  /** Payload bytes after the name; for SparseBlock, excluding the 8-byte offset. */
  size: number;
  /** '' when unnamed (UTF-16LE on the wire, not NUL-terminated). */
  name: string;
  /** SparseBlock only: the file offset; 0 otherwise. */
  offset: number;
}

export interface BackupHeaderInput {
  id: BackupStreamId;
  size: number;
  name?: string;
  attributes?: number;
  offset?: number;
}

const TWO_TO_32 = 0x1_0000_0000;

/** Encodes a header, its name and (for SparseBlock) the offset. */
export function encodeBackupHeader(h: BackupHeaderInput): Buffer {
  if (h.name === undefined && h.id !== BackupStreamId.SparseBlock && isBackupStreamId(h.id) && Number.isSafeInteger(h.size) && h.size >= 0) {
    // The common case (an unnamed stream): no name bytes, no BigInt.
    const buf = Buffer.allocUnsafe(STREAM_ID_SIZE);
    buf.writeUInt32LE(h.id, 0);
    buf.writeUInt32LE((h.attributes ?? 0) >>> 0, 4);
    buf.writeUInt32LE(h.size % TWO_TO_32, 8);
    buf.writeUInt32LE(Math.floor(h.size / TWO_TO_32), 12);
    buf.writeUInt32LE(0, 16);
    return buf;
  }
  if (!isBackupStreamId(h.id)) throw createError('ERR_BACKUP_STREAM_ID_UNKNOWN', `backup stream id ${String(h.id)} is unknown`, { id: h.id });
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw createError('ERR_BACKUP_STREAM_INVALID', `backup stream size ${h.size} is not a byte count`, { size: h.size });
  const name = h.name ?? '';
  if (name.includes('\0')) throw createError('ERR_BACKUP_STREAM_INVALID', `backup stream name ${JSON.stringify(name)} contains NUL`, {});
  const nameBytes = Buffer.from(name, 'utf16le');
  const isSparse = h.id === BackupStreamId.SparseBlock;
  const offset = h.offset ?? 0;
  if (isSparse && (!Number.isSafeInteger(offset) || offset < 0)) {
    throw createError('ERR_BACKUP_STREAM_INVALID', `sparse block offset ${offset} is not a byte offset`, { offset });
  }
  const buf = Buffer.allocUnsafe(STREAM_ID_SIZE + nameBytes.length + (isSparse ? SPARSE_OFFSET_SIZE : 0));
  buf.writeUInt32LE(h.id, 0);
  buf.writeUInt32LE((h.attributes ?? 0) >>> 0, 4);
  buf.writeBigUInt64LE(BigInt(h.size + (isSparse ? SPARSE_OFFSET_SIZE : 0)), 8);
  buf.writeUInt32LE(nameBytes.length, 16);
  nameBytes.copy(buf, STREAM_ID_SIZE);
  if (isSparse) buf.writeBigInt64LE(BigInt(offset), STREAM_ID_SIZE + nameBytes.length);
  return buf;
}
