#!/usr/bin/env node
/**
 * The `winlayer` executable: runs the CLI and sets the exit status. The build bundles the
 * CLI into one file (scripts/bundle.mjs), which starts about 70 ms sooner than the modules
 * it is made of; without it the modules run.
 */
import { existsSync } from 'node:fs';

const bundle = new URL('./bundle.mjs', import.meta.url);
const { main } = (await import(existsSync(bundle) ? bundle.href : './cli.js')) as typeof import('./cli.js');

process.exitCode = await main(process.argv.slice(2));
