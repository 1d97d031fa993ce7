import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTombstones, TOMBSTONES_FILE, TombstoneWriter, writeTombstones } from '../../src/layer/tombstones.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

describe('layer/tombstones', () => {
  after(cleanupTemp);

  const lines = [
    '\\Windows\\System32\\a.dll',
    '\\Program Files\\é𝄞\\b',
    `\\${'x'.repeat(70_000)}`, // longer than the writer's buffer
    ...Array.from({ length: 5000 }, (_, i) => `\\Windows\\WinSxS\\component-${i}\\file-${i}.dll`),
  ];

  it('streams the same bytes as the whole-file writer, and reads back every line', () => {
    const streamed = tempDir();
    const whole = tempDir();
    const w = new TombstoneWriter(streamed);
    for (const line of lines) w.add(line);
    expect(w.lines()).to.deep.equal(lines); // read back before the end, buffered lines included
    w.finish(true);
    writeTombstones(whole, lines, false);
    const bytes = fs.readFileSync(path.join(streamed, TOMBSTONES_FILE));
    expect(bytes.equals(fs.readFileSync(path.join(whole, TOMBSTONES_FILE)))).to.equal(true);
    expect([...bytes.subarray(0, 3)]).to.deep.equal([0xef, 0xbb, 0xbf]);
    expect(readTombstones(streamed)).to.deep.equal(lines);
  });

  it('writes the header alone for no deletion, and refuses a file that exists', () => {
    const dir = tempDir();
    new TombstoneWriter(dir).finish(false);
    expect(fs.readFileSync(path.join(dir, TOMBSTONES_FILE), 'utf8')).to.equal('\ufeffVersion 1.0\n');
    expect(() => new TombstoneWriter(dir)).to.throw().with.property('code', 'EEXIST');
  });
});
