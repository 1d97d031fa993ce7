import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENTRIES_FILE, indexEntriesSync, indexEntryAt, INDEX_DIR, LAYER_INFO_FILE, readIndexEntries, readIndexEntriesSync, recordLine, type IndexEntry } from '../../src/layer/metadata-index.js';
import type { LineSpan } from '../../src/util/lines.js';
import { cleanupTemp, layerSummary, rejectionCode, tempDir } from '../helpers/store.js';

/** Any string, with the characters JSON escapes (quotes, backslashes, controls, lone surrogates) often. */
const text = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('a', 'Z', '/', '"', '\\', '\0', '\n', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '𝄞', 'é') }),
);

const finite = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.maxSafeInteger(), fc.constant(-0));
const number = fc.oneof(finite, fc.double());

/** A record whose fields were set in IndexEntry's order (as the writer builds them), some absent. */
const record = fc
  .record(
    {
      kind: fc.constantFrom<IndexEntry['kind']>('file', 'directory', 'symlink', 'link', 'whiteout'),
      name: text,
      times: fc.tuple(text, text, text, text),
      attributes: number,
      size: number,
      streams: fc.tuple(number, number),
      target: text,
      host: text,
      inherited: fc.boolean(),
      direct: fc.boolean(),
    },
    { requiredKeys: ['kind', 'name'] },
  )
  .map((r) => r as IndexEntry);

describe('layer/metadata-index records', () => {
  it('are the lines JSON.stringify writes, for any names, times and numbers', () => {
    fc.assert(
      fc.property(record, (r) => {
        expect(recordLine(r)).to.equal(JSON.stringify(r));
      }),
      { numRuns: 3000 },
    );
  });

  it('read back as the record that was written', () => {
    fc.assert(
      fc.property(record, (r) => {
        const finiteOnly = JSON.parse(JSON.stringify(r)) as unknown;
        expect(JSON.parse(recordLine(r))).to.deep.equal(finiteOnly);
      }),
      { numRuns: 1000 },
    );
  });

  it('escape what a name may hold that JSON cannot carry raw', () => {
    const r: IndexEntry = { kind: 'file', name: 'Files/a"b\\c\u0001\ud83d', times: ['1', '2', '3', '4'], attributes: 32, size: 0 };
    const line = recordLine(r);
    expect(line).to.equal(JSON.stringify(r));
    expect(line).to.include('\\"').and.include('\\\\').and.include('\\u0001').and.include('\\ud83d');
    expect((JSON.parse(line) as IndexEntry).name).to.equal(r.name);
  });
});

describe('layer/metadata-index reading', () => {
  after(cleanupTemp);

  function layerWithIndex(text: string | Buffer): string {
    const root = tempDir();
    fs.mkdirSync(path.join(root, INDEX_DIR));
    fs.writeFileSync(path.join(root, INDEX_DIR, ENTRIES_FILE), text);
    const records = text.toString().split('\n').filter((l) => l.length > 0).length;
    fs.writeFileSync(path.join(root, INDEX_DIR, LAYER_INFO_FILE), JSON.stringify(layerSummary(records)));
    return root;
  }

  async function readAll(root: string): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    for await (const e of readIndexEntries(root)) out.push(e);
    return out;
  }

  it('reads records across reads, with characters split between two reads, long lines and a last line without a newline', async () => {
    const records: IndexEntry[] = [];
    for (let i = 0; i < 3000; i++) records.push({ kind: 'file', name: `Files/é𝄞-${i}-${'x'.repeat(i % 97)}`, times: ['1', '2', '3', '4'], attributes: 32, size: i });
    records.push({ kind: 'file', name: `Files/${'ü'.repeat(200_000)}`, times: ['1', '2', '3', '4'], attributes: 32, size: 1 });
    records.push({ kind: 'directory', name: 'Files/last', times: ['1', '2', '3', '4'], attributes: 16 });
    const text = records.map(recordLine).join('\n'); // no newline after the last
    for (const root of [layerWithIndex(text), layerWithIndex(text + '\n\n')]) {
      expect(await readAll(root)).to.deep.equal(records);
      expect([...indexEntriesSync(root)]).to.deep.equal(records);
      expect(readIndexEntriesSync(root)).to.deep.equal(records);
    }
  });

  it('reports where each record lies, and reads one back from there alone', () => {
    const records: IndexEntry[] = [];
    for (let i = 0; i < 3000; i++) records.push({ kind: 'file', name: `Files/é𝄞-${i}-${'x'.repeat(i % 97)}`, times: ['1', '2', '3', '4'], attributes: 32, size: i });
    records.push({ kind: 'file', name: `Files/${'ü'.repeat(200_000)}`, times: ['1', '2', '3', '4'], attributes: 32, size: 1 });
    records.push({ kind: 'directory', name: 'Files/last', times: ['1', '2', '3', '4'], attributes: 16 });
    const text = records.map(recordLine).join('\n'); // no newline after the last
    const root = layerWithIndex(text);
    const bytes = Buffer.from(text);
    const span: LineSpan = { offset: 0, length: 0 };
    const spans: LineSpan[] = [];
    for (const r of indexEntriesSync(root, span)) {
      expect(bytes.subarray(span.offset, span.offset + span.length).toString()).to.equal(recordLine(r));
      spans.push({ ...span });
    }
    expect(spans.length).to.equal(records.length);
    for (const i of [0, 1, 1500, 2999, 3000, 3001]) expect(indexEntryAt(root, spans[i] as LineSpan, records[i]?.name as string)).to.deep.equal(records[i]);
    // Another record there, or none: the index changed.
    expect(() => indexEntryAt(root, spans[0] as LineSpan, 'Files/other')).to.throw().with.property('code', 'ERR_LAYER_CORRUPT');
    expect(() => indexEntryAt(root, { offset: bytes.length - 3, length: 10 }, 'Files/last')).to.throw().with.property('code', 'ERR_LAYER_CORRUPT');
  });

  it('reads only as records are taken', async () => {
    const line = recordLine({ kind: 'file', name: `Files/${'a'.repeat(200)}`, times: ['1', '2', '3', '4'], attributes: 32, size: 0 });
    const root = layerWithIndex(Array.from({ length: 20_000 }, () => line).join('\n') + '\n'); // ~5 MB
    const keep = Math.ceil((300 * 1024) / (line.length + 1));
    let taken = 0;
    const code = await rejectionCode(async () => {
      for await (const e of readIndexEntries(root)) {
        expect(e.kind).to.equal('file');
        // What was not read yet is gone: the file now ends, on a line's end, past the first read.
        if (taken++ === 0) fs.truncateSync(path.join(root, INDEX_DIR, ENTRIES_FILE), keep * (line.length + 1));
      }
    });
    expect(taken).to.equal(keep); // not the 20,000 lines a reader that reads ahead would have had
    // And fewer records than layer.json counts: the index is damaged.
    expect(code).to.equal('ERR_LAYER_CORRUPT');
  });

  it('refuses a record whose name, place or link target leaves the layer, and fewer or more records than layer.json counts (ERR_LAYER_CORRUPT)', async () => {
    const ok: IndexEntry = { kind: 'file', name: 'Files/a', times: ['1', '2', '3', '4'], attributes: 32, size: 0 };
    expect(await readAll(layerWithIndex(recordLine(ok) + '\n'))).to.deep.equal([ok]);
    const bad: IndexEntry[] = [
      { ...ok, name: 'Files/../../out' },
      { ...ok, name: '/etc/passwd' },
      { ...ok, name: 'Files//a' },
      { ...ok, name: 'Files/./a' },
      { ...ok, name: 'Files\\..\\x' },
      { ...ok, host: '../x' },
      { kind: 'link', name: 'Files/l', target: 'Files/../../../etc/shadow', times: ['1', '2', '3', '4'] },
      { kind: 'whiteout', name: '..' },
    ];
    for (const r of bad) {
      const root = layerWithIndex(recordLine(ok) + '\n' + recordLine(r) + '\n');
      expect(await rejectionCode(() => readAll(root)), JSON.stringify(r)).to.equal('ERR_LAYER_CORRUPT');
      expect(() => [...indexEntriesSync(root)], JSON.stringify(r)).to.throw().with.property('code', 'ERR_LAYER_CORRUPT');
    }
    for (const records of [0, 2]) {
      const root = layerWithIndex(recordLine(ok) + '\n');
      fs.writeFileSync(path.join(root, INDEX_DIR, LAYER_INFO_FILE), JSON.stringify(layerSummary(records)));
      expect(await rejectionCode(() => readAll(root))).to.equal('ERR_LAYER_CORRUPT');
      expect(() => [...indexEntriesSync(root)]).to.throw().with.property('code', 'ERR_LAYER_CORRUPT');
    }
  });

  it('names the line of a damaged record, and a missing index, with ERR_LAYER_CORRUPT', async () => {
    const good = recordLine({ kind: 'whiteout', name: 'Files/a' });
    for (const text of [`${good}\n{not json\n`, `${good}\n[1,2]\n`, `${good}\n{"kind":"file"}\n`]) {
      const err = await readAll(layerWithIndex(text)).then(() => expect.fail('read'), (e: unknown) => e as { code?: string; data?: { line?: number } });
      expect(err.code).to.equal('ERR_LAYER_CORRUPT');
      expect(err.data?.line).to.equal(2);
    }
    expect(await readAll(tempDir()).then(() => 'read', (e: unknown) => (e as { code?: string }).code)).to.equal('ERR_LAYER_CORRUPT');
    expect(() => [...indexEntriesSync(tempDir())]).to.throw().with.property('code', 'ERR_LAYER_CORRUPT');
    const damaged = layerWithIndex(`${good}\n{not json\n`);
    expect(() => [...indexEntriesSync(damaged)]).to.throw().with.nested.property('data.line', 2);
  });
});
