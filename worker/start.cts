#!/usr/bin/env node
/**
 * The worker's entry point when the build made a bundle: runs dist/worker/bundle/worker.cjs
 * (all of worker/main.ts in one file) with V8's code cache. See src/util/start-bundle.cts.
 */
import * as path from 'node:path';
import { startBundle } from '../src/util/start-bundle.cjs';

// Only as the program Node runs: `winlayer/worker` is there to be resolved (a workerPath),
// and a module that imports it must not run a worker in its own process.
if (require.main === module) startBundle(path.join(__dirname, 'bundle', 'worker.cjs'));
