/**
 * `node dist/bench/edge.js`: what the edge backend costs next to the portable one.
 *
 * 1. Import throughput, in this process, of one generated layer through each backend:
 *    200 files of 256 KiB under UtilityVM/Files plus five 1 MiB hives (restored by the
 *    C# helper under edge), and the same number of files under Files/ (written by the
 *    layer writer under both, the control). Median of RUNS imports each, not flushed.
 * 2. The bridge itself: a call that does nothing, the same call carrying 64 KiB, and
 *    64 MiB pushed through a restore's `write` in 64 KiB chunks (parsed in C#, written to
 *    a file), with the cost per MiB of crossing over the no-op.
 *
 * Prints a markdown table on stdout. BENCH_QUICK=1 shrinks everything; BENCH_DIR picks
 * the file system (default: the OS temp directory).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackupStreamId } from '../src/backup/constants.js';
import { encodeBackupHeader } from '../src/backup/header.js';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, DEFAULT_FILETIME, type BuilderEntry } from '../src/convert/layer-tar-builder.js';
import type { NativeBackend } from '../src/native/backend.js';
import { createEdgeBackend } from '../src/native/edge-backend.js';
import { loadNativeHelper, type NativeHelper } from '../src/native/edge.js';
import { portableBackend } from '../src/native/portable.js';
import { importLayer } from '../src/store/layer-ops.js';
import { LayerStore } from '../src/store/layer-store.js';

const quick = process.env['BENCH_QUICK'] === '1';
const RUNS = quick ? 1 : 5;
const MiB = 1024 * 1024;
const KiB = 1024;
const FILES = quick ? 40 : 200;
const FILE_BYTES = 256 * KiB;
const HIVE_BYTES = MiB;
const PUSH_BYTES = (quick ? 16 : 64) * MiB;
const CHUNK = 64 * KiB;
const NOOP_CALLS = quick ? 5_000 : 50_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Incompressible-looking bytes, so no layer below us can cheat. */
function noise(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

function benchLayer(): BuilderEntry[] {
  const body = noise(FILE_BYTES, 0x2545f491);
  const sd = CRANE_SECURITY_DESCRIPTOR;
  const entries: BuilderEntry[] = [
    { type: 'directory', name: 'Files', securityDescriptor: sd },
    { type: 'directory', name: 'Hives' },
    { type: 'directory', name: 'Files/data' },
  ];
  for (const hive of ['System_Delta', 'Software_Delta', 'Sam_Delta', 'Security_Delta', 'DefaultUser_Delta']) {
    entries.push({ type: 'file', name: `Hives/${hive}`, data: noise(HIVE_BYTES, hive.length * 7919), securityDescriptor: sd });
  }
  entries.push({ type: 'directory', name: 'UtilityVM' }, { type: 'directory', name: 'UtilityVM/Files' });
  for (let d = 0; d < 10; d++) entries.push({ type: 'directory', name: `UtilityVM/Files/dir${d}`, securityDescriptor: sd });
  for (let f = 0; f < FILES; f++) {
    entries.push({ type: 'file', name: `UtilityVM/Files/dir${f % 10}/file${f}.bin`, data: body, securityDescriptor: sd, streams: [{ name: 'tag', data: `file ${f}` }] });
  }
  return entries;
}

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Median seconds of RUNS imports of `tar` through `backend`. */
async function timeImports(backend: NativeBackend, tar: Buffer, base: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const store = await LayerStore.open(fs.mkdtempSync(path.join(base, `${backend.name}-`)));
    const start = process.hrtime.bigint();
    await importLayer(store, backend, 'l', chunks(tar, MiB), { parents: [], durable: false });
    const t = seconds(start);
    // The first run warms caches (and, for edge, the JIT): it is not counted.
    if (i > 0) times.push(t);
    fs.rmSync(store.home, { recursive: true, force: true });
  }
  return median(times);
}

/** Median seconds per call of `fn`, over `calls` calls, RUNS times. */
function timeCalls(calls: number, fn: () => void): number {
  const per: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn();
    per.push(seconds(start) / calls);
  }
  return median(per);
}

/** Seconds to push PUSH_BYTES through one restore's write, CHUNK bytes per call (one DATA stream). */
function timePush(helper: NativeHelper, base: string): number {
  const body = noise(CHUNK, 0x1234567);
  const header = encodeBackupHeader({ id: BackupStreamId.Data, size: PUSH_BYTES });
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const file = path.join(base, `push-${r}`);
    const start = process.hrtime.bigint();
    const handle = helper.restoreCreate(file, 'Hives/push', false);
    helper.restoreWrite(handle, header);
    for (let done = 0; done < PUSH_BYTES; done += CHUNK) helper.restoreWrite(handle, body);
    helper.restoreFinish(handle, {
      creationTime: DEFAULT_FILETIME,
      lastAccessTime: DEFAULT_FILETIME,
      lastWriteTime: DEFAULT_FILETIME,
      changeTime: DEFAULT_FILETIME,
      fileAttributes: 0x20,
    });
    times.push(seconds(start));
    fs.rmSync(file);
  }
  return median(times);
}

/** The same bytes written with node:fs in CHUNK writes: the floor for the push. */
function timeFsPush(base: string): number {
  const body = noise(CHUNK, 0x1234567);
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const file = path.join(base, `fs-push-${r}`);
    const start = process.hrtime.bigint();
    const fd = fs.openSync(file, 'wx');
    for (let done = 0; done < PUSH_BYTES; done += CHUNK) fs.writeSync(fd, body);
    fs.closeSync(fd);
    times.push(seconds(start));
    fs.rmSync(file);
  }
  return median(times);
}

const fmt = (x: number, digits = 2): string => x.toFixed(digits);

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(process.env['BENCH_DIR'] ?? os.tmpdir(), 'winlayer-bench-edge-'));
  try {
    let helper: NativeHelper;
    try {
      helper = loadNativeHelper();
    } catch (error) {
      console.log(`The edge backend is unavailable here, so there is nothing to compare: ${(error as Error).message}`);
      process.exitCode = 1;
      return;
    }
    const info = helper.info();
    process.stderr.write(`edge helper: ${info.platform}, ${info.runtime}; ${RUNS} runs per figure\n`);
    const tar = await buildLayerTar(benchLayer());
    const restoredBytes = FILES * FILE_BYTES + 5 * HIVE_BYTES;
    const tarMiB = tar.length / MiB;

    process.stderr.write('import through portable…\n');
    const portable = await timeImports(portableBackend, tar, base);
    process.stderr.write('import through edge…\n');
    const edge = await timeImports(createEdgeBackend({ helper }), tar, base);

    process.stderr.write('bridge calls…\n');
    const payload = Buffer.alloc(CHUNK, 1);
    const noop = timeCalls(NOOP_CALLS, () => helper.noop());
    const noop64 = timeCalls(NOOP_CALLS / 10, () => helper.noop({ chunk: payload }));
    const push = timePush(helper, base);
    const fsPush = timeFsPush(base);
    const pushCalls = PUSH_BYTES / CHUNK + 1;
    const perMiB = (push - pushCalls * noop) / (PUSH_BYTES / MiB);
    const perMiBOverFs = (push - fsPush) / (PUSH_BYTES / MiB);

    const lines = [
      `Edge backend vs portable (${info.runtime}, ${os.cpus().length} CPUs, Node ${process.version}; median of ${RUNS})`,
      '',
      '| measure | portable | edge | edge / portable |',
      '|---|---:|---:|---:|',
      `| import ${fmt(tarMiB, 1)} MiB layer (${FILES} × 256 KiB in UtilityVM/Files + 5 × 1 MiB hives), s | ${fmt(portable, 3)} | ${fmt(edge, 3)} | ${fmt(edge / portable)} |`,
      `| import throughput, MiB/s of tar | ${fmt(tarMiB / portable, 0)} | ${fmt(tarMiB / edge, 0)} | ${fmt(portable / edge)} |`,
      `| bytes restored by the helper under edge, MiB | – | ${fmt(restoredBytes / MiB, 1)} | |`,
      '',
      '| bridge measure | value |',
      '|---|---:|',
      `| no-op call, µs | ${fmt(noop * 1e6)} |`,
      `| no-op call carrying 64 KiB, µs | ${fmt(noop64 * 1e6)} |`,
      `| push ${PUSH_BYTES / MiB} MiB through restore write in 64 KiB chunks, s | ${fmt(push, 3)} (${fmt(PUSH_BYTES / MiB / push, 0)} MiB/s) |`,
      `| same bytes written with node:fs, 64 KiB writes, s | ${fmt(fsPush, 3)} (${fmt(PUSH_BYTES / MiB / fsPush, 0)} MiB/s) |`,
      `| bridge cost per MiB over the no-op calls (copy, parse, write), ms | ${fmt(perMiB * 1e3, 3)} |`,
      `| bridge cost per MiB over node:fs, ms | ${fmt(perMiBOverFs * 1e3, 3)} |`,
    ];
    console.log(lines.join('\n'));
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

await main();
