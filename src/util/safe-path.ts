/**
 * All archive path handling: every tar entry name, hard-link target and whiteout goes
 * through `parseLayerPath` before anything touches the disk. The rules, each with its
 * reason (DESIGN.md §8):
 * - only `Files`, `Hives` and `UtilityVM` roots: the transport format has nothing else;
 * - `/` is the only separator; `\` is rejected, since Windows would read it as a
 *   separator that our checks never saw;
 * - no absolute, drive-letter or UNC names, no `..`, no empty or `.` segments: each
 *   could make a path that resolves outside the layer;
 * - no NUL, control characters or Win32-reserved characters (`<>:"|?*`): Windows
 *   cannot create them, and `:` would name an alternate data stream;
 * - no segment ending in `.$wcidirs$`: that suffix is the transport format's directory
 *   sidecar, and an entry with it would overwrite another directory's metadata;
 * - at most 255 UTF-16 units a segment and 32,767 in all (NTFS limits).
 */
import { createError, shownEntry, type ErrorCode, type WinLayerError } from '../errors.js';

export type LayerRoot = 'Files' | 'Hives' | 'UtilityVM';
export const LAYER_ROOTS: readonly LayerRoot[] = ['Files', 'Hives', 'UtilityVM'];

/** The suffix of a directory's metadata sidecar in the transport format. */
export const WCIDIRS_SUFFIX = '.$wcidirs$';
/** NTFS limit on one path component, in UTF-16 units. */
export const MAX_SEGMENT_UNITS = 255;
/** Win32 long-path limit, in UTF-16 units. */
export const MAX_PATH_UNITS = 32767;

/** A validated layer-relative path. */
export interface LayerPath {
  /** Slash-separated, no trailing slash, e.g. `Files/Windows/System32`. */
  readonly name: string;
  readonly root: LayerRoot;
}

/**
 * Code units below 0x80 that Win32 file names cannot hold (controls and `<>:"|?*\\`),
 * besides the separator; every unit from 0x80 on is allowed.
 */
const FORBIDDEN_ASCII = ((): Uint8Array => {
  const t = new Uint8Array(0x80);
  for (let c = 0; c < 0x20; c++) t[c] = 1;
  for (const ch of '<>:"|?*\\') t[ch.charCodeAt(0)] = 1;
  return t;
})();

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * Validates a tar entry name (or link target) and returns it in canonical form.
 * A single leading `./` and trailing `/` are dropped, as plain POSIX tars carry them.
 * `what` names the field in errors (`entry`, `link target`, `whiteout`).
 *
 * One pass over the name, segment by segment, with each segment's checks in a fixed
 * order (so the first bad segment decides the error): `..`, empty or `.`, a forbidden
 * character, the sidecar suffix, the segment length. Every entry goes through here.
 */
export function parseLayerPath(raw: string, what = 'entry'): LayerPath {
  if (raw.length === 0) throw createError('ERR_PATH_INVALID', `${what} name is empty`, { entry: raw });
  if (raw.includes('\0')) throw pathError('ERR_PATH_INVALID', what, raw, 'name contains NUL');
  checkNotAbsolute(raw, what);
  if (raw.includes('\\')) throw pathError('ERR_PATH_INVALID', what, raw, 'backslash is not a separator in tar names');
  let name = raw.startsWith('./') ? raw.slice(2) : raw;
  let last = name.length;
  while (last > 0 && name.charCodeAt(last - 1) === SLASH) last--;
  if (last !== name.length) name = name.slice(0, last);
  if (name.length === 0) throw pathError('ERR_PATH_INVALID', what, raw, 'names no file');
  let rootEnd = -1;
  for (let start = 0; start <= name.length; ) {
    let end = start;
    let forbidden = false;
    for (; end < name.length; end++) {
      const c = name.charCodeAt(end);
      if (c === SLASH) break;
      if (c < 0x80 && FORBIDDEN_ASCII[c] === 1) forbidden = true;
    }
    if (rootEnd < 0) rootEnd = end;
    const length = end - start;
    if (length === 2 && name.charCodeAt(start) === DOT && name.charCodeAt(start + 1) === DOT) {
      throw pathError('ERR_PATH_ESCAPE', what, raw, "contains '..'");
    }
    if (length === 0 || (length === 1 && name.charCodeAt(start) === DOT)) throw pathError('ERR_PATH_INVALID', what, raw, "empty or '.' path segment");
    if (forbidden) throw pathError('ERR_PATH_INVALID', what, raw, `segment ${JSON.stringify(name.slice(start, end))} has a character Windows forbids`);
    if (length >= WCIDIRS_SUFFIX.length && endsWithSidecarSuffix(name, end)) {
      throw pathError('ERR_PATH_RESERVED', what, raw, `'${WCIDIRS_SUFFIX}' names are reserved for directory metadata`);
    }
    if (length > MAX_SEGMENT_UNITS) throw pathError('ERR_PATH_TOO_LONG', what, raw, `segment of ${length} UTF-16 units exceeds ${MAX_SEGMENT_UNITS}`);
    start = end + 1;
  }
  if (name.length > MAX_PATH_UNITS) {
    throw createError('ERR_PATH_TOO_LONG', `${what} ${JSON.stringify(shownEntry(raw))}: path of ${name.length} UTF-16 units exceeds ${MAX_PATH_UNITS}`, { entry: shownEntry(raw) });
  }
  const root = rootEnd === name.length ? name : name.slice(0, rootEnd);
  if (!isLayerRoot(root)) throw pathError('ERR_PATH_ROOT', what, raw, 'must be under Files/, Hives/ or UtilityVM/');
  return { name, root };
}

/**
 * Whether the segment of `name` ending at `end` ends in `.$wcidirs$`, in any case: NTFS
 * would take `a.$WCIDIRS$` for the sidecar `a.$wcidirs$`. The `$` and `.` are checked
 * first, so most segments cost two character reads.
 */
function endsWithSidecarSuffix(name: string, end: number): boolean {
  const start = end - WCIDIRS_SUFFIX.length;
  if (name.charCodeAt(end - 1) !== 0x24 || name.charCodeAt(start) !== DOT) return false;
  return caseFoldKey(name.slice(start, end)) === WCIDIRS_KEY;
}

/**
 * Throws ERR_PATH_ESCAPE for an absolute (`/x`), drive-letter (`C:x`, `C:\\x`) or UNC
 * (`\\\\server\\share`, `\\\\?\\C:\\x`) name: checked first, so that such a name is refused
 * as what it is before its backslashes or colon say something else.
 */
export function checkNotAbsolute(raw: string, what = 'entry'): void {
  if (raw.charCodeAt(0) === SLASH || raw.charCodeAt(0) === BACKSLASH || isDriveLetterStart(raw)) {
    throw pathError('ERR_PATH_ESCAPE', what, raw, 'absolute, drive-letter or UNC path');
  }
}

const BACKSLASH = 0x5c;

/** `A:`, any ASCII letter then a colon: a drive-letter path. */
function isDriveLetterStart(raw: string): boolean {
  if (raw.length < 2 || raw.charCodeAt(1) !== 0x3a) return false;
  const c = raw.charCodeAt(0) | 0x20;
  return c >= 0x61 && c <= 0x7a;
}

function pathError(code: ErrorCode, what: string, raw: string, problem: string): WinLayerError {
  return createError(code, `${what} ${JSON.stringify(raw)}: ${problem}`, { entry: raw });
}

/** True for the three transport-format roots. */
export function isLayerRoot(value: string): value is LayerRoot {
  return value === 'Files' || value === 'Hives' || value === 'UtilityVM';
}

/**
 * The key under which NTFS would find a name: each UTF-16 unit upper-cased on its own
 * (simple case mapping, as NTFS's $UpCase table does; `ß` stays `ß`, unlike toUpperCase).
 * A character outside the BMP is two surrogate units, which the table maps to themselves:
 * `𐐀` and `𐐨` (Deseret) are two names on NTFS, though toUpperCase pairs them.
 */
export function caseFoldKey(name: string): string {
  let out = '';
  let plain = true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) return name.toUpperCase();
  // toUpperCase's full mapping is the simple one, unit by unit, unless a character expands
  // (`ß` → `SS`: the length changes) or is outside the BMP (its pair would be mapped):
  // one call, not a string per character (a layer of non-ASCII names made ~2× the garbage).
  if (!SURROGATE.test(name)) {
    const up = name.toUpperCase();
    if (up.length === name.length) return up;
  }
  for (const ch of name) {
    if (ch.length !== 1) {
      out += ch;
      continue;
    }
    const up = ch.toUpperCase();
    out += up.length === 1 ? up : (SIMPLE_UPPER_OF_EXPANDING.get(ch.charCodeAt(0)) ?? ch);
  }
  return out;
}

/**
 * The characters whose full upper case (toUpperCase) is several characters but whose
 * simple upper case, which NTFS's table holds, is one: the Greek small letters with
 * ypogegrammeni, upper-cased to their title-case forms (`ᾀ` → `ᾈ`, `ᾳ` → `ᾼ`). Every other
 * expanding character (`ß`, `ŉ`, `ﬀ`, `ΐ`…) has no simple upper case and stays as it is.
 */
const SIMPLE_UPPER_OF_EXPANDING: ReadonlyMap<number, string> = ((): Map<number, string> => {
  const m = new Map<number, string>();
  for (const start of [0x1f80, 0x1f90, 0x1fa0]) for (let c = start; c < start + 8; c++) m.set(c, String.fromCharCode(c + 8));
  m.set(0x1fb3, '\u1fbc');
  m.set(0x1fc3, '\u1fcc');
  m.set(0x1ff3, '\u1ffc');
  return m;
})();

const SURROGATE = /[\ud800-\udfff]/;

const WCIDIRS_KEY = caseFoldKey(WCIDIRS_SUFFIX);

/** The parent name of a layer path (`Files/a/b` → `Files/a`), or '' for a root. */
export function parentName(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

/** The last segment of a layer path. */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** `Files/a/b` → `\a\b`, the form tombstones.txt and the Windows APIs use below Files. */
export function windowsPathBelowFiles(name: string): string {
  return '\\' + name.slice('Files/'.length).replaceAll('/', '\\');
}

/** The inverse of windowsPathBelowFiles: a tombstone line `\a\b` is the layer name `Files/a/b`. */
export function layerNameBelowFiles(windowsPath: string): string {
  return 'Files/' + windowsPath.slice(1).replaceAll('\\', '/');
}

/**
 * `s` as one flat string of its own. A path built by concatenation is a tree of pieces,
 * and a piece cut from an entry's name keeps that whole name alive: a directory's host
 * path, kept until the end, would hold its entry's name as well.
 */
export function flatString(s: string): string {
  // One byte a character where each fits (nearly always): a UTF-16 copy takes two.
  return WIDE_CHARACTER.test(s) ? Buffer.from(s, 'utf16le').toString('utf16le') : Buffer.from(s, 'latin1').toString('latin1');
}

const WIDE_CHARACTER = /[^\u0000-\u00ff]/;
