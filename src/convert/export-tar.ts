/**
 * Layer entries → tar bytes, encoded as go-winio's backuptar + Go's archive/tar would
 * (so our exports are byte-compatible), with whiteouts as moby writes them and hard
 * links as hcsshim's ociwclayer writes them. Data comes through `readRange`, so this
 * module stays free of file-system code.
 */
import { createError } from '../errors.js';
import { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE } from '../tar/encode.js';
import { baseName, parentName } from '../util/safe-path.js';
import type { ByteRange, ExportItem } from '../layer/layer-reader.js';
import { WHITEOUT_PREFIX } from './pax-keys.js';
import { adsTarHeader, linkTarHeader, tarHeaderFromEntry, whiteoutTarHeader } from './tar-header.js';

export interface ExportTarOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: { entries: number; bytes: number }) => void) | undefined;
  /** @default 100 */
  readonly progressIntervalMs?: number;
}

/** Streams a tar of `items`; `readRange` yields the bytes of a stored range. */
export async function* tarFromLayerEntries(
  items: AsyncIterable<ExportItem>,
  readRange: (range: ByteRange) => AsyncIterable<Buffer>,
  options: ExportTarOptions = {},
): AsyncGenerator<Buffer> {
  let entries = 0;
  let bytes = 0;
  let last = 0;
  const interval = options.progressIntervalMs ?? 100;
  const progress = (force: boolean): void => {
    if (options.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - last < interval) return;
    last = now;
    options.onProgress({ entries, bytes });
  };
  async function* body(range: ByteRange, name: string): AsyncGenerator<Buffer> {
    let n = 0;
    for await (const chunk of readRange(range)) {
      n += chunk.length;
      if (n > range.length) break;
      bytes += chunk.length;
      yield chunk;
    }
    if (n !== range.length) {
      throw createError('ERR_LAYER_CORRUPT', `${name}: stored stream has ${n} bytes, expected ${range.length}`, { entry: name });
    }
    const pad = tarPadding(range.length);
    if (pad.length > 0) yield pad;
  }

  for await (const item of items) {
    if (options.signal?.aborted === true) throw createError('ERR_CANCELED', 'export canceled');
    entries++;
    progress(false);
    switch (item.kind) {
      case 'whiteout': {
        const dir = parentName(item.name);
        yield encodeTarHeader(whiteoutTarHeader(`${dir}/${WHITEOUT_PREFIX}${baseName(item.name)}`));
        break;
      }
      case 'link':
        yield encodeTarHeader(linkTarHeader(item.name, item.target, item.info));
        break;
      case 'entry': {
        const size = item.data?.length ?? 0;
        const header = tarHeaderFromEntry(item.name, item.info, size, item.hasData, item.meta);
        yield encodeTarHeader(header);
        if (header.typeflag === '0' && item.data !== undefined) yield* body(item.data, item.name);
        for (const s of item.streams) {
          entries++;
          yield encodeTarHeader(adsTarHeader(header, s.name, s.range.length));
          yield* body(s.range, item.name + s.name);
        }
        break;
      }
    }
  }
  yield TAR_END_OF_ARCHIVE;
  progress(true);
}
