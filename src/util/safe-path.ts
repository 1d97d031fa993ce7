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
import { createError } from '../errors.js';

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
  readonly segments: readonly string[];
}

// Characters Win32 file names cannot hold (besides the separators handled apart).
// eslint-disable-next-line no-control-regex -- control characters are exactly what is rejected
const INVALID_CHARS = /[\u0000-\u001f<>:"|?*\\]/;

/**
 * Validates a tar entry name (or link target) and returns it in canonical form.
 * A single leading `./` and trailing `/` are dropped, as plain POSIX tars carry them.
 * `what` names the field in errors (`entry`, `link target`, `whiteout`).
 */
export function parseLayerPath(raw: string, what = 'entry'): LayerPath {
  const data = { entry: raw };
  if (raw.length === 0) throw createError('ERR_PATH_INVALID', `${what} name is empty`, data);
  if (raw.includes('\0')) throw createError('ERR_PATH_INVALID', `${what} ${JSON.stringify(raw)}: name contains NUL`, data);
  if (raw.includes('\\')) {
    throw createError('ERR_PATH_INVALID', `${what} ${JSON.stringify(raw)}: backslash is not a separator in tar names`, data);
  }
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) {
    throw createError('ERR_PATH_ESCAPE', `${what} ${JSON.stringify(raw)}: absolute, drive-letter or UNC path`, data);
  }
  let name = raw.startsWith('./') ? raw.slice(2) : raw;
  while (name.endsWith('/')) name = name.slice(0, -1);
  if (name.length === 0) throw createError('ERR_PATH_INVALID', `${what} ${JSON.stringify(raw)}: names no file`, data);
  const segments = name.split('/');
  for (const seg of segments) {
    if (seg === '..') throw createError('ERR_PATH_ESCAPE', `${what} ${JSON.stringify(raw)}: contains '..'`, data);
    if (seg === '' || seg === '.') {
      throw createError('ERR_PATH_INVALID', `${what} ${JSON.stringify(raw)}: empty or '.' path segment`, data);
    }
    if (INVALID_CHARS.test(seg)) {
      throw createError('ERR_PATH_INVALID', `${what} ${JSON.stringify(raw)}: segment ${JSON.stringify(seg)} has a character Windows forbids`, data);
    }
    if (seg.endsWith(WCIDIRS_SUFFIX)) {
      throw createError('ERR_PATH_RESERVED', `${what} ${JSON.stringify(raw)}: '${WCIDIRS_SUFFIX}' names are reserved for directory metadata`, data);
    }
    if (seg.length > MAX_SEGMENT_UNITS) {
      throw createError('ERR_PATH_TOO_LONG', `${what} ${JSON.stringify(raw)}: segment of ${seg.length} UTF-16 units exceeds ${MAX_SEGMENT_UNITS}`, data);
    }
  }
  if (name.length > MAX_PATH_UNITS) {
    throw createError('ERR_PATH_TOO_LONG', `${what}: path of ${name.length} UTF-16 units exceeds ${MAX_PATH_UNITS}`, { entry: raw.slice(0, 200) });
  }
  const root = segments[0] as string;
  if (!isLayerRoot(root)) {
    throw createError('ERR_PATH_ROOT', `${what} ${JSON.stringify(raw)}: must be under Files/, Hives/ or UtilityVM/`, data);
  }
  return { name, root, segments };
}

/** True for the three transport-format roots. */
export function isLayerRoot(value: string): value is LayerRoot {
  return value === 'Files' || value === 'Hives' || value === 'UtilityVM';
}

/**
 * The key under which NTFS would find a name: each UTF-16 unit upper-cased on its own
 * (simple case mapping, as NTFS's $UpCase table does; `ß` stays `ß`, unlike toUpperCase).
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
  for (const ch of name) {
    const up = ch.toUpperCase();
    out += up.length === ch.length ? up : ch;
  }
  return out;
}

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
