/**
 * The `winlayer` command. stdout is data (a size, a tar, a listing, or with --json one
 * JSON document); stderr is diagnostics: on failure exactly one line naming the
 * problem and its error code (with --json, that line is the error as JSON). Exit
 * status: 0 success, 1 the operation failed, 2 the command line was wrong.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createError, isWinLayerError, toWinLayerError, type WinLayerError } from '../errors.js';
import { portableBackend } from '../native/portable.js';
import { exportLayer, importLayer } from '../store/layer-ops.js';
import { LayerStore, validateLayerId } from '../store/layer-store.js';

interface Command {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; description: string }>;
  run(values: Record<string, string | boolean | undefined>): Promise<void>;
}

const HOME_OPTION = { type: 'string', description: 'the layer store directory (created if missing)' } as const;
const JSON_OPTION = { type: 'boolean', description: 'print one JSON document instead of text' } as const;

const COMMANDS: Record<string, Command> = {
  import: {
    summary: 'import a Windows layer tar from stdin as a new layer',
    usage: 'winlayer import --home DIR --id ID [--parent ID] [--json] < layer.tar',
    options: {
      home: HOME_OPTION,
      id: { type: 'string', description: 'the new layer id ([A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters)' },
      parent: { type: 'string', description: 'the parent layer id (omit for a base layer)' },
      json: JSON_OPTION,
    },
    async run(v) {
      const store = await openStore(v);
      const id = requireString(v, 'id');
      validateLayerId(id);
      if (process.stdin.isTTY === true) throw usage('import reads the layer tar from stdin: pipe or redirect it');
      const parent = typeof v['parent'] === 'string' ? v['parent'] : undefined;
      const parents = store.chainFor(parent);
      const result = await importLayer(store, portableBackend, id, process.stdin, { parents });
      if (v['json'] === true) {
        writeOut(JSON.stringify({ id, size: result.size, entries: result.entries, digest: result.digest }) + '\n');
      } else {
        writeOut(`${result.size}\n`);
      }
    },
  },
  export: {
    summary: 'write a layer as a Windows layer tar to stdout',
    usage: 'winlayer export --home DIR --id ID > layer.tar',
    options: { home: HOME_OPTION, id: { type: 'string', description: 'the layer to export' } },
    async run(v) {
      const store = await openStore(v);
      const id = requireString(v, 'id');
      validateLayerId(id);
      if (process.stdout.isTTY === true) throw usage('export writes a tar: redirect stdout to a file or a pipe');
      store.stat(id);
      await pipeline(Readable.from(exportLayer(store, portableBackend, id)), process.stdout);
    },
  },
  ls: {
    summary: 'list the layers of a store',
    usage: 'winlayer ls --home DIR [--json]',
    options: { home: HOME_OPTION, json: JSON_OPTION },
    async run(v) {
      const store = await openStore(v);
      const layers = await store.list();
      if (v['json'] === true) {
        const out = layers.map((l) => ({
          id: l.id,
          size: l.info.size,
          entries: l.info.entries,
          digest: l.info.digest,
          parents: l.parents,
          hasUtilityVM: l.info.hasUtilityVM,
        }));
        writeOut(JSON.stringify(out) + '\n');
        return;
      }
      const rows = [['ID', 'SIZE', 'ENTRIES', 'PARENT', 'DIGEST']];
      for (const l of layers) {
        const parent = l.parents[0] === undefined ? '-' : l.parents[0].slice(store.home.length + 1);
        rows.push([l.id, String(l.info.size), String(l.info.entries), parent, l.info.digest.slice(0, 19)]);
      }
      const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
      writeOut(rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n');
    },
  },
};

function writeOut(text: string): void {
  process.stdout.write(text);
}

function usage(message: string): WinLayerError {
  return createError('ERR_ARGUMENT_INVALID', message);
}

function requireString(v: Record<string, string | boolean | undefined>, name: string): string {
  const value = v[name];
  if (typeof value !== 'string' || value.length === 0) throw usage(`missing --${name}`);
  return value;
}

async function openStore(v: Record<string, string | boolean | undefined>): Promise<LayerStore> {
  return LayerStore.open(requireString(v, 'home'));
}

function mainHelp(): string {
  const lines = ['winlayer: store, import and export Windows container image layers', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', 'Run `winlayer <command> --help` for the options of a command.');
  return lines.join('\n') + '\n';
}

function commandHelp(name: string, c: Command): string {
  const lines = [`winlayer ${name}: ${c.summary}`, '', `Usage: ${c.usage}`, '', 'Options:'];
  for (const [opt, o] of Object.entries(c.options)) lines.push(`  --${(opt + (o.type === 'string' ? ' VALUE' : '')).padEnd(14)} ${o.description}`);
  lines.push(`  --${'help'.padEnd(14)} show this help`);
  return lines.join('\n') + '\n';
}

/** Runs the CLI with `argv` (without node and script); returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  const wantsJson = rest.includes('--json');
  try {
    if (command === undefined) throw usage(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(commandHelp(name, command));
      return 0;
    }
    let values: Record<string, string | boolean | undefined>;
    try {
      const options: Record<string, { type: 'string' | 'boolean' }> = {};
      for (const [k, o] of Object.entries(command.options)) options[k] = { type: o.type };
      values = parseArgs({ args: [...rest], options, allowPositionals: false, strict: true }).values as Record<string, string | boolean | undefined>;
    } catch (cause) {
      throw createError('ERR_ARGUMENT_INVALID', (cause as Error).message, {});
    }
    await command.run(values);
    return 0;
  } catch (error) {
    const e = toWinLayerError(error, `${name ?? 'winlayer'} failed`);
    if (wantsJson) process.stderr.write(JSON.stringify(e.toJSON()) + '\n');
    else process.stderr.write(`winlayer ${name}: ${e.code}: ${e.message.replaceAll('\n', ' ')}\n`);
    const isUsage = isWinLayerError(e) && (e.code === 'ERR_ARGUMENT_INVALID' || e.code === 'ERR_ID_INVALID');
    return isUsage ? 2 : 1;
  }
}
