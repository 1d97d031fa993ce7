#!/usr/bin/env node
/**
 * Bundles the two programs that start a Node process per use into one CommonJS file each,
 * and makes each bundle's V8 code cache:
 *   the worker  dist/worker/main.js → dist/worker/bundle/worker.cjs (dist/worker/start.cjs runs it)
 *   the CLI     dist/src/cli/cli.js → dist/src/cli/bundle.cjs (dist/src/cli/main.cjs runs it)
 *
 * Why, measured on Node 20 (empty-layer import, worker alone):
 * - Node resolves, reads and compiles every module of an import graph at each start: one
 *   file instead of ~60 takes about 40 ms off every worker start. execa is bundled into
 *   the CLI as well: loaded from its ~40 modules it costs ~120 ms per `winlayer import`.
 * - CommonJS, not ES modules: an ES module entry costs ~9 ms more, for the ESM loader.
 * - The code cache (src/util/start-bundle.cts) saves compiling the bundle and every
 *   function a run calls: 10–15 ms. It is made by running each bundle once on a small
 *   layer (import, export, listing) with WINLAYER_WRITE_CODE_CACHE=1.
 * Each bundle sits three directories below the package root, as the modules it replaces
 * do, so paths the code builds from import.meta.url (dist/worker, dotnet/bin) point to the
 * same places; import.meta.url itself becomes the bundle's own file URL.
 *
 * Without esbuild (an install without dev dependencies) it prints a note and succeeds:
 * the compiled modules run instead, the same code, only slower to start.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundles = [
  { entry: 'dist/worker/main.js', outfile: 'dist/worker/bundle/worker.cjs', external: ['edge-js'] },
  { entry: 'dist/src/cli/cli.js', outfile: 'dist/src/cli/bundle.cjs', external: ['edge-js'] },
  // What `winlayer import` loads first, to start its worker early (src/controller/prestart.ts).
  { entry: 'dist/src/controller/prestart.js', outfile: 'dist/src/cli/prestart.cjs', external: ['edge-js'] },
];

function removeBundles() {
  for (const b of bundles) {
    for (const f of [b.outfile, `${b.outfile}.map`]) fs.rmSync(path.join(root, f), { force: true });
    // Every code cache of the bundle: the plain one and those for Node options (start-bundle.cts).
    const dir = path.dirname(path.join(root, b.outfile));
    const base = path.basename(b.outfile);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) if (f.startsWith(`${base}.`) && f.endsWith('.cache')) fs.rmSync(path.join(dir, f), { force: true });
  }
}

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.log('bundle: esbuild is not installed; the compiled modules will run unbundled');
  removeBundles();
  process.exit(0);
}
removeBundles();
for (const b of bundles) {
  const entry = path.join(root, b.entry);
  if (!fs.existsSync(entry)) {
    console.error(`bundle: ${b.entry} is missing: run tsc first`);
    process.exit(1);
  }
  await esbuild.build({
    entryPoints: [entry],
    outfile: path.join(root, b.outfile),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: b.external,
    // The ES modules ask import.meta.url where they are; in the bundle, that is the bundle.
    banner: { js: "const __winlayerImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__winlayerImportMetaUrl' },
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outfile = path.join(root, b.outfile);
  // `import * as fs from 'node:fs'` becomes `fs = __toESM(require('node:fs'), 1)`: a copy
  // of the module's ~100 properties as getters, once per importing module, at every start
  // (2–5 ms of a worker's). For a Node built-in read through its namespace, the module
  // itself will do. Left alone: default imports (esbuild names them import_*), and any
  // binding the bundle reads `.default` from.
  let code = fs.readFileSync(outfile, 'utf8');
  code = code.replace(/\b([A-Za-z_$][\w$]*) = __toESM\(require\("(node:[a-z_/]+)"\), 1\)/g, (whole, name, id) =>
    name.startsWith('import_') || code.includes(`${name}.default`) ? whole : `${name} = require("${id}")`,
  );
  fs.writeFileSync(outfile, code);
  // A dynamic import() left in the bundle would fail under vm.Script: esbuild must have made every one a require().
  if (/\bimport\(/.test(code.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, ''))) {
    console.error(`bundle: ${b.outfile} still contains a dynamic import()`);
    process.exit(1);
  }
  console.log(`bundle: built ${b.outfile}`);
}

// The code caches: one run of each program on a small layer, writing what V8 compiled.
const { buildLayerTar, CRANE_SECURITY_DESCRIPTOR } = await import(path.join(root, 'dist/src/convert/layer-tar-builder.js'));
const sd = CRANE_SECURITY_DESCRIPTOR;
const tar = await buildLayerTar([
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Files/Windows', securityDescriptor: sd, extendedAttributes: [{ name: 'WARM', value: Buffer.from([1]) }] },
  { type: 'file', name: 'Files/Windows/a.dll', securityDescriptor: sd, data: 'warm-up data', streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]' }] },
  { type: 'file', name: 'Files/Windows/b.txt', securityDescriptor: sd, data: '' },
  { type: 'link', name: 'Files/Windows/c.dll', target: 'Files/Windows/a.dll' },
  { type: 'symlink', name: 'Files/Windows/d', target: 'a.dll', securityDescriptor: sd },
  { type: 'directory', name: 'Hives', securityDescriptor: sd },
  { type: 'file', name: 'Hives/DefaultUser_Delta', securityDescriptor: sd, data: 'hive' },
]);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'winlayer-code-cache-'));
try {
  const env = { ...process.env, WINLAYER_WRITE_CODE_CACHE: '1' };
  const run = (args, input) => {
    const r = spawnSync(process.execPath, args, { input: input ?? Buffer.alloc(0), env, maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`warm-up run failed: node ${args.join(' ')}\n${r.stderr.toString()}`);
  };
  const worker = path.join(root, 'dist/worker/start.cjs');
  const cli = path.join(root, 'dist/src/cli/main.cjs');
  const home = path.join(work, 'home');
  run([worker, 'write-layer', home, 'w1'], tar);
  // An import worker for a tar of many entries starts with heap options, under which V8
  // rejects the plain cache: it has its own.
  const { EXPORT_NODE_OPTIONS, MANY_ENTRIES_NODE_OPTIONS } = await import(path.join(root, 'dist/src/controller/protocol.js'));
  run([...MANY_ENTRIES_NODE_OPTIONS, worker, 'write-layer', home, 'w2'], tar);
  run([worker, 'export-layer', home, 'w1']);
  // So does an export worker of many records (its semi-spaces differ).
  run([...EXPORT_NODE_OPTIONS, worker, 'export-layer', home, 'w1']);
  run([cli, 'import', '--home', home, '--id', 'c1', '--json'], tar);
  run([cli, 'export', '--home', home, '--id', 'c1']);
  run([cli, 'ls', '--home', home, '--json']);
  const { codeCacheFile } = createRequire(import.meta.url)(path.join(root, 'dist/src/util/start-bundle.cjs'));
  const caches = [...bundles.map((b) => codeCacheFile(path.join(root, b.outfile), [])), codeCacheFile(path.join(root, bundles[0].outfile), MANY_ENTRIES_NODE_OPTIONS), codeCacheFile(path.join(root, bundles[0].outfile), EXPORT_NODE_OPTIONS)];
  for (const c of caches) {
    if (!fs.existsSync(c)) throw new Error(`no code cache was written: ${path.relative(root, c)}`);
  }
  console.log('bundle: code caches written');
} catch (error) {
  console.error(`bundle: ${error.message}`);
  process.exitCode = 1;
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
