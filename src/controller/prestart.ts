/**
 * An import's worker started before its job is known. `winlayer import` starts one as the
 * first thing it does, from a bundle of its own that holds little more than execa: the
 * worker's Node start-up and bundle load then run on a second CPU while the CLI loads its
 * own code and checks the store, the id and the parent chain. The controller hands the job
 * to that worker (a JSON line on its JOB_FD) instead of starting one once it knows the job.
 * Both halves took ~45–55 ms each, one after the other; they now overlap.
 *
 * Only for the shape the CLI's import has: the tar on the CLI's standard input as a file,
 * pipe or socket the worker reads itself, the CLI's environment, no timeout, no backend
 * chosen by option. A job that differs (a heap option its parent chain calls for, say)
 * starts its own worker, and the one started early is let go: its job pipe is closed, and
 * it exits without having read or written anything. So is one the CLI never hands a job
 * (a wrong id, a missing parent): `releasePrestarted`. A CLI that dies closes the pipe too.
 *
 * Its command line (`deferred write-layer HOME ID`) names its store and layer, as any
 * import worker's does; the job line must say the same.
 *
 * The worker is kept on the global object: this module runs in the small bundle that
 * starts it and again in the CLI's bundle that hands it its job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { onAbort } from '../util/derived-signal.js';
import { shieldStdin } from '../util/stdin.js';
import { descriptorsShort, fewEntriesIn, FORCE_KILL_AFTER_MS, loadExeca, SPAWN_DESCRIPTORS, WORKER_ENTRY, workerCwd, workerEnv } from './launch.js';
import { DEFERRED_COMMAND, JOB_FD, MANY_ENTRIES_NODE_OPTIONS, noReexecAsked } from './protocol.js';
import type { WorkerJob } from './spawn-worker.js';

/** A worker started early, waiting for its job. */
interface Prestarted {
  /** execa's subprocess (a promise of its result). */
  readonly subprocess: PromiseLike<unknown> & { readonly stdio: readonly unknown[]; readonly pid?: number | undefined };
  /** The store and the layer id its command line names. */
  readonly home: string;
  readonly id: string;
  /** Standard input as the worker has it: the descriptor and the file behind it. */
  readonly stdin: { readonly fd: number; readonly dev: number; readonly ino: number };
  readonly nodeOptions: readonly string[];
  readonly cwd: string;
  /** The worker's environment, as one string, to see that a job's is the same. */
  readonly env: string;
  /** What cancels the worker (execa's cancelSignal): the job's signal, once it has one. */
  readonly cancel: AbortController;
  state: 'waiting' | 'taken' | 'released';
}

const SLOT = Symbol.for('winlayer.prestartedWorker');
const slot = globalThis as { [SLOT]?: Prestarted };

/** The value of option `name` on a command line (`--name VALUE` or `--name=VALUE`), if given once. */
function optionOf(args: readonly string[], name: string): string | undefined {
  const found: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') break;
    if (a === `--${name}` && i + 1 < args.length) found.push(args[++i] as string);
    else if (a.startsWith(`--${name}=`)) found.push(a.slice(name.length + 3));
  }
  return found.length === 1 ? found[0] : undefined;
}

/** Whether `argv` (the CLI's, without node and script) is an import worth starting a worker early for. */
export function wantsPrestart(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  if (argv[0] !== 'import' || process.platform === 'win32' || noReexecAsked(env)) return false;
  const args = argv.slice(1);
  const options = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  return !options.some((a) => a === '--help' || a === '-h') && optionOf(options, 'home') !== undefined && optionOf(options, 'id') !== undefined;
}

/**
 * The store's directory as the driver will name it: absolute, through the real path of
 * the part that exists already (the driver makes the rest, then takes its real path).
 */
function storeHome(home: string): string {
  let dir = path.resolve(home);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(dir), ...rest);
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return path.resolve(home);
      rest.unshift(path.basename(dir));
      dir = parent;
    }
  }
}

/**
 * Starts the worker of the import `argv` asks for, reading the tar from descriptor `fd`,
 * when wantsPrestart says so and the input is a file, pipe or socket. Anything in the way
 * (no worker script, no descriptors, a failed spawn) only means no early start: the
 * import then starts its worker as any other.
 */
export async function prestartImportWorker(argv: readonly string[], fd = 0): Promise<void> {
  if (slot[SLOT]?.state === 'waiting' || !wantsPrestart(argv)) return;
  // Before execa loads: it makes process.stdin, which would make a stdin pipe non-blocking.
  if (fd === 0) shieldStdin();
  const id = optionOf(argv.slice(1), 'id') as string;
  let home: string;
  let st: fs.Stats;
  try {
    home = storeHome(optionOf(argv.slice(1), 'home') as string);
    st = fs.fstatSync(fd);
  } catch {
    return;
  }
  // Where workerCwd puts an import of a store at `home` (absolute paths only, as the driver gives).
  const cwd = path.parse(home).root;
  if (!(st.isFile() || st.isFIFO() || st.isSocket()) || !fs.existsSync(WORKER_ENTRY) || descriptorsShort(SPAWN_DESCRIPTORS + 2 /* the job pipe */) !== undefined) return;
  const nodeOptions = fewEntriesIn(fd) ? [] : MANY_ENTRIES_NODE_OPTIONS;
  const env = workerEnv(process.env, nodeOptions.length > 0);
  const cancel = new AbortController();
  let subprocess: Prestarted['subprocess'];
  try {
    const execa = await loadExeca();
    // The command line says what the worker is for (`ps`, `pgrep -f "write-layer HOME"`); the job line confirms it.
    subprocess = execa(process.execPath, [...nodeOptions, WORKER_ENTRY, DEFERRED_COMMAND, 'write-layer', home, id], {
      env,
      extendEnv: false,
      cwd,
      // execa takes a file descriptor number for stdin; its option types do not spell that case.
      stdio: [fd as unknown as 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      cancelSignal: cancel.signal,
      forceKillAfterDelay: FORCE_KILL_AFTER_MS,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
      buffer: { stdout: true, stderr: true, fd3: false, fd4: false },
    });
  } catch {
    return;
  }
  // A job pipe the worker closed (it died) must not fail this process when written.
  (subprocess.stdio[JOB_FD] as Writable | undefined)?.on('error', () => undefined);
  slot[SLOT] = { subprocess, home, id, stdin: { fd, dev: st.dev, ino: st.ino }, nodeOptions, cwd, env: envKey(env), cancel, state: 'waiting' };
}

function envKey(env: NodeJS.ProcessEnv): string {
  return JSON.stringify(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** What a job asks of its worker, for `adoptPrestarted` (a type only: no import of spawn-worker.ts at run time). */
export type PrestartJob = Pick<WorkerJob, 'command' | 'home' | 'id' | 'parents' | 'signal' | 'timeout' | 'backend' | 'workerPath'>;

/**
 * The worker started early, handed `job`, when it is the worker `job` would start: an
 * import reading descriptor `stdin` (the same file) with `nodeOptions`, its output piped,
 * with no timeout, backend or worker script of its own. Otherwise undefined, and the
 * worker started early, if any, is let go.
 */
export function adoptPrestarted(job: PrestartJob, stdin: 'pipe' | number, stdout: 'pipe' | number, nodeOptions: readonly string[]): Prestarted['subprocess'] | undefined {
  const p = slot[SLOT];
  if (p === undefined || p.state !== 'waiting') return undefined;
  const fits =
    job.command === 'write-layer' &&
    job.home === p.home &&
    job.id === p.id &&
    stdout === 'pipe' &&
    stdin === p.stdin.fd &&
    sameFile(stdin, p.stdin) &&
    job.timeout === undefined &&
    job.backend === undefined &&
    (job.workerPath === undefined || job.workerPath === WORKER_ENTRY) &&
    nodeOptions.length === p.nodeOptions.length &&
    nodeOptions.every((o, i) => o === p.nodeOptions[i]) &&
    workerCwd(job) === p.cwd &&
    envKey(workerEnv(process.env, nodeOptions.length > 0)) === p.env;
  if (!fits) {
    releasePrestarted();
    return undefined;
  }
  const pipe = p.subprocess.stdio[JOB_FD] as Writable | undefined;
  if (pipe === undefined || pipe.destroyed || !pipe.writable) {
    releasePrestarted();
    return undefined;
  }
  p.state = 'taken';
  const signal = job.signal;
  if (signal !== undefined) {
    if (signal.aborted) p.cancel.abort(signal.reason);
    else {
      const stop = onAbort(signal, () => p.cancel.abort(signal.reason));
      p.subprocess.then(stop, stop);
    }
  }
  pipe.end(JSON.stringify({ argv: [job.command, job.home, job.id, ...job.parents] }) + '\n');
  return p.subprocess;
}

/**
 * Whether the worker started early runs with V8's default heap, when it waits on the file
 * of descriptor `fd`: the choice fewEntriesIn made on that input (counting a large tar's
 * headers), not made twice. Undefined when no worker waits on that file.
 */
export function prestartedDefaultHeap(fd: number): boolean | undefined {
  const p = slot[SLOT];
  if (p === undefined || p.state !== 'waiting' || p.stdin.fd !== fd || !sameFile(fd, p.stdin)) return undefined;
  return p.nodeOptions.length === 0;
}

function sameFile(fd: number, was: Prestarted['stdin']): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.dev === was.dev && st.ino === was.ino;
  } catch {
    return false;
  }
}

/**
 * Lets the worker started early go unless a job took it: its job pipe closed, it exits
 * without a job. The CLI calls this once its command is over, whatever the outcome.
 */
export function releasePrestarted(): void {
  const p = slot[SLOT];
  if (p === undefined || p.state !== 'waiting') return;
  p.state = 'released';
  (p.subprocess.stdio[JOB_FD] as Writable | undefined)?.end();
}

/** The state of the worker started early, if any (for tests). */
export function prestartedState(): { state: Prestarted['state']; pid: number | undefined } | undefined {
  const p = slot[SLOT];
  return p === undefined ? undefined : { state: p.state, pid: p.subprocess.pid };
}
