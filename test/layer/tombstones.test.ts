import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeletedNames, readTombstones, TOMBSTONES_FILE, TombstoneWriter, writeTombstones } from '../../src/layer/tombstones.js';
import { caseFoldKey } from '../../src/util/safe-path.js';
import { cleanupTemp, tempDir } from '../helpers/store.js';

describe('layer/tombstones', () => {
  after(cleanupTemp);

  const lines = [
    '\\Windows\\System32\\a.dll',
    '\\Program Files\\é𝄞\\b',
    `\\${'x'.repeat(70_000)}`, // longer than the writer's buffer
    ...Array.from({ length: 5000 }, (_, i) => `\\Windows\\WinSxS\\component-${i}\\file-${i}.dll`),
  ];

  it('streams the BOM, the version line and one line per deletion, and reads back every line', () => {
    const streamed = tempDir();
    const whole = tempDir();
    const w = new TombstoneWriter(streamed);
    for (const line of lines) w.add(line);
    // Found before the end, the last line still buffered: the file is flushed before it is read.
    expect(w.deleted.has(caseFoldKey('Files/Windows/WinSxS/component-4999/file-4999.dll'))).to.equal(true);
    expect(w.deleted.has(caseFoldKey('Files/PROGRAM FILES/é𝄞/B'))).to.equal(true);
    expect(w.deleted.has(caseFoldKey('Files/Windows/WinSxS/component-5000/file-5000.dll'))).to.equal(false);
    w.add('\\Windows\\late.dll'); // added after the exact names were read: found too
    expect(w.deleted.has(caseFoldKey('Files/Windows/late.dll'))).to.equal(true);
    w.finish(true);
    writeTombstones(whole, [...lines, '\\Windows\\late.dll'], false);
    const expected = Buffer.from(['\ufeffVersion 1.0', ...lines, '\\Windows\\late.dll'].join('\n') + '\n', 'utf8');
    const bytes = fs.readFileSync(path.join(streamed, TOMBSTONES_FILE));
    expect(bytes.equals(expected)).to.equal(true);
    expect(fs.readFileSync(path.join(whole, TOMBSTONES_FILE)).equals(expected)).to.equal(true);
    expect([...bytes.subarray(0, 3)]).to.deep.equal([0xef, 0xbb, 0xbf]);
    expect(readTombstones(streamed)).to.deep.equal([...lines, '\\Windows\\late.dll']);
  });

  it('writes the header alone for no deletion, and refuses a file that exists', () => {
    const dir = tempDir();
    new TombstoneWriter(dir).finish(false);
    expect(fs.readFileSync(path.join(dir, TOMBSTONES_FILE), 'utf8')).to.equal('\ufeffVersion 1.0\n');
    expect(() => new TombstoneWriter(dir)).to.throw().with.property('code', 'EEXIST');
  });

  it('knows the names a layer deletes, case-insensitively, read in chunks, LF or CRLF', () => {
    for (const eol of ['\n', '\r\n']) {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, TOMBSTONES_FILE), ['\ufeffVersion 1.0', ...lines, ''].join(eol));
      const deleted = DeletedNames.ofLayer(dir);
      expect(deleted.has(caseFoldKey('Files/windows/SYSTEM32/A.DLL'))).to.equal(true);
      expect(deleted.has(caseFoldKey('Files/Program Files/é𝄞/b'))).to.equal(true);
      expect(deleted.has(caseFoldKey(`Files/${'x'.repeat(70_000)}`))).to.equal(true);
      expect(deleted.has(caseFoldKey('Files/Windows/WinSxS/component-4999/file-4999.dll'))).to.equal(true);
      expect(deleted.has(caseFoldKey('Files/Windows/WinSxS/component-5000/file-5000.dll'))).to.equal(false);
      expect(deleted.has(caseFoldKey('Files/Windows/System32'))).to.equal(false); // a parent is not deleted
    }
    expect(DeletedNames.ofLayer(tempDir()).has(caseFoldKey('Files/a'))).to.equal(false); // no tombstones.txt
  });

  it('gives ERR_TOMBSTONES_INVALID for a file without its header, or with a line that is not a path', () => {
    for (const text of ['Version 1.0\n\\a\n', '', '\ufeffVersion 1.0\n\\a\nb\n']) {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, TOMBSTONES_FILE), text);
      expect(() => DeletedNames.ofLayer(dir)).to.throw().with.property('code', 'ERR_TOMBSTONES_INVALID');
      expect(() => readTombstones(dir)).to.throw().with.property('code', 'ERR_TOMBSTONES_INVALID');
    }
  });
});
