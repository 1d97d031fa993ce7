/**
 * The README's first command: builds two example Windows layers (a base layer with a
 * UtilityVM, and a delta layer on top of it), imports them with the `winlayer` CLI into
 * a fresh store, lists the store, exports both layers and checks that each export is
 * byte-identical to the tar that was imported.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLayerTar, CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../src/convert/layer-tar-builder.js';
import { FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_READONLY, filetimeFromUnixNs } from '../src/util/windows.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.cjs');

const sd = CRANE_SECURITY_DESCRIPTOR;
const old = { creationTime: filetimeFromUnixNs(-86_400_000_000_000n * 365n), lastWriteTime: filetimeFromUnixNs(1_000_000_000_123_456_700n) };

export const baseLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Hives' },
  { type: 'directory', name: 'Files/Windows', securityDescriptor: sd, extendedAttributes: [{ name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from([1, 2, 3]) }] },
  { type: 'directory', name: 'Files/Windows/System32', securityDescriptor: sd },
  { type: 'file', name: 'Files/Windows/System32/hello.txt', data: 'hello from a Windows layer\r\n', securityDescriptor: sd, times: old },
  {
    type: 'file',
    name: 'Files/Windows/System32/notepad.exe',
    data: Buffer.alloc(100_000, 0x90),
    securityDescriptor: sd,
    attributes: FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_READONLY,
    streams: [{ name: 'Zone.Identifier', data: '[ZoneTransfer]\r\nZoneId=3\r\n' }],
  },
  { type: 'file', name: 'Files/Windows/System32/empty.dat', data: '', attributes: FILE_ATTRIBUTE_HIDDEN },
  { type: 'file', name: 'Files/Windows/System32/Ünïcødé 𝄞.txt', data: 'non-BMP names survive' },
  { type: 'symlink', name: 'Files/Windows/System32/hello-link.txt', target: 'hello.txt' },
  { type: 'symlink', name: 'Files/Documents and Settings', target: 'C:\\Users', isMountPoint: true },
  { type: 'file', name: 'Hives/System_Delta', data: Buffer.from('regf-example-hive') },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'directory', name: 'UtilityVM/Files/EFI' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft' },
  { type: 'directory', name: 'UtilityVM/Files/EFI/Microsoft/Boot' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'boot configuration', securityDescriptor: sd },
  { type: 'file', name: 'UtilityVM/Files/kernel.bin', data: Buffer.alloc(4096, 7), securityDescriptor: sd },
];

export const deltaLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Hives' },
  { type: 'file', name: 'Hives/Software_Delta', data: 'software hive delta' },
  { type: 'directory', name: 'Files/Windows' },
  { type: 'directory', name: 'Files/Windows/System32' },
  { type: 'file', name: 'Files/Windows/System32/hello.txt', data: 'hello, changed in the delta layer\r\n', securityDescriptor: sd },
  { type: 'whiteout', name: 'Files/Windows/System32/empty.dat' },
  { type: 'link', name: 'Files/Windows/System32/notepad-link.exe', target: 'Files/Windows/System32/notepad.exe' },
  { type: 'directory', name: 'UtilityVM' },
  { type: 'directory', name: 'UtilityVM/Files' },
  { type: 'file', name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'boot configuration, updated', securityDescriptor: sd },
];

function run(args: string[], input?: Buffer): Buffer {
  const r = spawnSync(process.execPath, [cli, ...args], { input, maxBuffer: 1 << 30 });
  process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`winlayer ${args[0]} exited with ${r.status}`);
  return r.stdout;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'winlayer-example-'));
  const home = path.join(work, 'store');
  const base = await buildLayerTar(baseLayer);
  const delta = await buildLayerTar(deltaLayer);
  fs.writeFileSync(path.join(work, 'base.tar'), base);
  fs.writeFileSync(path.join(work, 'delta.tar'), delta);
  console.log(`example layers in ${work}: base.tar (${base.length} bytes), delta.tar (${delta.length} bytes)`);

  console.log('\n$ winlayer import --home store --id base --json < base.tar');
  process.stdout.write(run(['import', '--home', home, '--id', 'base', '--json'], base));
  console.log('$ winlayer import --home store --id delta --parent base --json < delta.tar');
  process.stdout.write(run(['import', '--home', home, '--id', 'delta', '--parent', 'base', '--json'], delta));
  console.log('$ winlayer ls --home store');
  process.stdout.write(run(['ls', '--home', home]));

  let ok = true;
  for (const [id, original] of [['base', base], ['delta', delta]] as const) {
    const exported = run(['export', '--home', home, '--id', id]);
    const same = exported.equals(original);
    ok &&= same;
    console.log(`export ${id}: ${exported.length} bytes, sha256 ${sha(exported)}… ${same ? 'byte-identical to the imported tar' : 'DIFFERS from the imported tar'}`);
  }
  if (!ok) {
    process.exitCode = 1;
    return;
  }
  console.log('round trip OK');

  // A Windows layer made on this machine from a directory edit.
  console.log('\n$ winlayer create-rw --home store --id work --parent delta && winlayer mount --home store --id work');
  run(['create-rw', '--home', home, '--id', 'work', '--parent', 'delta']);
  const dir = run(['mount', '--home', home, '--id', 'work']).toString().trim();
  console.log(dir);
  fs.writeFileSync(path.join(dir, 'Windows', 'System32', 'new.ini'), '[added]\r\n');
  fs.rmSync(path.join(dir, 'Windows', 'System32', 'notepad.exe'));
  console.log('(added Windows/System32/new.ini, deleted Windows/System32/notepad.exe)\n$ winlayer changes --home store --id work');
  process.stdout.write(run(['changes', '--home', home, '--id', 'work']));
  const built = run(['export', '--home', home, '--id', 'work']);
  run(['unmount', '--home', home, '--id', 'work']);
  console.log(`$ winlayer export --home store --id work > work.tar   (${built.length} bytes)\n$ winlayer import --home store --id built --parent delta < work.tar`);
  process.stdout.write(run(['import', '--home', home, '--id', 'built', '--parent', 'delta'], built));
  const view = run(['mount', '--home', home, '--id', 'built']).toString().trim();
  const good = fs.readFileSync(path.join(view, 'Windows', 'System32', 'new.ini'), 'utf8') === '[added]\r\n' && !fs.existsSync(path.join(view, 'Windows', 'System32', 'notepad.exe'));
  run(['unmount', '--home', home, '--id', 'built']);
  if (!good) {
    console.log('the imported layer does not show the edit');
    process.exitCode = 1;
    return;
  }
  console.log(`the new layer's view shows the edit; the store is in ${home}`);
}

await main();
