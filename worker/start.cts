#!/usr/bin/env node
/**
 * The worker's entry point: runs dist/worker/bundle/worker.cjs (all of worker/main.ts in
 * one file) with V8's code cache (see src/util/start-bundle.cts), or, in a build made
 * without the bundler, the compiled modules (dist/worker/main.js): the same code, slower to
 * start. `winlayer/worker` resolves here, so a tool's `workerPath` works with either.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBundle } from '../src/util/start-bundle.cjs';

// Only as the program Node runs: `winlayer/worker` is there to be resolved (a workerPath),
// and a module that imports it must not run a worker in its own process.
if (require.main === module) {
  const bundle = path.join(__dirname, 'bundle', 'worker.cjs');
  if (fs.existsSync(bundle)) startBundle(bundle);
  else void import('./main.js');
}
