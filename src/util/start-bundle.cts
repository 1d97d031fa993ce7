/**
 * Runs one of the build's CommonJS bundles (scripts/bundle.mjs: the worker, the CLI) with
 * V8's code cache, the way Node runs a CommonJS module, and returns its exports.
 *
 * Why: a process that starts per layer import pays for compiling its code every time.
 * Compiling the worker's 300 KB bundle, and then each function it calls as it is first
 * called, costs 15–20 ms of a start-up that should stay near bare `node`. The build runs
 * each bundle once on a small layer with WINLAYER_WRITE_CODE_CACHE=1, which saves V8's
 * compiled code for everything that run used beside the bundle (`<bundle>.cache`); every
 * later start hands it to V8 instead of compiling.
 *
 * V8 checks the cache itself: another Node or V8 version, other V8 flags, or a bundle
 * that changed since the cache was made get it rejected, and the code is compiled as if
 * there were no cache. A missing or unreadable cache file is the same. So the cache only
 * ever changes how fast a start is, never what runs.
 *
 * This file is CommonJS (a `.cts`) so that the entry points that load it are CommonJS
 * too: an ES module entry costs Node ~9 ms more to start.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { createRequire } from 'node:module';

/** Set by the build only: write the code cache of what this process ran, at exit. */
export const WRITE_CODE_CACHE_ENV = 'WINLAYER_WRITE_CODE_CACHE';

/** The code cache file of `bundle`. */
export function codeCacheFile(bundle: string): string {
  return `${bundle}.cache`;
}

/** Compiles `source` of `file` as a CommonJS module function, with the cached code when there is some. */
export function compileBundle(file: string, source: string, cachedData: Buffer | undefined): vm.Script {
  // A bundle starts with a #! line when its entry had one: not JavaScript inside a function.
  const body = source.startsWith('#!') ? '//' + source : source;
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${body}\n})`;
  return new vm.Script(wrapped, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) });
}

/** Runs the CommonJS bundle `file` and returns its exports. */
export function startBundle(file: string): unknown {
  const source = fs.readFileSync(file, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = fs.readFileSync(codeCacheFile(file));
  } catch {
    // no cache: compile as usual
  }
  const script = compileBundle(file, source, cachedData);
  if (process.env[WRITE_CODE_CACHE_ENV] === '1') {
    process.once('exit', () => fs.writeFileSync(codeCacheFile(file), script.createCachedData()));
  }
  const run = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: { exports: unknown }, f: string, d: string) => void;
  const mod = { exports: {} as unknown };
  run.call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  return mod.exports;
}
