/**
 * Layer entry → tar header, encoded the way go-winio's backuptar does it
 * (BasicInfoHeader + WriteTarFileFromBackupStream), so our tars match the ecosystem's
 * byte for byte — but with nothing lost: EAs are emitted wherever they sat in the
 * backup stream, and directories keep their alternate data streams.
 */
import type { TarHeaderInput } from '../tar/encode.js';
import { formatPaxTime } from '../tar/pax.js';
import { FILE_ATTRIBUTE_DIRECTORY, unixNsFromFiletime, type FileBasicInfo } from '../util/windows.js';
import type { EntryMetadata } from './metadata.js';
import {
  LINK_MODE,
  MODE_DIRECTORY,
  MODE_REGULAR,
  MODE_SYMLINK,
  PAX_CREATION_TIME,
  PAX_EA_PREFIX,
  PAX_FILE_ATTRIBUTES,
  PAX_MOUNT_POINT,
  PAX_RAW_SECURITY_DESCRIPTOR,
} from './pax-keys.js';

/** BasicInfoHeader: name, size and FILE_BASIC_INFO as a PAX header (mode 0, type '0' or '5'). */
export function basicInfoTarHeader(name: string, size: number, info: FileBasicInfo): TarHeaderInput & { paxRecords: Record<string, string> } {
  const isDir = (info.fileAttributes & FILE_ATTRIBUTE_DIRECTORY) !== 0;
  return {
    name,
    typeflag: isDir ? '5' : '0',
    mode: isDir ? MODE_DIRECTORY : 0,
    size: isDir ? 0 : size,
    mtime: unixNsFromFiletime(info.lastWriteTime),
    atime: unixNsFromFiletime(info.lastAccessTime),
    ctime: unixNsFromFiletime(info.changeTime),
    paxRecords: {
      [PAX_FILE_ATTRIBUTES]: String(info.fileAttributes >>> 0),
      [PAX_CREATION_TIME]: formatPaxTime(unixNsFromFiletime(info.creationTime)),
    },
    format: 'pax',
  };
}

/** The header of a file, directory or reparse point with its metadata streams. */
export function tarHeaderFromEntry(
  name: string,
  info: FileBasicInfo,
  dataSize: number,
  hasData: boolean,
  meta: EntryMetadata,
): TarHeaderInput {
  const h = basicInfoTarHeader(name, dataSize, info);
  if (hasData) h.mode |= MODE_REGULAR;
  if (meta.securityDescriptor !== undefined) {
    h.paxRecords[PAX_RAW_SECURITY_DESCRIPTOR] = meta.securityDescriptor.toString('base64');
  }
  if (meta.reparse !== undefined) {
    h.mode |= MODE_SYMLINK;
    h.typeflag = '2';
    h.linkname = meta.reparse.target;
    if (meta.reparse.isMountPoint) h.paxRecords[PAX_MOUNT_POINT] = '1';
  }
  for (const ea of meta.extendedAttributes) {
    h.paxRecords[PAX_EA_PREFIX + ea.name] = ea.value.toString('base64');
  }
  if (h.typeflag !== '0') h.size = 0;
  return h;
}

/** The header of an alternate data stream entry `<file>:<stream>` (no Windows records, mode and times copied). */
export function adsTarHeader(main: TarHeaderInput, streamName: string, size: number): TarHeaderInput {
  const h: TarHeaderInput = {
    name: main.name + adsTarSuffix(streamName),
    typeflag: '0',
    mode: main.mode,
    size,
    mtime: main.mtime,
    format: 'pax',
  };
  if (main.atime !== undefined) h.atime = main.atime;
  if (main.ctime !== undefined) h.ctime = main.ctime;
  return h;
}

export const DATA_STREAM_TYPE = ':$DATA';

/** Whether `name` ends in the `:$DATA` stream type, in any case (NTFS reads type names so). */
export function hasDataStreamType(name: string): boolean {
  return name.length >= DATA_STREAM_TYPE.length && name.slice(-DATA_STREAM_TYPE.length).toUpperCase() === DATA_STREAM_TYPE;
}

/** `:name:$DATA` (backup stream) → `:name` (tar suffix). */
export function adsTarSuffix(streamName: string): string {
  return streamName.endsWith(DATA_STREAM_TYPE) ? streamName.slice(0, -DATA_STREAM_TYPE.length) : streamName;
}

/** `name` (tar suffix without the colon) → `:name:$DATA` (backup stream). */
export function adsStreamName(tarSuffix: string): string {
  return ':' + tarSuffix + DATA_STREAM_TYPE;
}

/** A moby-style whiteout: a bare header with only the name (Go promotes it to a USTAR regular file). */
export function whiteoutTarHeader(name: string): TarHeaderInput {
  return { name, typeflag: '0', mode: 0, size: 0, mtime: 0n, format: 'unknown' };
}

/** A hard link as hcsshim's ociwclayer writes it: BasicInfoHeader(name, 0, info), mode 0644, type '1'. */
export function linkTarHeader(name: string, target: string, info: FileBasicInfo): TarHeaderInput {
  const h = basicInfoTarHeader(name, 0, info);
  // The one header whose mode holds permission bits (and no type bits).
  h.mode = LINK_MODE;
  h.typeflag = '1';
  h.linkname = target;
  return h;
}
