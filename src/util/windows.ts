/**
 * Win32 facts shared by every layer of winlayer: file attribute bits, FILE_BASIC_INFO,
 * and FILETIME arithmetic. Times are FILETIME ticks (100 ns since 1601-01-01 UTC) held
 * in a bigint, so nothing is rounded anywhere between a tar and the disk.
 */

export const FILE_ATTRIBUTE_READONLY = 0x1;
export const FILE_ATTRIBUTE_HIDDEN = 0x2;
export const FILE_ATTRIBUTE_SYSTEM = 0x4;
export const FILE_ATTRIBUTE_DIRECTORY = 0x10;
export const FILE_ATTRIBUTE_ARCHIVE = 0x20;
export const FILE_ATTRIBUTE_NORMAL = 0x80;
export const FILE_ATTRIBUTE_SPARSE_FILE = 0x200;
export const FILE_ATTRIBUTE_REPARSE_POINT = 0x400;

/** FILE_BASIC_INFO: the four times and the attributes of a file. */
export interface FileBasicInfo {
  creationTime: bigint;
  lastAccessTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
  fileAttributes: number;
}

/** FILETIME ticks between 1601-01-01 and 1970-01-01. */
export const FILETIME_UNIX_EPOCH = 116444736000000000n;

/**
 * Unix nanoseconds to FILETIME ticks. Division truncates toward zero, as Go's
 * `syscall.NsecToFiletime` does, so our tars and go-winio's agree on sub-100 ns input.
 */
export function filetimeFromUnixNs(ns: bigint): bigint {
  return ns / 100n + FILETIME_UNIX_EPOCH;
}

/**
 * FILETIME ticks as Unix seconds for utimes, in doubles (exact to ~2 µs for today's
 * times), kept within ±2^34 s (years 1425 to 2514): host file systems clamp to less
 * anyway, and utimes refuses what a timespec cannot hold. Indexes keep the exact value.
 */
export function hostSecondsFromFiletime(filetime: bigint): number {
  return clampHostSeconds(Number(filetime) / FILETIME_TICKS_PER_SECOND - FILETIME_UNIX_EPOCH_SECONDS);
}

/**
 * `seconds` as utimes must be given it: Node takes a negative number of seconds for "now",
 * so a time before 1970 goes as a Date (to the ms; after 1970, a double keeps the µs).
 */
export function utimesTime(seconds: number): number | Date {
  return seconds < 0 ? new Date(Math.round(seconds * 1000)) : seconds;
}

/** `seconds` within ±2^34 (see hostSecondsFromFiletime). */
export function clampHostSeconds(seconds: number): number {
  return Math.min(HOST_SECONDS_LIMIT, Math.max(-HOST_SECONDS_LIMIT, seconds));
}

const FILETIME_TICKS_PER_SECOND = 1e7;
const FILETIME_UNIX_EPOCH_SECONDS = 11_644_473_600;
const HOST_SECONDS_LIMIT = 2 ** 34;

/** FILETIME ticks to Unix nanoseconds (exact). */
export function unixNsFromFiletime(ft: bigint): bigint {
  return (ft - FILETIME_UNIX_EPOCH) * 100n;
}

/** True when the attributes say directory. */
export function isDirectoryAttributes(attributes: number): boolean {
  return (attributes & FILE_ATTRIBUTE_DIRECTORY) !== 0;
}
