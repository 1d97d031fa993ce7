/**
 * The worker protocol (DESIGN.md §5), shared by the worker and the controller:
 *   write-layer HOME ID [PARENT_LAYER_PATH ...]   tar on stdin → decimal size + "\n" on stdout
 *   export-layer HOME ID [PARENT_LAYER_PATH ...]  tar on stdout
 *   view HOME ID DEST [LAYER_PATH ...]             the merged view of the layers (nearest
 *                                                  first) written beside DEST, a new directory in
 *                                                  HOME, as DEST-tmp-<worker pid>-<hex>, then
 *                                                  renamed to DEST
 *   changes HOME ID [PARENT_LAYER_PATH ...]        the layer's changes against its parents on
 *                                                  stdout, one JSON object {"path","kind"} a line
 * For an existing layer (export-layer, changes) the parents are read from the layer's own
 * layerchain.json; those given are informational, as windowsfilter's re-exec passes them.
 * Failure: non-zero exit, and the last line of stderr is one JSON object
 * {"name","code","message","data"}. Progress: JSON lines {"entries","bytes"} on fd 3
 * when the controller opened it (PROGRESS_FD), throttled by the worker. Also on fd 3:
 * `{}` once the worker runs, and, just before an import's commit rename, one line
 * {"commit":{"dev","ino"}} (decimal strings) naming its staging directory: a worker
 * killed after the rename and before its size reached stdout committed its layer when the
 * layer's directory is that one (the rename keeps device and inode).
 *
 * A worker started as `deferred [COMMAND HOME ID]` (DEFERRED_COMMAND) waits for its command
 * line instead: one JSON line {"argv":[command, HOME, ID, ...]} on fd 4 (JOB_FD), which
 * must begin with the words after `deferred`, then runs it as if started with it. Its job
 * pipe closed without a line, it exits 0 having done nothing.
 * The CLI's import starts its worker that way before it knows the job (prestart.ts).
 */
import type { SerializedError } from '../errors.js';

export type WorkerCommand = 'write-layer' | 'export-layer' | 'view' | 'changes';
export const WORKER_COMMANDS: readonly WorkerCommand[] = ['write-layer', 'export-layer', 'view', 'changes'];

/** The file descriptor a worker writes progress lines to, when open. */
export const PROGRESS_FD = 3;

/**
 * Signals an import worker stops at its next check for, rather than at once (worker/main.ts
 * parentGuard); one that ends a worker before it listens is a cancellation all the same.
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** The worker command that reads its command line from JOB_FD. */
export const DEFERRED_COMMAND = 'deferred';

/** The file descriptor a deferred worker reads its job from. */
export const JOB_FD = 4;

/** The longest job line a deferred worker reads (a chain of a few thousand layers fits). */
export const MAX_JOB_BYTES = 4 * 1024 * 1024;

/** A staging directory as the commit line names it: st_dev and st_ino, as decimal strings. */
export interface CommitIdentity {
  readonly dev: string;
  readonly ino: string;
}

/**
 * The Node options of an import worker whose tar has many entries, or may have (see
 * src/controller/spawn-worker.ts): small semi-spaces, and an old generation that grows by
 * half its live size between full collections, where V8 would let it grow up to 4× when
 * collections are cheap (a layer of 30,000 directories, whose names the writer keeps,
 * peaked at 117 MiB that way, 97 MiB this way; 100,000 files: 95 → 86 MiB). Such a worker
 * also reads its input in smaller chunks (MANY_ENTRIES_READ_BYTES), so that fewer dead
 * read buffers wait for the collector: a 20,000-file import peaks near 83 MiB instead of
 * 89–96 MiB.
 *
 * And half of V8's inlining budget per callee (460 bytes of bytecode by default). Such an
 * import has TurboFan compile ~115 functions on V8's background threads, ~0.3 s of CPU
 * that on two CPUs competes with the import thread: that thread waited ~150 ms for a CPU
 * in a 0.6 s import. Inlining less compiles faster and the code runs as fast: the
 * 20,000-file import on tmpfs took 575–577 ms instead of 596 (medians of 8), the
 * background threads 259–274 ms of CPU instead of 299–318.
 *
 * Under any of these flags V8 refuses Node's own code cache (~70 modules compiled from
 * source in the main thread, ~95 in the file thread); the build makes the bundle's cache
 * under this whole list. The options hold for the worker's whole life: none may be set
 * aside while code loads (see releaseSemiSpaceFlag in worker/main.ts). Both ways measured,
 * worker alone on tmpfs, 15 interleaved runs: these options, 0.44 s and 0.73 s of CPU
 * (medians); the two heap options with Node's caches and V8's inlining budget, 0.46 s
 * and 0.79 s.
 */
export const MANY_ENTRIES_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=50', '--max-inlined-bytecode-size=230'];

/**
 * The Node options of a worker that exports a read-only layer of many records: the same,
 * with 4 MiB semi-spaces. With 2 MiB, more of what an export makes per entry outlives a
 * scavenge and is promoted: worker alone, two runs each, an export of 50,000 files with
 * two streams each peaked at 123–124 MiB (V8's defaults 89–90, 4 MiB 82–83), 50,000 files
 * each with a hard link 90–95 MiB (4 MiB 79–81), 100,000 files 90–94 MiB (4 MiB 82–83),
 * 30,000 directories alike (76–80 MiB). The view, `changes` and a read-write layer's
 * export, which hold a whole view, stay with 2 MiB (86, 67 and 110–112 MiB against 88–90,
 * 71 and 117–118 with 4 MiB).
 */
export const EXPORT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=50', '--max-inlined-bytecode-size=230'];
export const MANY_ENTRIES_READ_BYTES = 256 * 1024;

/** Set (to anything but empty or `0`) to run imports in the controller's process instead of a worker (debugging only). */
export const NO_REEXEC_ENV = 'WINLAYER_NOREEXEC';

/** Whether NO_REEXEC_ENV asks for in-process work: `WINLAYER_NOREEXEC=0` does not. */
export function noReexecAsked(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[NO_REEXEC_ENV];
  return v !== undefined && v !== '' && v !== '0';
}

/**
 * The controller's pid, set in every worker's environment: an import worker whose parent
 * is not that process (the controller died, even before the worker started) commits
 * nothing. Read by the worker at once; its own `process.ppid` could already be init's.
 */
export const CONTROLLER_PID_ENV = 'WINLAYER_CONTROLLER_PID';

export type WorkerMessage =
  | { type: 'progress'; entries: number; bytes: number }
  | { type: 'done'; size: number }
  | { type: 'error'; error: SerializedError };

export function isWorkerCommand(value: unknown): value is WorkerCommand {
  return value === 'write-layer' || value === 'export-layer' || value === 'view' || value === 'changes';
}
