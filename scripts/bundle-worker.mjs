#!/usr/bin/env node
/**
 * Bundles the compiled worker (dist/worker/main.js and everything it imports, tar-stream
 * included) into one module, dist/worker/bundle/main.mjs, which the controller then runs.
 *
 * Why: a worker is a process per import, and Node resolves, reads and compiles every ES
 * module of the import graph at each start; one file instead of ~60 takes about 40 ms off
 * every worker start (bench/workers.ts measures it). edge-js stays outside the bundle (a
 * native addon, loaded lazily from node_modules), and the bundle sits three directories
 * below the package root, as dist/src/native/edge.js does, so paths the code builds from
 * import.meta.url (dotnet/bin) still point to the same place.
 *
 * Without esbuild (an install without dev dependencies) it prints a note and succeeds:
 * the controller then runs dist/worker/main.js, which behaves the same, only starts slower.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'dist', 'worker', 'main.js');
const outfile = path.join(root, 'dist', 'worker', 'bundle', 'main.mjs');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.log('worker bundle: esbuild is not installed; the controller will run dist/worker/main.js');
  process.exit(0);
}
if (!fs.existsSync(entry)) {
  console.error(`worker bundle: ${entry} is missing: run tsc first`);
  process.exit(1);
}
await esbuild.build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['edge-js'],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __winlayerCreateRequire } from 'node:module'; const require = __winlayerCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
console.log(`worker bundle: built ${path.relative(root, outfile)}`);
