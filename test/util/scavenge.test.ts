/** scavenge: frees buffers nothing holds, and leaves V8's flags (which a code cache is checked against) as they were. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as vm from 'node:vm';
import { SCAVENGE_EVERY_BYTES, scavenge } from '../../src/util/scavenge.js';

const MiB = 1024 * 1024;
const module = new URL('../../src/util/scavenge.js', import.meta.url).href;

/**
 * Runs `body` in a new Node process (a test process's heap has its own history: V8 may
 * allocate buffers straight into the old generation there) and returns what it printed.
 */
function inNewProcess(body: string): Record<string, number> {
  const script = `import { ScavengeMeter, scavenge, scavengingAsRead } from ${JSON.stringify(module)};
const MiB = ${MiB};
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
const used = () => process.memoryUsage().arrayBuffers;
const out = {};
${body}
process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as Record<string, number>;
}

describe('util/scavenge', function () {
  this.timeout(60_000);

  it('frees the memory of buffers nothing holds, which V8 keeps until far more piled up', () => {
    const r = inNewProcess(`
      const held = Buffer.allocUnsafeSlow(MiB).fill(1);
      for (let i = 0; i < 24; i++) Buffer.allocUnsafeSlow(MiB).fill(2);
      await settle();
      out.left = used();
      scavenge();
      await settle();
      out.after = used();
      out.held = held[0];`);
    // Without it, the 24 dead MiB stay: V8 waits for more memory outside its heap.
    expect(r['left']).to.be.at.least(24 * MiB);
    expect(r['after']).to.be.below(2 * MiB);
    expect(r['held']).to.equal(1);
  });

  it('scavenges a stream every SCAVENGE_EVERY_BYTES, passing its chunks on as they are', () => {
    const r = inNewProcess(`
      async function* chunks() {
        for (let i = 0; i < 40; i++) yield Buffer.allocUnsafeSlow(MiB).fill(i);
      }
      let seen = 0;
      let wrong = 0;
      for await (const chunk of scavengingAsRead(chunks())) {
        if (chunk[0] !== seen++ || chunk.length !== MiB) wrong++;
      }
      out.seen = seen;
      out.wrong = wrong;
      await settle();
      out.afterStream = used();
      const meter = new ScavengeMeter();
      for (let i = 0; i < 24; i++) Buffer.allocUnsafeSlow(MiB).fill(3);
      meter.passed(${SCAVENGE_EVERY_BYTES} - 1);
      await settle();
      out.unpassed = used();
      meter.passed(1);
      await settle();
      out.passed = used();`);
    expect([r['seen'], r['wrong']]).to.deep.equal([40, 0]);
    // At most the chunks since the last scavenge are left, not all 40.
    expect(r['afterStream']).to.be.at.most(SCAVENGE_EVERY_BYTES + 2 * MiB);
    expect(r['unpassed']).to.be.at.least(24 * MiB);
    expect(r['passed']).to.be.below(r['unpassed'] as number);
    expect((r['unpassed'] as number) - (r['passed'] as number)).to.be.at.least(20 * MiB);
  });

  it('leaves the flags as they were: a code cache made before is still taken after', () => {
    const source = '(function () { return [1, 2, 3].map((x) => x * 2); })()';
    const first = new vm.Script(source);
    first.runInThisContext();
    const cache = first.createCachedData();
    scavenge();
    scavenge();
    expect(new vm.Script(source, { cachedData: cache }).cachedDataRejected).to.equal(false);
    expect((globalThis as { gc?: unknown }).gc).to.equal(undefined);
  });
});
