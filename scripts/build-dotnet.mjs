#!/usr/bin/env node
/**
 * Builds the native helper, dotnet/bin/WinLayer.Native.dll, from dotnet/src/*.cs.
 *
 * Compilers, in order: on Windows `csc` on PATH, the Roslyn csc that ships with Visual
 * Studio / Build Tools (found with vswhere), then the .NET Framework's own csc (C# 5,
 * which is why the sources stay within C# 5); elsewhere Mono's `mcs` (Debian:
 * mono-devel). With no compiler the build prints a note and succeeds: the helper is only
 * needed by the edge backend, which then reports ERR_NATIVE_UNAVAILABLE.
 *
 * Usage: node scripts/build-dotnet.mjs [--force] [--require]
 *   --force    rebuild even when the DLL is newer than every source
 *   --require  fail (exit 1) when no compiler is found
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'dotnet', 'src');
const outDir = path.join(root, 'dotnet', 'bin');
const outFile = path.join(outDir, 'WinLayer.Native.dll');
const args = new Set(process.argv.slice(2));

/** True when `cmd` runs (exit status 0 or a usage error, but not "not found"). */
function runs(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: 'ignore', shell: false, windowsHide: true });
  return r.error === undefined;
}

function findWindowsCompiler() {
  if (runs('csc', ['-help'])) return 'csc';
  const programFilesX86 = process.env['ProgramFiles(x86)'] ?? 'C:\\Program Files (x86)';
  const vswhere = path.join(programFilesX86, 'Microsoft Visual Studio', 'Installer', 'vswhere.exe');
  if (fs.existsSync(vswhere)) {
    const r = spawnSync(vswhere, ['-latest', '-products', '*', '-requires', 'Microsoft.Component.MSBuild', '-find', 'MSBuild\\**\\Roslyn\\csc.exe'], {
      encoding: 'utf8',
      windowsHide: true,
    });
    const found = (r.stdout ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => l.endsWith('csc.exe') && fs.existsSync(l));
    if (found !== undefined) return found;
  }
  const windir = process.env.WINDIR ?? 'C:\\Windows';
  for (const fw of ['Framework64', 'Framework']) {
    const csc = path.join(windir, 'Microsoft.NET', fw, 'v4.0.30319', 'csc.exe');
    if (fs.existsSync(csc)) return csc;
  }
  return undefined;
}

function findCompiler() {
  if (process.platform === 'win32') return findWindowsCompiler();
  return runs('mcs', ['--version']) ? 'mcs' : undefined;
}

const sources = fs
  .readdirSync(srcDir)
  .filter((f) => f.endsWith('.cs'))
  .sort()
  .map((f) => path.join(srcDir, f));

if (!args.has('--force') && fs.existsSync(outFile)) {
  const built = fs.statSync(outFile).mtimeMs;
  const self = fs.statSync(fileURLToPath(import.meta.url)).mtimeMs;
  if (sources.every((s) => fs.statSync(s).mtimeMs <= built) && self <= built) {
    console.log(`dotnet: ${path.relative(root, outFile)} is up to date`);
    process.exit(0);
  }
}

const compiler = findCompiler();
if (compiler === undefined) {
  const how = process.platform === 'win32' ? 'the .NET Framework 4.x (csc.exe) or Visual Studio Build Tools' : 'Mono (Debian/Ubuntu: apt-get install mono-devel; macOS: brew install mono)';
  console.log(`dotnet: no C# compiler found, so ${path.relative(root, outFile)} was not built; install ${how} to use the edge backend.`);
  process.exit(args.has('--require') ? 1 : 0);
}

fs.mkdirSync(outDir, { recursive: true });
const flags = [
  '-nologo',
  '-target:library',
  '-langversion:5',
  '-optimize+',
  '-warn:4',
  // Warnings fail the build with the compiler the sources are checked with; other csc
  // versions add their own (and runner environments add LIB path ones), so there they are shown only.
  ...(compiler === 'mcs' ? ['-warnaserror+'] : []),
  `-out:${outFile}`,
  '-r:System.dll',
  '-r:System.Core.dll',
];
const r = spawnSync(compiler, [...flags, ...sources], { stdio: 'inherit', windowsHide: true });
if (r.error !== undefined) {
  console.error(`dotnet: cannot run ${compiler}: ${r.error.message}`);
  process.exit(1);
}
if (r.status !== 0) {
  console.error(`dotnet: ${compiler} failed with exit code ${r.status}`);
  process.exit(r.status ?? 1);
}
console.log(`dotnet: built ${path.relative(root, outFile)} with ${path.basename(compiler)}`);
