#!/usr/bin/env node
/**
 * The `winlayer` executable: runs the CLI and sets the exit status. The build bundles the
 * CLI into one CommonJS file (scripts/bundle.mjs) that starts with V8's code cache
 * (src/util/start-bundle.cts): `winlayer ls` in ~60 ms instead of ~200 ms for the modules
 * it is made of. Without the bundle, the modules run. An import starts its worker before
 * the CLI's bundle loads (src/controller/prestart.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBundle } from '../util/start-bundle.cjs';

interface Cli {
  main(argv: string[]): Promise<number>;
}

interface Prestart {
  prestartImportWorker(argv: readonly string[]): Promise<void>;
  releasePrestarted(): void;
}

const bundle = path.join(__dirname, 'bundle.cjs');
/** src/controller/prestart.ts bundled with execa: an import starts its worker from it before the CLI loads. */
const prestartBundle = path.join(__dirname, 'prestart.cjs');
let prestart: Prestart | undefined;

async function load(): Promise<Cli> {
  if (fs.existsSync(bundle)) {
    if (fs.existsSync(prestartBundle)) {
      try {
        prestart = startBundle(prestartBundle) as Prestart;
        await prestart.prestartImportWorker(process.argv.slice(2));
      } catch {
        // no early start: the import starts its worker itself
      }
    }
    return startBundle(bundle) as Cli;
  }
  return (await import('./cli.js')) as Cli;
}

load()
  .then((cli) => cli.main(process.argv.slice(2)))
  .then((code) => {
    // A worker started early that no job took (a wrong command line, a missing parent) goes.
    prestart?.releasePrestarted();
    process.exitCode = code;
    // A command that succeeded, its output all written, ends here: Node's own end frees
    // the heap and every handle one by one first, which took 3–10 ms after an import
    // reported its layer. Anything still owed (a write a pipe has not taken, a failure's
    // cleanup) keeps the ordinary end.
    if (code === 0 && process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit();
  });
