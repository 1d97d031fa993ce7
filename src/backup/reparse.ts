/**
 * REPARSE_DATA_BUFFER for symbolic links and mount points (junctions), FORMATS.md §1.6.
 * Other tags cannot be represented in a layer tar and are a typed error.
 */
import { createError } from '../errors.js';

export const IO_REPARSE_TAG_MOUNT_POINT = 0xa0000003;
export const IO_REPARSE_TAG_SYMLINK = 0xa000000c;
export const SYMLINK_FLAG_RELATIVE = 1;

/** What a layer tar can carry: the target as shown to users, and the kind. */
export interface ReparsePoint {
  target: string;
  isMountPoint: boolean;
}

export interface DecodedReparsePoint extends ReparsePoint {
  tag: number;
  substituteName: string;
  printName: string;
  /** Symlink flags word; 0 for mount points. */
  flags: number;
}

const HEADER = 8;
const NAMES_HEADER = 8;

/** The NT form of a Win32 path and whether it is relative. */
export function ntSubstituteName(target: string): { name: string; relative: boolean } {
  if (target.startsWith('\\\\?\\')) return { name: `\\??\\${target.slice(4)}`, relative: false };
  if (target.startsWith('\\\\')) return { name: `\\??\\UNC\\${target.slice(2)}`, relative: false };
  if (/^[A-Za-z]:/.test(target)) return { name: `\\??\\${target}`, relative: false };
  return { name: target, relative: true };
}

/** Encodes a symlink (relative flag when the target is relative) or a mount point. */
export function encodeReparsePoint(rp: ReparsePoint): Buffer {
  if (rp.target === '' || rp.target.includes('\0')) {
    throw createError('ERR_REPARSE_INVALID', `reparse target ${JSON.stringify(rp.target)} is empty or contains NUL`, { target: rp.target });
  }
  const { name, relative } = ntSubstituteName(rp.target);
  const sub = Buffer.from(name, 'utf16le');
  const print = Buffer.from(rp.target, 'utf16le');
  const flagsSize = rp.isMountPoint ? 0 : 4;
  const pathBuffer = sub.length + 2 + print.length + 2;
  const dataLength = NAMES_HEADER + flagsSize + pathBuffer;
  if (dataLength > 0xffff || HEADER + dataLength > 16 * 1024) {
    throw createError('ERR_REPARSE_INVALID', `reparse target of ${rp.target.length} characters does not fit a 16 KiB reparse buffer`, { targetLength: rp.target.length });
  }
  const out = Buffer.alloc(HEADER + dataLength);
  out.writeUInt32LE(rp.isMountPoint ? IO_REPARSE_TAG_MOUNT_POINT : IO_REPARSE_TAG_SYMLINK, 0);
  out.writeUInt16LE(dataLength, 4);
  out.writeUInt16LE(0, 8);
  out.writeUInt16LE(sub.length, 10);
  out.writeUInt16LE(sub.length + 2, 12);
  out.writeUInt16LE(print.length, 14);
  let pos = HEADER + NAMES_HEADER;
  if (!rp.isMountPoint) {
    out.writeUInt32LE(relative ? SYMLINK_FLAG_RELATIVE : 0, pos);
    pos += 4;
  }
  sub.copy(out, pos);
  print.copy(out, pos + sub.length + 2);
  return out;
}

/** The tag of a reparse buffer, or undefined when too short to hold one. */
export function reparseTagOf(buf: Buffer): number | undefined {
  return buf.length >= 4 ? buf.readUInt32LE(0) : undefined;
}

function invalid(message: string): Error {
  return createError('ERR_REPARSE_INVALID', `reparse buffer: ${message}`, {});
}

function readName(buf: Buffer, base: number, end: number, offset: number, length: number, what: string): string {
  if (offset % 2 !== 0 || length % 2 !== 0) throw invalid(`${what} is not UTF-16 aligned`);
  const start = base + offset;
  if (start + length > end) throw invalid(`${what} runs past the buffer`);
  return buf.toString('utf16le', start, start + length);
}

/** Decodes a symlink or mount point; the target is the PrintName, as go-winio returns it. */
export function decodeReparsePoint(buf: Buffer): DecodedReparsePoint {
  if (buf.length < HEADER) throw invalid(`${buf.length} bytes cannot hold a header`);
  const tag = buf.readUInt32LE(0);
  if (tag !== IO_REPARSE_TAG_MOUNT_POINT && tag !== IO_REPARSE_TAG_SYMLINK) {
    throw createError('ERR_REPARSE_UNSUPPORTED', `reparse tag 0x${tag.toString(16).padStart(8, '0')} is neither a symbolic link nor a mount point`, { tag });
  }
  const dataLength = buf.readUInt16LE(4);
  const end = HEADER + dataLength;
  if (end > buf.length) throw invalid(`data length ${dataLength} runs past the ${buf.length}-byte buffer`);
  const isMountPoint = tag === IO_REPARSE_TAG_MOUNT_POINT;
  const base = HEADER + NAMES_HEADER + (isMountPoint ? 0 : 4);
  if (base > end) throw invalid('data too short for the name offsets');
  const flags = isMountPoint ? 0 : buf.readUInt32LE(HEADER + NAMES_HEADER);
  const substituteName = readName(buf, base, end, buf.readUInt16LE(8), buf.readUInt16LE(10), 'substitute name');
  const printName = readName(buf, base, end, buf.readUInt16LE(12), buf.readUInt16LE(14), 'print name');
  let target = printName;
  if (target === '') {
    // Some tools leave PrintName empty; the substitute name, minus its NT prefix, is the target.
    target = substituteName.startsWith('\\??\\UNC\\') ? `\\\\${substituteName.slice(8)}` : substituteName.startsWith('\\??\\') ? substituteName.slice(4) : substituteName;
  }
  if (target === '' || target.includes('\0')) throw invalid('target is empty or contains NUL');
  return { target, isMountPoint, tag, substituteName, printName, flags };
}
