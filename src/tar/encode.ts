/**
 * Tar header encoder that reproduces, byte for byte, what Go's archive/tar Writer.WriteHeader
 * emits for the headers go-winio (backuptar) and moby/hcsshim (whiteouts) build.
 *
 * Go decides the output format per header (Header.allowedFormats): it starts from
 * USTAR | PAX | GNU, strikes the formats that cannot hold a field, collects the PAX records
 * needed for what USTAR cannot hold, and then writes the first format left in the order
 * USTAR, PAX, GNU. A header with Format = PAX still comes out as plain USTAR when nothing
 * needs a record (unless a time needs PAX, "preferPAX"). This module follows those decisions;
 * the GNU outcome is only reachable with a mode that does not fit the octal field, which is
 * rejected instead (go-winio never produces one).
 */

import { createError } from '../errors.js';
import {
  BLOCK_SIZE, FIELD, MAGIC_USTAR, VERSION_USTAR, blockPaddingLength, fitsInOctal,
  writeChecksum, writeOctalNumber, writeStringField,
} from './block.js';
import { joinGoPath, splitGoPath } from './go-path.js';
import {
  PAX_ATIME, PAX_BASIC_KEYS, PAX_CTIME, PAX_GID, PAX_GNAME, PAX_GNU_SPARSE_PREFIX, PAX_LINKPATH, PAX_MTIME,
  PAX_PATH, PAX_SIZE, PAX_UID, PAX_UNAME, formatPaxRecord, formatPaxTime, isValidPaxRecord, splitUnixNanos,
} from './pax.js';

/** What a caller knows about one entry; field meanings follow Go's tar.Header. */
export interface TarHeaderInput {
  /** Slash path, as Header.Name. */
  name: string;
  /** One char: '0' regular, '1' hard link, '2' symlink, '5' directory; '\0' is promoted like Go ('5' with a trailing slash, else '0'). */
  typeflag: string;
  /** Written as is (go-winio puts only type bits here: 0o100000, 0o40000, 0o120000, 0o160000, or 0); must fit 7 octal digits. */
  mode: number;
  /** Data size; header-only types still write this field (Go does). */
  size: number;
  /** Link target; '' or undefined for none. */
  linkname?: string;
  /** Unix ns (Header.ModTime); 0n writes 0, exactly like Go's zero time.Time. */
  mtime: bigint;
  /** Unix ns (Header.AccessTime); undefined is Go's zero time.Time (no record). */
  atime?: bigint;
  /** Unix ns (Header.ChangeTime); undefined is Go's zero time.Time (no record). */
  ctime?: bigint;
  /** User records (MSWINDOWS.*, LIBARCHIVE.creationtime); basic keys in it are handled exactly as Go does. */
  paxRecords?: Readonly<Record<string, string>>;
  /** Header.Format: 'pax' (FormatPAX, go-winio entries) or 'unknown' (FormatUnknown, moby whiteouts). */
  format: 'pax' | 'unknown';
}

/** What Go's Writer.Close appends: two zero blocks. */
export const TAR_END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK_SIZE);

/** Zeros that pad `size` data bytes to the next block boundary. */
export function tarPadding(size: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw createError('ERR_TAR_HEADER_INVALID', `tar padding: size ${size} is not a non-negative integer`, { size });
  }
  const n = blockPaddingLength(size);
  // Padding is read, never written to: one shared block of zeros serves every entry.
  return n === 0 ? EMPTY : ZERO_BLOCK.subarray(0, n);
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const EMPTY = Buffer.alloc(0);

const FORMAT_USTAR = 1;
const FORMAT_PAX = 2;
const FORMAT_GNU = 4;

const TYPE_REG = '0';
const TYPE_REG_LEGACY = '\0';
const TYPE_LINK = '1';
const TYPE_SYMLINK = '2';
const TYPE_CHAR = '3';
const TYPE_BLOCK = '4';
const TYPE_DIR = '5';
const TYPE_FIFO = '6';
const TYPE_PAX_LOCAL = 'x';
const TYPE_PAX_GLOBAL = 'g';
const TYPE_GNU_LONG_NAME = 'L';
const TYPE_GNU_LONG_LINK = 'K';
const TYPE_GNU_SPARSE = 'S';

/** Types Go treats as header-only (no data follows, whatever Size says). */
const HEADER_ONLY_TYPES: ReadonlySet<string> = new Set([TYPE_LINK, TYPE_SYMLINK, TYPE_CHAR, TYPE_BLOCK, TYPE_DIR, TYPE_FIFO]);
/** Types Go refuses to write with a trailing slash in the name (they cannot be directories). */
const NO_TRAILING_SLASH_TYPES: ReadonlySet<string> = new Set([TYPE_REG, TYPE_CHAR, TYPE_BLOCK, TYPE_FIFO, TYPE_GNU_SPARSE]);
/** Types only the writer itself may emit. */
const WRITER_ONLY_TYPES: ReadonlySet<string> = new Set([TYPE_PAX_LOCAL, TYPE_GNU_LONG_NAME, TYPE_GNU_LONG_LINK]);

/** Go names the local PAX entry `<dir>/PaxHeaders.0/<base>`. */
const PAX_HEADER_DIR = 'PaxHeaders.0';
/** Go refuses a PAX entry bigger than this (maxSpecialFileSize). */
const MAX_PAX_DATA_BYTES = 1 << 20;
/** Go's time fields hold int64 nanoseconds (time.Unix(0, ns) in go-winio). */
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);
const NS_PER_SECOND = 1_000_000_000n;
const HALF_SECOND_NS = NS_PER_SECOND / 2n;
const MAX_TYPEFLAG_CODE = 0xff;
const SLASH = 0x2f;
const ASCII_LIMIT = 0x80;
const SURROGATE_MIN = 0xd800;

/** Go's isASCII on the UTF-8 bytes: no byte ≥ 0x80 and no NUL. */
function isAsciiBytes(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b >= ASCII_LIMIT || b === 0) return false;
  }
  return true;
}

/** Go's toASCII: drops every byte of a non-ASCII rune (and NUL) and keeps the rest. */
function toAsciiBytes(bytes: Uint8Array): Uint8Array {
  if (isAsciiBytes(bytes)) return bytes;
  return bytes.filter((b) => b < ASCII_LIMIT && b !== 0);
}

/** Go's splitUSTARPath on an ASCII name: a prefix of ≤155 and a name of ≤100 bytes split at a slash. */
function splitUstarPath(name: Uint8Array): { prefix: Uint8Array; suffix: Uint8Array } | undefined {
  let length = name.length;
  if (length <= FIELD.name.length || !isAsciiBytes(name)) return undefined;
  if (length > FIELD.prefix.length + 1) length = FIELD.prefix.length + 1;
  else if (name[length - 1] === SLASH) length--;
  const i = name.subarray(0, length).lastIndexOf(SLASH);
  const suffixLength = name.length - i - 1;
  if (i <= 0 || suffixLength > FIELD.name.length || suffixLength === 0 || i > FIELD.prefix.length) return undefined;
  return { prefix: name.subarray(0, i), suffix: name.subarray(i + 1) };
}

/** Go's Time.Round(time.Second): to the nearest second, halves upward (toward +∞). */
function roundToSecond(ns: bigint): bigint {
  const { secs, nanos } = splitUnixNanos(ns);
  return (nanos >= HALF_SECOND_NS ? secs + 1n : secs) * NS_PER_SECOND;
}

/**
 * Byte-wise comparison of UTF-8 keys: Go sorts PAX keys with sort.Strings on bytes. UTF-8
 * byte order is code point order, which UTF-16 unit order matches unless both differing
 * units are ≥ 0xD800 (a surrogate against U+E000–U+FFFF): only then are bytes compared.
 */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= SURROGATE_MIN && y >= SURROGATE_MIN) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
    return x - y;
  }
  return a.length - b.length;
}

function invalid(name: string, what: string, data: Record<string, string | number> = {}): never {
  throw createError('ERR_TAR_HEADER_INVALID', `${name}: ${what}`, { entry: name, ...data });
}

/**
 * A time Go's tar writer can take: whole seconds in an int64 (a time.Time's Unix()). A
 * Windows time past 2262 or before 1677 is one (its nanoseconds overflow an int64, its
 * seconds do not); PAX records carry it.
 */
function checkTime(name: string, label: string, ns: bigint | undefined): void {
  if (ns === undefined) return;
  if (typeof ns !== 'bigint' || ns < INT64_MIN * NS_PER_SECOND || ns >= (INT64_MAX + 1n) * NS_PER_SECOND) {
    invalid(name, `${label} ${String(ns)} ns is beyond int64 Unix seconds`);
  }
}

/** The outcome of Go's allowedFormats for one header. */
interface FormatPlan {
  formats: number;
  records: Map<string, string>;
}

/** The header after WriteHeader's own normalisation (typeflag promotion, FormatUnknown time handling). */
interface NormalizedHeader {
  name: string;
  nameBytes: Buffer;
  typeflag: string;
  mode: number;
  size: number;
  linkname: string;
  linkBytes: Buffer;
  mtime: bigint;
  atime: bigint | undefined;
  ctime: bigint | undefined;
  user: Readonly<Record<string, string>>;
  format: 'pax' | 'unknown';
}

function normalize(h: TarHeaderInput): NormalizedHeader {
  const name = h.name;
  if (typeof name !== 'string') invalid(String(name), 'name is not a string');
  if (name.includes('\0')) invalid(name, 'name contains NUL');
  const linkname = h.linkname ?? '';
  if (linkname.includes('\0')) invalid(name, 'link name contains NUL');
  if (typeof h.typeflag !== 'string' || h.typeflag.length !== 1 || h.typeflag.charCodeAt(0) > MAX_TYPEFLAG_CODE) {
    invalid(name, `typeflag ${JSON.stringify(h.typeflag)} is not one byte`);
  }
  if (!Number.isSafeInteger(h.mode) || !fitsInOctal(FIELD.mode.length, BigInt(h.mode))) {
    // Go would fall back to the GNU format (base-256) or fail; go-winio never gets here.
    invalid(name, `mode ${h.mode} does not fit the 7-digit octal field`, { mode: h.mode });
  }
  if (!Number.isSafeInteger(h.size)) invalid(name, `size ${h.size} is not an integer`, { size: h.size });
  if (h.format !== 'pax' && h.format !== 'unknown') invalid(name, `format ${String(h.format)} is not 'pax' or 'unknown'`);
  checkTime(name, 'mtime', h.mtime);
  checkTime(name, 'atime', h.atime);
  checkTime(name, 'ctime', h.ctime);

  // WriteHeader promotes the legacy '\0' type before anything else looks at it.
  let typeflag = h.typeflag;
  if (typeflag === TYPE_REG_LEGACY) typeflag = name.endsWith('/') ? TYPE_DIR : TYPE_REG;
  if (NO_TRAILING_SLASH_TYPES.has(typeflag) && name.endsWith('/')) invalid(name, `type '${typeflag}' cannot have a trailing slash`);
  if (WRITER_ONLY_TYPES.has(typeflag)) invalid(name, `type '${typeflag}' is written by the encoder itself, not by callers`);
  if (typeflag === TYPE_PAX_GLOBAL) {
    throw createError('ERR_ENTRY_TYPE_UNSUPPORTED', `${name}: PAX global headers are not written by this encoder`, { entry: name });
  }
  if (!HEADER_ONLY_TYPES.has(typeflag) && h.size < 0) invalid(name, `negative size ${h.size}`, { size: h.size });

  // Without an explicit format Go rounds ModTime to the second and ignores atime/ctime,
  // so that plain headers stay USTAR (moby's whiteouts rely on this).
  const isUnknown = h.format === 'unknown';
  return {
    name,
    nameBytes: Buffer.from(name, 'utf8'),
    typeflag,
    mode: h.mode,
    size: h.size,
    linkname,
    linkBytes: Buffer.from(linkname, 'utf8'),
    mtime: isUnknown ? roundToSecond(h.mtime) : h.mtime,
    atime: isUnknown ? undefined : h.atime,
    ctime: isUnknown ? undefined : h.ctime,
    user: h.paxRecords ?? {},
    format: h.format,
  };
}

/** A user record's value, if the caller gave one under `key`. */
function userValue(user: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(user, key) ? user[key] : undefined;
}

/** allowedFormats' state while it looks at one header's fields. */
interface Planning {
  formats: number;
  records: Map<string, string>;
  preferPax: boolean;
  user: Readonly<Record<string, string>>;
}

/** Go's verifyString: a string field (`bytes` is `s` in UTF-8). */
function verifyString(p: Planning, s: string, bytes: Uint8Array, fieldLength: number, key: string): void {
  const tooLong = bytes.length > fieldLength;
  const longAllowedInGnu = key === PAX_PATH || key === PAX_LINKPATH;
  if (s.includes('\0') || (tooLong && !longAllowedInGnu)) p.formats &= ~FORMAT_GNU;
  if (!isAsciiBytes(bytes) || tooLong) {
    if (key !== PAX_PATH || splitUstarPath(bytes) === undefined) p.formats &= ~FORMAT_USTAR;
    p.records.set(key, s);
  }
  if (userValue(p.user, key) === s) p.records.set(key, s);
}

/** Go's verifyNumeric for the size, the one numeric field that is not always 0 here. */
function verifySize(p: Planning, size: number): void {
  // Base-256 fits every value we can be given in a 12-byte field, so GNU stays allowed.
  if (!fitsInOctal(FIELD.size.length, BigInt(size))) {
    p.formats &= ~FORMAT_USTAR;
    p.records.set(PAX_SIZE, String(size));
  }
  const user = userValue(p.user, PAX_SIZE);
  if (user !== undefined && user === String(size)) p.records.set(PAX_SIZE, user);
}

/** Go's verifyTime. */
function verifyTime(p: Planning, ns: bigint | undefined, key: string): void {
  if (ns === undefined) return; // Go's zero time.Time: always fine, never recorded
  const { secs, nanos } = splitUnixNanos(ns);
  const isMtime = key === PAX_MTIME;
  const fitsOctal = fitsInOctal(FIELD.mtime.length, secs);
  // USTAR has no atime/ctime at all, and only whole non-negative seconds for mtime.
  if (!isMtime || !fitsOctal) p.formats &= ~FORMAT_USTAR;
  const needed = !isMtime || !fitsOctal || nanos !== 0n;
  const user = userValue(p.user, key);
  if (!needed && user === undefined) return;
  const text = formatPaxTime(ns);
  if (needed) {
    p.preferPax = true;
    p.records.set(key, text);
  }
  if (user === text) p.records.set(key, text);
}

/**
 * Go's Header.allowedFormats, restricted to the fields a caller can set here. Helpers of
 * the module, not closures: this runs for every entry of an export.
 */
function planFormats(h: NormalizedHeader): FormatPlan {
  const p: Planning = { formats: FORMAT_USTAR | FORMAT_PAX | FORMAT_GNU, records: new Map(), preferPax: false, user: h.user };
  verifyString(p, h.name, h.nameBytes, FIELD.name.length, PAX_PATH);
  verifyString(p, h.linkname, h.linkBytes, FIELD.linkname.length, PAX_LINKPATH);
  // uname and gname are empty, uid and gid 0: they always fit, so Go's checks of them only
  // keep a user record that repeats their value.
  if (userValue(h.user, PAX_UNAME) === '') p.records.set(PAX_UNAME, '');
  if (userValue(h.user, PAX_GNAME) === '') p.records.set(PAX_GNAME, '');
  if (userValue(h.user, PAX_UID) === '0') p.records.set(PAX_UID, '0');
  if (userValue(h.user, PAX_GID) === '0') p.records.set(PAX_GID, '0');
  verifySize(p, h.size);
  verifyTime(p, h.mtime, PAX_MTIME);
  verifyTime(p, h.atime, PAX_ATIME);
  verifyTime(p, h.ctime, PAX_CTIME);

  // User records never override derived ones, and basic or GNU sparse keys are dropped;
  // but their mere presence rules out USTAR, even if every one of them was dropped.
  const records = p.records;
  const userKeys = Object.keys(h.user);
  for (const key of userKeys) {
    if (records.has(key) || PAX_BASIC_KEYS.has(key) || key.startsWith(PAX_GNU_SPARSE_PREFIX)) continue;
    const value = h.user[key];
    if (typeof value !== 'string') {
      throw createError('ERR_PAX_RECORD_INVALID', `${h.name}: PAX record ${JSON.stringify(key)} has no string value`, { entry: h.name, key });
    }
    records.set(key, value);
  }
  let formats = p.formats;
  if (userKeys.length > 0) formats &= FORMAT_PAX;
  for (const [key, value] of records) {
    if (!isValidPaxRecord(key, value)) {
      throw createError('ERR_PAX_RECORD_INVALID', `${h.name}: PAX record ${JSON.stringify(key)} is invalid (empty key, "=" or NUL)`, { entry: h.name, key });
    }
  }

  if (h.format === 'pax') formats &= p.preferPax ? FORMAT_PAX : FORMAT_PAX | FORMAT_USTAR;
  return { formats, records };
}

/** Go's templateV7Plus: the fields every USTAR/PAX main header shares. */
function fillMainHeader(block: Buffer, h: NormalizedHeader, name: Uint8Array, linkname: Uint8Array): void {
  block[FIELD.typeflag.offset] = h.typeflag.charCodeAt(0);
  writeStringField(block, FIELD.name, name);
  writeStringField(block, FIELD.linkname, linkname);
  writeOctalNumber(block, FIELD.mode, h.mode);
  writeOctalNumber(block, FIELD.uid, 0);
  writeOctalNumber(block, FIELD.gid, 0);
  // A size or time that does not fit is written as 0 (a PAX record carries it).
  writeOctalNumber(block, FIELD.size, h.size);
  const secs = splitUnixNanos(h.mtime).secs;
  writeOctalNumber(block, FIELD.mtime, secs >= 0n && secs <= MAX_SAFE_BIGINT ? Number(secs) : 0);
  // uname and gname are empty: the zeroed block already holds their NUL terminators.
  writeOctalNumber(block, FIELD.devmajor, 0);
  writeOctalNumber(block, FIELD.devminor, 0);
}

function setUstarMagic(block: Buffer): void {
  block.set(MAGIC_USTAR, FIELD.magic.offset);
  block.set(VERSION_USTAR, FIELD.version.offset);
  writeChecksum(block);
}

/**
 * `path.Join(dir, "PaxHeaders.0")` of recent directories (cleared when it grows past
 * PAX_DIRS_CACHED): joining a plain last element onto it is plain concatenation.
 */
const paxDirs = new Map<string, string>();
const PAX_DIRS_CACHED = 4096;

/** Header buffers are cut from slabs of this size (a fresh zeroed allocation each costs more than its filling). */
const SLAB_BYTES = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(0);
let slabUsed = 0;

/** `n` zero bytes, from the current slab when they fit in a quarter of one. */
function zeroedBuffer(n: number): Buffer {
  if (n > SLAB_BYTES / 4) return Buffer.alloc(n);
  if (slabUsed + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n).fill(0);
  // 8-byte aligned, as Node's own pool keeps its slices.
  slabUsed += (n + 7) & ~7;
  return out;
}

/** Go's writeRawFile name: ASCII-filtered, cut to the name field, trailing slashes trimmed. */
function paxHeaderEntryName(name: string): Uint8Array {
  const { dir, file } = splitGoPath(name);
  let joined: string;
  if (file !== '' && file !== '.' && file !== '..') {
    // Clean(Clean(dir/PaxHeaders.0)/file) is that path, a slash and file, for such a file.
    let prefix = paxDirs.get(dir);
    if (prefix === undefined) {
      if (paxDirs.size >= PAX_DIRS_CACHED) paxDirs.clear();
      prefix = joinGoPath(dir, PAX_HEADER_DIR);
      paxDirs.set(dir, prefix);
    }
    joined = `${prefix}/${file}`;
  } else {
    joined = joinGoPath(dir, PAX_HEADER_DIR, file);
  }
  let bytes = toAsciiBytes(Buffer.from(joined, 'utf8'));
  if (bytes.length > FIELD.name.length) bytes = bytes.subarray(0, FIELD.name.length);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === SLASH) end--;
  return bytes.subarray(0, end);
}

function encodePax(h: NormalizedHeader, records: Map<string, string>): Buffer {
  let text = '';
  let dataLength = 0;
  if (records.size > 0) {
    const keys = [...records.keys()].sort(compareUtf8);
    for (const k of keys) text += formatPaxRecord(k, records.get(k) ?? '');
    dataLength = Buffer.byteLength(text, 'utf8');
    if (dataLength > MAX_PAX_DATA_BYTES) {
      throw createError('ERR_METADATA_TOO_LARGE', `${h.name}: PAX records take ${dataLength} bytes, more than ${MAX_PAX_DATA_BYTES}`, { entry: h.name, bytes: dataLength });
    }
  }
  // One zeroed buffer for the PAX entry (header, records, padding) and the main header.
  const paxBytes = records.size > 0 ? BLOCK_SIZE + dataLength + blockPaddingLength(dataLength) : 0;
  const out = zeroedBuffer(paxBytes + BLOCK_SIZE);
  if (records.size > 0) {
    // Go's writeRawFile: mode, uid, gid and mtime are all 0; no devmajor/devminor, no uname/gname.
    const header = out.subarray(0, BLOCK_SIZE);
    header[FIELD.typeflag.offset] = TYPE_PAX_LOCAL.charCodeAt(0);
    writeStringField(header, FIELD.name, paxHeaderEntryName(h.name));
    writeOctalNumber(header, FIELD.mode, 0);
    writeOctalNumber(header, FIELD.uid, 0);
    writeOctalNumber(header, FIELD.gid, 0);
    writeOctalNumber(header, FIELD.size, dataLength);
    writeOctalNumber(header, FIELD.mtime, 0);
    setUstarMagic(header);
    out.write(text, BLOCK_SIZE, 'utf8');
  }
  // The main header's strings are best-effort ASCII; the records carry the real values.
  const main = out.subarray(paxBytes);
  fillMainHeader(main, h, toAsciiBytes(h.nameBytes), toAsciiBytes(h.linkBytes));
  setUstarMagic(main);
  return out;
}

function encodeUstar(h: NormalizedHeader): Buffer {
  const split = splitUstarPath(h.nameBytes);
  const main = zeroedBuffer(BLOCK_SIZE);
  fillMainHeader(main, h, split?.suffix ?? h.nameBytes, h.linkBytes);
  writeStringField(main, FIELD.prefix, split?.prefix ?? new Uint8Array(0));
  setUstarMagic(main);
  return main;
}

/**
 * The exact bytes Go's tar.Writer.WriteHeader emits for this header: the PAX 'x' entry (name
 * `<dir>/PaxHeaders.0/<base>`, mode/uid/gid/mtime 0, records sorted by key, padded) when
 * needed, then the 512-byte main header.
 */
export function encodeTarHeader(h: TarHeaderInput): Buffer {
  const header = normalize(h);
  const { formats, records } = planFormats(header);
  if ((formats & FORMAT_USTAR) !== 0) return encodeUstar(header);
  if ((formats & FORMAT_PAX) !== 0) return encodePax(header, records);
  return invalid(header.name, 'no tar format can encode this header');
}
