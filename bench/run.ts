/**
 * `npm run bench`: our import and export against GNU tar and node-tar on the same
 * generated layers, side by side in one run. Every command runs as its own process
 * (ours through the real `winlayer` CLI), five times, the tools in turn in each round;
 * the table shows medians, ratios to the peers, and peak RSS measured by GNU time
 * (`/usr/bin/time -f %M`).
 *
 * Layers: `large` (4 files of 64 MiB: 256 MiB of data) and `small` (20,000 files of
 * 1–4 KiB in 200 directories). Set BENCH_QUICK=1 for a smaller, faster run, and
 * BENCH_DIR to run on another file system (default: the OS temp directory).
 *
 * Outputs of earlier runs are moved aside, not deleted, until the whole benchmark ends: on
 * ext4 without a journal, the inode allocator skips inodes freed in the last ~30 s
 * (recently_deleted), so creating 20,000 files right after deleting 20,000 cost every tool
 * up to several times its kernel time, and the figures swung by 3× from run to run.
 *
 * Memory: more layers (100,000 small files, 30,000 directories, hard links, and one of a
 * Windows base layer's size) are imported and exported once each, for peak RSS (the bound
 * holds whatever the layer size); over the base-layer-sized one, a read-write layer is
 * mounted, edited, listed and exported once each, for the memory of the parent view.
 *
 * Fairness: an import flushes the layer to disk before it becomes visible (syncfs), which
 * GNU tar never does, so GNU tar is timed both bare and followed by `sync -f` on its
 * output; GNU tar's warnings about the MSWINDOWS.* records are silenced (printing 60,000
 * of them would slow it down); `tar -c` writes into a pipe, since GNU tar skips reading
 * file data altogether when its output is /dev/null, and so does our export.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../src/convert/layer-tar-builder.js';
import { benchTarReader, tarReaderTable } from './tar-reader.js';
import { benchWorkers, workersTable, type WorkerBench } from './workers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'src', 'cli', 'main.cjs');
const repo = path.join(here, '..', '..');
const quick = process.env['BENCH_QUICK'] === '1';
const RUNS = quick ? 1 : 5;
const MiB = 1024 * 1024;

interface Measure {
  wall: number;
  rssKiB: number | undefined;
}

const hasGnuTime = fs.existsSync('/usr/bin/time');

/** Runs a shell command, returns wall seconds and peak RSS (KiB) of the measured process tree's largest process. */
function measure(command: string): Measure {
  const wrapped = hasGnuTime ? `/usr/bin/time -f '%M' -o /tmp/winlayer-bench-rss sh -c ${JSON.stringify(command)}` : command;
  const start = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', wrapped], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 * MiB });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${command}\n${r.stderr.toString()}`);
  const rssKiB = hasGnuTime ? Number(fs.readFileSync('/tmp/winlayer-bench-rss', 'utf8').trim().split('\n').pop()) : undefined;
  return { wall, rssKiB };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

interface Case {
  label: string;
  setup: () => void;
  command: string;
}

/**
 * Runs every case RUNS times, in rounds (each case once per round, in turn), and gives
 * each case's median wall time and largest peak RSS. Rounds, not each case's runs in a
 * row: the file system's speed drifts within a minute (write-back, discards, the inode
 * allocator after deletions), and a tool measured all at once could meet a slow spell the
 * others never see.
 */
function benchRounds(cases: Case[]): Measure[] {
  const walls: number[][] = cases.map(() => []);
  const rss: number[][] = cases.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    cases.forEach((c, k) => {
      c.setup();
      const m = measure(c.command);
      walls[k]?.push(m.wall);
      if (m.rssKiB !== undefined) rss[k]?.push(m.rssKiB);
    });
  }
  return cases.map((c, k) => {
    const r = rss[k] ?? [];
    const out = { wall: median(walls[k] ?? []), rssKiB: r.length > 0 ? Math.max(...r) : undefined };
    process.stderr.write(`  ${c.label.padEnd(28)} ${out.wall.toFixed(3)} s  ${out.rssKiB === undefined ? '' : (out.rssKiB / 1024).toFixed(1) + ' MiB'}\n`);
    return out;
  });
}

function largeLayer(): BuilderEntry[] {
  const block = Buffer.alloc(MiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < block.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeUInt32LE(x >>> 0, i);
  }
  const fileMiB = quick ? 16 : 64;
  const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files', securityDescriptor: CRANE_SECURITY_DESCRIPTOR }];
  for (let f = 0; f < 4; f++) {
    entries.push({
      type: 'file',
      name: `Files/big-${f}.bin`,
      securityDescriptor: CRANE_SECURITY_DESCRIPTOR,
      data: { size: fileMiB * MiB, chunks: () => Array.from({ length: fileMiB }, () => block) },
    });
  }
  return entries;
}

function smallLayer(): BuilderEntry[] {
  const files = quick ? 2000 : 20_000;
  const dirs = 200;
  const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files', securityDescriptor: CRANE_SECURITY_DESCRIPTOR }];
  for (let d = 0; d < dirs; d++) entries.push({ type: 'directory', name: `Files/dir-${d}`, securityDescriptor: CRANE_SECURITY_DESCRIPTOR });
  for (let i = 0; i < files; i++) {
    const size = 1024 + ((i * 7919) % 3073);
    entries.push({
      type: 'file',
      name: `Files/dir-${i % dirs}/file-${i}.dll`,
      securityDescriptor: CRANE_SECURITY_DESCRIPTOR,
      data: Buffer.alloc(size, i & 0xff),
    });
  }
  return entries;
}

/**
 * Many small files in many directories: the counts of a Windows base layer (WinSxS alone
 * holds tens of thousands of directories with names like these).
 */
function manyLayer(files: number, dirs: number): BuilderEntry[] {
  const dirName = (d: number): string => `Files/Windows/WinSxS/amd64_microsoft-windows-component-${d}_31bf3856ad364e35_10.0.17763.1_none_${((d * 2654435761) >>> 0).toString(16)}`;
  const entries: BuilderEntry[] = ['Files', 'Files/Windows', 'Files/Windows/WinSxS'].map((name) => ({ type: 'directory', name, securityDescriptor: CRANE_SECURITY_DESCRIPTOR }));
  for (let d = 0; d < dirs; d++) entries.push({ type: 'directory', name: dirName(d), securityDescriptor: CRANE_SECURITY_DESCRIPTOR });
  for (let i = 0; i < files; i++) {
    entries.push({
      type: 'file',
      name: `${dirName(i % dirs)}/a-longer-file-name-${i}.dll`,
      securityDescriptor: CRANE_SECURITY_DESCRIPTOR,
      data: Buffer.alloc(100 + ((i * 7919) % 901), i & 0xff),
    });
  }
  return entries;
}

/**
 * A layer shaped like a Windows base layer's WinSxS and System32: `files` files in
 * component directories (10 each), then one hard link to each from System32.
 */
function linkedLayer(files: number): BuilderEntry[] {
  const entries = manyLayer(files, Math.max(1, files / 10));
  entries.push({ type: 'directory', name: 'Files/Windows/System32', securityDescriptor: CRANE_SECURITY_DESCRIPTOR });
  const fileNames = entries.filter((e) => e.type === 'file').map((e) => e.name);
  for (const [i, target] of fileNames.entries()) entries.push({ type: 'link', name: `Files/Windows/System32/a-longer-file-name-${i}.dll`, target });
  return entries;
}

/**
 * The size of a Windows Server Core base layer, generated as it is written (not held):
 * `files` files in `dirs` WinSxS-like component directories, then a hard link from
 * System32 to every third one. Memory must not grow past the bound with the entry count.
 */
function* baseSizedLayer(files: number, dirs: number): Generator<BuilderEntry> {
  const dirName = (d: number): string => `Files/Windows/WinSxS/amd64_microsoft-windows-component-${d}_31bf3856ad364e35_10.0.17763.1_none_${((d * 2654435761) >>> 0).toString(16)}`;
  const fileName = (i: number): string => `${dirName(i % dirs)}/a-longer-file-name-${i}.dll`;
  for (const name of ['Files', 'Files/Windows', 'Files/Windows/WinSxS', 'Files/Windows/System32']) yield { type: 'directory', name, securityDescriptor: CRANE_SECURITY_DESCRIPTOR };
  for (let d = 0; d < dirs; d++) yield { type: 'directory', name: dirName(d), securityDescriptor: CRANE_SECURITY_DESCRIPTOR };
  for (let i = 0; i < files; i++) {
    yield { type: 'file', name: fileName(i), securityDescriptor: CRANE_SECURITY_DESCRIPTOR, data: Buffer.alloc(100 + ((i * 7919) % 901), i & 0xff) };
  }
  for (let i = 0; i < files; i += 3) yield { type: 'link', name: `Files/Windows/System32/a-longer-file-name-${i}.dll`, target: fileName(i) };
}

async function writeTar(file: string, entries: Iterable<BuilderEntry>): Promise<void> {
  const out = fs.createWriteStream(file);
  for await (const chunk of streamLayerTar(entries)) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

interface Row {
  layer: string;
  tarMiB: number;
  ours: Measure;
  gnu: Measure;
  gnuSync: Measure;
  nodeTar: Measure;
  ourExport: Measure;
  gnuCreate: Measure;
}

/** The file system type of `dir` (as `stat -f` names it), for the table's caption. */
function fsName(dir: string): string {
  const r = spawnSync('stat', ['-f', '-c', '%T', path.dirname(dir)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown file system';
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(process.env['BENCH_DIR'] ?? os.tmpdir(), 'winlayer-bench-'));
  const nodeTarScript = path.join(work, 'node-tar-extract.mjs');
  fs.writeFileSync(
    nodeTarScript,
    `import * as tar from ${JSON.stringify(path.join(repo, 'node_modules', 'tar', 'dist', 'esm', 'index.js'))};\nawait tar.x({ file: process.argv[2], cwd: process.argv[3] });\n`,
  );
  const rows: Row[] = [];
  const aside = path.join(work, 'aside');
  fs.mkdirSync(aside);
  let asideCount = 0;
  const many: { title: string; tarMiB: number; ours: Measure; ourExport: Measure }[] = [];
  /** A read-write layer over the base-layer-sized layer: mount (the view made), changes, export of one edit. */
  let readWrite: { mount: Measure; changes: Measure; export: Measure } | undefined;
  let workers: WorkerBench | undefined;
  let tarReader: Awaited<ReturnType<typeof benchTarReader>> | undefined;
  try {
    for (const [name, entries] of [['large', largeLayer()], ['small', smallLayer()]] as const) {
      const tarFile = path.join(work, `${name}.tar`);
      await writeTar(tarFile, entries);
      const tarMiB = fs.statSync(tarFile).size / MiB;
      process.stderr.write(`${name}: ${tarMiB.toFixed(1)} MiB tar\n`);
      const home = path.join(work, 'home');
      const out = path.join(work, 'out');
      const reset = (dir: string) => () => {
        if (fs.existsSync(dir)) fs.renameSync(dir, path.join(aside, `${path.basename(dir)}-${asideCount++}`));
        fs.mkdirSync(dir, { recursive: true });
        spawnSync('sync');
      };
      const gnuTar = `tar --warning=no-unknown-keyword -xf ${tarFile} -C ${out}`;
      const [ours, gnu, gnuSync, nodeTar] = benchRounds([
        { label: 'winlayer import', setup: reset(home), command: `node ${cli} import --home ${home} --id bench < ${tarFile}` },
        { label: 'GNU tar -x', setup: reset(out), command: gnuTar },
        { label: 'GNU tar -x && sync -f', setup: reset(out), command: `${gnuTar} && sync -f ${out}` },
        { label: 'node-tar extract', setup: reset(out), command: `node ${nodeTarScript} ${tarFile} ${out}` },
      ]) as [Measure, Measure, Measure, Measure];
      reset(home)();
      spawnSync('sh', ['-c', `node ${cli} import --home ${home} --id bench < ${tarFile}`]);
      reset(out)();
      spawnSync('sh', ['-c', gnuTar]);
      const [ourExport, gnuCreate] = benchRounds([
        { label: 'winlayer export', setup: () => undefined, command: `node ${cli} export --home ${home} --id bench | cat > /dev/null` },
        { label: 'GNU tar -c', setup: () => undefined, command: `tar -cf - -C ${out} . | cat > /dev/null` },
      ]) as [Measure, Measure];
      rows.push({ layer: name, tarMiB, ours, gnu, gnuSync, nodeTar, ourExport, gnuCreate });
      fs.rmSync(tarFile, { force: true });
    }
    const scale = quick ? 10 : 1;
    const count = (n: number): string => (n / scale).toLocaleString('en-US');
    for (const [title, entries] of [
      [`${count(100_000)} files of 100–1,000 bytes in 1,000 directories`, () => manyLayer(100_000 / scale, 1000)],
      [`${count(30_000)} directories with 2 files each (WinSxS-like names)`, () => manyLayer(60_000 / scale, 30_000 / scale)],
      [`${count(50_000)} files and a hard link to each (WinSxS and System32)`, () => linkedLayer(50_000 / scale)],
      [`base-layer size: ${count(300_000)} files in ${count(40_000)} directories, ${count(100_000)} hard links`, () => baseSizedLayer(300_000 / scale, 40_000 / scale)],
    ] as const) {
      const tarFile = path.join(work, 'many.tar');
      await writeTar(tarFile, entries());
      const tarMiB = fs.statSync(tarFile).size / MiB;
      process.stderr.write(`memory: ${title}, ${tarMiB.toFixed(1)} MiB tar\n`);
      const home = path.join(work, 'home');
      if (fs.existsSync(home)) fs.renameSync(home, path.join(aside, `home-${asideCount++}`));
      fs.mkdirSync(home);
      const ours = measure(`node ${cli} import --home ${home} --id many < ${tarFile}`);
      process.stderr.write(`  winlayer import              ${ours.wall.toFixed(3)} s  ${ours.rssKiB === undefined ? '' : (ours.rssKiB / 1024).toFixed(1) + ' MiB'}\n`);
      const ourExport = measure(`node ${cli} export --home ${home} --id many | cat > /dev/null`);
      process.stderr.write(`  winlayer export              ${ourExport.wall.toFixed(3)} s  ${ourExport.rssKiB === undefined ? '' : (ourExport.rssKiB / 1024).toFixed(1) + ' MiB'}\n`);
      many.push({ title, tarMiB, ours, ourExport });
      fs.rmSync(tarFile, { force: true });
      if (title.startsWith('base-layer size')) {
        spawnSync('sh', ['-c', `node ${cli} create-rw --home ${home} --id rw --parent many`]);
        const mount = measure(`node ${cli} mount --home ${home} --id rw > /dev/null`);
        fs.writeFileSync(path.join(home, 'rw', 'rw', 'edited.txt'), 'an edit');
        const changes = measure(`node ${cli} changes --home ${home} --id rw > /dev/null`);
        const rwExport = measure(`node ${cli} export --home ${home} --id rw | cat > /dev/null`);
        readWrite = { mount, changes, export: rwExport };
        for (const [label, m] of [['read-write mount', mount], ['read-write changes', changes], ['read-write export', rwExport]] as const) {
          process.stderr.write(`  ${label.padEnd(28)} ${m.wall.toFixed(3)} s  ${m.rssKiB === undefined ? '' : (m.rssKiB / 1024).toFixed(1) + ' MiB'}\n`);
        }
      }
    }
    process.stderr.write('workers: start-up and parallel imports\n');
    workers = await benchWorkers(work, quick);
    process.stderr.write('tar reader: parse cost over tar-stream\n');
    tarReader = await benchTarReader(quick ? 3 : 5);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }

  const rss = (m: Measure): string => (m.rssKiB === undefined ? 'n/a' : `${(m.rssKiB / 1024).toFixed(0)} MiB`);
  const lines = [
    `| layer | tar | winlayer import | GNU tar -x | GNU tar -x + sync | node-tar x | import ÷ GNU | import ÷ (GNU + sync) | node-tar ÷ import | import peak RSS | winlayer export | GNU tar -c | export ÷ GNU | export peak RSS |`,
    `|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.layer} | ${r.tarMiB.toFixed(0)} MiB | ${r.ours.wall.toFixed(2)} s | ${r.gnu.wall.toFixed(2)} s | ${r.gnuSync.wall.toFixed(2)} s | ${r.nodeTar.wall.toFixed(2)} s | ${(r.ours.wall / r.gnu.wall).toFixed(2)}× | ${(r.ours.wall / r.gnuSync.wall).toFixed(2)}× | ${(r.nodeTar.wall / r.ours.wall).toFixed(2)}× | ${rss(r.ours)} | ${r.ourExport.wall.toFixed(2)} s | ${r.gnuCreate.wall.toFixed(2)} s | ${(r.ourExport.wall / r.gnuCreate.wall).toFixed(2)}× | ${rss(r.ourExport)} |`,
    );
  }
  if (many.length > 0) {
    lines.push('', '| memory (one run each) | tar | winlayer import | import peak RSS | winlayer export | export peak RSS |', '|---|---|---|---|---|---|');
    for (const m of many) {
      lines.push(`| ${m.title} | ${m.tarMiB.toFixed(0)} MiB | ${m.ours.wall.toFixed(2)} s | ${rss(m.ours)} | ${m.ourExport.wall.toFixed(2)} s | ${rss(m.ourExport)} |`);
    }
  }
  if (readWrite !== undefined) {
    lines.push('', '| read-write layer over the base-layer-sized one (one run each) | wall | peak RSS |', '|---|---|---|');
    for (const [label, m] of [['mount (the parent view made)', readWrite.mount], ['changes (one file added)', readWrite.changes], ['export of that change', readWrite.export]] as const) {
      lines.push(`| ${label} | ${m.wall.toFixed(2)} s | ${rss(m)} |`);
    }
  }
  const table =
    lines.join('\n') + (workers === undefined ? '' : `\n\n${workersTable(workers)}`) + (tarReader === undefined ? '' : `\n\n${tarReaderTable(tarReader)}`);
  console.log(`\nmedian of ${RUNS} run(s), ${os.cpus().length} CPUs, node ${process.version}, on ${fsName(work)}\n\n${table}`);
  fs.mkdirSync(path.join(repo, 'bench', 'out'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'bench', 'out', 'results.json'), JSON.stringify({ runs: RUNS, quick, rows, many, workers, tarReader }, null, 2));
  fs.writeFileSync(path.join(repo, 'bench', 'out', 'results.md'), table + '\n');
}

await main();
