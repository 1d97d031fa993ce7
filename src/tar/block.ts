/**
 * The 512-byte tar header block: field layout and the field codecs of Go's archive/tar.
 *
 * Pure functions on buffers, shared by the encoder (which must reproduce Go's bytes) and the
 * reader (which reads every field as Go does).
 */

/** Size of a tar block; headers and padded data come in whole blocks. */
export const BLOCK_SIZE = 512;

/** A field of the header block: byte offset and length. */
export interface BlockField {
  readonly offset: number;
  readonly length: number;
}

/** Field layout shared by V7, USTAR/PAX and GNU headers (GNU has no prefix). */
export const FIELD = {
  name: { offset: 0, length: 100 },
  mode: { offset: 100, length: 8 },
  uid: { offset: 108, length: 8 },
  gid: { offset: 116, length: 8 },
  size: { offset: 124, length: 12 },
  mtime: { offset: 136, length: 12 },
  checksum: { offset: 148, length: 8 },
  typeflag: { offset: 156, length: 1 },
  linkname: { offset: 157, length: 100 },
  magic: { offset: 257, length: 6 },
  version: { offset: 263, length: 2 },
  uname: { offset: 265, length: 32 },
  gname: { offset: 297, length: 32 },
  devmajor: { offset: 329, length: 8 },
  devminor: { offset: 337, length: 8 },
  prefix: { offset: 345, length: 155 },
  /** The STAR format shortens the prefix to make room for atime/ctime. */
  starPrefix: { offset: 345, length: 131 },
  starTrailer: { offset: 508, length: 4 },
  /** GNU headers keep the access and change times where USTAR has its prefix; STAR at its end. */
  gnuAtime: { offset: 345, length: 12 },
  gnuCtime: { offset: 357, length: 12 },
  starAtime: { offset: 476, length: 12 },
  starCtime: { offset: 488, length: 12 },
} as const satisfies Record<string, BlockField>;

/** USTAR magic and version, as Go writes them for USTAR and PAX headers. */
export const MAGIC_USTAR = Buffer.from('ustar\0', 'latin1');
export const VERSION_USTAR = Buffer.from('00', 'latin1');

const SLASH = 0x2f;
const SPACE = 0x20;
const NUL = 0;
const ZERO_DIGIT = 0x30;
const SEVEN_DIGIT = 0x37;
const OCTAL_BITS_PER_DIGIT = 3n;
const OCTAL_RADIX = 8;
/** Base-256 numbers flag themselves with the top bit of the first byte (GNU extension). */
const BASE256_FLAG = 0x80;
const BASE256_NEGATIVE = 0x40;
const INT64_OVERFLOW_SHIFT = 56n;
const INT64_SIGN_SHIFT = 63n;

/** Rounds a data size up to whole blocks. */
export function blockPaddingLength(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

/**
 * Copies `s` into the field as Go's formatter.formatString does: truncated to the field,
 * NUL-terminated when shorter; when truncation leaves a `/` in the last byte, the NUL moves
 * to where the run of trailing slashes starts (so buggy readers do not see a directory).
 */
export function writeStringField(block: Buffer, field: BlockField, s: Uint8Array): void {
  const { offset, length } = field;
  if (s.length <= length) {
    block.set(s, offset);
    if (s.length < length) block[offset + s.length] = NUL;
    return;
  }
  block.set(s.subarray(0, length), offset);
  if (block[offset + length - 1] === SLASH) {
    let n = length;
    while (n > 0 && s[n - 1] === SLASH) n--;
    block[offset + n] = NUL;
  }
}

/** The first value too large for a field of each length, in octal with its NUL. */
const OCTAL_LIMITS = new Map<number, bigint>();

/** True when `x` fits the field in octal with the terminating NUL (Go's fitsInOctal). */
export function fitsInOctal(fieldLength: number, x: bigint): boolean {
  let limit = OCTAL_LIMITS.get(fieldLength);
  if (limit === undefined) {
    limit = 1n << (BigInt(fieldLength - 1) * OCTAL_BITS_PER_DIGIT);
    OCTAL_LIMITS.set(fieldLength, limit);
  }
  return x >= 0n && x < limit;
}

/**
 * Writes `x` as zero-padded octal plus NUL (Go's formatter.formatOctal), digit by digit
 * (no string: it runs for every field of every header). A value that is not a safe integer
 * fitting the field is written as 0, which is what Go does when a PAX record carries it.
 */
export function writeOctalNumber(block: Buffer, field: BlockField, x: number): void {
  const { offset, length } = field;
  let v = Number.isSafeInteger(x) && x >= 0 && x < (OCTAL_NUMBER_LIMITS[length] ?? 0) ? x : 0;
  // Exactly length − 1 digits, then the NUL: what writeStringField makes of them.
  block[offset + length - 1] = NUL;
  for (let i = offset + length - 2; i >= offset; i--) {
    block[i] = DIGIT_ZERO + (v % 8);
    v = Math.floor(v / 8);
  }
}

const DIGIT_ZERO = 0x30;
/** 8^(length − 1) for field lengths up to 12, as numbers (index: field length). */
const OCTAL_NUMBER_LIMITS: readonly number[] = Array.from({ length: 13 }, (_, n) => (n === 0 ? 0 : 8 ** (n - 1)));

/** The unsigned header checksum: every byte summed, with the checksum field counted as spaces. */
export function computeChecksum(block: Uint8Array): number {
  let sum = 0;
  const words = block.length >= BLOCK_SIZE && (block.byteOffset & 3) === 0 ? wordsOf(block.buffer) : undefined;
  if (words !== undefined && (block.byteOffset >>> 2) + BLOCK_SIZE / 4 <= words.length) {
    // Bytes summed four at a time from 32-bit words, in two 16-bit lanes (bytes 0 and 2,
    // 1 and 3 of each word): 128 words add at most 128 × 2 × 255 to a lane, below 2^16.
    // It runs for every header; three times as fast as one sum a byte.
    const first = block.byteOffset >>> 2;
    let lanes = 0;
    for (let i = first; i < first + BLOCK_SIZE / 4; i++) {
      const w = words[i] as number;
      lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
    }
    sum = (lanes % 0x10000) + Math.floor(lanes / 0x10000);
  } else if (block.length >= BLOCK_SIZE) {
    // Four sums side by side: twice as fast as one.
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < BLOCK_SIZE; i += 4) {
      sum += block[i] as number;
      s1 += block[i + 1] as number;
      s2 += block[i + 2] as number;
      s3 += block[i + 3] as number;
    }
    sum += s1 + s2 + s3;
  } else {
    for (let i = 0; i < block.length; i++) sum += block[i] as number;
  }
  const { offset, length } = FIELD.checksum;
  for (let i = offset; i < offset + length; i++) sum += SPACE - (block[i] ?? 0);
  return sum;
}

/**
 * A 32-bit view of a whole input chunk's memory, made once per chunk rather than once per
 * header (the last one is kept; the caller checks that it reaches the block, as a buffer
 * that grew since would not).
 */
function wordsOf(buffer: ArrayBufferLike): Uint32Array<ArrayBufferLike> {
  if (buffer !== lastWordsBuffer) {
    lastWordsBuffer = buffer;
    lastWords = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
  }
  return lastWords;
}

let lastWordsBuffer: ArrayBufferLike | undefined;
let lastWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/** Go's signed variant of the checksum (bytes read as int8), which Go's reader also accepts. */
export function computeSignedChecksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = i >= FIELD.checksum.offset && i < FIELD.checksum.offset + FIELD.checksum.length ? SPACE : (block[i] ?? 0);
    sum += byte >= 0x80 ? byte - 0x100 : byte;
  }
  return sum;
}

/** Writes the checksum as Go does: six octal digits, NUL, space. */
export function writeChecksum(block: Buffer): void {
  const { offset, length } = FIELD.checksum;
  writeOctalNumber(block, CHECKSUM_DIGITS, computeChecksum(block));
  block[offset + length - 1] = SPACE;
}

/** The checksum field without its trailing space: six digits and a NUL. */
const CHECKSUM_DIGITS: BlockField = { offset: FIELD.checksum.offset, length: FIELD.checksum.length - 1 };

/** The bytes of a string field up to its first NUL (Go's parser.parseString). */
export function readStringField(block: Buffer, field: BlockField): Buffer {
  const end = field.offset + field.length;
  let nul = field.offset;
  while (nul < end && block[nul] !== NUL) nul++;
  return block.subarray(field.offset, nul);
}

/**
 * Parses a numeric field as Go's parser.parseNumeric: base-256 when the first byte has its
 * top bit set (two's complement, int64 range), else octal with leading/trailing spaces and
 * NULs trimmed and nothing but octal digits up to the first NUL. Undefined where Go fails.
 */
export function readNumericField(block: Buffer, field: BlockField): bigint | undefined {
  const first = block[field.offset] ?? 0;
  if ((first & BASE256_FLAG) !== 0) return readBase256(block, field);
  return readOctal(block, field);
}

function readBase256(block: Buffer, field: BlockField): bigint | undefined {
  const invert = ((block[field.offset] ?? 0) & BASE256_NEGATIVE) !== 0 ? 0xff : 0;
  let x = 0n;
  for (let i = 0; i < field.length; i++) {
    let c = (block[field.offset + i] ?? 0) ^ invert;
    if (i === 0) c &= 0x7f;
    if (x >> INT64_OVERFLOW_SHIFT > 0n) return undefined;
    x = (x << 8n) | BigInt(c);
  }
  if (x >> INT64_SIGN_SHIFT > 0n) return undefined;
  return invert === 0 ? x : -x - 1n;
}

/** Go's parser.parseOctal (the checksum field is read with this, never as base-256). */
export function readOctal(block: Buffer, field: BlockField): bigint | undefined {
  const x = readOctalNumber(block, field);
  return x === undefined ? undefined : BigInt(x);
}

/** readOctal as a number: exact, since fields are at most 12 bytes (36 bits). */
function readOctalNumber(block: Buffer, field: BlockField): number | undefined {
  let start = field.offset;
  let end = field.offset + field.length;
  while (start < end && (block[start] === SPACE || block[start] === NUL)) start++;
  while (end > start && (block[end - 1] === SPACE || block[end - 1] === NUL)) end--;
  if (start === end) return 0;
  // After trimming, the value runs to the first NUL; ParseUint(…, 8) accepts digits 0-7 only.
  // Fields are at most 12 bytes (36 bits), so a plain number accumulates exactly.
  let x = 0;
  for (let i = start; i < end; i++) {
    const c = block[i] ?? 0;
    if (c === NUL) break;
    if (c < ZERO_DIGIT || c > SEVEN_DIGIT) return undefined;
    x = x * OCTAL_RADIX + (c - ZERO_DIGIT);
  }
  return x;
}

/** True when every byte of `bytes` is zero. */
export function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** True when the checksum field reads as Go reads it and matches the unsigned or the signed sum. */
export function checksumMatches(block: Buffer): boolean {
  const sum = readOctalNumber(block, FIELD.checksum);
  if (sum === undefined) return false;
  return sum === computeChecksum(block) || sum === computeSignedChecksum(block);
}
