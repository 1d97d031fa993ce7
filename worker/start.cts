#!/usr/bin/env node
/**
 * The worker's entry point when the build made a bundle: runs dist/worker/bundle/worker.cjs
 * (all of worker/main.ts in one file) with V8's code cache. See src/util/start-bundle.cts.
 *
 * First of all, an import worker's heap options are set to V8's defaults, so that what is
 * loaded from here on (start-bundle's modules, the bundle, Node's own modules) takes its
 * code cache; the worker applies them again once it runs (src/util/v8-flags.cts).
 */
import { setCodeCacheFlags } from '../src/util/v8-flags.cjs';

setCodeCacheFlags();
// Loaded after that call, not imported: an import would run before it.
const { startBundle } = require('../src/util/start-bundle.cjs') as typeof import('../src/util/start-bundle.cjs');
startBundle(require('node:path').join(__dirname, 'bundle', 'worker.cjs'));
