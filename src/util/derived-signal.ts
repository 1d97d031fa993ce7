/**
 * One listener on a caller's signal however many jobs share it. A daemon's one shutdown
 * signal, passed to every job, otherwise got a listener per job queued (the controller's)
 * and per worker running (execa's `cancelSignal`), and Node warned of a leak past 10
 * (MaxListenersExceededWarning).
 */
const hooks = new WeakMap<AbortSignal, { fns: Set<() => void>; listener: () => void }>();

/**
 * Calls `fn` when `signal` aborts; returns what stops that. The signal's one listener goes
 * with its last `fn`: a signal whose jobs all ended keeps none.
 */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let hook = hooks.get(signal);
  if (hook === undefined) {
    const fns = new Set<() => void>();
    const listener = (): void => {
      hooks.delete(signal);
      for (const f of [...fns]) f();
    };
    hook = { fns, listener };
    hooks.set(signal, hook);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { fns, listener } = hook;
  fns.add(fn);
  return () => {
    fns.delete(fn);
    if (fns.size > 0 || hooks.get(signal)?.fns !== fns) return;
    hooks.delete(signal);
    signal.removeEventListener('abort', listener);
  };
}

/**
 * A signal aborted when `signal` is (with its reason), for a listener of its own (execa's),
 * and `release`, which stops it following `signal`: call it once its job has ended.
 */
export function derivedSignal(signal: AbortSignal): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  if (signal.aborted) {
    controller.abort(signal.reason);
    return { signal: controller.signal, release: () => undefined };
  }
  return { signal: controller.signal, release: onAbort(signal, () => controller.abort(signal.reason)) };
}
