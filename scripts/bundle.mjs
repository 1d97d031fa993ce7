#!/usr/bin/env node
/**
 * Bundles the two programs that start a Node process per use into one module each:
 *   the worker  dist/worker/main.js → dist/worker/bundle/main.mjs (the controller runs it)
 *   the CLI     dist/src/cli/cli.js → dist/src/cli/bundle.mjs (dist/src/cli/main.js loads it)
 *
 * Why: Node resolves, reads and compiles every ES module of an import graph at each start;
 * one file instead of ~60 takes about 40 ms off every worker start and 70 ms off every
 * `winlayer` command (bench/workers.ts measures the worker). edge-js (a native addon) and
 * execa (only needed when a worker is spawned, and loaded then) stay outside. Each bundle
 * sits three directories below the package root, as the modules it replaces do, so paths
 * the code builds from import.meta.url (dist/worker, dotnet/bin) point to the same places.
 *
 * Without esbuild (an install without dev dependencies) it prints a note and succeeds:
 * the compiled modules run instead, the same code, only slower to start.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundles = [
  { entry: 'dist/worker/main.js', outfile: 'dist/worker/bundle/main.mjs', external: ['edge-js'] },
  { entry: 'dist/src/cli/cli.js', outfile: 'dist/src/cli/bundle.mjs', external: ['edge-js', 'execa'] },
];

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.log('bundle: esbuild is not installed; the compiled modules will run unbundled');
  for (const b of bundles) fs.rmSync(path.join(root, b.outfile), { force: true });
  process.exit(0);
}
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
    format: 'esm',
    target: 'node20',
    external: b.external,
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __winlayerCreateRequire } from 'node:module'; const require = __winlayerCreateRequire(import.meta.url);" },
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
  console.log(`bundle: built ${b.outfile}`);
}
