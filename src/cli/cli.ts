/**
 * The `winlayer` command. stdout is data (a size, a tar, a listing, or with --json one
 * JSON document); stderr is diagnostics: a progress line on a terminal during import,
 * export and mount, and on failure exactly one line naming the problem and its error code (with
 * --json, that line is the error as JSON). Exit status: 0 success, 1 the operation
 * failed, 2 the command line was wrong, 141 stdout's reader went away (EPIPE, silently).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { isatty } from 'node:tty';
import { parseArgs } from 'node:util';
import { WindowsFilterDriver } from '../driver/driver.js';
import { createError, isWinLayerError, toWinLayerError, type WinLayerError } from '../errors.js';
import { validateLayerId } from '../store/layer-store.js';
import { sniffCompression } from '../tar/decompress.js';
import { ProgressLine } from './progress.js';
import { shieldStdin, stdinStream } from '../util/stdin.js';

type Values = Record<string, string | boolean | string[] | undefined>;

interface Option {
  type: 'string' | 'boolean';
  description: string;
  multiple?: boolean;
}

interface Command {
  summary: string;
  usage: string;
  options: Record<string, Option>;
  run(values: Values): Promise<void>;
}

const HOME_OPTION: Option = { type: 'string', description: 'the layer store directory (created if missing)' };
const JSON_OPTION: Option = { type: 'boolean', description: 'print one JSON document instead of text' };
const ID_OPTION: Option = { type: 'string', description: 'the layer id ([A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters)' };
const PARENT_OPTION: Option = { type: 'string', description: 'the parent layer id (omit for a base layer)' };
const STORAGE_OPTION: Option = { type: 'string', multiple: true, description: 'storage option key=value (only size, e.g. size=20GB)' };

const COMMANDS: Record<string, Command> = {
  import: {
    summary: 'import a Windows layer tar (plain, gzip, or zstd on Node >= 22.15) from stdin as a new layer, through a worker process',
    usage: 'winlayer import --home DIR --id ID [--parent ID] [--json] < layer.tar[.gz|.zst]',
    options: { home: HOME_OPTION, id: ID_OPTION, parent: PARENT_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      if (isatty(0)) throw usage('import reads the layer tar from stdin: pipe or redirect it');
      const driver = await openDriver(v);
      const progress = new ProgressLine('import', stdinSize());
      try {
        const r = await driver.applyDiff(id, optionalString(v, 'parent'), stdinSource(), { signal: interruption(), onProgress: (p) => progress.update(p) });
        progress.done();
        // The line ends before the report: on a terminal both go to the same screen.
        progress.stop();
        // The layer is committed and whole by now: it stays even if its report cannot be
        // printed. Removing it again would race with whoever already found it (a mount, an
        // import onto it); `winlayer exists` tells a caller who lost the report.
        await writeOut(v['json'] === true ? oneJsonLine({ id, size: r.size, entries: r.entries, digest: r.digest }) + '\n' : `${r.size}\n`, `layer ${id} was imported, but `);
      } finally {
        progress.stop();
      }
    },
  },
  export: {
    summary: 'write a layer as a Windows layer tar to stdout (a read-write layer: its changes)',
    usage: 'winlayer export --home DIR --id ID > layer.tar',
    options: { home: HOME_OPTION, id: ID_OPTION },
    async run(v) {
      const id = requireId(v);
      if (process.stdout.isTTY === true) throw usage('export writes a tar: redirect stdout to a file or a pipe');
      const driver = await openDriver(v);
      if (!driver.exists(id)) throw createError('ERR_LAYER_NOT_FOUND', `layer ${id} does not exist`, { id });
      const progress = new ProgressLine('export', undefined);
      try {
        const onProgress = (p: { entries: number; bytes: number }): void => progress.update(p);
        // Standard output is handed to the worker when it can be: it writes the tar itself,
        // and a failed write there ends it (ERR_IO naming stdout, as stdoutError does).
        const options = { signal: interruption(), onProgress };
        if (handOverable(1)) await driver.diffTo(id, 1, options);
        else {
          await pipeline(driver.diff(id, undefined, options), process.stdout).catch((error: unknown) => {
            // The pipeline destroyed the tar stream, which kills its worker.
            throw stdoutFailure === undefined ? error : stdoutError(stdoutFailure);
          });
        }
        progress.done();
      } finally {
        progress.stop();
      }
    },
  },
  create: {
    summary: 'create an empty read-only layer (import fills it later)',
    usage: 'winlayer create --home DIR --id ID [--parent ID] [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, parent: PARENT_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const parent = optionalString(v, 'parent');
      await (await openDriver(v)).create(id, parent);
      await reportDone(v, { id, created: true });
    },
  },
  'create-rw': {
    summary: 'create a read-write layer on a parent; mount it to get a writable directory',
    usage: 'winlayer create-rw --home DIR --id ID [--parent ID] [--storage-opt size=20GB] [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, parent: PARENT_OPTION, 'storage-opt': STORAGE_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const opts = v['storage-opt'];
      const parent = optionalString(v, 'parent');
      const driver = await openDriver(v);
      try {
        await driver.createReadWrite(id, parent, Array.isArray(opts) ? { storageOpt: opts } : {});
      } catch (error) {
        // A storage option that cannot be one is a wrong command line, as a bad id is.
        if (isWinLayerError(error) && error.code === 'ERR_ARGUMENT_INVALID' && error.data['option'] !== undefined) commandLineErrors.add(error);
        throw error;
      }
      await reportDone(v, { id, created: true });
    },
  },
  remove: {
    summary: 'remove a layer (not an error if it does not exist)',
    usage: 'winlayer remove --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      await (await openDriver(v)).remove(id);
      await reportDone(v, { id, removed: true });
    },
  },
  exists: {
    summary: 'print whether a layer exists (true or false)',
    usage: 'winlayer exists --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const exists = (await openDriver(v)).exists(id);
      await writeOut(v['json'] === true ? oneJsonLine({ id, exists }) + '\n' : `${exists}\n`);
    },
  },
  ls: {
    summary: 'list the layers of a store',
    usage: 'winlayer ls --home DIR [--json]',
    options: { home: HOME_OPTION, json: JSON_OPTION },
    async run(v) {
      const layers = (await openDriver(v)).list();
      if (v['json'] === true) {
        await writeOut(oneJsonLine(layers) + '\n');
        return;
      }
      const rows = [['ID', 'KIND', 'SIZE', 'ENTRIES', 'PARENT', 'MOUNTED', 'DIGEST']];
      for (const l of layers) {
        rows.push([l.id, l.kind, l.size === null ? '-' : String(l.size), l.entries === null ? '-' : String(l.entries), l.corrupt ? (l.kind === 'read-only' && l.size === null ? `${l.parent ?? '-'} (corrupt)` : '? (corrupt chain)') : (l.parent ?? '-'), String(l.mounted), l.digest?.slice(0, 19) ?? '-']);
      }
      await writeOut(table(rows));
    },
  },
  changes: {
    summary: 'list what a layer adds (A), modifies (C) and deletes (D) against its parent',
    usage: 'winlayer changes --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const driver = await openDriver(v);
      // A base layer lists every entry it holds (300,000 or more): printed as the worker
      // finds them, ~64 KiB at a time, never held as a list or one string of tens of MB.
      const out = new OutText();
      const letter = { add: 'A', modify: 'C', delete: 'D' } as const;
      const json = v['json'] === true;
      let count = 0;
      await driver.forEachChange(id, (c) => out.add(json ? (count++ === 0 ? '[' : ',') + oneJsonLine(c) : `${letter[c.kind]} ${shownPath(c.path)}\n`));
      await out.end(json ? (count === 0 ? '[]\n' : ']\n') : '');
    },
  },
  'diff-size': {
    summary: "print the bytes of a layer's own data",
    usage: 'winlayer diff-size --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const size = await (await openDriver(v)).diffSize(id);
      await writeOut(v['json'] === true ? oneJsonLine({ id, size }) + '\n' : `${size}\n`);
    },
  },
  mount: {
    summary: "mount a layer and print its directory (a read-only layer's merged view, or a read-write layer's writable directory)",
    usage: 'winlayer mount --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      const driver = await openDriver(v);
      // Writing a large layer's view takes seconds: a progress line on a terminal.
      const progress = new ProgressLine('mount', undefined);
      let dir: string;
      try {
        dir = await driver.get(id, { onProgress: (p) => progress.update(p), signal: interruption() });
        progress.done();
      } finally {
        progress.stop();
      }
      try {
        await writeOut(v['json'] === true ? oneJsonLine({ id, path: dir }) + '\n' : `${dir}\n`, `layer ${id} was unmounted again: `);
      } catch (error) {
        // Nobody learned the directory, so nobody will unmount it: the mount is undone here,
        // or the layer would stay in use (a later remove fails with ERR_LAYER_IN_USE).
        try {
          await driver.put(id);
        } catch (putError) {
          throw toWinLayerError(putError, `layer ${id} was mounted, but its directory could not be written to stdout (${errnoOf(error)}) and unmounting it again failed`, { id });
        }
        throw error;
      }
    },
  },
  unmount: {
    summary: 'release one mount of a layer',
    usage: 'winlayer unmount --home DIR --id ID [--json]',
    options: { home: HOME_OPTION, id: ID_OPTION, json: JSON_OPTION },
    async run(v) {
      const id = requireId(v);
      // Not mounted, or no such layer: not an error (as windowsfilter's Put), and said so.
      const unmounted = await (await openDriver(v)).put(id);
      await reportDone(v, { id, unmounted });
    },
  },
  cleanup: {
    summary: 'remove what interrupted imports, removals and mounts left behind',
    usage: 'winlayer cleanup --home DIR [--json]',
    options: { home: HOME_OPTION, json: JSON_OPTION },
    async run(v) {
      const print = (removed: readonly string[]): Promise<void> => writeOut(v['json'] === true ? oneJsonLine({ removed }) + '\n' : removed.map((r) => `${r}\n`).join(''));
      try {
        await print(await (await openDriver(v, { cleanup: false })).cleanup());
      } catch (error) {
        // Some leftovers stayed: what did go is still printed, the error names the rest.
        if (isWinLayerError(error) && error.code === 'ERR_CLEANUP_INCOMPLETE') await print(error.data['removed'] as readonly string[]);
        throw error;
      }
    },
  },
  status: {
    summary: 'print the driver status',
    usage: 'winlayer status --home DIR [--json]',
    options: { home: HOME_OPTION, json: JSON_OPTION },
    async run(v) {
      const status = (await openDriver(v)).status();
      await writeOut(v['json'] === true ? oneJsonLine(Object.fromEntries(status)) + '\n' : table(status));
    },
  },
};

/** With --json, a command that prints nothing on success prints what it did. */
async function reportDone(v: Values, report: { id: string } & Record<string, unknown>): Promise<void> {
  // What was done stands when its report cannot be written: the error says so.
  const done = Object.keys(report).find((k) => k !== 'id') ?? 'done';
  if (v['json'] === true) await writeOut(oneJsonLine(report) + '\n', `layer ${report.id} was ${done}, but `);
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * Whether the worker can take `fd` over as its own stdin or stdout: a file, a pipe, a
 * socket (what a Node parent's `stdio: 'pipe'` gives a child) or a device other than a
 * terminal (/dev/null). The tar then goes between it and the worker without a copy
 * through this process, which streamed an export at ~94 MiB of its own beside the worker.
 */
function handOverable(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFile() || st.isFIFO() || st.isSocket() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}

/** Standard input goes to the worker as it is when it can (handOverable); anything else is streamed. */
function stdinSource(): { fd: number } | ReturnType<typeof stdinStream> {
  return handOverable(0) ? { fd: 0 } : stdinStream();
}

/** The size of a tar redirected from a file, for the progress bar; none for a pipe or a compressed blob (whose tar is larger). */
function stdinSize(): number | undefined {
  try {
    const st = fs.fstatSync(0);
    if (!st.isFile()) return undefined;
    // A positional read: the worker still reads the file from its start.
    const head = Buffer.alloc(6);
    const n = fs.readSync(0, head, 0, head.length, 0);
    return sniffCompression(head.subarray(0, n)) === 'none' ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** The first error writing stdout met (set by watchStdio's listener). */
let stdoutFailure: Error | undefined;
let watchingStdio = false;

/**
 * Listeners for errors on stdout and stderr. Without one, a failed write (a full disk,
 * /dev/full, a reader that went away) is an unhandled 'error' event: a stack trace and
 * exit 1 instead of the one-line report. An error writing stdout reaches the command
 * through writeOut's callback (or the export pipeline); one writing stderr has nowhere
 * left to be reported.
 */
function watchStdio(): void {
  if (watchingStdio) return;
  watchingStdio = true;
  process.stdout.on('error', (error: Error) => {
    stdoutFailure ??= error;
  });
  process.stderr.on('error', () => undefined);
}

function errnoOf(error: unknown): string {
  const e = error as { code?: unknown; data?: { errno?: unknown } } | undefined;
  const errno = e?.data?.errno ?? e?.code;
  return typeof errno === 'string' ? errno : 'unknown error';
}

/** A failed write to stdout as ERR_IO; `data.stream` says it was stdout, which decides the exit status. */
function stdoutError(cause: Error, context = ''): WinLayerError {
  const errno = (cause as NodeJS.ErrnoException).code ?? null;
  return createError('ERR_IO', `${context}writing to stdout failed: ${cause.message}`, { errno, stream: 'stdout' }, cause);
}

/** Whether `e` is a write to stdout that failed because its reader went away. */
function isBrokenStdout(e: WinLayerError): boolean {
  return e.code === 'ERR_IO' && e.data['stream'] === 'stdout' && e.data['errno'] === 'EPIPE';
}

/**
 * Writes `text` to stdout and waits until it is written: a write error becomes an
 * ERR_IO the command reports (after undoing what it must) instead of an 'error' event
 * after the command has finished, and a long text waits for a slow reader. `context`
 * starts the error's message.
 */
async function writeOut(text: string, context = ''): Promise<void> {
  // Nothing to write is no write: a write of 0 bytes to /dev/full fails (ENOSPC).
  if (text.length === 0) return;
  await new Promise<void>((resolve, reject) => {
    process.stdout.write(text, (error) => {
      if (error === null || error === undefined) resolve();
      else reject(stdoutError(stdoutFailure ?? error, context));
    });
  });
}

/** `format` of each item, as they are asked for. */
/** Text for stdout, written ~64 KiB at a time. */
class OutText {
  #text = '';

  /** Adds `part`; a promise when a piece was written (wait for it: the reader's pace). */
  add(part: string): Promise<void> | undefined {
    this.#text += part;
    if (this.#text.length < 65_536) return undefined;
    const text = this.#text;
    this.#text = '';
    return writeOut(text);
  }

  /** Writes what is left, then `last`. */
  async end(last: string): Promise<void> {
    const text = this.#text + last;
    this.#text = '';
    if (text.length > 0) await writeOut(text);
  }
}

/** The errors of a wrong command line (exit 2), as against the same code from the store's state (exit 1). */
const commandLineErrors = new WeakSet<WinLayerError>();

function usage(message: string): WinLayerError {
  const e = createError('ERR_ARGUMENT_INVALID', message);
  commandLineErrors.add(e);
  return e;
}

function requireString(v: Values, name: string): string {
  const value = v[name];
  if (typeof value !== 'string' || value.length === 0) throw usage(`missing --${name}`);
  return value;
}

/** An option's value, undefined when it was not given; given empty (`--parent ""`), it is refused. */
function optionalString(v: Values, name: string): string | undefined {
  const value = v[name];
  if (value === '') throw usage(`--${name} given an empty value; leave it out instead`);
  return typeof value === 'string' ? value : undefined;
}

function requireId(v: Values): string {
  const id = requireString(v, 'id');
  validateLayerId(id);
  return id;
}

async function openDriver(v: Values, options: { cleanup?: boolean } = {}): Promise<WindowsFilterDriver> {
  return WindowsFilterDriver.open({ home: requireString(v, 'home'), ...options });
}

function mainHelp(): string {
  const lines = ['winlayer: store, import and export Windows container image layers', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run `winlayer <command> --help` for the options of a command, `winlayer --version` for the version.');
  return lines.join('\n') + '\n';
}

/**
 * This package's version, from its package.json: three directories up from this module
 * (dist/src/cli), as from the CLI bundle beside it.
 */
export function packageVersion(): string {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  const version = (JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown }).version;
  if (typeof version !== 'string') throw createError('ERR_IO', `${file} holds no version`, { file });
  return version;
}

function commandHelp(name: string, c: Command): string {
  const lines = [`winlayer ${name}: ${c.summary}`, '', `Usage: ${c.usage}`, '', 'Options:'];
  for (const [opt, o] of Object.entries(c.options)) lines.push(`  --${(opt + (o.type === 'string' ? ' VALUE' : '')).padEnd(18)} ${o.description}${o.multiple === true ? ' (repeatable)' : ''}`);
  if (c.options['json'] === undefined) lines.push(`  --${'json'.padEnd(18)} report an error as one JSON line on stderr`);
  lines.push(`  --${'help'.padEnd(18)} show this help`);
  return lines.join('\n') + '\n';
}

/** The first of SIGINT and SIGTERM the running command was interrupted by, if any. */
let interruptedBy: 'SIGINT' | 'SIGTERM' | undefined;

/** The options of `args` for `command` (ERR_ARGUMENT_INVALID for a wrong command line: an unknown option, a word that is none, a missing value, an option given twice). */
function parseCommandLine(command: Command, args: readonly string[]): Values {
  try {
    const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
    for (const [k, o] of Object.entries(command.options)) options[k] = { type: o.type, ...(o.multiple === true ? { multiple: true } : {}) };
    // Every command takes --json: at least its error is then one JSON line.
    options['json'] ??= { type: 'boolean' };
    const parsed = parseArgs({ args: [...args], options, allowPositionals: false, strict: true, tokens: true });
    // parseArgs keeps the last of a repeated option: `import --id c --id d` would import
    // d, hiding a mistake in the script that wrote it. Only options marked repeatable repeat.
    const seen = new Set<string>();
    for (const token of parsed.tokens) {
      if (token.kind !== 'option' || options[token.name]?.type !== 'string' || options[token.name]?.multiple === true) continue;
      if (seen.has(token.name)) throw usage(`--${token.name} given more than once`);
      seen.add(token.name);
    }
    return parsed.values as Values;
  } catch (cause) {
    if (isWinLayerError(cause)) throw cause;
    throw usage((cause as Error).message);
  }
}

/**
 * A signal that SIGINT or SIGTERM aborts, for a command that runs a worker (import,
 * export): the worker is then killed and an import's staging directory removed before
 * the command exits (130 or 143, as a shell reports a process killed by that signal).
 * Without this, Ctrl-C killed the command at once and left the staging directory to the
 * next open of the store. A second signal takes its default action.
 */
function interruption(): AbortSignal {
  const controller = new AbortController();
  const handler = (name: 'SIGINT' | 'SIGTERM'): void => {
    if (interruptedBy !== undefined) {
      // The second: as if nobody listened.
      for (const n of ['SIGINT', 'SIGTERM'] as const) process.removeAllListeners(n);
      process.kill(process.pid, name);
      return;
    }
    interruptedBy = name;
    controller.abort();
  };
  // `on`, not `once`: execa's exit hook re-raises a signal when it finds itself the only
  // listener left, which a `once` listener is not by the time that hook runs.
  for (const name of ['SIGINT', 'SIGTERM'] as const) process.on(name, handler);
  return controller.signal;
}

/** Runs the CLI with `argv` (without node and script); returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  shieldStdin();
  watchStdio();
  const command = name === undefined ? undefined : COMMANDS[name];
  // What follows `--` is positional: never an option, --json and --help included.
  const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  // `winlayer --json` (no command) is a wrong command line reported as JSON too.
  const wantsJson = options.includes('--json') || name === '--json';
  try {
    // No command is a wrong command line: its one error line, on stderr.
    if (name === undefined) throw usage(`no command given; commands: ${Object.keys(COMMANDS).join(', ')} (winlayer --help)`);
    // --help and --version take nothing after them (--json aside).
    const extra = rest.length > (rest[0] === '--json' ? 1 : 0);
    if (name === '--help' || name === '-h' || name === 'help') {
      if (extra) throw usage(`${name} takes nothing after it; for a command's help: winlayer COMMAND --help`);
      await writeOut(mainHelp());
      return 0;
    }
    if (name === '--version' || name === '-V' || name === 'version') {
      if (extra) throw usage(`${name} takes nothing after it`);
      await writeOut(`winlayer ${packageVersion()}\n`);
      return 0;
    }
    if (command === undefined) throw usage(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    const help = options.findIndex((w) => w === '--help' || w === '-h');
    if (help !== -1 && rest.slice(help + 1).some((w) => w !== '--json')) throw usage(`${rest[help] as string} takes nothing after it`);
    // What comes before --help is checked as any command line is: a wrong one exits 2.
    const values = parseCommandLine(command, help === -1 ? rest : options.slice(0, help));
    if (help !== -1) {
      await writeOut(commandHelp(name, command));
      return 0;
    }
    await command.run(values);
    return 0;
  } catch (error) {
    const e = toWinLayerError(error, `${name ?? 'winlayer'} failed`);
    // The reader of stdout went away (`winlayer changes | head -1`): there is nobody to
    // tell, so nothing is printed, and the status is the one a shell reports for a process
    // killed by SIGPIPE, which is how tools that do not catch it end there.
    if (isBrokenStdout(e)) return interruptedBy === 'SIGINT' ? 130 : interruptedBy === 'SIGTERM' ? 143 : 141;
    if (wantsJson) process.stderr.write(oneJsonLine(e.toJSON()) + '\n');
    else process.stderr.write(`winlayer${name === undefined ? '' : ` ${name}`}: ${e.code}: ${oneTextLine(e.message)}\n`);
    // A wrong command line: its shape, or an id that is not one. The same ERR_ARGUMENT_INVALID
    // from the store's state (a parent that is a read-write layer) is a failure like another.
    const isUsage = isWinLayerError(e) && (e.code === 'ERR_ID_INVALID' || commandLineErrors.has(e));
    if (interruptedBy !== undefined) return interruptedBy === 'SIGINT' ? 130 : 143;
    return isUsage ? 2 : 1;
  }
}

/**
 * An error message as one line of text: a newline becomes a space, and every other
 * character of SHOWN_ESCAPED (a tar entry named with a carriage return or a terminal
 * escape would redraw what the user sees) is shown escaped.
 */
export function oneTextLine(message: string): string {
  return message.replaceAll('\n', ' ').replace(SHOWN_ESCAPED, escapedUnit);
}

/**
 * A value as one JSON line: JSON.stringify leaves U+0085, U+2028 and U+2029 as they are,
 * which end a line for Python's splitlines and others (an entry named with one split the
 * error line); they and the other characters of SHOWN_ESCAPED are escaped (still the same
 * JSON value; C0 controls JSON.stringify escapes itself).
 */
export function oneJsonLine(value: unknown): string {
  return JSON.stringify(value).replace(SHOWN_ESCAPED, escapedUnit);
}

/**
 * The characters lines show escaped: control characters, DEL, C1 controls, the line and
 * paragraph separators, and the invisible format characters that reorder or hide text on
 * a terminal (bidirectional marks, overrides and isolates, zero-width characters and
 * joiners, the soft hyphen, the BOM, the interlinear annotation marks, and the tag
 * characters U+E0000–U+E007F).
 */
const ESCAPED_CHARACTERS = '\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb';
/** The tag characters, U+E0000–U+E007F (invisible, and the usual way to hide text), as UTF-16. */
const TAG_CHARACTERS = '\\udb40[\\udc00-\\udc7f]';
const SHOWN_ESCAPED = new RegExp(`[${ESCAPED_CHARACTERS}]|${TAG_CHARACTERS}`, 'g');

/** `\uXXXX` for each UTF-16 unit of `c` (a tag character is two: a JSON string's own spelling of it). */
function escapedUnit(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/**
 * A path as a `changes` line shows it: as it is, or as a JSON string when it holds a
 * control character (a container file named `x\nD Files` would print a second, forged
 * line), a backslash, or starts with a quote; a path shown starting with `"` is JSON.
 * DEL, C1 controls, the line and paragraph separators (U+0085, U+2028, U+2029 end a
 * line for Python's splitlines and others) and the format characters that reorder or
 * hide text (SHOWN_ESCAPED) count here too, and are escaped in the JSON string, where
 * JSON.stringify leaves them as they are.
 */
export function shownPath(p: string): string {
  if (!SHOWN_AS_JSON.test(p) && !p.startsWith('"')) return p;
  return oneJsonLine(p);
}
const SHOWN_AS_JSON = new RegExp(`[${ESCAPED_CHARACTERS}\\\\]|${TAG_CHARACTERS}`);
