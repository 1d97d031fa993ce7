import { Readable } from 'node:stream';

/**
 * `source` as a Node stream when it is a web ReadableStream (its chunks passed on as they
 * are), else as it is. Read through its own iterator, a web stream cannot be let go of
 * while a read is pending (its return() waits behind it, as a Node stream's does); the
 * Node stream made of it cancels it when destroyed (releaseSource), so that a stalled
 * `fetch()` body's connection goes when its import stops.
 */
export function releasableSource<T>(source: T): T | Readable {
  return source instanceof ReadableStream ? Readable.fromWeb(source, { objectMode: true }) : source;
}

/**
 * Lets go of a source read through its iterator `it` before its end. A Node stream is
 * destroyed: its iterator's return() waits behind a pending read, which for a stalled
 * source (a download that stopped sending) is as long as it stays stalled.
 */
export function releaseSource(source: unknown, it: AsyncIterator<unknown>): void {
  const destroy = (source as { destroy?: unknown } | null | undefined)?.destroy;
  if (typeof destroy === 'function') (destroy as () => void).call(source);
  void Promise.resolve(it.return?.()).catch(() => undefined);
}
