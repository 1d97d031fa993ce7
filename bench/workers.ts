/**
 * The re-exec costs: what a worker adds to an import of an empty layer over starting a
 * bare `node` in the same environment, and import throughput of 1, 2 and 4 layers in
 * parallel (each through its own worker, concurrency = parallelism), beside the disk's own
 * scaling (`dd` with fdatasync, 1 and 2 at once): imports write and flush their layers, so
 * on a disk that does not scale neither can they.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { streamLayerTar, type BuilderEntry } from '../src/convert/layer-tar-builder.js';
import { workerEnv } from '../src/controller/spawn-worker.js';
import { WindowsFilterDriver } from '../src/driver/driver.js';

const MiB = 1024 * 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function tarBytes(entries: BuilderEntry[]): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of streamLayerTar(entries)) parts.push(c);
  return Buffer.concat(parts);
}

export interface WorkerBench {
  /** `node -e ''` with the environment a worker gets. */
  bareNodeMs: number;
  /** `node -e ''` with this process's environment, when a worker's differs (NODE_EXTRA_CA_CERTS set). */
  bareNodeCallerEnvMs?: number;
  emptyImportMs: number;
  overheadMs: number;
  layerMiB: number;
  throughput: { parallel: number; wallS: number; mibPerS: number }[];
  /**
   * The disk's own scaling, the ceiling for imports that write and flush: `dd` writing the
   * same number of bytes with fdatasync, 1 and 2 at once (wall seconds, medians).
   */
  disk?: { oneS: number; twoS: number };
}

export async function benchWorkers(work: string, quick: boolean): Promise<WorkerBench> {
  const runs = quick ? 5 : 21;
  const home = path.join(work, 'workers-home');
  const driver = await WindowsFilterDriver.open({ home, concurrency: 4 });
  const empty = await tarBytes([]);
  // Bare node runs with the environment a worker gets (workerEnv), so that the difference
  // is what the worker adds; with the caller's environment too, when that differs.
  const env = workerEnv();
  const envDiffers = Object.keys(process.env).length !== Object.keys(env).length;
  const bare: number[] = [];
  const bareCallerEnv: number[] = [];
  const imports: number[] = [];
  const time = async (into: number[], run: () => unknown): Promise<void> => {
    const t = process.hrtime.bigint();
    await run();
    into.push(Number(process.hrtime.bigint() - t) / 1e6);
  };
  await driver.applyDiff('warm-up', undefined, Readable.from([empty]));
  for (let i = 0; i < runs; i++) {
    // Interleaved, so that a slow moment of the machine weighs on each alike.
    await time(bare, () => spawnSync(process.execPath, ['-e', ''], { env }));
    if (envDiffers) await time(bareCallerEnv, () => spawnSync(process.execPath, ['-e', '']));
    await time(imports, () => driver.applyDiff(`empty-${i}`, undefined, Readable.from([empty])));
  }

  const fileMiB = quick ? 4 : 16;
  const block = Buffer.alloc(MiB, 0x5a);
  const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files' }];
  for (let f = 0; f < 8; f++) entries.push({ type: 'file', name: `Files/f${f}.bin`, data: { size: fileMiB * MiB, chunks: () => Array.from({ length: fileMiB }, () => block) } });
  const tarFile = path.join(work, 'parallel.tar');
  fs.writeFileSync(tarFile, await tarBytes(entries));
  const layerMiB = fs.statSync(tarFile).size / MiB;
  // Rounds of 1, 2 and 4 imports in turn, seven of them: on a noisy machine a single
  // import varied from 0.27 to 0.49 s in one run, so the medians need the rounds, and
  // interleaving spreads a slow moment over every parallelism alike.
  const parallels = [1, 2, 4] as const;
  const walls = new Map<number, number[]>(parallels.map((p) => [p, []]));
  for (let r = 0; r < (quick ? 1 : 7); r++) {
    for (const parallel of parallels) {
      const d = await WindowsFilterDriver.open({ home: path.join(work, `par-${parallel}-${r}`), concurrency: parallel });
      spawnSync('sync');
      const t = process.hrtime.bigint();
      await Promise.all(Array.from({ length: parallel }, (_, i) => d.applyDiff(`l${i}`, undefined, fs.createReadStream(tarFile, { highWaterMark: MiB }))));
      walls.get(parallel)?.push(Number(process.hrtime.bigint() - t) / 1e9);
      fs.rmSync(d.home, { recursive: true, force: true });
    }
  }
  const disk = await diskScaling(work, Math.round(layerMiB), quick ? 1 : 7);
  const throughput: WorkerBench['throughput'] = parallels.map((parallel) => {
    const wallS = median(walls.get(parallel) ?? []);
    return { parallel, wallS, mibPerS: (parallel * layerMiB) / wallS };
  });
  fs.rmSync(home, { recursive: true, force: true });
  const bareNodeMs = median(bare);
  const emptyImportMs = median(imports);
  return {
    bareNodeMs,
    ...(envDiffers ? { bareNodeCallerEnvMs: median(bareCallerEnv) } : {}),
    emptyImportMs,
    overheadMs: emptyImportMs - bareNodeMs,
    layerMiB,
    throughput,
    ...(disk === undefined ? {} : { disk }),
  };
}

/** `dd` writing `mib` MiB with fdatasync, once and twice at once, in interleaved rounds. */
async function diskScaling(work: string, mib: number, rounds: number): Promise<{ oneS: number; twoS: number } | undefined> {
  const dd = (file: string): Promise<number | null> =>
    new Promise((resolve) => {
      const child = spawn('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fdatasync'], { stdio: 'ignore' });
      child.on('error', () => resolve(null));
      child.on('exit', (code) => resolve(code));
    });
  const one: number[] = [];
  const two: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const n of [1, 2]) {
      const files = Array.from({ length: n }, (_, i) => path.join(work, `dd-${i}`));
      spawnSync('sync');
      const t = process.hrtime.bigint();
      const codes = await Promise.all(files.map(dd));
      const wall = Number(process.hrtime.bigint() - t) / 1e9;
      for (const f of files) fs.rmSync(f, { force: true });
      if (codes.some((c) => c !== 0)) return undefined; // no dd here
      (n === 1 ? one : two).push(wall);
    }
  }
  return { oneS: median(one), twoS: median(two) };
}

export function workersTable(b: WorkerBench): string {
  const one = b.throughput[0]?.mibPerS ?? 1;
  return [
    `| measure | value |`,
    `|---|---|`,
    `| bare \`node -e ''\` (the worker's environment) | ${b.bareNodeMs.toFixed(1)} ms |`,
    ...(b.bareNodeCallerEnvMs === undefined ? [] : [`| bare \`node -e ''\` (this environment, with NODE_EXTRA_CA_CERTS) | ${b.bareNodeCallerEnvMs.toFixed(1)} ms |`]),
    `| empty-layer import through a worker | ${b.emptyImportMs.toFixed(1)} ms |`,
    `| worker start-up over bare node | ${b.overheadMs.toFixed(1)} ms |`,
    ...b.throughput.map((t) => `| ${t.parallel} parallel import(s) of ${b.layerMiB.toFixed(0)} MiB | ${t.wallS.toFixed(2)} s, ${t.mibPerS.toFixed(0)} MiB/s (${(t.mibPerS / one).toFixed(2)}× one) |`),
    ...(b.disk === undefined
      ? []
      : [`| the disk alone: 2 \`dd\` writes of ${b.layerMiB.toFixed(0)} MiB with fdatasync ÷ one | ${b.disk.twoS.toFixed(2)} s vs ${b.disk.oneS.toFixed(2)} s: ${((2 * b.disk.oneS) / b.disk.twoS).toFixed(2)}× |`]),
  ].join('\n');
}
