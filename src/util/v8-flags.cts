/**
 * The heap options of an import worker of many entries (MANY_ENTRIES_NODE_OPTIONS) and V8's
 * code caches.
 *
 * V8 stamps every code cache with a hash of the flags that differ from its defaults, and
 * rejects a cache whose stamp differs from the flags in force when the code is compiled.
 * That holds for the bundle's cache (start-bundle.cts) and for the cache of Node's own
 * modules built into the `node` binary: in a process started with `--max-semi-space-size=2`
 * all of them were compiled from source, ~30 ms of the main thread's start, and ~110 more
 * modules in the import's file thread (its own isolate), ~50 ms of CPU.
 *
 * None of these flags changes what code is compiled to; V8 reads them at other times:
 * `--max-semi-space-size` when it sets up an isolate's heap, `--heap-growing-percent` at
 * each full collection, `--max-inlined-bytecode-size` when it optimizes a function. So a
 * worker sets them to V8's defaults while code is loaded (setCodeCacheFlags: before the
 * bundle is compiled, and while a thread's isolate starts) and applies them again once it
 * runs (restoreHeapFlags). `--max-semi-space-size` is never applied again: the main
 * isolate's heap is set up by then, and for a thread the flag would override the young
 * generation its Worker `resourceLimits` ask for.
 *
 * Only flags given on the command line are touched, and only in processes this package
 * starts (a worker, the CLI): a library's caller keeps its flags as they are.
 */
import type * as V8 from 'node:v8';

/** The flags a worker may be started with that stamp code caches, and V8's default for each (`node --v8-options`). */
export const CACHE_STAMPED_FLAGS: ReadonlyMap<string, string> = new Map([
  ['--max-semi-space-size', '0'],
  ['--heap-growing-percent', '0'],
  ['--max-inlined-bytecode-size', '460'],
]);

/** The last value given for each flag of CACHE_STAMPED_FLAGS in `execArgv`. */
function given(execArgv: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const option of execArgv) {
    const eq = option.indexOf('=');
    if (eq !== -1 && CACHE_STAMPED_FLAGS.has(option.slice(0, eq))) found.set(option.slice(0, eq), option.slice(eq + 1));
  }
  return found;
}

/** The Node options of `execArgv` in force while code is compiled: all but CACHE_STAMPED_FLAGS. */
export function compileTimeOptions(execArgv: readonly string[]): string[] {
  return execArgv.filter((option) => {
    const eq = option.indexOf('=');
    return eq === -1 || !CACHE_STAMPED_FLAGS.has(option.slice(0, eq));
  });
}

function setFlags(flags: Map<string, string>): void {
  if (flags.size === 0) return;
  // Loaded only when there is something to set: most starts have no such flag.
  const v8 = require('node:v8') as typeof V8;
  for (const [name, value] of flags) v8.setFlagsFromString(`${name}=${value}`);
}

/** Sets each flag of CACHE_STAMPED_FLAGS given on the command line to V8's default. */
export function setCodeCacheFlags(): void {
  const flags = given(process.execArgv);
  for (const name of flags.keys()) flags.set(name, CACHE_STAMPED_FLAGS.get(name) as string);
  setFlags(flags);
}

/** Applies again the command line's `--heap-growing-percent` and `--max-inlined-bytecode-size`. */
export function restoreHeapFlags(): void {
  const flags = given(process.execArgv);
  flags.delete('--max-semi-space-size');
  setFlags(flags);
}

let managed = false;

/**
 * Called by the worker process once it runs: its heap flags apply from now on, and
 * threads it starts load their code under V8's defaults (startingIsolate).
 */
export function manageHeapFlags(): void {
  managed = true;
  restoreHeapFlags();
}

/**
 * Before a thread is started: in a worker process, sets the code-cache defaults and
 * returns the call that applies the heap flags again, to make once the thread has loaded
 * its modules (or has failed to start). Elsewhere, changes nothing.
 */
export function startingIsolate(): () => void {
  if (!managed) return () => undefined;
  setCodeCacheFlags();
  let done = false;
  return () => {
    if (done) return;
    done = true;
    restoreHeapFlags();
  };
}
