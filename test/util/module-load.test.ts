/** Every module loads on its own: no import cycle leaves a binding uninitialized. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function modules(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...modules(p));
    else if (e.name.endsWith('.js')) out.push(p);
  }
  return out;
}

describe('util/module-load', function () {
  this.timeout(120_000);
  it('imports each module of src/ first, in a fresh process, without error', () => {
    const files = modules(path.join(dist, 'src'));
    // One process per module: the import order inside a process hides cycles.
    const script = `const f = process.argv[1]; await import(f);`;
    const failures = files.filter((f) => spawnSync(process.execPath, ['--input-type=module', '-e', script, f], { stdio: ['ignore', 'ignore', 'pipe'] }).status !== 0);
    expect(failures.map((f) => path.relative(dist, f))).to.deep.equal([]);
  });
});
