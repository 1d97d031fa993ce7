/**
 * Tar header ⇄ FILE_BASIC_INFO, as go-winio's FileInfoFromHeader / BasicInfoHeader do,
 * with the reference defaults for producers that omit records (DESIGN.md §7): no
 * fileattr → 0 (+ DIRECTORY for directories); no creationtime, atime or ctime → mtime.
 */
import { createError } from '../errors.js';
import type { TarHeader } from '../tar/reader.js';
import { parsePaxTime } from '../tar/pax.js';
import { FILE_ATTRIBUTE_DIRECTORY, filetimeFromUnixNs, type FileBasicInfo } from '../util/windows.js';
import {
  PAX_CREATION_TIME,
  PAX_FILE_ATTRIBUTES,
  PAX_LEGACY_CREATION_TIME,
  PAX_LEGACY_FILE_ATTRIBUTES,
} from './pax-keys.js';

const MAX_U32 = 0xffffffff;

/** Parses an unsigned 32-bit decimal PAX value the way Go's ParseUint(s, 10, 32) does (digits only). */
export function parseUint32Record(value: string, key: string, entry: string): number {
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) > MAX_U32) {
    throw createError('ERR_PAX_RECORD_INVALID', `${entry}: ${key}=${JSON.stringify(value.slice(0, 40))} is not an unsigned 32-bit decimal`, {
      entry,
      key,
    });
  }
  return Number(value);
}

/** The Windows attributes an entry carries, with the reference default. */
export function fileAttributesFromTarHeader(h: TarHeader, entry: string): number {
  const raw = h.pax[PAX_FILE_ATTRIBUTES] ?? h.pax[PAX_LEGACY_FILE_ATTRIBUTES];
  if (raw === undefined) return h.typeflag === '5' ? FILE_ATTRIBUTE_DIRECTORY : 0;
  return parseUint32Record(raw, PAX_FILE_ATTRIBUTES, entry);
}

/** FILE_BASIC_INFO from a tar header; times are kept at 100 ns. */
export function fileInfoFromTarHeader(h: TarHeader, entry: string): FileBasicInfo {
  const fileAttributes = fileAttributesFromTarHeader(h, entry);
  let creationNs = h.mtime;
  let creationKey = 'mtime';
  const created = h.pax[PAX_CREATION_TIME];
  if (created !== undefined) {
    creationKey = PAX_CREATION_TIME;
    creationNs = parseTimeRecord(created, creationKey, entry);
  } else {
    const legacy = h.pax[PAX_LEGACY_CREATION_TIME];
    if (legacy !== undefined) {
      creationKey = PAX_LEGACY_CREATION_TIME;
      creationNs = parseTimeRecord(legacy, creationKey, entry);
    }
  }
  return {
    creationTime: windowsTime(creationNs, creationKey, entry),
    lastAccessTime: windowsTime(h.atime ?? h.mtime, h.atime === undefined ? 'mtime' : 'atime', entry),
    lastWriteTime: windowsTime(h.mtime, 'mtime', entry),
    changeTime: windowsTime(h.ctime ?? h.mtime, h.ctime === undefined ? 'mtime' : 'ctime', entry),
    fileAttributes,
  };
}

/** The largest FILETIME Windows takes (its APIs read one as a signed 64-bit count). */
export const MAX_FILETIME = 2n ** 63n - 1n;

/**
 * Unix nanoseconds as a FILETIME, refused outside what Windows can hold (1601 to 30828):
 * a layer that imports can always be written to Windows, and exported again.
 */
function windowsTime(ns: bigint, key: string, entry: string): bigint {
  const ft = filetimeFromUnixNs(ns);
  if (ft < 0n || ft > MAX_FILETIME) {
    throw createError('ERR_PAX_RECORD_INVALID', `${entry}: ${key} ${String(ns)} ns from 1970 is outside the Windows time range (1601 to 30828)`, { entry, key });
  }
  return ft;
}

function parseTimeRecord(value: string, key: string, entry: string): bigint {
  try {
    return parsePaxTime(value);
  } catch (cause) {
    throw createError('ERR_PAX_RECORD_INVALID', `${entry}: ${key}=${JSON.stringify(value.slice(0, 40))} is not a PAX time`, { entry, key }, cause);
  }
}
