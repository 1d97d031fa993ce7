/**
 * Tar entries → layer writer calls: the role of moby's writeLayerFromTar and hcsshim's
 * ImportLayerFromTar. One logical file spans several tar entries (its data, then each
 * `file:stream` alternate data stream), so entries are pulled one at a time and the
 * first one that is not an ADS of the current file is handed back to the main loop.
 *
 * The backup stream of an entry is synthesized from its tar header as go-winio's
 * WriteBackupStreamFromTarFile does: SECURITY, EA, REPARSE, DATA, then each ADS.
 */
import { BackupStreamId } from '../backup/constants.js';
import { encodeBackupHeader } from '../backup/header.js';
import { createError, isWinLayerError, pathTooLongError } from '../errors.js';
import type { TarEntry } from '../tar/reader.js';
import { forEachBodyChunk, skipEntry, TarEntries } from '../tar/reader.js';
import { baseName, caseFoldKey, checkNotAbsolute, MAX_SEGMENT_UNITS, parentName, parseLayerPath, type LayerPath } from '../util/safe-path.js';
import type { FileBasicInfo } from '../util/windows.js';
import { fileInfoFromTarHeader } from './file-info.js';
import { encodeMetadataStreams, metadataFromTarHeader } from './metadata.js';
import { MODE_REGULAR, MODE_TYPE_BITS, OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './pax-keys.js';
import { adsStreamName, DATA_STREAM_TYPE, hasDataStreamType } from './tar-header.js';
import { isUtilityVMFilesName } from '../layer/layer-writer.js';
import { UTILITY_VM_FILES } from '../layer/utility-vm.js';

/**
 * Alternate data streams one file may have. Each costs the import a name to check and the
 * export an item to hold until the file is written: a file of a million streams took the
 * export to 246 MiB. Real files have a handful (Zone.Identifier, a few more).
 */
export const MAX_STREAMS_PER_FILE = 16_384;

/** What the conversion needs from a layer writer (hcsshim's LayerWriter shape). */
export interface LayerSink {
  /** `dataless`: a file whose tar header says its backup stream had no DATA stream (its export keeps mode 0). */
  add(path: LayerPath, info: FileBasicInfo, kind: 'file' | 'directory' | 'symlink', dataless?: boolean): void;
  write(chunk: Buffer): void;
  /** A promise to wait on before the next write (the sink is behind), or undefined. */
  whenWritable?(): Promise<void> | undefined;
  addLink(path: LayerPath, target: LayerPath, info: FileBasicInfo): void;
  remove(path: LayerPath): void;
  /** An opaque whiteout: deletes what the parent chain holds in `dir` that the layer does not. */
  removeChildren(dir: LayerPath): void;
  readonly isBaseLayer: boolean;
}

export interface ImportProgress {
  entries: number;
  bytes: number;
}

export interface ImportTarOptions {
  /** Checked between entries; an abort throws ERR_CANCELED. */
  readonly signal?: AbortSignal | undefined;
  /** Called at most every `progressIntervalMs` with entries and bytes so far. */
  readonly onProgress?: ((progress: ImportProgress) => void) | undefined;
  /** Bytes of tar read so far (the caller counts them at the source). */
  readonly bytesRead?: (() => number) | undefined;
  /** @default 100 */
  readonly progressIntervalMs?: number;
}

export interface ImportTarResult {
  /** Sum of regular-file data sizes, ADS not counted (windowsfilter's size). */
  size: number;
  /** Tar entries read. */
  entries: number;
}

// eslint-disable-next-line no-control-regex -- control characters are what is rejected
const INVALID_STREAM_CHARS = /[\u0000-\u001f<>:"|?*\\/]/;

/**
 * Whether a file entry says its backup stream had no DATA stream. go-winio's backuptar
 * gives a file's header the regular-file mode bit only when the stream it read had one,
 * and some Windows builds back an empty file up without: such a file comes as size 0 and
 * mode 0 (FORMATS.md §2.3). Its backup stream still gets an empty DATA stream, as
 * go-winio's writer gives every file, so that `Files/` holds what hcsshim hands
 * `ImportLayer`; the index remembers the mode (`dataless`), so that its export has mode 0
 * again.
 */
function saysDataless(h: { size: number; mode: number }): boolean {
  return h.size === 0 && (h.mode & MODE_TYPE_BITS) !== MODE_REGULAR;
}

/** Converts a tar into calls on `sink`; returns the layer size and the entry count. */
export async function writeLayerFromTar(entries: AsyncIterable<TarEntry>, sink: LayerSink, options: ImportTarOptions = {}): Promise<ImportTarResult> {
  const it = entries[Symbol.asyncIterator]();
  // The tar reader hands over an entry at once when its bytes are at hand: no promise.
  const reader = it instanceof TarEntries ? it : undefined;
  /** The next entry after waiting for it; null at the end. */
  const following = async (): Promise<TarEntry | null> => {
    const r = await it.next();
    return r.done === true ? null : r.value;
  };
  let held: TarEntry | undefined;
  let size = 0;
  let count = 0;
  const interval = options.progressIntervalMs ?? 100;
  let lastProgress = 0;
  const progress = (force: boolean): void => {
    if (options.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - lastProgress < interval) return;
    lastProgress = now;
    options.onProgress({ entries: count, bytes: options.bytesRead?.() ?? 0 });
  };

  let current = '';
  const write = (chunk: Buffer): Promise<void> | undefined => {
    sink.write(chunk);
    return sink.whenWritable?.();
  };
  try {
    for (;;) {
      if (options.signal?.aborted === true) throw createError('ERR_CANCELED', 'import canceled', {});
      // First the entry that ended the previous file's alternate data streams, if any.
      const entry = held ?? reader?.nextNow() ?? (await following());
      held = undefined;
      if (entry === null) break;
      count++;
      progress(false);
      const h = entry.header;
      current = h.name;
      // The archive's own root, which `tar -C dir -cf - .` writes first: no entry of the layer.
      if (h.typeflag === '5' && (h.name === './' || h.name === '.')) {
        const skipped = skipEntry(entry);
        if (skipped !== undefined) await skipped;
        continue;
      }
      const trimmed = h.name.endsWith('/') ? h.name.slice(0, -1) : h.name;
      const base = baseName(trimmed);
      // A directory named like a whiteout (`.wh.d/x` makes `.wh.d`) exports as a deletion of
      // `d`: the layer could not be given back as it came.
      const dirs = trimmed.slice(0, trimmed.length - base.length);
      if (dirs.startsWith(WHITEOUT_PREFIX) || dirs.includes(`/${WHITEOUT_PREFIX}`)) {
        throw createError('ERR_PATH_INVALID', `${h.name}: a directory named ${WHITEOUT_PREFIX}… reads as a deletion in a layer tar`, { entry: h.name });
      }

      if (base.startsWith(WHITEOUT_PREFIX)) {
        const skipped = skipEntry(entry);
        if (skipped !== undefined) await skipped;
        applyWhiteout(h.name, base, sink);
        continue;
      }
      if (h.typeflag === '0' && base.includes(':')) {
        checkNotAbsolute(h.name); // `C:x` is a drive, not a stream
        throw createError('ERR_ADS_ORPHAN', `${h.name}: an alternate data stream entry must directly follow its file`, { entry: h.name });
      }
      switch (h.typeflag) {
        case '1': {
          const p = parseLayerPath(h.name);
          checkRootIsDirectory(p, 'a hard link');
          const target = parseLayerPath(h.linkname, 'link target');
          sink.addLink(p, target, fileInfoFromTarHeader(h, p.name));
          const skipped = skipEntry(entry);
          if (skipped !== undefined) await skipped;
          continue;
        }
        case '0':
        case '5':
        case '2':
          break;
        default:
          throw createError('ERR_ENTRY_TYPE_UNSUPPORTED', `${h.name}: tar entry type ${JSON.stringify(h.typeflag)} has no Windows equivalent`, {
            entry: h.name,
            typeflag: h.typeflag,
          });
      }

      const p = parseLayerPath(h.name);
      const info = fileInfoFromTarHeader(h, p.name);
      const meta = metadataFromTarHeader(h, p.name);
      const kind = h.typeflag === '5' ? 'directory' : h.typeflag === '2' ? 'symlink' : 'file';
      if (kind !== 'directory') checkRootIsDirectory(p, kind === 'file' ? 'a file' : 'a symbolic link');
      sink.add(p, info, kind, kind === 'file' && saysDataless(h));
      const streams = encodeMetadataStreams(meta, p.name);
      if (kind === 'file') streams.push(encodeBackupHeader({ id: BackupStreamId.Data, size: h.size }));
      if (streams.length > 0) sink.write(streams.length === 1 ? (streams[0] as Buffer) : Buffer.concat(streams));
      // Either returns undefined when the entry's bytes were at hand (an await would still cost a turn).
      const read = kind === 'file' ? forEachBodyChunk(entry, write) : skipEntry(entry);
      if (read !== undefined) await read;
      if (kind === 'file') size += h.size;

      // Alternate data streams: every following regular entry named `<this name>:<stream>`.
      let seenStreams: Set<string> | undefined;
      for (;;) {
        const ads = reader?.nextNow() ?? (await following());
        if (ads === null) break;
        const an = ads.header.name;
        const prefix = ads.header.typeflag === '0' ? streamPrefixLength(an, p.name, h.name) : -1;
        if (prefix === -1) {
          held = ads;
          break;
        }
        count++;
        current = an;
        const streamName = adsName(an.slice(prefix), an);
        const key = caseFoldKey(streamName);
        seenStreams ??= new Set<string>();
        if (seenStreams.size === MAX_STREAMS_PER_FILE) {
          throw createError('ERR_METADATA_TOO_LARGE', `${an}: more than ${MAX_STREAMS_PER_FILE} alternate data streams on ${h.name}`, { entry: an, max: MAX_STREAMS_PER_FILE });
        }
        if (seenStreams.has(key)) throw createError('ERR_ENTRY_DUPLICATE', `${an}: a second entry for this alternate data stream`, { entry: an });
        seenStreams.add(key);
        sink.write(encodeBackupHeader({ id: BackupStreamId.AlternateData, size: ads.header.size, name: adsStreamName(streamName) }));
        const read = forEachBodyChunk(ads, write);
        if (read !== undefined) await read;
        progress(false);
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') throw pathTooLongError(current, error);
    throw error;
  } finally {
    if (held !== undefined) await skipEntry(held)?.catch(() => undefined);
    await it.return?.(undefined);
  }
  progress(true);
  return { size, entries: count };
}

/**
 * Refuses `Files`, `Hives`, `UtilityVM` or `UtilityVM/Files` as anything but a directory:
 * the layer's roots, which Windows holds only as directories (hcsshim refuses a UtilityVM
 * that is a reparse point), and below which every other entry is written.
 */
const UTILITY_VM_FILES_KEY = caseFoldKey(UTILITY_VM_FILES);

function checkRootIsDirectory(p: LayerPath, what: string): void {
  if (p.name === p.root || caseFoldKey(p.name) === UTILITY_VM_FILES_KEY) {
    throw createError('ERR_PATH_ROOT', `${p.name}: a layer root must be a directory, not ${what}`, { entry: p.name });
  }
}

/** Length of `<name>:` when `entry` starts with it for the parsed or the raw name, else -1. */
function streamPrefixLength(entry: string, name: string, rawName: string): number {
  const startsWith = (n: string): boolean => entry.length > n.length && entry.charCodeAt(n.length) === COLON && entry.startsWith(n);
  if (startsWith(name)) return name.length + 1;
  return name !== rawName && startsWith(rawName) ? rawName.length + 1 : -1;
}

const COLON = 0x3a;

/** Validates the stream part of `file:stream` (a trailing `:$DATA`, in any case as NTFS reads it, is accepted and dropped). */
function adsName(raw: string, entry: string): string {
  const name = hasDataStreamType(raw) ? raw.slice(0, -DATA_STREAM_TYPE.length) : raw;
  if (name.length === 0 || INVALID_STREAM_CHARS.test(name) || name.length > MAX_SEGMENT_UNITS) {
    throw createError('ERR_PATH_INVALID', `${entry}: ${JSON.stringify(raw)} is not a valid alternate data stream name`, { entry });
  }
  return name;
}

/**
 * `dir/.wh.name` deletes `dir/name`; `dir/.wh..wh..opq` deletes everything the parents hold
 * in `dir`. A failure names the whiteout's own entry (`data.entry`), and the path it
 * deletes (`data.deletes`) when that is where it lies.
 */
function applyWhiteout(rawName: string, base: string, sink: LayerSink): void {
  try {
    applyWhiteoutOf(rawName, base, sink);
  } catch (error) {
    if (!isWinLayerError(error) || error.data['entry'] === rawName) throw error;
    const deletes = error.data['entry'];
    const message = error.message.startsWith(rawName) ? error.message : `${rawName}: ${error.message}`;
    throw createError(error.code, message, { ...error.data, entry: rawName, ...(typeof deletes === 'string' ? { deletes } : {}) }, error);
  }
}

function applyWhiteoutOf(rawName: string, base: string, sink: LayerSink): void {
  const trimmed = rawName.endsWith('/') ? rawName.slice(0, -1) : rawName;
  const dir = parentName(trimmed);
  if (base === OPAQUE_WHITEOUT) {
    // At the top of the tar: a whiteout of no directory, as `.wh.Files` is of no file.
    if (dir === '') throw createError('ERR_WHITEOUT_INVALID', `${rawName}: an opaque whiteout at the top of the tar names no directory`, { entry: rawName });
    const d = parseLayerPath(dir, 'whiteout');
    // The rules of a plain whiteout (LayerWriter.remove), whether or not the parents hold
    // anything there to delete: hcsshim refuses both in a base layer.
    if (sink.isBaseLayer) {
      throw createError('ERR_WHITEOUT_INVALID', `${rawName}: a base layer cannot delete files (it has no parent)`, { entry: rawName });
    }
    if (d.root !== 'Files' && !isUtilityVMFilesName(d.name)) {
      throw createError('ERR_WHITEOUT_INVALID', `${rawName}: only files under Files/ or UtilityVM/Files/ can be deleted`, { entry: rawName });
    }
    sink.removeChildren(d);
    return;
  }
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim.length === 0 || dir === '') {
    throw createError('ERR_WHITEOUT_INVALID', `${rawName}: names no file to delete`, { entry: rawName });
  }
  sink.remove(parseLayerPath(dir + '/' + victim, 'whiteout'));
}
