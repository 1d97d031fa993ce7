/**
 * What starting a worker takes beside execa's call: where the worker is, the heap it gets
 * for its input, its environment and directory, execa itself. A module of its own, with
 * few imports, because the CLI's import loads it before anything else to start its worker
 * early (src/controller/prestart.ts), as well as spawn-worker.ts for every other start.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { countHeaderBlocks } from '../tar/count-headers.js';
import { sniffCompression } from '../tar/decompress.js';
import { CONTROLLER_PID_ENV } from './protocol.js';

const WORKER_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'worker');

/** The worker as compiled: one ES module per source file. */
export const WORKER_MODULE_ENTRY = path.join(WORKER_DIR, 'main.js');

/** The same worker bundled into one CommonJS file by the build (scripts/bundle.mjs). */
export const WORKER_BUNDLE = path.join(WORKER_DIR, 'bundle', 'worker.cjs');

/** What starts WORKER_BUNDLE, with V8's code cache (src/util/start-bundle.cts). */
export const WORKER_BUNDLE_ENTRY = path.join(WORKER_DIR, 'start.cjs');

/**
 * The worker entry point the controller runs: the bundle when the build made one (it
 * starts 50–60 ms sooner: one file, compiled code from the cache, no ES module loader),
 * else the modules.
 */
export const WORKER_ENTRY = fs.existsSync(WORKER_BUNDLE) ? WORKER_BUNDLE_ENTRY : WORKER_MODULE_ENTRY;

/**
 * Heap options of an import worker (MANY_ENTRIES_NODE_OPTIONS). An import allocates a
 * short-lived buffer per tar block and entry, and keeps a little per entry; V8's default
 * young generation (up to 3 × 16 MiB) grows to its maximum over a long import. 2 MiB
 * semi-spaces keep a 20,000-file import near 85 MiB peak RSS instead of ~110 MiB, and a
 * capped old-generation growth keeps what the writer remembers from tripling. V8 would
 * reject every code cache under these flags (Node's own and the bundle's); the worker
 * sets them aside while code is compiled (src/util/v8-flags.cts), but the few modules it
 * loads before that are still compiled from source. And a worker of many entries reads
 * in smaller pieces and, under MALLOC_MMAP_THRESHOLD_, takes a page fault per 4 KiB of
 * each large buffer. So only tars with many
 * entries, or that may have many, get them: not a tar of at most SMALL_TAR_BYTES, over
 * before the young generation grows (many image layers are that small), nor a file with
 * fewer than MANY_HEADER_BLOCKS headers. A read-only layer's export worker gets
 * EXPORT_NODE_OPTIONS (exportHeapOptions).
 */
/** The largest tar an import worker runs with V8's default heap for, whatever it holds. */
export const SMALL_TAR_BYTES = 1024 * 1024;

/**
 * A tar in a file with fewer header blocks than this (about half as many entries) also
 * imports with V8's default heap, however large: the young generation grows with the
 * number of entries, not of bytes (a 256 MiB tar of 4 files peaks near 88 MiB either
 * way, 1,000 small files near 70 MiB), and its worker starts ~55 ms sooner. The
 * controller counts the headers of a file before the worker starts (countHeaderBlocks);
 * a stream cannot be counted ahead, so a stream over SMALL_TAR_BYTES keeps the option.
 */
export const MANY_HEADER_BLOCKS = 2000;

/**
 * Compressed input counts as small only up to this size: what it holds is not known
 * before it is inflated, and a MiB of gzip can hold tens of thousands of tar headers. At
 * 64 KiB, even a tar of nothing but headers compressed 50:1 stays near 6,000 of them.
 */
export const SMALL_COMPRESSED_BYTES = 64 * 1024;

/** Whether input that starts with `head` and is `size` bytes long is small enough for V8's default heap. */
export function smallInput(head: Uint8Array, size: number): boolean {
  if (size > SMALL_TAR_BYTES) return false;
  return size <= SMALL_COMPRESSED_BYTES || sniffCompression(head) === 'none';
}

/**
 * Whether an import can run with V8's default heap when its tar is the open file
 * descriptor `fd`: a regular file of at most SMALL_TAR_BYTES (SMALL_COMPRESSED_BYTES when
 * compressed), or a tar with fewer than MANY_HEADER_BLOCKS headers. Anything else (a
 * pipe, a larger compressed or a damaged tar) gets the small semi-spaces.
 */
export function fewEntriesIn(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return false;
    if (st.size <= SMALL_TAR_BYTES) {
      const head = Buffer.alloc(8);
      return smallInput(head.subarray(0, fs.readSync(fd, head, 0, head.length, 0)), st.size);
    }
  } catch {
    return false;
  }
  const blocks = countHeaderBlocks(fd, MANY_HEADER_BLOCKS);
  return blocks !== undefined && blocks < MANY_HEADER_BLOCKS;
}

/**
 * Descriptors a spawn takes at once in this process: two for each of the worker's four
 * pipes, two for the pipe Node learns a failed exec through, and a spare.
 */
export const SPAWN_DESCRIPTORS = 11;

/** The error opening `count` descriptors gives now (EMFILE: they would not be there for a spawn), or undefined. */
export function descriptorsShort(count: number): unknown {
  const fds: number[] = [];
  try {
    for (let i = 0; i < count; i++) fds.push(fs.openSync(os.devNull, 'r'));
    return undefined;
  } catch (error) {
    return error;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

/** How long a worker told to stop may take before it is killed. */
export const FORCE_KILL_AFTER_MS = 2000;

/**
 * Variables a worker does without: Node reads and parses every certificate that
 * NODE_EXTRA_CA_CERTS names before it runs any code (50–90 ms per start for a system
 * bundle of ~140 certificates, measured on Node 20), and a worker opens no TLS connection.
 */
const WORKER_UNSET_ENV = ['NODE_EXTRA_CA_CERTS'];

/**
 * glibc's malloc, for a worker of many entries (MANY_ENTRIES_NODE_OPTIONS): blocks of
 * 512 KiB and more get pages of their own, returned to the system when freed. By default
 * the threshold rises to the largest block freed so far, so once a name table had doubled
 * (4 → 8 MiB for a base layer's 300,000 files) its successors and their predecessors'
 * holes stayed in the heap: a 440,000-entry import peaked at 112–114 MiB, 104 MiB with
 * this. Read buffers (256 KiB) stay below it, reused without page faults; the small-file
 * and hard-link imports took the same time either way. Other C libraries ignore it.
 */
const MANY_ENTRIES_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: String(512 * 1024) };

/**
 * The worker's environment: the controller's, less WORKER_UNSET_ENV, plus this process's
 * pid (CONTROLLER_PID_ENV), and for a worker of many entries MANY_ENTRIES_ENV where the
 * caller set none of it.
 */
export function workerEnv(env: NodeJS.ProcessEnv = process.env, manyEntries = false): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of WORKER_UNSET_ENV) delete out[name];
  if (manyEntries) for (const [name, value] of Object.entries(MANY_ENTRIES_ENV)) out[name] ??= value;
  out[CONTROLLER_PID_ENV] = String(process.pid);
  return out;
}

/**
 * The directory a worker starts in: the root of the store's file system when every path it
 * is given is absolute (the caller's own directory may have been removed, and execa then
 * refuses to start anything), else the caller's.
 */
export function workerCwd(job: { readonly home: string; readonly parents: readonly string[]; readonly dest?: string | undefined; readonly workerPath?: string | undefined }): string | undefined {
  const paths = [job.home, ...job.parents, job.workerPath ?? WORKER_ENTRY, ...(job.dest === undefined ? [] : [job.dest])];
  return paths.every((p) => path.isAbsolute(p)) ? path.parse(job.home).root : undefined;
}

export type Execa = (typeof import('execa'))['execa'];
let execaLoading: Promise<Execa> | undefined;

/**
 * execa and its dependencies take ~120 ms to load: loaded on the first spawn, so a
 * process that never starts a worker (`winlayer ls`, `mount`, a library user reading
 * metadata) never pays for it.
 */
export function loadExeca(): Promise<Execa> {
  execaLoading ??= import('execa').then(
    (m) => m.execa,
    (error: unknown) => {
      // A failed load (EMFILE while the loader opened its ~60 files) is tried again next time.
      execaLoading = undefined;
      throw error;
    },
  );
  return execaLoading;
}
