/**
 * FILE_FULL_EA_INFORMATION chains, the payload of an EA_DATA backup stream (FORMATS.md §1.5).
 * Every entry, the last included, is padded to 4 bytes on encode; decode accepts a missing
 * final pad.
 */
import { createError } from '../errors.js';

export interface ExtendedAttribute {
  /** ASCII, 1–255 bytes. NTFS compares EA names case-insensitively. */
  name: string;
  value: Buffer;
  /** u8; 0x80 is FILE_NEED_EA. */
  flags: number;
}

const ENTRY_HEADER = 8;
export const MAX_EA_NAME_BYTES = 255;
export const MAX_EA_VALUE_BYTES = 65535;
/**
 * NTFS caps a file's EA set by its packed size (flags, name length, value length, name,
 * NUL, value: 4 + name + 1 + value bytes an EA), held in 16 bits.
 */
export const MAX_EA_PACKED_BYTES = 65535;
/**
 * The most bytes such a set takes as FILE_FULL_EA_INFORMATION (a backup stream's EA_DATA):
 * each EA gains a 4-byte link and up to 3 of padding, at most twice its packed size.
 */
export const MAX_EA_STREAM_BYTES = 2 * MAX_EA_PACKED_BYTES + 2;

/** The packed size NTFS counts against MAX_EA_PACKED_BYTES. */
export function packedEaSize(eas: readonly ExtendedAttribute[]): number {
  let total = 0;
  for (const ea of eas) total += 4 + ea.name.length + 1 + ea.value.length;
  return total;
}

/** Printable ASCII (space included, as FAT names allow) without the characters NTFS forbids in EA names. */
const EA_NAME = /^[\x20-\x7e]{1,255}$/;
const EA_NAME_FORBIDDEN = /["*+,/:;<=>?[\\\]|]/;

export function isValidEaName(name: string): boolean {
  return EA_NAME.test(name) && !EA_NAME_FORBIDDEN.test(name);
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Encodes EAs in the given order. */
export function encodeExtendedAttributes(eas: readonly ExtendedAttribute[]): Buffer {
  const seen = new Set<string>();
  let total = 0;
  for (const ea of eas) {
    if (!isValidEaName(ea.name)) {
      throw createError('ERR_EA_INVALID', `extended attribute name ${JSON.stringify(ea.name)} is not 1-255 printable ASCII characters NTFS allows`, { name: ea.name });
    }
    const folded = ea.name.toUpperCase();
    if (seen.has(folded)) throw createError('ERR_EA_INVALID', `extended attribute ${ea.name} appears twice (NTFS names are case-insensitive)`, { name: ea.name });
    seen.add(folded);
    if (ea.value.length > MAX_EA_VALUE_BYTES) {
      throw createError('ERR_EA_INVALID', `extended attribute ${ea.name} value of ${ea.value.length} bytes exceeds ${MAX_EA_VALUE_BYTES}`, { name: ea.name });
    }
    if (!Number.isInteger(ea.flags) || ea.flags < 0 || ea.flags > 255) {
      throw createError('ERR_EA_INVALID', `extended attribute ${ea.name} flags ${ea.flags} are not a byte`, { name: ea.name });
    }
    total += pad4(ENTRY_HEADER + ea.name.length + 1 + ea.value.length);
  }
  const out = Buffer.alloc(total);
  let pos = 0;
  eas.forEach((ea, i) => {
    const len = pad4(ENTRY_HEADER + ea.name.length + 1 + ea.value.length);
    out.writeUInt32LE(i === eas.length - 1 ? 0 : len, pos);
    out.writeUInt8(ea.flags, pos + 4);
    out.writeUInt8(ea.name.length, pos + 5);
    out.writeUInt16LE(ea.value.length, pos + 6);
    out.write(ea.name, pos + ENTRY_HEADER, 'latin1');
    ea.value.copy(out, pos + ENTRY_HEADER + ea.name.length + 1);
    pos += len;
  });
  return out;
}

function invalid(message: string, offset: number): Error {
  return createError('ERR_EA_INVALID', `extended attribute buffer: ${message} at offset ${offset}`, { offset });
}

/** Decodes a chain; every bound is checked, so hostile input gives ERR_EA_INVALID only. */
export function decodeExtendedAttributes(buf: Buffer): ExtendedAttribute[] {
  const out: ExtendedAttribute[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < ENTRY_HEADER) throw invalid('entry header cut short', pos);
    const next = buf.readUInt32LE(pos);
    const flags = buf.readUInt8(pos + 4);
    const nameLength = buf.readUInt8(pos + 5);
    const valueLength = buf.readUInt16LE(pos + 6);
    const used = ENTRY_HEADER + nameLength + 1 + valueLength;
    if (pos + used > buf.length) throw invalid('entry runs past the end', pos);
    const nameEnd = pos + ENTRY_HEADER + nameLength;
    if (buf[nameEnd] !== 0) throw invalid('name is not NUL-terminated', pos);
    const name = buf.toString('latin1', pos + ENTRY_HEADER, nameEnd);
    if (!isValidEaName(name)) throw invalid(`name ${JSON.stringify(name)} is not allowed`, pos);
    const value = Buffer.from(buf.subarray(nameEnd + 1, nameEnd + 1 + valueLength));
    out.push({ name, value, flags });
    if (next === 0) {
      const rest = buf.subarray(pos + used);
      if (rest.length > 3 || rest.some((b) => b !== 0)) throw invalid('bytes after the last entry', pos + used);
      return out;
    }
    if (next < used || pos + next > buf.length) throw invalid(`next-entry offset ${next} is out of range`, pos);
    pos += next;
  }
}
