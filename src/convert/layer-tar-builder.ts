/**
 * Builds Windows layer tars from a list of entries, encoded exactly as go-winio's
 * backuptar would write them. Used by the example, the tests and the benchmark, and
 * useful to callers who make layers from code.
 */
import { createError } from '../errors.js';
import { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE, type TarHeaderInput } from '../tar/encode.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_DIRECTORY,
  FILE_ATTRIBUTE_REPARSE_POINT,
  filetimeFromUnixNs,
  type FileBasicInfo,
} from '../util/windows.js';
import type { EntryMetadata } from './metadata.js';
import { adsStreamName, adsTarHeader, linkTarHeader, tarHeaderFromEntry, whiteoutTarHeader } from './tar-header.js';
import { WHITEOUT_PREFIX } from './pax-keys.js';

/** Bytes of an entry: a buffer, a string (UTF-8), or chunks produced on demand (large files). */
export type EntryData = Uint8Array | string | { size: number; chunks: () => Iterable<Uint8Array> | AsyncIterable<Uint8Array> };

interface Common {
  name: string;
  /** Defaults: 2020-01-01T00:00:00.1234567Z for every time. */
  times?: Partial<Pick<FileBasicInfo, 'creationTime' | 'lastAccessTime' | 'lastWriteTime' | 'changeTime'>>;
  /** Defaults: ARCHIVE for files, DIRECTORY for directories. */
  attributes?: number;
  securityDescriptor?: Uint8Array;
  extendedAttributes?: { name: string; value: Uint8Array }[];
  streams?: { name: string; data: EntryData }[];
}

export type BuilderEntry =
  | (Common & {
      type: 'file';
      data?: EntryData;
      /** An empty file backed up without a DATA stream, as some Windows builds do: mode 0. */
      noDataStream?: boolean;
    })
  | (Common & { type: 'directory' })
  | (Common & { type: 'symlink'; target: string; isMountPoint?: boolean; isDirectory?: boolean })
  | (Common & { type: 'link'; target: string })
  | { type: 'whiteout'; name: string }
  | { type: 'raw'; header: TarHeaderInput; data?: EntryData };

/** 2020-01-01T00:00:00.1234567Z as FILETIME. */
export const DEFAULT_FILETIME = filetimeFromUnixNs(1577836800_123456700n);

/** The SD crane gives every entry: O:BUG:BU, no DACL (FORMATS.md §2.9). */
export const CRANE_SECURITY_DESCRIPTOR = Buffer.from('AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==', 'base64');

function infoOf(e: Common, defaultAttributes: number): FileBasicInfo {
  return {
    creationTime: e.times?.creationTime ?? DEFAULT_FILETIME,
    lastAccessTime: e.times?.lastAccessTime ?? DEFAULT_FILETIME,
    lastWriteTime: e.times?.lastWriteTime ?? DEFAULT_FILETIME,
    changeTime: e.times?.changeTime ?? DEFAULT_FILETIME,
    fileAttributes: e.attributes ?? defaultAttributes,
  };
}

function metaOf(e: Common, reparse: EntryMetadata['reparse']): EntryMetadata {
  return {
    securityDescriptor: e.securityDescriptor === undefined ? undefined : Buffer.from(e.securityDescriptor),
    extendedAttributes: (e.extendedAttributes ?? []).map((x) => ({ name: x.name, value: Buffer.from(x.value), flags: 0 })),
    reparse,
  };
}

/** The byte length of entry data. */
export function sizeOf(d: EntryData | undefined): number {
  if (d === undefined) return 0;
  if (typeof d === 'string') return Buffer.byteLength(d);
  if (d instanceof Uint8Array) return d.length;
  return d.size;
}

async function* chunksOf(d: EntryData | undefined, name: string): AsyncGenerator<Uint8Array> {
  if (d === undefined) return;
  if (typeof d === 'string') {
    yield Buffer.from(d);
    return;
  }
  if (d instanceof Uint8Array) {
    yield d;
    return;
  }
  let n = 0;
  for await (const c of d.chunks()) {
    n += c.length;
    yield c;
  }
  if (n !== d.size) throw createError('ERR_SIZE_MISMATCH', `${name}: data produced ${n} bytes, declared ${d.size}`, { entry: name });
}

/** Streams the tar of `entries`. */
export async function* streamLayerTar(entries: Iterable<BuilderEntry> | AsyncIterable<BuilderEntry>): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const e of entries) {
    switch (e.type) {
      case 'raw': {
        yield encodeTarHeader(e.header);
        const size = sizeOf(e.data);
        yield* chunksOf(e.data, e.header.name);
        if (size > 0) yield tarPadding(size);
        continue;
      }
      case 'whiteout': {
        // A name without a directory (`Files`, which no import takes) is whited out where it is.
        const i = e.name.lastIndexOf('/');
        yield encodeTarHeader(whiteoutTarHeader(`${e.name.slice(0, i + 1)}${WHITEOUT_PREFIX}${e.name.slice(i + 1)}`));
        continue;
      }
      case 'link':
        yield encodeTarHeader(linkTarHeader(e.name, e.target, infoOf(e, FILE_ATTRIBUTE_ARCHIVE)));
        continue;
      case 'file':
      case 'directory':
      case 'symlink':
        break;
    }
    let header: TarHeaderInput;
    let size = 0;
    if (e.type === 'file') {
      size = sizeOf(e.data);
      if (e.noDataStream === true && size > 0) throw createError('ERR_ARGUMENT_INVALID', `${e.name}: a file with data has a DATA stream`, { entry: e.name });
      header = tarHeaderFromEntry(e.name, infoOf(e, FILE_ATTRIBUTE_ARCHIVE), size, e.noDataStream !== true, metaOf(e, undefined));
    } else if (e.type === 'directory') {
      header = tarHeaderFromEntry(e.name, infoOf(e, FILE_ATTRIBUTE_DIRECTORY), 0, false, metaOf(e, undefined));
    } else {
      const attrs = FILE_ATTRIBUTE_REPARSE_POINT | (e.isDirectory === true || e.isMountPoint === true ? FILE_ATTRIBUTE_DIRECTORY : FILE_ATTRIBUTE_ARCHIVE);
      header = tarHeaderFromEntry(e.name, infoOf(e, attrs), 0, false, metaOf(e, { target: e.target, isMountPoint: e.isMountPoint === true }));
    }
    yield encodeTarHeader(header);
    if (e.type === 'file') {
      yield* chunksOf(e.data, e.name);
      if (size > 0) yield tarPadding(size);
    }
    for (const s of e.streams ?? []) {
      const n = sizeOf(s.data);
      yield encodeTarHeader(adsTarHeader(header, adsStreamName(s.name), n));
      yield* chunksOf(s.data, `${e.name}:${s.name}`);
      if (n > 0) yield tarPadding(n);
    }
  }
  yield TAR_END_OF_ARCHIVE;
}

/** The whole tar of `entries` in memory (for small layers). */
export async function buildLayerTar(entries: Iterable<BuilderEntry> | AsyncIterable<BuilderEntry>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of streamLayerTar(entries)) parts.push(c);
  return Buffer.concat(parts);
}
