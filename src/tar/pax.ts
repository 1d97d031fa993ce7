/**
 * PAX extended-header values as Go's archive/tar writes and reads them.
 *
 * Windows layer tars are produced by Go (go-winio backuptar), so every rule here follows
 * Go's behaviour, not the looser POSIX text: times are `secs[.frac]` with the fraction
 * trimmed of trailing zeros and negative times "borrowing" a second; records are
 * `"<len> <key>=<value>\n"` with a self-counting byte length; keys may not be empty or
 * contain `=` or NUL, and only the values of path-like keys may not contain NUL.
 */

import { isAscii } from 'node:buffer';
import { createError } from '../errors.js';
import { recentTexts } from '../util/recent-texts.js';

/** Basic PAX keys that Go's tar maps onto header fields (POSIX pax, plus `ctime`). */
export const PAX_PATH = 'path';
export const PAX_LINKPATH = 'linkpath';
export const PAX_SIZE = 'size';
export const PAX_UID = 'uid';
export const PAX_GID = 'gid';
export const PAX_UNAME = 'uname';
export const PAX_GNAME = 'gname';
export const PAX_MTIME = 'mtime';
export const PAX_ATIME = 'atime';
export const PAX_CTIME = 'ctime';
/** Prefix of the GNU sparse-file keys; Go's writer drops user records with it. */
export const PAX_GNU_SPARSE_PREFIX = 'GNU.sparse.';

/** The keys Go's Writer derives from header fields; user records with these keys are not copied. */
export const PAX_BASIC_KEYS: ReadonlySet<string> = new Set([
  PAX_PATH, PAX_LINKPATH, PAX_SIZE, PAX_UID, PAX_GID, PAX_UNAME, PAX_GNAME, PAX_MTIME, PAX_ATIME, PAX_CTIME,
]);

/** Keys whose values are strings of the ustar header and so may not contain NUL. */
const NUL_FREE_VALUE_KEYS: ReadonlySet<string> = new Set([PAX_PATH, PAX_LINKPATH, PAX_UNAME, PAX_GNAME]);

const NS_PER_SECOND = 1_000_000_000n;
/** A PAX fraction carries at most nanoseconds; extra digits are truncated (Go). */
const FRACTION_DIGITS = 9;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** `' '`, `'='` and `'\n'` around key and value in a record. */
const RECORD_PUNCTUATION_BYTES = 3;
/** The shortest record Go accepts: `"5 k=\n"`. */
const MIN_RECORD_LENGTH = 5;
const SPACE = 0x20;
const EQUALS = 0x3d;
const NEWLINE = 0x0a;
const DIGIT_ZERO = 0x30;
const DIGIT_NINE = 0x39;
/** Up to 15 decimal digits always fit a double exactly. */
const MAX_FAST_DIGITS = 15;

/** Floor division for bigint (JS `/` truncates toward zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** Splits Unix nanoseconds into Go's `Unix()` seconds (floored) and `Nanosecond()` (0..999999999). */
export function splitUnixNanos(ns: bigint): { secs: bigint; nanos: bigint } {
  const secs = floorDiv(ns, NS_PER_SECOND);
  return { secs, nanos: ns - secs * NS_PER_SECOND };
}

/**
 * Formats Unix nanoseconds as Go's formatPAXTime does (`-1.5` for −1.5 s, `7` for 7 s).
 * The last eight are remembered: each entry of an export formats three or four times.
 */
export const formatPaxTime: (ns: bigint) => string = recentTexts(8, formatPaxTimeOnce);

function formatPaxTimeOnce(ns: bigint): string {
  const { secs, nanos } = splitUnixNanos(ns);
  if (nanos === 0n) return secs.toString();
  // Go prints the magnitude with the sign in front, so a negative time with a fraction
  // is written as -(|secs| - 1).(1e9 - nanos): −1.5 s is floor −2 s + 0.5 s → "-1.5".
  const negative = secs < 0n;
  const wholeDigits = negative ? -(secs + 1n) : secs;
  // Below 1e9: exact as a number. Trailing zeros of the fraction are dropped, as Go does.
  let fraction = Number(negative ? NS_PER_SECOND - nanos : nanos);
  let digits = FRACTION_DIGITS;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${negative ? '-' : ''}${wholeDigits}.${String(fraction).padStart(digits, '0')}`;
}

/** True for Go strconv.ParseInt(s, 10, 64) syntax: optional sign, then at least one ASCII digit. */
const DECIMAL_INTEGER = /^[+-]?[0-9]+$/;
const DIGITS = /^[0-9]*$/;

/**
 * Parses a decimal integer exactly as Go's strconv.ParseInt(s, 10, 64): an optional sign,
 * digits only, and the value must fit in int64. Returns undefined when Go would fail.
 */
export function parseGoInt64(s: string): bigint | undefined {
  if (!DECIMAL_INTEGER.test(s)) return undefined;
  const value = BigInt(s);
  return value < INT64_MIN || value > INT64_MAX ? undefined : value;
}

/** Powers of ten that scale a fraction of n digits to nanoseconds. */
const FRACTION_SCALE = [1e9, 1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1];
const MINUS = 0x2d;
const DOT = 0x2e;

/**
 * The common shapes, `secs[.frac]` with up to 15 digits of seconds and 9 of fraction and
 * an optional minus sign, read with plain numbers (exact at those sizes); undefined for
 * anything else, which the general path then reads or rejects.
 */
function parsePaxTimeFast(s: string): bigint | undefined {
  const n = s.length;
  let i = 0;
  const negative = n > 0 && s.charCodeAt(0) === MINUS;
  if (negative) i = 1;
  const wholeStart = i;
  let whole = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < DIGIT_ZERO || c > DIGIT_NINE) break;
    whole = whole * 10 + (c - DIGIT_ZERO);
  }
  const wholeDigits = i - wholeStart;
  if (wholeDigits === 0 || wholeDigits > MAX_FAST_DIGITS) return undefined;
  let fraction = 0;
  if (i < n) {
    if (s.charCodeAt(i) !== DOT) return undefined;
    const fractionStart = ++i;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < DIGIT_ZERO || c > DIGIT_NINE) return undefined;
      fraction = fraction * 10 + (c - DIGIT_ZERO);
    }
    const digits = i - fractionStart;
    if (digits > FRACTION_DIGITS) return undefined;
    fraction *= FRACTION_SCALE[digits] as number;
  }
  // The sign belongs to the whole value: "-1.5" is −1 s − 0.5 s.
  const ns = BigInt(whole) * NS_PER_SECOND + BigInt(fraction);
  return negative ? -ns : ns;
}

/** Parses a PAX time (Go's parsePAXTime) into Unix nanoseconds; anything Go rejects is ERR_PAX_RECORD_INVALID. */
export function parsePaxTime(s: string): bigint {
  const fast = parsePaxTimeFast(s);
  if (fast !== undefined) return fast;
  const dot = s.indexOf('.');
  const wholePart = dot === -1 ? s : s.slice(0, dot);
  const fractionPart = dot === -1 ? '' : s.slice(dot + 1);
  const secs = parseGoInt64(wholePart);
  if (secs === undefined || !DIGITS.test(fractionPart)) {
    throw createError('ERR_PAX_RECORD_INVALID', `PAX time "${s}": not of the form [-]secs[.fraction]`, { value: s });
  }
  if (fractionPart === '') return secs * NS_PER_SECOND;
  const nanos = BigInt(fractionPart.padEnd(FRACTION_DIGITS, '0').slice(0, FRACTION_DIGITS));
  // The sign belongs to the whole value: "-1.5" is −1 s − 0.5 s, and "-0.5" is −0.5 s.
  return wholePart.startsWith('-') ? secs * NS_PER_SECOND - nanos : secs * NS_PER_SECOND + nanos;
}

/** True when Go accepts the record: the key is non-empty without `=` or NUL; path-like values have no NUL. */
export function isValidPaxRecord(key: string, value: string): boolean {
  if (key === '' || key.includes('=')) return false;
  if (NUL_FREE_VALUE_KEYS.has(key)) return !value.includes('\0');
  return !key.includes('\0');
}

/** Formats one record `"<len> <key>=<value>\n"`, where len is the record's own UTF-8 byte length. */
export function formatPaxRecord(key: string, value: string): string {
  if (!isValidPaxRecord(key, value)) {
    throw createError('ERR_PAX_RECORD_INVALID', `PAX record ${JSON.stringify(key)}: key must be non-empty without "=" or NUL, and path-like values without NUL`, { key });
  }
  const payload = Buffer.byteLength(key) + Buffer.byteLength(value) + RECORD_PUNCTUATION_BYTES;
  // The length prefix counts its own digits; adding them can carry into one more digit.
  let length = payload + String(payload).length;
  if (String(length).length !== String(payload).length) length = payload + String(length).length;
  return `${length} ${key}=${value}\n`;
}

/**
 * What a record error names: a description, or the byte offset of the tar header whose
 * data holds the records (the text is made only for an error: headers are read by the
 * tens of thousands).
 */
export type PaxSubject = string | number;

export function paxSubjectText(subject: PaxSubject): string {
  return typeof subject === 'number' ? `tar header at byte ${subject}` : subject;
}

/**
 * Keys decoded lately, by byte length, at most KEYS_PER_LENGTH each. A layer tar repeats
 * the same few keys in every entry's header (mtime, MSWINDOWS.rawsd, …): comparing their
 * bytes and handing back the same string is cheaper than decoding them again, and that
 * string, once a property key, needs no new lookup in V8's string table. On a 20,000-entry
 * tar this took the parse from 179–232 ms to 139–146 ms (fastest of 12 runs, 3 each).
 * Bytes decode to one string only, so a hit is exactly what decoding would give.
 */
const recentKeys = new Map<number, { bytes: Buffer; key: string }[]>();
const KEYS_PER_LENGTH = 8;
const MAX_RECENT_KEY_BYTES = 64;

function decodeKey(data: Buffer, start: number, end: number): string {
  const length = end - start;
  let recent = recentKeys.get(length);
  if (recent !== undefined) {
    for (const r of recent) {
      const bytes = r.bytes;
      let i = 0;
      while (i < length && data[start + i] === bytes[i]) i++;
      if (i === length) return r.key;
    }
  }
  const key = data.toString('utf8', start, end);
  if (length <= MAX_RECENT_KEY_BYTES && (recent === undefined || recent.length < KEYS_PER_LENGTH)) {
    if (recent === undefined) {
      recent = [];
      recentKeys.set(length, recent);
    }
    recent.push({ bytes: Buffer.from(data.subarray(start, end)), key });
  }
  return key;
}

/**
 * The record length before the space: decimal digits only. Go's ParseInt also takes a sign
 * (`+21`), which GNU tar refuses and libarchive skips the record for: the name such a
 * record gives would depend on the reader. A value beyond 2^53 comes back as Infinity
 * (longer than any data).
 */
function readRecordLength(data: Buffer, start: number, end: number): number | undefined {
  if (end <= start) return undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = data[i] ?? 0;
    if (c < DIGIT_ZERO || c > DIGIT_NINE) return undefined;
    n = n * 10 + (c - DIGIT_ZERO);
  }
  if (end - start <= MAX_FAST_DIGITS) return n;
  const value = BigInt(data.toString('latin1', start, end));
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value);
}

/** One record read by `parsePaxRecords`, with the raw value bytes for callers that must check them. */
export interface PaxRecordBytes {
  key: string;
  value: string;
  rawValue: Buffer;
}

/**
 * Parses the data of a PAX 'x' or 'g' entry with Go's parsePAXRecord rules (the length must
 * be decimal, at least 5, inside the data, and end on a newline; the record needs an `=`;
 * the record must be valid). Go treats any violation as a corrupt header: ERR_PAX_RECORD_INVALID.
 * Later records with the same key win, as in Go.
 */
export function parsePaxRecords(data: Buffer, subject: string): PaxRecordBytes[] {
  const records: PaxRecordBytes[] = [];
  forEachPaxRecord(data, subject, (key, value, start, end) => {
    records.push({ key, value, rawValue: data.subarray(start, end) });
  });
  return records;
}

function recordInvalid(subject: PaxSubject, pos: number, what: string): never {
  throw createError('ERR_PAX_RECORD_INVALID', `${paxSubjectText(subject)}: PAX record at byte ${pos} ${what}`, { offset: pos });
}

/** Extended-header data up to this size is decoded as one text (see forEachPaxRecord). */
const WHOLE_TEXT_BYTES = 64 * 1024;
/** Values longer than this of keys the caller does not want are not decoded. */
const SKIPPED_VALUE_BYTES = 4096;

/**
 * `parsePaxRecords` without the record objects: calls `onRecord` with each key, value and
 * the value's byte range in `data`, in order. With `wanted`, a long value of a key it
 * refuses comes as '' (its byte range still given).
 */
export function forEachPaxRecord(
  data: Buffer,
  subject: PaxSubject,
  onRecord: (key: string, value: string, valueStart: number, valueEnd: number) => void,
  wanted?: (key: string) => boolean,
): void {
  // An all-ASCII block (the usual one) is decoded once, and each value is a slice of that
  // text: a call into Buffer's decoder per value took more time than the rest of the loop.
  // Not a large one: its text would be a string as large, kept whole by any value sliced
  // from it, and collected only by a full collection (headers of 1 MiB each took an import
  // to 130 MiB); its values are decoded one by one.
  const text = data.length <= WHOLE_TEXT_BYTES && isAscii(data) ? data.toString('latin1') : undefined;
  let pos = 0;
  while (pos < data.length) {
    // Plain loops: the length field and the key are a few bytes, shorter than a call to indexOf.
    let space = pos;
    while (space < data.length && data[space] !== SPACE) space++;
    // Failures through a function of the module: a closure here was an allocation per record.
    if (space === data.length) recordInvalid(subject, pos, 'has no length field');
    const length = readRecordLength(data, pos, space);
    if (length === undefined || length < MIN_RECORD_LENGTH || length > data.length - pos) {
      recordInvalid(subject, pos, 'has an invalid length');
    }
    const end = pos + length;
    // Go requires the length to reach past the space; the byte before `end` must be the newline.
    if (end <= space + 1 || data[end - 1] !== NEWLINE) recordInvalid(subject, pos, 'does not end with a newline where its length says');
    let equals = space + 1;
    while (equals < end - 1 && data[equals] !== EQUALS) equals++;
    if (equals >= end - 1) recordInvalid(subject, pos, 'has no "="');
    const key = decodeKey(data, space + 1, equals);
    // A long value no reader wants (a `comment`) is not decoded: '' in its place.
    const skip = wanted !== undefined && end - 1 - (equals + 1) > SKIPPED_VALUE_BYTES && !NUL_FREE_VALUE_KEYS.has(key) && !wanted(key);
    const value = skip ? '' : text !== undefined ? text.slice(equals + 1, end - 1) : data.toString('utf8', equals + 1, end - 1);
    if (!isValidPaxRecord(key, value)) recordInvalid(subject, pos, `${JSON.stringify(key)} is not a valid record`);
    onRecord(key, value, equals + 1, end - 1);
    pos = end;
  }
}
