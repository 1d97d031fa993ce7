/**
 * Runs one of the build's CommonJS bundles (scripts/bundle.mjs: the worker, the CLI) with
 * V8's code cache, the way Node runs a CommonJS module, and returns its exports.
 *
 * Why: a process that starts per layer import pays for compiling its code every time.
 * Compiling the worker's 300 KB bundle, and then each function it calls as it is first
 * called, costs 15–20 ms of a start-up that should stay near bare `node`. The build runs
 * each bundle once on a small layer with WINLAYER_WRITE_CODE_CACHE=1, which saves V8's
 * compiled code for everything that run used beside the bundle (`<bundle>.cache`); every
 * later start hands it to V8 instead of compiling. An import worker started with heap
 * options gets a cache of its own, made by a run with those options (see codeCacheFile).
 *
 * V8 checks the cache against its own version, its flags and the bundle's source, and
 * rejects it on any difference: the code is then compiled as if there were no cache. But
 * a release V8 does not checksum the compiled code itself (a flipped byte is accepted),
 * so the file carries a SHA-256 of that code ahead of it, checked before V8 sees it
 * (~0.5 ms; node:crypto is loaded by both programs anyway), and is written by rename, so
 * that a build cut short leaves no half file. A missing, unreadable or damaged cache file
 * means no cache. So the cache only ever changes how fast a start is, never what runs.
 *
 * This file is CommonJS (a `.cts`) so that the entry points that load it are CommonJS
 * too: an ES module entry costs Node ~9 ms more to start.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { createRequire } from 'node:module';

/** Set by the build only: write the code cache of what this process ran, at exit. */
export const WRITE_CODE_CACHE_ENV = 'WINLAYER_WRITE_CODE_CACHE';

/**
 * The code cache file of `bundle` for a process started with the Node options `flags`.
 * V8 rejects a cache made under other flags, so an import worker started with heap options
 * (MANY_ENTRIES_NODE_OPTIONS) has its own cache, named by a digest of those options.
 */
export function codeCacheFile(bundle: string, flags: readonly string[] = process.execArgv): string {
  if (flags.length === 0) return `${bundle}.cache`;
  return `${bundle}.${createHash('sha256').update(flags.join('\0')).digest('hex').slice(0, 12)}.cache`;
}

/** Compiles `source` of `file` as a CommonJS module function, with the cached code when there is some. */
export function compileBundle(file: string, source: string, cachedData: Buffer | undefined): vm.Script {
  // A bundle starts with a #! line when its entry had one: not JavaScript inside a function.
  const body = source.startsWith('#!') ? '//' + source : source;
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${body}\n})`;
  return new vm.Script(wrapped, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) });
}

const DIGEST_BYTES = 32;

/** The code cache file's contents for V8's `data`: its SHA-256, then the data. */
export function encodeCodeCache(data: Buffer): Buffer {
  return Buffer.concat([createHash('sha256').update(data).digest(), data]);
}

/** V8's data from a code cache file's contents, or undefined when they are not intact. */
export function decodeCodeCache(file: Buffer): Buffer | undefined {
  if (file.length <= DIGEST_BYTES) return undefined;
  const data = file.subarray(DIGEST_BYTES);
  return createHash('sha256').update(data).digest().equals(file.subarray(0, DIGEST_BYTES)) ? data : undefined;
}

/** Reads the code cache of `bundle` for `flags`; undefined when there is none or it is damaged. */
export function readCodeCache(bundle: string, flags: readonly string[] = process.execArgv): Buffer | undefined {
  try {
    return decodeCodeCache(fs.readFileSync(codeCacheFile(bundle, flags)));
  } catch {
    return undefined; // no cache: compile as usual
  }
}

/** Runs the CommonJS bundle `file` and returns its exports. */
export function startBundle(file: string): unknown {
  const source = fs.readFileSync(file, 'utf8');
  const script = compileBundle(file, source, readCodeCache(file));
  if (process.env[WRITE_CODE_CACHE_ENV] === '1') {
    process.once('exit', () => {
      const target = codeCacheFile(file);
      const temporary = `${target}.${process.pid}.tmp`;
      try {
        // V8 stamps a cache with the flags in force when it is made, and the import worker
        // clears --max-semi-space-size once it runs (worker/main.ts): put back the value it
        // started with, which is what the next start checks the cache against.
        const semiSpace = process.execArgv.filter((option) => option.startsWith('--max-semi-space-size='));
        if (semiSpace.length > 0) (createRequire(file)('node:v8') as typeof import('node:v8')).setFlagsFromString(semiSpace[semiSpace.length - 1] as string);
        fs.writeFileSync(temporary, encodeCodeCache(script.createCachedData()));
        fs.renameSync(temporary, target);
      } catch {
        // A read-only install, say: the program's own result stands; the build checks that caches exist.
        try {
          fs.rmSync(temporary, { force: true });
        } catch {
          // nothing was written
        }
      }
    });
  }
  const run = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: { exports: unknown }, f: string, d: string) => void;
  const mod = { exports: {} as unknown };
  run.call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  return mod.exports;
}
