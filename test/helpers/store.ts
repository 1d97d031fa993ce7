/** Temp stores and in-process import/export for tests. */
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { isWinLayerError, type WinLayerError } from '../../src/errors.js';
import { portableBackend } from '../../src/native/portable.js';
import { exportLayer, importLayer, type ImportLayerResult } from '../../src/store/layer-ops.js';
import { LayerStore, STORE_MARKER } from '../../src/store/layer-store.js';
import { removeTreeSync } from '../../src/util/remove-tree.js';
import { feedInChunks } from './chunks.js';

const made: string[] = [];

/** A fresh directory under the OS temp dir, removed by `cleanupTemp`. */
export function tempDir(prefix = 'winlayer-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTemp(): void {
  // Not fs.rmSync: some tests leave trees deeper than it can recurse.
  for (const d of made.splice(0)) removeTreeSync(d);
}

export async function openStore(home?: string): Promise<LayerStore> {
  return LayerStore.open(home ?? path.join(tempDir(), 'home'));
}

/** Imports `tar` as `id` on top of `parent`, fed in chunks of `chunk` bytes. */
export async function importTar(store: LayerStore, id: string, tar: Uint8Array, parent?: string, chunk = 64 * 1024): Promise<ImportLayerResult> {
  return importLayer(store, portableBackend, id, feedInChunks(tar, chunk), { parents: store.chainFor(parent), durable: false });
}

/** Exports `id` into one buffer. */
export async function exportTar(store: LayerStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of exportLayer(store, portableBackend, id)) parts.push(c);
  return Buffer.concat(parts);
}

/** The WinLayerError `fn` rejects with (anything else it throws is rethrown). */
export async function rejection(fn: () => Promise<unknown>): Promise<WinLayerError> {
  try {
    await fn();
  } catch (e) {
    if (isWinLayerError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** Runs `fn` and returns the code of the WinLayerError it rejects with. */
export async function rejectionCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? code : `not a coded error: ${String(e)}`;
  }
  return 'no error';
}

/** Every path below `dir`, relative, sorted (for "nothing else was written" checks). */
/** The names in a store's home, its mark left out (every store has it). */
export function storeEntries(home: string): string[] {
  return fs.readdirSync(home).filter((n) => n !== STORE_MARKER);
}

export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      // A store's mark (every store has it): what a test looks for is the rest.
      if (rel === '' && e.name === STORE_MARKER) continue;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      out.push(r);
      if (e.isDirectory()) walk(path.join(d, e.name), r);
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return out.sort();
}

/** The first offset where a and b differ, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * A preload (`node --require`) that makes fs.rmdirSync fail with EBUSY for every path ending
 * in one of `suffixes`: a directory that cannot be removed (a mount point, say), which
 * tests running as root cannot otherwise make. Written into a temp directory; returns its path.
 */
export function unremovablePreload(suffixes: readonly string[]): string {
  const file = path.join(tempDir(), 'unremovable.cjs');
  fs.writeFileSync(file, `
    const fs = require('node:fs');
    const suffixes = ${JSON.stringify(suffixes)};
    const rmdirSync = fs.rmdirSync;
    fs.rmdirSync = function (p, ...rest) {
      const s = Buffer.isBuffer(p) ? p.toString('latin1') : String(p);
      if (suffixes.some((x) => s.endsWith(x))) throw Object.assign(new Error('EBUSY: resource busy or locked, rmdir ' + s), { code: 'EBUSY', syscall: 'rmdir' });
      return rmdirSync.call(this, p, ...rest);
    };
    // The system's rm (removeTreeGuarded's first pass) leaves such a directory to the walk.
    const cp = require('node:child_process');
    const spawn = cp.spawn;
    cp.spawn = function (file, args, ...rest) {
      if (require('node:path').basename(String(file)) === 'rm' && (args || []).some((a) => suffixes.some((x) => String(a).endsWith(x) || String(a).includes(x + '/')))) {
        throw Object.assign(new Error('EBUSY: rm stands in for a mount point'), { code: 'EBUSY' });
      }
      return spawn.call(this, file, args, ...rest);
    };
    require('node:module').syncBuiltinESMExports();
  `);
  return file;
}

/** Runs `fn` in this process with that preload's effect (see unremovablePreload), undone after. */
export async function withUnremovable<T>(suffixes: readonly string[], fn: () => Promise<T>): Promise<T> {
  // The module object itself: an ES namespace is read-only, and syncBuiltinESMExports
  // carries the change to every module that imported node:fs.
  const cjs = createRequire(import.meta.url)('node:fs') as typeof fs;
  const rmdirSync = cjs.rmdirSync;
  cjs.rmdirSync = (p: fs.PathLike, options?: fs.RmDirOptions): void => {
    const s = Buffer.isBuffer(p) ? p.toString('latin1') : String(p);
    if (suffixes.some((x) => s.endsWith(x))) throw Object.assign(new Error(`EBUSY: resource busy or locked, rmdir ${s}`), { code: 'EBUSY', syscall: 'rmdir' });
    rmdirSync(p, options);
  };
  // The system's rm (removeTreeGuarded's first pass) leaves such a directory to the walk.
  const cp = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const spawn = cp.spawn;
  const stands = (a: unknown): boolean => suffixes.some((x) => String(a).endsWith(x) || String(a).includes(`${x}/`));
  cp.spawn = ((file: string, args: readonly string[], ...rest: unknown[]) => {
    if (/(^|\/)rm$/.test(file) && args.some(stands)) throw Object.assign(new Error('EBUSY: rm stands in for a mount point'), { code: 'EBUSY' });
    return (spawn as (...a: unknown[]) => unknown)(file, args, ...rest);
  }) as typeof cp.spawn;
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    cjs.rmdirSync = rmdirSync;
    cp.spawn = spawn;
    syncBuiltinESMExports();
  }
}

/** A layer.json that readLayerInfo takes, for a hand-made index of `records` records. */
export function layerSummary(records: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, id: 'x', size: 0, entries: records, digest: `sha256:${'0'.repeat(64)}`, records, hasUtilityVM: false, isBaseLayer: true, ...extra };
}
