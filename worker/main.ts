#!/usr/bin/env node
/**
 * The worker process: one import (`write-layer`) or export (`export-layer`) per process,
 * the role of Docker's `docker-windows-write-layer` re-exec. A hostile tar can crash
 * only this process; the controller that spawned it stays small and alive. See
 * src/controller/protocol.ts for the contract.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type * as V8 from 'node:v8';
import { createError, toWinLayerError } from '../src/errors.js';
import { CONTROLLER_PID_ENV, DEFERRED_COMMAND, isWorkerCommand, JOB_FD, MANY_ENTRIES_NODE_OPTIONS, MANY_ENTRIES_READ_BYTES, MAX_JOB_BYTES, PROGRESS_FD, STOP_SIGNALS, type CommitIdentity } from '../src/controller/protocol.js';
import { selectBackend } from '../src/native/select.js';
import { exportLayer, importLayer } from '../src/store/layer-ops.js';
import { ScavengeMeter, scavengingAsRead } from '../src/util/scavenge.js';
import { stdinStream } from '../src/util/stdin.js';
import { IMPORTING_INFIX, LayerStore, validateLayerId } from '../src/store/layer-store.js';
import { removeTreeSync } from '../src/util/remove-tree.js';

function progressWriter(): ((p: { entries: number; bytes: number }) => void) | undefined {
  try {
    fs.fstatSync(PROGRESS_FD);
  } catch {
    return undefined;
  }
  return (p) => {
    try {
      fs.writeSync(PROGRESS_FD, JSON.stringify({ entries: p.entries, bytes: p.bytes }) + '\n');
    } catch {
      // the controller stopped listening: progress is best effort
    }
  };
}

/**
 * Lets threads started from now on size their young generation themselves. V8 reads
 * `--max-semi-space-size` (MANY_ENTRIES_NODE_OPTIONS) when it sets up an isolate's heap,
 * and the flag then overrides a Worker's `resourceLimits`: the import's file thread, which
 * allocates little, took the main thread's 4 MiB of new space instead of the 2 MiB its
 * limit asks for. The main isolate's heap is set up already, so clearing the flag here
 * (0: unset) changes only threads created after this. Only a worker process does it: the
 * flag is the whole process's.
 *
 * It is the only flag a worker changes once it runs, and V8 reads it only when it sets up
 * a heap. The other options stay as given: V8's optimizing compiler reads
 * `--max-inlined-bytecode-size` on its background threads, twice per inlined call (to
 * pick a candidate, then to inline it), and stops the process (a failed CHECK, SIGTRAP)
 * when the second reading refuses what the first allowed. Lowering it at run time, to let
 * code load from caches made under V8's defaults, killed 4 of 133 20,000-file imports.
 */
function releaseSemiSpaceFlag(): void {
  (createRequire(import.meta.url)('node:v8') as typeof V8).setFlagsFromString('--max-semi-space-size=0');
}

/** How often an import checks that its controller is still there. */
const PARENT_POLL_MS = 100;
/** How long an orphaned import may take to stop by itself. */
const ORPHAN_EXIT_MS = 2000;
/**
 * How long a signaled import may take to stop at a check of its own before it removes its
 * staging directory and ends (before the controller's SIGKILL, 2 s after its SIGTERM).
 */
const STOP_GRACE_MS = 1000;
/**
 * Entries of synchronous work between two checks of the parent (`tick`). A read of
 * process.ppid costs ~0.6 µs here (getppid); 64 entries of a view (open, write, utimes,
 * close each) take ~3 ms, of a read-write layer's walk (an lstat each) well under 1 ms.
 */
const TICK_ENTRIES = 64;

/**
 * Ties a worker to the process that started it. Nothing else does on Linux (no
 * PR_SET_PDEATHSIG from Node): a controller killed with SIGKILL would leave its worker
 * reading the stdin it was handed and committing a layer nobody waits for, under an id a
 * new import then finds taken, or writing a view nobody will mount into a directory that
 * other processes then try to remove. A worker whose parent changed (it was re-parented)
 * stops with ERR_CANCELED: an import polls while it works, and checks once more just
 * before the commit rename, after the flush (`check`). Synchronous work (a view, a
 * read-write layer's comparison), where no timer fires, calls `tick` once an entry,
 * which checks every TICK_ENTRIES calls.
 */
function parentGuard(importing?: { home: string; id: string }): { signal: AbortSignal; check: () => void; tick: () => void; beforeCommit: (staging: string) => void } {
  // The controller says who it is: by the time this runs, a dead one's place may be init's.
  const given = Number(process.env[CONTROLLER_PID_ENV]);
  const parent = Number.isSafeInteger(given) && given > 0 ? given : process.ppid;
  const controller = new AbortController();
  const gone = () => createError('ERR_CANCELED', `the controller (process ${parent}) that started this worker exited`, { parent });
  // A termination signal (the controller canceling or timing out a job, a terminal's
  // Ctrl-C or hang-up reaching the whole process group) stops the work at its next check,
  // as a gone controller does: the staging or view directory is removed by the worker
  // itself, and once an import passed its last check before the commit rename, the
  // import completes and prints its size. Killed at once, a worker could die between the
  // rename and the size, and its controller report ERR_CANCELED for a committed layer.
  let stoppedBy: NodeJS.Signals | undefined;
  /** Past the last check before the commit rename: the import completes, signal or not. */
  let committing = false;
  const stopped = () => createError('ERR_CANCELED', `worker stopped by ${stoppedBy ?? 'a signal'}`, { signal: stoppedBy });
  // An import only: an export or a view has no commit to finish, and a signal ends it at once.
  for (const name of importing === undefined ? [] : STOP_SIGNALS) {
    process.on(name, () => {
      if (stoppedBy !== undefined) return;
      stoppedBy = name;
      if (!controller.signal.aborted) controller.abort(stopped());
      // Blocked where no check comes (a read of a stalled pipe, which no signal ends, and
      // which process.exit would wait for): its staging directory removed here, and ended.
      setTimeout(() => {
        if (committing || importing === undefined) return;
        removeOwnStaging(importing.home, importing.id);
        process.stderr.write('\n' + JSON.stringify(stopped().toJSON()) + '\n', () => process.kill(process.pid, 'SIGKILL'));
      }, STOP_GRACE_MS).unref();
    });
  }
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    controller.abort(gone());
    // An import stops at its next entry and removes its staging directory. A worker waiting
    // for input that never comes, or for an output nobody reads, is ended here; the next
    // store open removes what it left (its owner, this process, is gone then). SIGKILL, not
    // process.exit(): exit joins the thread pool, where a read of a stalled stdin (or a
    // write to a pipe nobody reads) blocks for as long as the other end stays open.
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), ORPHAN_EXIT_MS).unref();
  }, PARENT_POLL_MS);
  timer.unref();
  const check = (): void => {
    if (process.ppid !== parent) throw gone();
    if (stoppedBy !== undefined) throw stopped();
  };
  check();
  let ticks = 0;
  return {
    signal: controller.signal,
    check,
    tick: () => {
      if (++ticks % TICK_ENTRIES === 0) check();
    },
    beforeCommit: (staging) => {
      check();
      committing = true;
      announceCommit(staging);
    },
  };
}

/** Removes this process's staging directories of `id` (`<id>-importing-<pid>-<nonce>`), best effort. */
function removeOwnStaging(home: string, id: string): void {
  try {
    for (const name of fs.readdirSync(home)) {
      if (name.startsWith(`${id}${IMPORTING_INFIX}${process.pid}-`)) removeTreeSync(path.join(home, name));
    }
  } catch {
    // left for the next open's sweep: its owner, this process, is about to be gone
  }
}

const OUTPUT_CHUNK = 1024 * 1024;
/** Chunks gathered before one writev (Linux takes up to 1024 buffers a call). */
const OUTPUT_PARTS = 512;

/** Descriptors known to be a pipe or socket, or not: asked once each, not once a batch. */
const readerKinds = new Map<number, boolean>();

/** Whether `fd` is a pipe or a socket, where a write waits for its reader (for as long as it likes). */
function waitsForReader(fd: number): boolean {
  let waits = readerKinds.get(fd);
  if (waits === undefined) {
    try {
      const s = fs.fstatSync(fd);
      waits = s.isFIFO() || s.isSocket();
    } catch {
      waits = false;
    }
    readerKinds.set(fd, waits);
  }
  return waits;
}

/**
 * writev of `parts` straight to a descriptor, the chunks as they are (no copy into one
 * buffer): a stream on stdout costs an event-loop turn per chunk, which is more than the
 * write. A short write resumes where it stopped; a pipe set non-blocking by its other end
 * answers EAGAIN when full: then wait for the reader.
 */
async function writevAll(fd: number, parts: Uint8Array[]): Promise<void> {
  if (waitsForReader(fd)) return writeFromPool(fd, parts);
  let i = 0;
  while (i < parts.length) {
    let n: number;
    try {
      n = fs.writevSync(fd, i === 0 ? parts : parts.slice(i));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    while (i < parts.length && n >= (parts[i] as Uint8Array).length) n -= (parts[i++] as Uint8Array).length;
    if (n > 0) parts[i] = (parts[i] as Uint8Array).subarray(n);
  }
}

/** The buffer writeFromPool copies into (made at its first use). */
let poolBuffer: Buffer | undefined;

/**
 * To a pipe or socket the write runs on the thread pool: one that blocks (a reader that
 * stopped reading) leaves the event loop free, so that the worker still sees its
 * controller go (parentGuard). The chunks are copied into one buffer first: a write in
 * flight holds what it writes, and chunks held that long outlive V8's young generation,
 * so that each file's buffer waited for a full collection (+20 MiB of peak RSS on a
 * 20,000-file export).
 */
async function writeFromPool(fd: number, parts: Uint8Array[]): Promise<void> {
  const buffer = (poolBuffer ??= Buffer.allocUnsafe(OUTPUT_CHUNK));
  let part = 0;
  let offset = 0;
  while (part < parts.length) {
    let filled = 0;
    while (part < parts.length && filled < buffer.length) {
      const p = parts[part] as Uint8Array;
      const n = Math.min(p.length - offset, buffer.length - filled);
      buffer.set(p.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (offset === p.length) {
        part++;
        offset = 0;
      }
    }
    for (let at = 0; at < filled; ) {
      try {
        at += await new Promise<number>((resolve, reject) => fs.write(fd, buffer, at, filled - at, null, (error, written) => (error === null ? resolve(written) : reject(error))));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  }
}

/**
 * writevAll to stdout. A failure there (a full disk, a reader that went away) is ERR_IO
 * marked `stream: 'stdout'`: the export's destination failed, not the layer, and a
 * controller that handed this worker its own stdout (the CLI) reports it as its own.
 */
async function writeStdout(what: string, parts: Uint8Array[]): Promise<void> {
  try {
    await writevAll(1, parts);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw createError('ERR_IO', `${what}: writing to stdout failed: ${e.message}`, { errno: e.code ?? null, stream: 'stdout' }, error);
  }
}

/**
 * `view HOME ID DEST [LAYER_PATH ...]`: writes the merged view of the layers into a new
 * directory beside DEST named with this process's pid (`DEST-tmp-<pid>-<hex>`), and
 * renames it to DEST when it is whole; DEST must be a new directory inside HOME. Named by
 * the process that writes it, the directory is left alone by every other process's
 * cleanup for as long as this one runs; named by the controller's pid, as it was, a
 * killed controller made it look abandoned while this worker still wrote into it. On
 * failure the directory is removed.
 */
async function writeView(home: string, id: string, paths: readonly string[], guard: { check: () => void; tick: () => void }): Promise<void> {
  const [target, ...layers] = paths;
  const root = path.resolve(home);
  const dest = path.resolve(target ?? '');
  const inside = path.relative(root, dest);
  if (target === undefined || target === '' || inside === '' || inside === '..' || inside.startsWith('..' + path.sep) || path.isAbsolute(inside)) {
    throw createError('ERR_ARGUMENT_INVALID', `view of layer ${id}: the destination must be a directory inside ${root}`, { id, dest });
  }
  if (fs.existsSync(dest)) throw createError('ERR_ARGUMENT_INVALID', `view of layer ${id}: ${dest} already exists`, { id, dest });
  const [{ materializeView, resolveView }, { removeTreeSync }] = await Promise.all([import('../src/driver/view.js'), import('../src/util/remove-tree.js')]);
  const tmp = `${dest}-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  // Exclusive: a directory that exists (another view, a layer) is never written into.
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    materializeView(resolveView(layers.map((l) => path.resolve(l)), guard.tick), tmp, progressWriter(), guard.tick);
    // A view whose controller is gone is not put in place: nobody counts it as mounted.
    guard.check();
    fs.renameSync(tmp, dest);
  } catch (error) {
    try {
      removeTreeSync(tmp);
    } catch {
      // The view's own error is the one to report; a `-tmp-` leftover goes in a later sweep.
    }
    throw error;
  }
}

/**
 * Tells the controller which directory the commit renames (see protocol.ts): killed after
 * the rename and before the size is printed, the import still committed, and the
 * controller reports it so, not a failure for a layer that is there. Written before the
 * rename, so it is in the pipe whenever the rename happened.
 */
function announceCommit(staging: string): void {
  try {
    const st = fs.statSync(staging, { bigint: true });
    const commit: CommitIdentity = { dev: String(st.dev), ino: String(st.ino) };
    fs.writeSync(PROGRESS_FD, JSON.stringify({ commit }) + '\n');
  } catch {
    // run by hand, without a progress pipe: nobody to tell
  }
}

/** Tells the controller this worker runs (it kills one that does not say so in time). */
function announceStart(): void {
  try {
    fs.writeSync(PROGRESS_FD, '{}\n');
  } catch {
    // run by hand, without a progress pipe
  }
}

/**
 * The command line of a deferred worker (DEFERRED_COMMAND): one JSON line {"argv":[...]}
 * on JOB_FD, read with blocking reads (the worker has nothing else to do meanwhile).
 * Undefined when the pipe closes without one: the controller let this worker go.
 */
function readDeferredJob(): string[] | undefined {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.allocUnsafe(64 * 1024);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(JOB_FD, buf, 0, buf.length, null);
    } catch (error) {
      // A pipe left non-blocking answers EAGAIN while empty.
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(nap, 0, 0, 2);
        continue;
      }
      throw toWinLayerError(error, `${DEFERRED_COMMAND}: reading the job from fd ${JOB_FD} failed`);
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (buf.subarray(0, n).includes(0x0a)) break;
    if (total > MAX_JOB_BYTES) throw createError('ERR_ARGUMENT_INVALID', `${DEFERRED_COMMAND}: a job line longer than ${MAX_JOB_BYTES} bytes`);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return undefined;
  let job: unknown;
  try {
    job = JSON.parse(text);
  } catch {
    job = undefined;
  }
  const args = (job as { argv?: unknown } | undefined)?.argv;
  if (!text.endsWith('\n') || !Array.isArray(args) || !args.every((a) => typeof a === 'string') || args[0] === DEFERRED_COMMAND) {
    throw createError('ERR_ARGUMENT_INVALID', `${DEFERRED_COMMAND}: the job on fd ${JOB_FD} is not one JSON line {"argv":[command, ...]}`);
  }
  return args as string[];
}

async function run(commandLine: readonly string[]): Promise<void> {
  announceStart();
  let argv = commandLine;
  if (argv[0] === DEFERRED_COMMAND) {
    const job = readDeferredJob();
    if (job === undefined) return; // let go: nothing to do
    // The command line named the command, store and layer (for whoever lists processes): the job must be that one.
    if (argv.slice(1).some((a, i) => job[i] !== a)) {
      throw createError('ERR_ARGUMENT_INVALID', `${DEFERRED_COMMAND}: the job ${JSON.stringify(job.slice(0, 3))} is not the one this worker was started for (${JSON.stringify(argv.slice(1))})`);
    }
    argv = job;
  }
  const [command, home, id, ...parents] = argv;
  if (!isWorkerCommand(command) || home === undefined || id === undefined) {
    throw createError('ERR_ARGUMENT_INVALID', 'usage: worker write-layer|export-layer|changes HOME ID [PARENT_LAYER_PATH ...] | view HOME ID DEST [LAYER_PATH ...]');
  }
  validateLayerId(id);
  const backend = selectBackend();
  // The controller opened the store (and cleaned it); a worker must not remove another worker's staging directory.
  const store = await LayerStore.open(home, { cleanup: false });
  const guard = parentGuard(command === 'write-layer' ? { home, id } : undefined);
  if (command === 'view') {
    await writeView(home, id, parents, guard);
    return;
  }
  if (command === 'changes') {
    const { layerChanges } = await import('../src/driver/rw-diff.js');
    // An existing layer: its own chain, as export-layer reads it.
    const changes = layerChanges(store.layerPath(id), store.readChain(id), guard.tick);
    let text = '';
    for (const c of changes) {
      text += JSON.stringify({ path: c.path, kind: c.kind }) + '\n';
      if (text.length >= OUTPUT_CHUNK) {
        await writeStdout(`changes ${id}`, [Buffer.from(text)]);
        text = '';
      }
    }
    if (text.length > 0) await writeStdout(`changes ${id}`, [Buffer.from(text)]);
    return;
  }
  const parentPaths = parents.map((p) => path.resolve(p));
  const onProgress = progressWriter();
  if (command === 'write-layer') {
    // Started for a tar of many entries: smaller reads (see MANY_ENTRIES_READ_BYTES).
    const manyEntries = MANY_ENTRIES_NODE_OPTIONS.every((option) => process.execArgv.includes(option));
    if (manyEntries) releaseSemiSpaceFlag();
    const stdin = manyEntries ? stdinStream(MANY_ENTRIES_READ_BYTES) : stdinStream();
    importInput = stdin;
    const input = scavengingAsRead(stdin);
    const result = await importLayer(store, backend, id, input, { parents: parentPaths, onProgress, signal: guard.signal, beforeCommit: guard.beforeCommit });
    await writeStdout(`write-layer ${id}`, [Buffer.from(`${result.size}\n`)]);
    return;
  }
  // Headers, data and padding arrive as separate chunks: gather them into writev calls of
  // up to 1 MiB or 512 chunks, without copying them.
  let parts: Uint8Array[] = [];
  let gathered = 0;
  // A read-write layer: its directory's changes against the parent view, as a layer tar.
  const root = store.layerPath(id);
  const { isReadWriteLayer, readWriteLayerTar } = await import('../src/driver/rw-diff.js');
  const chunks = isReadWriteLayer(root) ? readWriteLayerTar(root, store.readChain(id), onProgress, guard.tick) : exportLayer(store, backend, id, { onProgress });
  const meter = new ScavengeMeter();
  for await (const chunk of chunks) {
    // A tar written for nobody (to a file the controller handed over) stops here.
    guard.tick();
    if (chunk.length === 0) continue;
    parts.push(chunk);
    gathered += chunk.length;
    if (gathered >= OUTPUT_CHUNK || parts.length >= OUTPUT_PARTS) {
      await writeStdout(`export-layer ${id}`, parts);
      meter.passed(gathered);
      parts = [];
      gathered = 0;
    }
  }
  if (parts.length > 0) await writeStdout(`export-layer ${id}`, parts);
}

/** An import's standard input, once it reads it. */
let importInput: Readable | undefined;
/** How long a failed import waits for its input's last read to return before it ends anyway. */
const INPUT_CLOSE_WAIT_MS = 500;

/**
 * Ends a worker whose work is done and reported. Node's own end, once nothing is left to
 * run, frees every heap page and handle one by one before the process exits: 5–10 ms
 * after the report of a large import, which its controller waits for. Everything the
 * worker wrote is out by then: its report and data through writevAll (synchronous writes
 * to the descriptor), progress lines through writeSync, and the layer itself flushed
 * before its commit. A failure keeps the ordinary end (see below).
 */
function exitDone(): void {
  process.exit();
}

// No top-level await: the build bundles this file as CommonJS (see scripts/bundle.mjs).
run(process.argv.slice(2)).then(exitDone, (error: unknown) => {
  const e = toWinLayerError(error, 'worker failed');
  // Its reader may be gone (a controller killed): a failed write of the report must not
  // end the worker as an uncaught error, whose exit would wait for the read below.
  process.stderr.on('error', () => undefined);
  process.stderr.write('\n' + JSON.stringify(e.toJSON()) + '\n');
  process.exitCode = 1;
  // An import that stopped before its input ended (it failed, or was canceled) may still
  // have a read of that input waiting on the thread pool, which a process's exit joins: a
  // producer that stalls with the pipe open would keep the worker for as long as it does.
  // The input closes once that read returns; if it has not within a moment, the worker
  // ends without the wait (its report is out).
  const input = importInput;
  if (input === undefined || input.readableEnded || input.closed) return;
  const stuck = setTimeout(() => process.kill(process.pid, 'SIGKILL'), INPUT_CLOSE_WAIT_MS);
  input.once('close', () => clearTimeout(stuck));
  input.destroy();
});
