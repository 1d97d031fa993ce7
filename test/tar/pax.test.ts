import { expect } from 'chai';
import fc from 'fast-check';
import { formatPaxRecord, formatPaxTime, isValidPaxRecord, parsePaxRecords, parsePaxTime } from '../../src/tar/pax.js';
import { expectThrowsCode } from './tar-helpers.js';

const S = 1_000_000_000n;

describe('tar/pax', () => {
  describe('formatPaxTime (Go formatPAXTime)', () => {
    const cases: [bigint, string][] = [
      [0n, '0'],
      [1n * S, '1'],
      [-1n * S, '-1'],
      [1_500_000_000n, '1.5'],
      [-1_500_000_000n, '-1.5'],
      [-500_000_000n, '-0.5'],
      [1n, '0.000000001'],
      [-1n, '-0.000000001'],
      [1_350_244_992_023_960_108n, '1350244992.023960108'],
      [1_350_244_992_300_000_000n, '1350244992.3'],
      [-1_350_244_992_023_960_108n, '-1350244992.023960108'],
      [1_600_000_000_123_456_700n, '1600000000.1234567'],
      [-(2n ** 63n), '-9223372036.854775808'],
    ];
    for (const [ns, text] of cases) it(`${ns} ns → "${text}"`, () => expect(formatPaxTime(ns)).to.equal(text));
  });

  describe('parsePaxTime (Go parsePAXTime)', () => {
    const cases: [string, bigint][] = [
      ['0', 0n],
      ['1350244992', 1_350_244_992n * S],
      ['1350244992.023960108', 1_350_244_992_023_960_108n],
      ['1350244992.02396010', 1_350_244_992_023_960_100n],
      ['1350244992.3', 1_350_244_992_300_000_000n],
      ['1350244992.0239601089', 1_350_244_992_023_960_108n], // truncated to 9 digits
      ['-1.5', -1_500_000_000n],
      ['-0.5', -500_000_000n],
      ['-1350244992.023960108', -1_350_244_992_023_960_108n],
      ['+1.5', 1_500_000_000n],
      ['1.', 1n * S], // an empty fraction is no fraction
      ['9223372036854775807', 9_223_372_036_854_775_807n * S],
    ];
    for (const [text, ns] of cases) it(`"${text}" → ${ns} ns`, () => expect(parsePaxTime(text)).to.equal(ns));

    for (const bad of ['', '.', '.5', '-', 'abc', '1e3', ' 1', '1 ', '1.-5', '1.5x', '0x10', '1_000', '9223372036854775808', '1..2']) {
      it(`rejects "${bad}"`, () => expectThrowsCode(() => parsePaxTime(bad), 'ERR_PAX_RECORD_INVALID'));
    }

    it('round-trips every int64 nanosecond value', () => {
      fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (ns) => {
        expect(parsePaxTime(formatPaxTime(ns))).to.equal(ns);
      }), { numRuns: 500 });
    });
  });

  describe('formatPaxRecord', () => {
    const cases: [string, string, string][] = [
      ['k', 'v', '6 k=v\n'],
      ['path', '/etc/hosts', '19 path=/etc/hosts\n'],
      ['k', '日本', '12 k=日本\n'],
      ['a', 'x'.repeat(93), `99 a=${'x'.repeat(93)}\n`],
      ['a', 'x'.repeat(94), `101 a=${'x'.repeat(94)}\n`], // 98 + 2 digits would be 100: three digits make 101
      ['a', 'x'.repeat(95), `102 a=${'x'.repeat(95)}\n`],
      ['uname', '', '9 uname=\n'],
    ];
    for (const [key, value, record] of cases) it(`${key}=${value.length} chars`, () => expect(formatPaxRecord(key, value)).to.equal(record));

    it('length prefix always equals the UTF-8 byte length', () => {
      fc.assert(fc.property(fc.string({ minLength: 1 }).filter((k) => isValidPaxRecord(k, '')), fc.string({ unit: 'grapheme', maxLength: 2000 }), (key, value) => {
        const record = formatPaxRecord(key, value);
        expect(Number(record.slice(0, record.indexOf(' ')))).to.equal(Buffer.byteLength(record));
        const parsed = parsePaxRecords(Buffer.from(record), 'test');
        expect(parsed.map((r) => [r.key, r.value])).to.deep.equal([[key, value]]);
      }), { numRuns: 300 });
    });

    for (const [key, value] of [['', 'v'], ['a=b', 'v'], ['a\0', 'v'], ['path', 'a\0b'], ['linkpath', '\0'], ['uname', '\0'], ['gname', '\0']]) {
      it(`rejects ${JSON.stringify(key)}=${JSON.stringify(value)}`, () => expectThrowsCode(() => formatPaxRecord(key ?? '', value ?? ''), 'ERR_PAX_RECORD_INVALID'));
    }
    it('allows NUL in other values', () => expect(formatPaxRecord('MSWINDOWS.xattr.a', 'a\0b')).to.equal('25 MSWINDOWS.xattr.a=a\0b\n'));
  });

  describe('parsePaxRecords (Go parsePAXRecord)', () => {
    it('parses several records; later ones win when read into a map', () => {
      const data = Buffer.from('6 a=1\n6 b=2\n6 a=3\n');
      expect(parsePaxRecords(data, 't').map((r) => `${r.key}=${r.value}`)).to.deep.equal(['a=1', 'b=2', 'a=3']);
    });
    it('keeps "=" in values', () => expect(parsePaxRecords(Buffer.from('8 a=b=c\n'), 't')[0]?.value).to.equal('b=c'));
    it('gives every key as decoded, however many keys of one length come and go (keys are reused by their bytes)', () => {
      // 40 keys of 5 bytes (more than are remembered), each read three times, in two orders;
      // keys differing only in a late byte, and bytes that are not UTF-8 (decoded to U+FFFD).
      const keys = Array.from({ length: 40 }, (_, i) => Buffer.concat([Buffer.from(`k${String(i).padStart(3, '0')}`), Buffer.from([0xff])]));
      keys.push(Buffer.from('mtimf'), Buffer.from('mtime'), Buffer.from([0xe2, 0x82, 0xac, 0x41, 0x42]));
      const record = (k: Buffer): Buffer => {
        const body = Buffer.concat([k, Buffer.from('=v\n')]);
        const length = body.length + 3; // "NN " prefix, two digits for these
        return Buffer.concat([Buffer.from(`${length} `), body]);
      };
      for (const order of [keys, [...keys].reverse()]) {
        for (let round = 0; round < 3; round++) {
          const parsed = parsePaxRecords(Buffer.concat(order.map(record)), 't');
          expect(parsed.map((r) => r.key)).to.deep.equal(order.map((k) => k.toString('utf8')));
        }
      }
    });
    for (const bad of ['6 a=1', '6 a=1x', '5 a=1\n', '7 a=1\n', 'x a=1\n', '6a=1\n\n', '6 a1\n\n', '4 a\n', '100 a=1\n', '-6 a=1\n', '6 =1\n', '8 path=\0\n', '\n']) {
      it(`rejects ${JSON.stringify(bad)}`, () => expectThrowsCode(() => parsePaxRecords(Buffer.from(bad, 'latin1'), 't'), 'ERR_PAX_RECORD_INVALID'));
    }
  });
});
