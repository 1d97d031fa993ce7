import { EventEmitter } from 'node:events';
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

/**
 * Lets go of what was given as an import's source, read or not, once the import failed:
 * a Node stream is destroyed (an unread file stream would otherwise keep its descriptor),
 * and what it reports after that goes unheard (a file stream that fails to open would
 * throw its error where nobody listens, ending the process); a web stream
 * canceled, an async iterator ended. Anything else, `{fd}` included (the caller's
 * descriptor), is left as it is. Safe on a source already released.
 */
export function releaseUnread(source: unknown): void {
  if (typeof source !== 'object' || source === null) return;
  try {
    if (source instanceof ReadableStream) {
      if (!source.locked) void source.cancel().catch(() => undefined);
      return;
    }
    const destroy = (source as { destroy?: unknown }).destroy;
    if (typeof destroy === 'function') {
      // A file stream destroyed while it opens still reports the open's failure.
      if (source instanceof EventEmitter) source.on('error', () => undefined);
      (destroy as () => void).call(source);
      return;
    }
    const iterate = (source as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator];
    if (typeof iterate !== 'function') return;
    const it = (iterate as () => AsyncIterator<unknown>).call(source);
    void Promise.resolve(it.return?.()).catch(() => undefined);
  } catch {
    // a source that throws as it is let go of: nothing more to do with it
  }
}
