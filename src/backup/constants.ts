/** Constants of the Win32 backup stream (WIN32_STREAM_ID), FORMATS.md §1. */

/** The on-wire header: id, attributes, size, name size (the C struct's sizeof of 24 is padding). */
export const STREAM_ID_SIZE = 20;

/** Stream ids (winbase.h BACKUP_*). */
export const BackupStreamId = {
  Data: 1,
  EaData: 2,
  SecurityData: 3,
  AlternateData: 4,
  Link: 5,
  PropertyData: 6,
  ObjectId: 7,
  ReparseData: 8,
  SparseBlock: 9,
  TxfsData: 10,
  GhostedFileExtents: 11,
} as const;
export type BackupStreamId = (typeof BackupStreamId)[keyof typeof BackupStreamId];

/** True for ids 1–11. */
export function isBackupStreamId(n: number): n is BackupStreamId {
  return Number.isInteger(n) && n >= 1 && n <= 11;
}

/** Stream attribute bits. */
export const StreamAttribute = {
  Normal: 0,
  ModifiedWhenRead: 0x1,
  ContainsSecurity: 0x2,
  ContainsProperties: 0x4,
  Sparse: 0x8,
  ContainsGhostedFileExtents: 0x10,
} as const;

/**
 * Cap on a stream name, in bytes: a stream name is a path component plus `:` and a type
 * (`:name:$DATA`), so 255 UTF-16 units of name plus the decorations fit well under 1 KiB.
 * Anything longer is not a name NTFS could have made.
 */
export const DEFAULT_MAX_NAME_BYTES = 1024;

/** The sparse block's file offset, which counts inside its Size field. */
export const SPARSE_OFFSET_SIZE = 8;
