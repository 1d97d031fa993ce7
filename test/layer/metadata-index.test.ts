import { expect } from 'chai';
import fc from 'fast-check';
import { recordLine, type IndexEntry } from '../../src/layer/metadata-index.js';

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
