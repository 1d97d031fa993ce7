/**
 * Signals derived from one caller's signal, with one listener on it however many jobs
 * share it. A daemon's one shutdown signal, passed to every job, otherwise got a listener
 * per running worker (execa's `cancelSignal`), and Node warned of a leak past 10
 * (MaxListenersExceededWarning) at a concurrency of 5.
 */
const derived = new WeakMap<AbortSignal, Set<AbortController>>();

/**
 * A signal aborted when `signal` is (with its reason), and `release`, which stops it
 * following `signal`: call it once the job that uses it has ended.
 */
export function derivedSignal(signal: AbortSignal): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  if (signal.aborted) {
    controller.abort(signal.reason);
    return { signal: controller.signal, release: () => undefined };
  }
  let followers = derived.get(signal);
  if (followers === undefined) {
    const all = new Set<AbortController>();
    followers = all;
    derived.set(signal, all);
    signal.addEventListener(
      'abort',
      () => {
        derived.delete(signal);
        for (const c of all) c.abort(signal.reason);
        all.clear();
      },
      { once: true },
    );
  }
  followers.add(controller);
  const set = followers;
  return { signal: controller.signal, release: () => void set.delete(controller) };
}
