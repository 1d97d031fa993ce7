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
