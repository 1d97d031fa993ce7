/** The `winlayer` command as a subprocess user sees it: stdout data, stderr diagnostics, exit codes. */
import { expect } from 'chai';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildLayerTar, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { processAlive } from '../../src/store/layer-store.js';
import { compileBundle, readCodeCache } from '../../src/util/start-bundle.cjs';
import { baseLayer, deltaLayer, filesLayer } from '../helpers/layers.js';
import { cleanupTemp, importTar, openStore, storeEntries, tempDir, unremovablePreload } from '../helpers/store.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.cjs');

function run(args: string[], input?: Buffer): SpawnSyncReturns<Buffer> {
  return spawnSync(process.execPath, [cli, ...args], { input: input ?? Buffer.alloc(0), maxBuffer: 1 << 26 });
}

function lastJson(buf: Buffer): Record<string, unknown> {
  return JSON.parse(buf.toString().trimEnd().split('\n').pop() as string) as Record<string, unknown>;
}

describe('cli: winlayer', function () {
  this.timeout(120_000);
  after(cleanupTemp);

  it('runs the bundle the build made, with its code cache, which answers as the compiled modules do', async function () {
    const cliDir = path.dirname(cli);
    const bundle = path.join(cliDir, 'bundle.cjs');
    if (!fs.existsSync(bundle)) {
      // A build without esbuild (no dev dependencies) makes no bundle; the test command always has it.
      if (process.env.CI === 'true') throw new Error(`${bundle} was not built`);
      this.skip();
    }
    // The build's code cache is for this bundle and this Node: V8 accepts it.
    const cache = readCodeCache(bundle, []);
    expect(cache, 'an intact code cache').to.not.equal(undefined);
    expect(compileBundle(bundle, fs.readFileSync(bundle, 'utf8'), cache).cachedDataRejected).to.equal(false);

    const home = tempDir();
    expect(run(['import', '--home', home, '--id', 'base', '--json'], await buildLayerTar(baseLayer)).status).to.equal(0);
    const startBundleModule = path.join(cliDir, '..', 'util', 'start-bundle.cjs');
    const via = (file: string, args: string[]): { status: number | null; stdout: string; stderr: string } => {
      const load =
        file === bundle
          ? `Promise.resolve(require(${JSON.stringify(startBundleModule)}).startBundle(${JSON.stringify(file)}))`
          : `import(${JSON.stringify(pathToFileURL(file).href)})`;
      const code = `${load}.then((m) => m.main(${JSON.stringify(args)})).then((c) => { process.exitCode = c; });`;
      const r = spawnSync(process.execPath, ['-e', code], { input: Buffer.alloc(0) });
      return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    };
    for (const args of [['ls', '--home', home, '--json'], ['exists', '--home', home, '--id', 'base'], ['remove', '--home', home, '--id', 'nope', '--json'], ['status', '--home', home], ['frobnicate']]) {
      const modules = via(path.join(cliDir, 'cli.js'), args);
      expect(modules.status, args.join(' ')).to.not.equal(null);
      expect(via(bundle, args), args.join(' ')).to.deep.equal(modules);
    }
  });

  it('prints help for the tool and for every command, exit 0; a wrong command line exits 2', () => {
    const help = run(['--help']);
    expect(help.status).to.equal(0);
    const commands = ['import', 'export', 'create', 'create-rw', 'remove', 'exists', 'ls', 'changes', 'diff-size', 'mount', 'unmount', 'cleanup', 'status'];
    for (const c of commands) {
      expect(help.stdout.toString()).to.include(`  ${c} `);
      const h = run([c, '--help']);
      expect(h.status, c).to.equal(0);
      expect(h.stdout.toString()).to.include(`winlayer ${c}`);
    }
    // No command, and words after --help or --version, are wrong command lines: one stderr line, stdout empty.
    for (const args of [[], ['--version', 'extra'], ['--version', '--bogus'], ['--help', 'ls'], ['import', '--help', 'extra'], ['ls', '-h', '--home']]) {
      const r = run([...args]);
      expect({ status: r.status, stdout: r.stdout.length, lines: r.stderr.toString().trimEnd().split('\n').length }, args.join(' ')).to.deep.equal({ status: 2, stdout: 0, lines: 1 });
      expect(r.stderr.toString(), args.join(' ')).to.include('ERR_ARGUMENT_INVALID');
    }
    // An empty --parent is not "no parent".
    for (const args of [['create', '--home', tempDir(), '--id', 'c', '--parent', ''], ['import', '--home', tempDir(), '--id', 'c', '--parent='], ['create-rw', '--home', tempDir(), '--id', 'c', '--parent', '']]) {
      const r = run([...args, '--json']);
      expect({ status: r.status, code: lastJson(r.stderr)['code'] }, args.join(' ')).to.deep.equal({ status: 2, code: 'ERR_ARGUMENT_INVALID' });
    }
    expect(run(['frobnicate']).status).to.equal(2);
    expect(run(['ls', '--bogus']).status).to.equal(2);
    // An option that takes a value is given once; --storage-opt, documented as repeatable, repeats.
    for (const args of [['import', '--home', tempDir(), '--id', 'c', '--id', 'd'], ['ls', '--home', tempDir(), '--home', tempDir()], ['create', '--home', tempDir(), '--id', 'c', '--parent=a', '--parent=b']]) {
      const r = run([...args, '--json']);
      expect({ status: r.status, code: lastJson(r.stderr)['code'] }, args.join(' ')).to.deep.equal({ status: 2, code: 'ERR_ARGUMENT_INVALID' });
    }
    const home = tempDir();
    expect(run(['create', '--home', home, '--id', 'p']).status).to.equal(0);
    expect(run(['create-rw', '--home', home, '--id', 'rw', '--parent', 'p', '--storage-opt', 'size=1g', '--storage-opt', 'size=2g']).status).to.equal(0);
    // The same code from the store's state is a failure (exit 1), not a wrong command line.
    const onRw = run(['create', '--home', home, '--id', 'c', '--parent', 'rw', '--json']);
    expect({ status: onRw.status, code: lastJson(onRw.stderr)['code'] }).to.deep.equal({ status: 1, code: 'ERR_ARGUMENT_INVALID' });
    const badId = run(['exists', '--home', tempDir(), '--id', '../etc', '--json']);
    expect(badId.status).to.equal(2);
    expect(lastJson(badId.stderr)['code']).to.equal('ERR_ID_INVALID');
    // A storage option that is not one is a wrong command line too.
    for (const opt of ['size=junk', 'color=red', 'size']) {
      const r = run(['create-rw', '--home', home, '--id', 'rw2', '--parent', 'p', '--storage-opt', opt, '--json']);
      expect({ status: r.status, code: lastJson(r.stderr)['code'] }, opt).to.deep.equal({ status: 2, code: 'ERR_ARGUMENT_INVALID' });
    }
    // A wrong command line creates no store.
    for (const c of ['changes', 'exists', 'diff-size', 'unmount', 'remove']) {
      const missing = path.join(tempDir(), 'not-yet');
      expect(run([c, '--home', missing, '--id', '../x']).status, c).to.equal(2);
      expect(fs.existsSync(missing), c).to.equal(false);
    }
  });

  it('prints one JSON document on success for the commands that otherwise print nothing', () => {
    const home = tempDir();
    const json = (args: string[]): unknown => {
      const r = run([...args, '--home', home, '--json']);
      expect(r.status, args.join(' ')).to.equal(0);
      return JSON.parse(r.stdout.toString());
    };
    expect(json(['create', '--id', 'p'])).to.deep.equal({ id: 'p', created: true });
    expect(json(['create-rw', '--id', 'rw', '--parent', 'p'])).to.deep.equal({ id: 'rw', created: true });
    expect(json(['mount', '--id', 'rw'])).to.have.property('path');
    expect(json(['unmount', '--id', 'rw'])).to.deep.equal({ id: 'rw', unmounted: true });
    expect(json(['remove', '--id', 'rw'])).to.deep.equal({ id: 'rw', removed: true });
    // Without --json, nothing.
    expect(run(['create', '--home', home, '--id', 'q']).stdout.length).to.equal(0);
  });

  it('reads a directory given as stdin as the error it is (ERR_IO, EISDIR), not as an empty tar', () => {
    const home = tempDir();
    const fd = fs.openSync(tempDir(), 'r');
    try {
      const r = spawnSync(process.execPath, [cli, 'import', '--home', home, '--id', 'x', '--json'], { stdio: [fd, 'pipe', 'pipe'] });
      const e = lastJson(r.stderr);
      expect({ status: r.status, code: e['code'], errno: (e['data'] as Record<string, unknown>)['errno'] }).to.deep.equal({ status: 1, code: 'ERR_IO', errno: 'EISDIR' });
    } finally {
      fs.closeSync(fd);
    }
    expect(storeEntries(home).filter((n) => !n.startsWith('.'))).to.deep.equal([]);
  });

  it('leaves a pipe it shares as stdin blocking while it runs (another reader of it would get EAGAIN)', async function () {
    if (!fs.existsSync('/proc/self/fdinfo/0')) this.skip();
    const home = tempDir();
    expect(run(['import', '--home', home, '--id', 'm'], await buildLayerTar(filesLayer(8, 1024))).status).to.equal(0);
    const node = JSON.stringify(process.execPath);
    // While the export runs, a process sharing its stdin pipe reads the pipe's flags every few
    // milliseconds for two seconds, and prints the union of what it saw.
    const poll =
      "let seen = 0; const end = Date.now() + 2000; while (Date.now() < end) { seen |= parseInt(/^flags:\\s*(\\d+)/m.exec(require('fs').readFileSync('/proc/self/fdinfo/0', 'latin1'))[1], 8); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3); } process.stdout.write(String(seen));";
    const script = `sleep 4 | ( ${node} ${JSON.stringify(cli)} export --home ${JSON.stringify(home)} --id m | (sleep 1; cat) >/dev/null & ${node} -e ${JSON.stringify(poll)}; wait )`;
    // bash, since dash gives a job started with & /dev/null as its stdin.
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(Number(r.stdout) & fs.constants.O_NONBLOCK, `flags ${r.stdout}`).to.equal(0);
  });

  it('on a terminal, ends the progress line before printing the size', async function () {
    // `script` (util-linux) gives the command a terminal.
    if (spawnSync('script', ['--version']).status !== 0) this.skip();
    const home = tempDir();
    const file = path.join(tempDir(), 'layer.tar');
    fs.writeFileSync(file, await buildLayerTar(filesLayer(40, 64 * 1024)));
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} import --home ${JSON.stringify(home)} --id t < ${JSON.stringify(file)}`;
    const env = { ...process.env };
    delete env['CI']; // the progress line stays off in CI logs
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input: Buffer.alloc(0), env });
    expect(r.status).to.equal(0);
    const screen = r.stdout.toString();
    expect(screen, 'a progress line was drawn').to.include('100%');
    const size = String(40 * 64 * 1024);
    // The size starts a line of its own: the progress line before it ended with a newline.
    expect(screen).to.match(new RegExp(`\\n${size}\\r?\\n`));
  });

  it("prints the package's version for --version, -V and version, exit 0", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(cli), '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', 'version']) {
      const r = run([flag]);
      expect([r.status, r.stdout.toString()], flag).to.deep.equal([0, `winlayer ${pkg.version}\n`]);
    }
  });

  it('imports a tar+gzip blob from a file or a pipe as the tar it holds, and names a compression it cannot read', async () => {
    const tar = await buildLayerTar(baseLayer);
    const home = tempDir();
    const file = path.join(tempDir(), 'layer.tar.gz');
    fs.writeFileSync(file, gzipSync(tar));
    const plain = run(['import', '--home', home, '--id', 'plain', '--json'], tar);
    const fd = fs.openSync(file, 'r');
    const fromFile = spawnSync(process.execPath, [cli, 'import', '--home', home, '--id', 'file', '--json'], { stdio: [fd, 'pipe', 'pipe'] });
    fs.closeSync(fd);
    const fromPipe = run(['import', '--home', home, '--id', 'pipe', '--json'], gzipSync(tar));
    const summary = (r: SpawnSyncReturns<Buffer>): unknown => {
      const { id: _id, ...rest } = lastJson(r.stdout);
      return { status: r.status, ...rest };
    };
    expect(summary(fromFile)).to.deep.equal(summary(plain));
    expect(summary(fromPipe)).to.deep.equal(summary(plain));
    expect(run(['export', '--home', home, '--id', 'file']).stdout.equals(tar)).to.equal(true);
    const xz = run(['import', '--home', home, '--id', 'xz', '--json'], Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]));
    expect({ status: xz.status, code: lastJson(xz.stderr)['code'] }).to.deep.equal({ status: 1, code: 'ERR_COMPRESSION_UNSUPPORTED' });
  });

  it('imports, lists, exports, and drives every operation of the driver', async () => {
    const home = path.join(tempDir(), 'home');
    const base = await buildLayerTar(baseLayer);
    const delta = await buildLayerTar(deltaLayer);
    const imp = run(['import', '--home', home, '--id', 'base', '--json'], base);
    expect(imp.status, imp.stderr.toString()).to.equal(0);
    expect(JSON.parse(imp.stdout.toString())).to.deep.equal({ id: 'base', size: 3017, entries: 10, digest: 'sha256:' + createHash('sha256').update(base).digest('hex') });
    expect(imp.stderr.toString(), 'no progress when stderr is not a terminal').to.equal('');
    const imp2 = run(['import', '--home', home, '--id', 'delta', '--parent', 'base'], delta);
    expect(imp2.stdout.toString()).to.equal('19\n');

    const exp = run(['export', '--home', home, '--id', 'delta']);
    expect(exp.status).to.equal(0);
    expect(Buffer.compare(exp.stdout, delta)).to.equal(0);

    const ls = JSON.parse(run(['ls', '--home', home, '--json']).stdout.toString()) as { id: string; parent: string | null; kind: string }[];
    expect(ls.map((l) => [l.id, l.parent, l.kind])).to.deep.equal([
      ['base', null, 'read-only'],
      ['delta', 'base', 'read-only'],
    ]);
    expect(run(['exists', '--home', home, '--id', 'delta']).stdout.toString()).to.equal('true\n');
    expect(run(['exists', '--home', home, '--id', 'nope']).stdout.toString()).to.equal('false\n');
    expect(run(['changes', '--home', home, '--id', 'delta']).stdout.toString()).to.include('D Files/Program Files\n');
    expect(run(['changes', '--home', home, '--id', 'delta']).stdout.toString()).to.include('A Files/Windows/added.txt\n');
    expect(run(['diff-size', '--home', home, '--id', 'delta']).stdout.toString()).to.equal('19\n');

    const mnt = run(['mount', '--home', home, '--id', 'delta']);
    const dir = mnt.stdout.toString().trim();
    expect(fs.readFileSync(path.join(dir, 'Windows/added.txt'), 'utf8')).to.equal('added');
    expect(run(['unmount', '--home', home, '--id', 'delta']).status).to.equal(0);
    expect(fs.existsSync(dir)).to.equal(false);

    expect(run(['create-rw', '--home', home, '--id', 'rw', '--parent', 'delta', '--storage-opt', 'size=1g']).status).to.equal(0);
    const rwDir = run(['mount', '--home', home, '--id', 'rw']).stdout.toString().trim();
    expect(run(['changes', '--home', home, '--id', 'rw', '--json']).stdout.toString()).to.equal('[]\n');
    expect(run(['changes', '--home', home, '--id', 'rw']).stdout.toString()).to.equal('');
    fs.writeFileSync(path.join(rwDir, 'hello.txt'), 'hello');
    fs.writeFileSync(path.join(rwDir, 'hello2.txt'), 'hello');
    expect(run(['changes', '--home', home, '--id', 'rw', '--json']).stdout.toString()).to.equal('[{"path":"Files/hello.txt","kind":"add"},{"path":"Files/hello2.txt","kind":"add"}]\n');
    expect(run(['changes', '--home', home, '--id', 'rw']).stdout.toString()).to.equal('A Files/hello.txt\nA Files/hello2.txt\n');
    fs.rmSync(path.join(rwDir, 'hello2.txt'));
    const rwTar = run(['export', '--home', home, '--id', 'rw']).stdout;
    expect(run(['import', '--home', home, '--id', 'from-rw', '--parent', 'delta'], rwTar).stdout.toString()).to.equal('5\n');
    expect(run(['unmount', '--home', home, '--id', 'rw']).status).to.equal(0);
    expect(run(['remove', '--home', home, '--id', 'rw']).status).to.equal(0);

    const bad = run(['remove', '--home', home, '--id', 'base', '--json']);
    expect(bad.status).to.equal(1);
    expect(lastJson(bad.stderr)['code']).to.equal('ERR_LAYER_IN_USE');

    const status = JSON.parse(run(['status', '--home', home, '--json']).stdout.toString()) as Record<string, string>;
    expect(status['Read-only layers']).to.equal('3');
    fs.mkdirSync(path.join(home, 'zz-importing-999999999-0000'));
    expect(JSON.parse(run(['cleanup', '--home', home, '--json']).stdout.toString())).to.deep.equal({ removed: ['zz-importing-999999999-0000'] });
  });

  it('a leftover that cannot be removed fails no other command; cleanup prints what it removed and names the rest', async () => {
    const home = path.join(tempDir(), 'home');
    expect(run(['import', '--home', home, '--id', 'base'], await buildLayerTar(baseLayer)).status).to.equal(0);
    fs.mkdirSync(path.join(home, 'stuck-removing', 'sub'), { recursive: true });
    // rmdir of that directory fails (EBUSY) in these commands, as under a mount point.
    const preload = unremovablePreload(['stuck-removing']);
    const stuck = (args: string[], input?: Buffer): SpawnSyncReturns<Buffer> => spawnSync(process.execPath, ['--require', preload, cli, ...args], { input: input ?? Buffer.alloc(0) });
    const ok = (args: string[], input?: Buffer): string => {
      const r = stuck([...args, '--home', home], input);
      expect(r.status, `${args.join(' ')}: ${r.stderr.toString()}`).to.equal(0);
      return r.stdout.toString();
    };
    expect(ok(['ls'])).to.include('base');
    expect(ok(['exists', '--id', 'base'])).to.equal('true\n');
    ok(['status']);
    ok(['import', '--id', 'delta', '--parent', 'base'], await buildLayerTar(deltaLayer));
    ok(['mount', '--id', 'delta']);
    ok(['unmount', '--id', 'delta']);
    ok(['remove', '--id', 'delta']);
    expect(fs.existsSync(path.join(home, 'stuck-removing'))).to.equal(true);
    fs.mkdirSync(path.join(home, 'gone-removing'));
    const r = stuck(['cleanup', '--home', home, '--json']);
    expect(r.status).to.equal(1);
    expect(JSON.parse(r.stdout.toString())).to.deep.equal({ removed: ['gone-removing'] });
    const error = lastJson(r.stderr);
    expect(error['code']).to.equal('ERR_CLEANUP_INCOMPLETE');
    expect(error['data']).to.include({ errno: 'EBUSY' });
    expect((error['data'] as Record<string, unknown>)['remaining']).to.deep.equal(['stuck-removing']);
    // Once it can go, it does.
    expect(run(['cleanup', '--home', home]).stdout.toString()).to.equal('stuck-removing\n');
  });

  it('names the entry and the error code on one stderr line, exit 1, nothing left behind', async () => {
    const home = path.join(tempDir(), 'home');
    const tar = await buildLayerTar([{ type: 'raw', header: { name: 'Files/../../escape', typeflag: '0', size: 0, mode: 0o100644, mtime: 0n, format: 'pax' } }]);
    const r = run(['import', '--home', home, '--id', 'x'], tar);
    expect(r.status).to.equal(1);
    const lines = r.stderr.toString().trimEnd().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include('ERR_PATH_ESCAPE');
    expect(lines[0]).to.include('Files/../../escape');
    expect(storeEntries(home).filter((n) => n !== '.mounts')).to.deep.equal([]);
    const j = run(['import', '--home', home, '--id', 'x', '--json'], Buffer.from('garbage'));
    expect(lastJson(j.stderr)['code']).to.equal('ERR_TAR_TRUNCATED');
  });

  it('takes what follows -- as positional: --help and --json there are not options', () => {
    const home = path.join(tempDir(), 'home');
    const help = run(['exists', '--home', home, '--id', 'x', '--', '--help']);
    expect([help.status, help.stdout.toString()]).to.deep.equal([2, '']);
    expect(help.stderr.toString()).to.include('ERR_ARGUMENT_INVALID');
    const json = run(['ls', '--home', home, '--', '--json']);
    expect(json.status).to.equal(2);
    expect(json.stderr.toString().startsWith('winlayer ls: ERR_ARGUMENT_INVALID')).to.equal(true);
  });

  it('keeps an entry name with control or line-separating characters from forging or splitting its error line', async () => {
    const home = path.join(tempDir(), 'home');
    // An orphan stream named with a carriage return and a terminal escape (they would redraw
    // the line on a terminal), and a duplicate named with U+2028 and U+0085 (legal on Windows,
    // a line end for Python's splitlines and others).
    const orphan = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'raw', header: { name: 'Files/a\rwinlayer import: ok\u001b[2K\u202ek\u061c\u2060:s', typeflag: '0', size: 0, mode: 0o100644, mtime: 0n, format: 'pax' } },
    ]);
    const duplicate = await buildLayerTar([
      { type: 'directory', name: 'Files' },
      { type: 'file', name: 'Files/A\u2028\u0085B', data: '1' },
      { type: 'file', name: 'Files/a\u2028\u0085b', data: '2' },
    ]);
    for (const [title, tar, code] of [['orphan', orphan, 'ERR_ADS_ORPHAN'], ['duplicate', duplicate, 'ERR_ENTRY_DUPLICATE']] as const) {
      const text = run(['import', '--home', home, '--id', 'x'], tar);
      expect(text.status, title).to.equal(1);
      const line = text.stderr.toString();
      expect(line.endsWith('\n') && line.indexOf('\n') === line.length - 1, title).to.equal(true);
      expect(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u2028-\u202e\u2060]/.test(line), title).to.equal(false);
      expect(line, title).to.include(code);
      const json = run(['import', '--home', home, '--id', 'x', '--json'], tar).stderr.toString();
      expect(json.split(/\r\n|[\n\r\u0085\u2028\u2029]/).filter((l) => l !== ''), title).to.have.length(1);
      const error = lastJson(Buffer.from(json));
      expect(error['code'], title).to.equal(code);
      // The same name, once parsed.
      expect(String((error['data'] as Record<string, unknown>)['entry']), title).to.match(title === 'orphan' ? /\r/ : /\u2028\u0085/);
    }
  });

  /** Runs the CLI with its stdout on /dev/full, where every write fails with ENOSPC. */
  function runToFull(args: string[], input?: Buffer, env?: NodeJS.ProcessEnv): SpawnSyncReturns<Buffer> {
    const full = fs.openSync('/dev/full', 'w');
    try {
      return spawnSync(process.execPath, [cli, ...args], { stdio: ['pipe', full, 'pipe'], input: input ?? Buffer.alloc(0), ...(env === undefined ? {} : { env: { ...process.env, ...env } }) });
    } finally {
      fs.closeSync(full);
    }
  }

  /** Processes (other than this one) whose command line names `home`: the workers of a store. */
  function processesOf(home: string): string[] {
    const found: string[] = [];
    for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid)) {
      try {
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
        if (cmdline.includes(home)) found.push(`${pid}: ${cmdline}`);
      } catch {
        // it exited meanwhile
      }
    }
    return found;
  }

  it('a failed write to stdout is one ERR_IO line naming stdout and its errno, exit 1, for every command that prints', async function () {
    if (!fs.existsSync('/dev/full')) this.skip();
    const home = path.join(tempDir(), 'home');
    const tar = await buildLayerTar(baseLayer);
    expect(run(['import', '--home', home, '--id', 'base'], tar).status).to.equal(0);
    const cases: [string[], (Buffer | undefined)?, NodeJS.ProcessEnv?][] = [
      [['--version']],
      [['--help']],
      [['ls', '--help']],
      [['ls', '--home', home]],
      [['exists', '--home', home, '--id', 'base']],
      [['changes', '--home', home, '--id', 'base']],
      [['status', '--home', home]],
      // The worker writes the tar to the CLI's stdout itself; and in process, through a stream.
      [['export', '--home', home, '--id', 'base']],
      [['export', '--home', home, '--id', 'base'], undefined, { WINLAYER_NOREEXEC: '1' }],
      [['import', '--home', home, '--id', 'imported'], tar],
    ];
    for (const [args, input, env] of cases) {
      const r = runToFull(args, input, env);
      const lines = r.stderr.toString().trimEnd().split('\n');
      expect({ status: r.status, lines: lines.length }, args.join(' ')).to.deep.equal({ status: 1, lines: 1 });
      expect(lines[0], args.join(' ')).to.include('ERR_IO');
      expect(lines[0], args.join(' ')).to.not.match(/\n|^\s+at /m);
      const j = runToFull([...args, '--json'], input, env);
      if (args.includes('import')) expect(lastJson(j.stderr)['code'], 'the id is taken: the first import committed').to.equal('ERR_LAYER_EXISTS');
      else expect({ status: j.status, ...(lastJson(j.stderr)['data'] as object) }, args.join(' ')).to.deep.include({ status: 1, errno: 'ENOSPC', stream: 'stdout' });
    }
    // An import whose size could not be printed keeps its layer: it is whole.
    expect(run(['exists', '--home', home, '--id', 'imported']).stdout.toString()).to.equal('true\n');
    // A command with nothing to print writes nothing: a clean store's cleanup succeeds.
    expect(runToFull(['cleanup', '--home', home]).status).to.equal(0);
  });

  it('a mount whose directory could not be printed is undone: the layer is not left mounted', async function () {
    if (!fs.existsSync('/dev/full')) this.skip();
    const home = path.join(tempDir(), 'home');
    expect(run(['import', '--home', home, '--id', 'base'], await buildLayerTar(baseLayer)).status).to.equal(0);
    expect(run(['create-rw', '--home', home, '--id', 'rw', '--parent', 'base']).status).to.equal(0);
    for (const id of ['base', 'rw']) {
      const r = runToFull(['mount', '--home', home, '--id', id, '--json']);
      expect({ status: r.status, code: lastJson(r.stderr)['code'] }, id).to.deep.equal({ status: 1, code: 'ERR_IO' });
      const ls = JSON.parse(run(['ls', '--home', home, '--json']).stdout.toString()) as { id: string; mounted: number }[];
      expect(ls.find((l) => l.id === id)?.mounted, id).to.equal(0);
    }
    expect(fs.existsSync(path.join(home, '.mounts', 'base')), 'no view left').to.equal(false);
    expect(run(['remove', '--home', home, '--id', 'rw']).status).to.equal(0);
    expect(run(['remove', '--home', home, '--id', 'base']).status).to.equal(0);
  });

  /**
   * Runs the CLI with a pipe as stdout, reads its first chunk and closes the pipe, as
   * `| head -c N` does; resolves to its exit status, its stderr and how long it took to
   * exit once the pipe was closed.
   */
  async function readOneChunk(args: string[]): Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number; chunk: number }> {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let closedAt = 0;
    let chunk = 0;
    child.stdout.once('data', (d: Buffer) => {
      chunk = d.length;
      closedAt = Date.now();
      child.stdout.destroy();
    });
    const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (code, sig) => resolve([code, sig])));
    return { status, signal, stderr, ms: Date.now() - closedAt, chunk };
  }

  it('a wrong command line is one: an unknown option before --help exits 2, `winlayer --json` answers in JSON; unmount says whether it released a mount', async () => {
    for (const words of [['import', '--bogus', '--help'], ['ls', '-x', '--help'], ['ls', 'foo', '--help'], ['ls', '--json=1', '--help'], ['import', '--id', '--help']]) {
      expect(run(words).status, words.join(' ')).to.equal(2);
    }
    expect(run(['import', '--id', 'x', '--help']).status).to.equal(0);
    expect(run(['import', '--json', '--help']).status).to.equal(0);
    const json = run(['--json']);
    expect(json.status).to.equal(2);
    expect(lastJson(json.stderr)['code']).to.equal('ERR_ARGUMENT_INVALID');
    const home = path.join(tempDir(), 'home');
    const none = run(['unmount', '--home', home, '--id', 'nosuch', '--json']);
    expect([none.status, JSON.parse(none.stdout.toString())]).to.deep.equal([0, { id: 'nosuch', unmounted: false }]);
    expect(run(['import', '--home', home, '--id', 'base'], await buildLayerTar(baseLayer)).status).to.equal(0);
    expect(run(['mount', '--home', home, '--id', 'base']).status).to.equal(0);
    expect(JSON.parse(run(['unmount', '--home', home, '--id', 'base', '--json']).stdout.toString())).to.deep.equal({ id: 'base', unmounted: true });
    expect(JSON.parse(run(['unmount', '--home', home, '--id', 'base', '--json']).stdout.toString())).to.deep.equal({ id: 'base', unmounted: false });
  });

  it('a layer this user may not read exports as ERR_IO with EACCES, not as a damaged layer, and whole once it may', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const nobody = 65534;
    const home = path.join(tempDir(), 'home');
    const tar = await buildLayerTar(baseLayer);
    expect(run(['import', '--home', home, '--id', 'base'], tar).status).to.equal(0);
    const exported = run(['export', '--home', home, '--id', 'base']).stdout;
    fs.chmodSync(path.dirname(home), 0o755);
    const chown = (dir: string): void => {
      fs.lchownSync(dir, nobody, nobody);
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
        if (d.isDirectory()) chown(path.join(dir, d.name));
        else fs.lchownSync(path.join(dir, d.name), nobody, nobody);
      }
    };
    chown(home);
    const asNobody = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { input: Buffer.alloc(0), maxBuffer: 1 << 26, uid: nobody, gid: nobody });
    const dataFile = path.join(home, 'base', 'Files', 'Program Files', 'app.exe');
    expect(fs.statSync(dataFile).isFile()).to.equal(true);
    for (const file of [dataFile, path.join(home, 'base', '.winlayer', 'layer.json')]) {
      const mode = fs.statSync(file).mode & 0o777;
      fs.chmodSync(file, 0);
      const r = asNobody(['export', '--home', home, '--id', 'base', '--json']);
      expect(r.status, path.basename(file)).to.equal(1);
      const e = lastJson(r.stderr);
      expect([e['code'], (e['data'] as Record<string, unknown>)['errno']], path.basename(file)).to.deep.equal(['ERR_IO', 'EACCES']);
      fs.chmodSync(file, mode);
    }
    const whole = asNobody(['export', '--home', home, '--id', 'base']);
    expect(whole.status).to.equal(0);
    expect(whole.stdout.equals(exported)).to.equal(true);
  });

  it('a stored file that is not a file (a directory, a FIFO) is a damaged layer, in a worker and in process, and never waits', async () => {
    for (const [what, make] of [
      ['Files/Windows/win.ini', 'dir'],
      ['.winlayer/entries.jsonl', 'dir'],
      ['layerchain.json', 'dir'],
      ['Files/Program Files/app.exe', 'fifo'],
      ['Hives/System_Delta', 'fifo'],
    ] as const) {
      const home = path.join(tempDir(), 'home');
      expect(run(['import', '--home', home, '--id', 'base'], await buildLayerTar(baseLayer)).status).to.equal(0);
      const file = path.join(home, 'base', what);
      fs.rmSync(file);
      if (make === 'dir') fs.mkdirSync(file);
      else spawnSync('mkfifo', [file]);
      for (const env of [{}, { WINLAYER_NOREEXEC: '1' }]) {
        const r = spawnSync(process.execPath, [cli, 'export', '--home', home, '--id', 'base', '--json'], { input: Buffer.alloc(0), env: { ...process.env, ...env }, timeout: 30_000, maxBuffer: 1 << 26 });
        expect([r.status, lastJson(r.stderr)['code']], `${what} ${JSON.stringify(env)}`).to.deep.equal([1, 'ERR_LAYER_CORRUPT']);
      }
    }
  });

  it('a child import over a parent whose sidecar or tombstones is a FIFO or a directory says ERR_LAYER_CORRUPT at once', async () => {
    // An entry below Files/Windows with none for the directory: its attributes come from the parent's sidecar.
    const child = await buildLayerTar([{ type: 'file', name: 'Files/Windows/child.txt', data: 'c' }]);
    for (const [what, make] of [
      ['base/Files/Windows.$wcidirs$', 'fifo'],
      ['base/Files/Windows.$wcidirs$', 'dir'],
    ] as const) {
      const home = path.join(tempDir(), 'home');
      expect(run(['import', '--home', home, '--id', 'base'], await buildLayerTar(baseLayer)).status).to.equal(0);
      const file = path.join(home, what);
      fs.rmSync(file);
      if (make === 'dir') fs.mkdirSync(file);
      else spawnSync('mkfifo', [file]);
      const r = spawnSync(process.execPath, [cli, 'import', '--home', home, '--id', 'child', '--parent', 'base', '--json'], { input: child, timeout: 30_000, maxBuffer: 1 << 26 });
      expect([r.status, lastJson(r.stderr)['code']], `${what} ${make}`).to.deep.equal([1, 'ERR_LAYER_CORRUPT']);
      expect(storeEntries(home).filter((n) => n.startsWith('child')), 'nothing left').to.deep.equal([]);
    }
  });

  it('a reader that goes away mid-output (EPIPE) ends export and changes at once: exit 141, nothing on stderr, no worker left', async function () {
    if (!fs.existsSync('/proc/self/cmdline')) this.skip();
    const home = path.join(tempDir(), 'home');
    // 16 MiB of tar, and ~1 MiB of changes: far more than a pipe holds. Long names make
    // the changes long with few files (each one costs the import a file and a flush).
    expect(run(['import', '--home', home, '--id', 'large'], await buildLayerTar(filesLayer(16, 1 << 20))).status).to.equal(0);
    const names: BuilderEntry[] = [{ type: 'directory', name: 'Files' }];
    let dir = 'Files';
    for (let d = 0; d < 6; d++) names.push({ type: 'directory', name: (dir += `/${d}${'d'.repeat(199)}`) });
    for (let i = 0; i < 800; i++) names.push({ type: 'file', name: `${dir}/${String(i).padStart(6, '0')}${'n'.repeat(190)}`, data: Buffer.alloc(0) });
    expect(run(['import', '--home', home, '--id', 'names'], await buildLayerTar(names)).status).to.equal(0);
    for (const args of [['export', '--home', home, '--id', 'large'], ['changes', '--home', home, '--id', 'names'], ['changes', '--home', home, '--id', 'names', '--json']]) {
      const r = await readOneChunk(args);
      expect(r.chunk, args.join(' ')).to.be.greaterThan(0);
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }, args.join(' ')).to.deep.equal({ status: 141, signal: null, stderr: '' });
      expect(r.ms, `${args.join(' ')}: exited promptly`).to.be.lessThan(10_000);
      expect(processesOf(home), `${args.join(' ')}: no worker left`).to.deep.equal([]);
    }
    const ls = JSON.parse(run(['ls', '--home', home, '--json']).stdout.toString()) as { id: string; mounted: number }[];
    expect(ls.map((l) => [l.id, l.mounted])).to.deep.equal([['large', 0], ['names', 0]]);
  });

  it('a worker whose CLI was killed (SIGKILL) commits nothing, even when its input goes on to the end', async () => {
    const home = path.join(tempDir(), 'home');
    const tar = await buildLayerTar(filesLayer(200, 4096));
    // A named pipe: the CLI hands it to the worker as its stdin (a socket it would relay).
    const fifo = path.join(tempDir(), 'tar.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).to.equal(0);
    // Read-write, so opening does not wait for a reader; non-blocking, so a full pipe nobody reads cannot hang the test.
    const writeEnd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const readEnd = fs.openSync(fifo, 'r');
    const cliProcess = spawn(process.execPath, [cli, 'import', '--home', home, '--id', 'orphan'], { stdio: [readEnd, 'ignore', 'ignore'] });
    fs.closeSync(readEnd);
    const staging = (): string[] => (fs.existsSync(home) ? storeEntries(home).filter((n) => n.startsWith('orphan-importing-')) : []);
    const until = async (what: () => boolean, ms: number): Promise<boolean> => {
      for (const end = Date.now() + ms; Date.now() < end; ) {
        if (what()) return true;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return what();
    };
    /** Writes `bytes` as the pipe takes them, until `stop()` says to give up; returns what went in. */
    const feed = async (bytes: Uint8Array, stop: () => boolean): Promise<number> => {
      let at = 0;
      while (at < bytes.length && !stop()) {
        try {
          at += fs.writeSync(writeEnd, bytes, at, bytes.length - at);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      return at;
    };
    const half = Math.floor(tar.length / 2 / 512) * 512;
    const deadline = Date.now() + 20_000;
    expect(await feed(tar.subarray(0, half), () => Date.now() > deadline)).to.equal(half);
    expect(await until(() => staging().length === 1, 20_000), 'the worker started its import').to.equal(true);
    const exited = new Promise((resolve) => cliProcess.once('exit', resolve));
    cliProcess.kill('SIGKILL');
    await exited;
    // The worker still holds the pipe: the rest of the tar reaches it unless it stopped.
    await feed(tar.subarray(half), () => staging().length === 0 || Date.now() > deadline + 20_000);
    fs.closeSync(writeEnd);
    expect(await until(() => staging().length === 0, 20_000), 'the worker removed its staging directory').to.equal(true);
    expect(fs.existsSync(path.join(home, 'orphan')), 'no layer committed').to.equal(false);
    const again = run(['import', '--home', home, '--id', 'orphan', '--json'], tar);
    expect(again.status).to.equal(0);
    expect(lastJson(again.stdout)['entries']).to.be.greaterThan(200);
  });

  /** Waits up to `ms` for `what()`; its last answer. */
  async function until(what: () => boolean, ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; ) {
      if (what()) return true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return what();
  }

  it('a worker whose CLI was killed (SIGKILL) while its input stalls (the producer alive, writing nothing) ends within seconds; cleanup then removes what it left', async () => {
    const home = path.join(tempDir(), 'home');
    expect(run(['import', '--home', home, '--id', 'parent'], await buildLayerTar(baseLayer)).status).to.equal(0);
    const tar = await buildLayerTar(deltaLayer);
    const fifo = path.join(tempDir(), 'tar.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).to.equal(0);
    const writeEnd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const readEnd = fs.openSync(fifo, 'r');
    const cliProcess = spawn(process.execPath, [cli, 'import', '--home', home, '--id', 'child', '--parent', 'parent'], { stdio: [readEnd, 'ignore', 'ignore'] });
    fs.closeSync(readEnd);
    try {
      fs.writeSync(writeEnd, tar, 0, 1024); // a part of the tar, then nothing: a stalled download
      expect(await until(() => fs.existsSync(home) && storeEntries(home).some((n) => n.startsWith('child-importing-')), 20_000), 'the import started').to.equal(true);
      const exited = new Promise((resolve) => cliProcess.once('exit', resolve));
      cliProcess.kill('SIGKILL');
      await exited;
      // The worker, blocked reading the pipe its producer keeps open, ends by itself.
      expect(await until(() => processesOf(home).length === 0, 10_000), 'the worker ended').to.equal(true);
      expect(run(['cleanup', '--home', home]).status).to.equal(0);
      expect(storeEntries(home).filter((n) => !n.startsWith('.'))).to.deep.equal(['parent']);
      expect(run(['remove', '--home', home, '--id', 'parent']).status).to.equal(0);
    } finally {
      fs.closeSync(writeEnd);
    }
  });

  it('an export whose CLI was killed (SIGKILL) while its reader stopped reading ends within seconds', async () => {
    const home = path.join(tempDir(), 'home');
    expect(run(['import', '--home', home, '--id', 'big'], await buildLayerTar(filesLayer(8, 1 << 20))).status).to.equal(0);
    const fifo = path.join(tempDir(), 'out.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).to.equal(0);
    // A reader that holds the pipe open and never reads: the export fills it and waits.
    const reader = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const writeEnd = fs.openSync(fifo, 'w');
    const cliProcess = spawn(process.execPath, [cli, 'export', '--home', home, '--id', 'big'], { stdio: ['ignore', writeEnd, 'ignore'] });
    fs.closeSync(writeEnd);
    try {
      expect(await until(() => processesOf(home).some((p) => p.includes('export-layer')), 20_000), 'the export worker started').to.equal(true);
      await new Promise((resolve) => setTimeout(resolve, 300)); // the pipe is full by now
      const exited = new Promise((resolve) => cliProcess.once('exit', resolve));
      cliProcess.kill('SIGKILL');
      await exited;
      expect(await until(() => processesOf(home).length === 0, 10_000), 'the worker ended').to.equal(true);
    } finally {
      fs.closeSync(reader);
    }
  });

  it('a mount whose CLI was killed (SIGKILL) stops its view worker at once: its directory goes, and other commands work meanwhile', async () => {
    const home = path.join(tempDir(), 'home');
    // Seconds of view to write: the CLI is killed in the middle of it. (Imported without flushing: quicker.)
    await importTar(await openStore(home), 'big', await buildLayerTar(filesLayer(10_000, 100)));
    const mounts = path.join(home, '.mounts');
    const cliProcess = spawn(process.execPath, [cli, 'mount', '--home', home, '--id', 'big'], { stdio: 'ignore' });
    const writing = (): string[] => (fs.existsSync(mounts) ? fs.readdirSync(mounts).filter((n) => n.startsWith('big-tmp-')) : []);
    let tmp: string | undefined;
    for (const end = Date.now() + 30_000; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
      tmp = writing()[0];
      if (tmp !== undefined && fs.readdirSync(path.join(mounts, tmp)).length >= 100) break;
    }
    expect(tmp, 'the view worker started writing').to.not.equal(undefined);
    const exited = new Promise((resolve) => cliProcess.once('exit', resolve));
    cliProcess.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // The directory is named by the process writing it, which is alive: other commands leave it alone.
    const ls = run(['ls', '--home', home]);
    expect(ls.status, ls.stderr.toString()).to.equal(0);
    const worker = Number(/-tmp-(\d+)-/.exec(tmp as string)?.[1]);
    while ((writing().length > 0 || processAlive(worker)) && Date.now() - killedAt < 20_000) await new Promise((r) => setTimeout(r, 10));
    expect(Date.now() - killedAt, 'the worker stopped and removed its directory').to.be.below(2000);
    expect(processAlive(worker)).to.equal(false);
    expect(writing()).to.deep.equal([]);
    expect(fs.existsSync(path.join(mounts, 'big')), 'no view put in place').to.equal(false);
    const again = run(['mount', '--home', home, '--id', 'big']);
    expect(again.status, again.stderr.toString()).to.equal(0);
    expect(fs.readdirSync(again.stdout.toString().trim())).to.have.length(10_000);
  });

  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`an import interrupted by ${signal} stops its worker, removes its staging directory and exits ${status} with ERR_CANCELED`, async () => {
      const home = path.join(tempDir(), 'home');
      const tar = await buildLayerTar(filesLayer(200, 4096));
      const cliProcess = spawn(process.execPath, [cli, 'import', '--home', home, '--id', 'stopped', '--json'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      cliProcess.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      cliProcess.stdin.on('error', () => undefined);
      // Half the tar, and the rest never: the worker waits mid-import.
      cliProcess.stdin.write(tar.subarray(0, Math.floor(tar.length / 2 / 512) * 512));
      const staging = (): string[] => (fs.existsSync(home) ? storeEntries(home).filter((n) => n.startsWith('stopped-importing-')) : []);
      for (const end = Date.now() + 20_000; staging().length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
      expect(staging(), 'the worker started its import').to.have.length(1);
      const exited = new Promise<number | null>((resolve) => cliProcess.once('close', (code) => resolve(code)));
      cliProcess.kill(signal);
      expect(await exited).to.equal(status);
      expect(lastJson(Buffer.from(stderr))['code']).to.equal('ERR_CANCELED');
      expect(storeEntries(home).filter((n) => n.startsWith('stopped')), 'no staging directory, no layer').to.deep.equal([]);
      cliProcess.stdin.destroy();
    });
  }
});
