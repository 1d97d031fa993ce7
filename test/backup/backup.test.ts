import { expect } from 'chai';
import fc from 'fast-check';
import {
  BackupStreamId,
  BackupStreamParser,
  BackupStreamWriter,
  decodeExtendedAttributes,
  decodeReparsePoint,
  encodeBackupHeader,
  encodeExtendedAttributes,
  encodeReparsePoint,
  IO_REPARSE_TAG_MOUNT_POINT,
  IO_REPARSE_TAG_SYMLINK,
  MAX_EA_STREAM_BYTES,
  parseBackupStreamBuffer,
  readBackupStream,
  type BackupHeader,
} from '../../src/backup/index.js';
import { isWinLayerError } from '../../src/errors.js';
import { CHUNKINGS, feedInChunks, splitChunks } from '../helpers/chunks.js';
import { expectThrowsCode } from '../tar/tar-helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

/** Parses in the given chunking and returns headers with their payloads. */
function parseChunked(buf: Buffer, size: number): { header: BackupHeader; payload: Buffer }[] {
  const out: { header: BackupHeader; payload: Buffer[] }[] = [];
  const parser = new BackupStreamParser({
    header: (h) => out.push({ header: h, payload: [] }),
    data: (c) => out[out.length - 1]?.payload.push(Buffer.from(c)),
  });
  for (const c of splitChunks(buf, size)) parser.write(c);
  parser.end();
  expect(parser.bytesRead).to.equal(buf.length);
  return out.map((r) => ({ header: r.header, payload: Buffer.concat(r.payload) }));
}

function expectCodeAllChunkings(buf: Buffer, code: string): void {
  for (const { size } of CHUNKINGS) {
    expectThrowsCode(() => parseChunked(buf, size), code);
  }
}

/** A stream with every id, in the order go-winio writes plus the rest. */
function everyStream(): Buffer {
  const parts: Buffer[] = [];
  const add = (id: BackupStreamId, payload: Buffer, name = '', offset?: number): void => {
    parts.push(encodeBackupHeader({ id, size: payload.length, name, ...(offset !== undefined ? { offset } : {}) }), payload);
  };
  add(BackupStreamId.SecurityData, Buffer.from('sd-bytes'));
  add(BackupStreamId.EaData, encodeExtendedAttributes([{ name: 'foo', value: Buffer.from('bar'), flags: 0 }]));
  add(BackupStreamId.ReparseData, encodeReparsePoint({ target: '..\\foo', isMountPoint: false }));
  add(BackupStreamId.Data, Buffer.from('hello'));
  add(BackupStreamId.AlternateData, Buffer.from('xyz'), ':ads.txt:$DATA');
  add(BackupStreamId.AlternateData, Buffer.alloc(0), ':empty:$DATA');
  add(BackupStreamId.AlternateData, Buffer.from('🐳'), ':\u{1F433}:$DATA');
  add(BackupStreamId.Link, Buffer.from([1, 2, 3]));
  add(BackupStreamId.PropertyData, Buffer.from([4]));
  add(BackupStreamId.ObjectId, Buffer.alloc(64, 7));
  add(BackupStreamId.SparseBlock, Buffer.from('range'), '', 4096);
  add(BackupStreamId.SparseBlock, Buffer.alloc(0), '', 8192);
  add(BackupStreamId.TxfsData, Buffer.from([9, 9]));
  add(BackupStreamId.GhostedFileExtents, Buffer.from([1]));
  return Buffer.concat(parts);
}

describe('backup streams', () => {
  describe('FORMATS.md §1.1 worked bytes', () => {
    const dataHello = hex('01000000 00000000 0500000000000000 00000000 68656c6c6f');
    it('encodes an unnamed DATA header for "hello"', () => {
      expect(Buffer.concat([encodeBackupHeader({ id: BackupStreamId.Data, size: 5 }), Buffer.from('hello')])).to.deep.equal(dataHello);
    });
    it('encodes the ADS :ads.txt:$DATA header with a 28-byte name', () => {
      const h = encodeBackupHeader({ id: BackupStreamId.AlternateData, size: 3, name: ':ads.txt:$DATA' });
      expect(h.subarray(0, 20)).to.deep.equal(hex('04000000 00000000 0300000000000000 1c000000'));
      expect(h.subarray(20, 30)).to.deep.equal(hex('3a00 6100 6400 7300 2e00'));
      expect(h.length).to.equal(48);
    });
    for (const { title, size } of CHUNKINGS) {
      it(`parses the DATA vector ${title}`, () => {
        const [r] = parseChunked(dataHello, size);
        expect(r?.header).to.deep.equal({ id: 1, attributes: 0, size: 5, name: '', offset: 0 });
        expect(r?.payload.toString()).to.equal('hello');
      });
    }
  });

  describe('parser', () => {
    for (const { title, size } of CHUNKINGS) {
      it(`reads every stream id 1–11, named, empty and sparse, ${title}`, () => {
        const got = parseChunked(everyStream(), size);
        expect(got.map((r) => r.header.id)).to.deep.equal([3, 2, 8, 1, 4, 4, 4, 5, 6, 7, 9, 9, 10, 11]);
        expect(got[4]?.header.name).to.equal(':ads.txt:$DATA');
        expect(got[5]?.payload.length).to.equal(0);
        expect(got[6]?.header.name).to.equal(':\u{1F433}:$DATA');
        expect(got[10]?.header).to.include({ size: 5, offset: 4096 });
        expect(got[10]?.payload.toString()).to.equal('range');
        expect(got[11]?.header).to.include({ size: 0, offset: 8192 });
      });
    }

    it('accepts any order (EA after DATA, security last)', () => {
      const buf = Buffer.concat([
        encodeBackupHeader({ id: BackupStreamId.Data, size: 2 }),
        Buffer.from('ab'),
        encodeBackupHeader({ id: BackupStreamId.EaData, size: 1 }),
        Buffer.from('e'),
        encodeBackupHeader({ id: BackupStreamId.SecurityData, size: 1 }),
        Buffer.from('s'),
      ]);
      expect(parseBackupStreamBuffer(buf).map((r) => r.header.id)).to.deep.equal([1, 2, 3]);
    });

    it('hands data through as views of the input, never copies', () => {
      const buf = Buffer.concat([encodeBackupHeader({ id: BackupStreamId.Data, size: 4 }), Buffer.from('abcd')]);
      const seen: Buffer[] = [];
      const p = new BackupStreamParser({ header: () => undefined, data: (c) => seen.push(c) });
      p.write(buf);
      p.end();
      expect(seen[0]?.buffer).to.equal(buf.buffer);
    });

    it('reads an async iterable', async () => {
      const events: string[] = [];
      for await (const e of readBackupStream(feedInChunks(everyStream(), 7))) events.push(e.type);
      expect(events.filter((t) => t === 'header')).to.have.length(14);
    });

    it('rejects an unknown id (0, 12) with ERR_BACKUP_STREAM_ID_UNKNOWN', () => {
      for (const id of [0, 12, 0xffffffff]) {
        const b = hex('01000000 00000000 0000000000000000 00000000');
        b.writeUInt32LE(id, 0);
        expectCodeAllChunkings(b, 'ERR_BACKUP_STREAM_ID_UNKNOWN');
      }
    });

    it('rejects a cut at every byte offset with ERR_BACKUP_STREAM_TRUNCATED', () => {
      const buf = everyStream();
      const boundaries = new Set<number>([0]);
      let pos = 0;
      for (const r of parseBackupStreamBuffer(buf)) {
        pos += 20 + Buffer.byteLength(r.header.name, 'utf16le') + (r.header.id === 9 ? 8 : 0) + r.header.size;
        boundaries.add(pos);
      }
      for (let cut = 1; cut < buf.length; cut++) {
        if (boundaries.has(cut)) {
          expect(() => parseBackupStreamBuffer(buf.subarray(0, cut))).not.to.throw();
        } else {
          expectThrowsCode(() => parseBackupStreamBuffer(buf.subarray(0, cut)), 'ERR_BACKUP_STREAM_TRUNCATED');
        }
      }
    });

    it('rejects a name over the cap with ERR_METADATA_TOO_LARGE before buffering it', () => {
      const h = encodeBackupHeader({ id: BackupStreamId.AlternateData, size: 0, name: `:${'a'.repeat(600)}:$DATA` });
      expectCodeAllChunkings(h.subarray(0, 20), 'ERR_METADATA_TOO_LARGE');
      expectThrowsCode(() => parseBackupStreamBuffer(h, { maxNameBytes: 64 }), 'ERR_METADATA_TOO_LARGE');
    });

    it('caps security, EA and reparse payloads with ERR_METADATA_TOO_LARGE', () => {
      for (const [id, size] of [
        [BackupStreamId.SecurityData, 65537],
        // An EA set's cap is NTFS's packed 65,535 bytes, which this form may double.
        [BackupStreamId.EaData, MAX_EA_STREAM_BYTES + 1],
        [BackupStreamId.ReparseData, 16385],
      ] as const) {
        expectCodeAllChunkings(encodeBackupHeader({ id, size }), 'ERR_METADATA_TOO_LARGE');
      }
      // Data is streamed, so it has no cap below 2^53.
      expect(() => new BackupStreamParser({ header: () => undefined, data: () => undefined }).write(encodeBackupHeader({ id: 1, size: 2 ** 40 }))).not.to.throw();
    });

    it('rejects an odd name size, a NUL in a name, a short sparse block and a huge size', () => {
      const odd = hex('04000000 00000000 0000000000000000 03000000 616263');
      expectCodeAllChunkings(odd, 'ERR_BACKUP_STREAM_INVALID');
      const nul = Buffer.concat([hex('04000000 00000000 0000000000000000 04000000'), hex('61000000')]);
      expectCodeAllChunkings(nul, 'ERR_BACKUP_STREAM_INVALID');
      const shortSparse = hex('09000000 00000000 0400000000000000 00000000 00000000');
      expectCodeAllChunkings(shortSparse, 'ERR_BACKUP_STREAM_INVALID');
      const negative = Buffer.concat([hex('09000000 00000000 0800000000000000 00000000'), hex('ffffffffffffffff')]);
      expectCodeAllChunkings(negative, 'ERR_BACKUP_STREAM_INVALID');
      const huge = hex('01000000 00000000 ffffffffffffffff 00000000');
      expectCodeAllChunkings(huge, 'ERR_BACKUP_STREAM_INVALID');
    });

    it('refuses bytes after end()', () => {
      const p = new BackupStreamParser({ header: () => undefined, data: () => undefined });
      p.end();
      expectThrowsCode(() => p.write(Buffer.from([1])), 'ERR_BACKUP_STREAM_INVALID');
    });

    it('names the entry in its errors', () => {
      try {
        new BackupStreamParser({ header: () => undefined, data: () => undefined }, { entryName: 'Files/x' }).write(hex('0d000000'.padEnd(40, '0')));
        expect.fail('no error');
      } catch (err) {
        expect(isWinLayerError(err) && err.data['entry']).to.equal('Files/x');
      }
    });

    it('gives only typed errors for random bytes, in any chunking', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 40 }), (bytes, size) => {
          try {
            parseChunked(Buffer.from(bytes), size);
          } catch (err) {
            if (!isWinLayerError(err)) throw err;
          }
        }),
        { numRuns: 500 },
      );
    });

    it('round-trips random streams written by the writer, in random chunkings', () => {
      const stream = fc.record({
        id: fc.integer({ min: 1, max: 11 }),
        payload: fc.uint8Array({ maxLength: 64 }),
        name: fc.string({ maxLength: 12 }).filter((s) => !s.includes('\0')),
        attributes: fc.nat(),
        offset: fc.nat(),
      });
      fc.assert(
        fc.property(fc.array(stream, { maxLength: 8 }), fc.integer({ min: 1, max: 50 }), (streams, size) => {
          const out: Buffer[] = [];
          const w = new BackupStreamWriter((c) => out.push(c));
          for (const s of streams) {
            w.header({ id: s.id as BackupStreamId, size: s.payload.length, name: s.name, attributes: s.attributes, offset: s.offset });
            w.data(Buffer.from(s.payload));
          }
          w.end();
          const got = parseChunked(Buffer.concat(out), size);
          expect(got.length).to.equal(streams.length);
          got.forEach((r, i) => {
            const s = streams[i]!;
            expect(r.header).to.deep.equal({ id: s.id, attributes: s.attributes >>> 0, size: s.payload.length, name: s.name, offset: s.id === 9 ? s.offset : 0 });
            expect(r.payload).to.deep.equal(Buffer.from(s.payload));
          });
        }),
        { numRuns: 300 },
      );
    });
  });

  describe('writer', () => {
    it('rejects a short sub-stream with ERR_SIZE_MISMATCH, at the next header and at end', () => {
      const w = new BackupStreamWriter(() => undefined);
      w.header({ id: BackupStreamId.Data, size: 3 });
      w.data(Buffer.from('ab'));
      expect(w.bytesLeft).to.equal(1);
      expectThrowsCode(() => w.header({ id: BackupStreamId.AlternateData, size: 0, name: ':a:$DATA' }), 'ERR_SIZE_MISMATCH');
      expectThrowsCode(() => w.end(), 'ERR_SIZE_MISMATCH');
    });
    it('rejects an over-long sub-stream with ERR_SIZE_MISMATCH', () => {
      const w = new BackupStreamWriter(() => undefined);
      w.header({ id: BackupStreamId.Data, size: 1 });
      expectThrowsCode(() => w.data(Buffer.from('ab')), 'ERR_SIZE_MISMATCH');
    });
    it('rejects data before any header, and writes after end', () => {
      const w = new BackupStreamWriter(() => undefined);
      expectThrowsCode(() => w.data(Buffer.from('a')), 'ERR_SIZE_MISMATCH');
      w.end();
      expectThrowsCode(() => w.header({ id: 1, size: 0 }), 'ERR_BACKUP_STREAM_INVALID');
    });
    it('rejects an unknown id on encode', () => {
      expectThrowsCode(() => encodeBackupHeader({ id: 12 as BackupStreamId, size: 0 }), 'ERR_BACKUP_STREAM_ID_UNKNOWN');
    });
    it('adds the 8-byte offset inside a sparse block size', () => {
      const h = encodeBackupHeader({ id: BackupStreamId.SparseBlock, size: 5, offset: 4096 });
      expect(h.readBigUInt64LE(8)).to.equal(13n);
      expect(h.readBigInt64LE(20)).to.equal(4096n);
    });
  });

  describe('extended attributes (FORMATS.md §1.5)', () => {
    const vector = hex('10000000 00030300 666f6f00 62617200 00000000 00040400 66697a7a 0062757a 7a000000');
    const eas = [
      { name: 'foo', value: Buffer.from('bar'), flags: 0 },
      { name: 'fizz', value: Buffer.from('buzz'), flags: 0 },
    ];
    it('encodes the 36-byte vector, padding every entry', () => {
      expect(encodeExtendedAttributes(eas)).to.deep.equal(vector);
    });
    it('decodes the vector, and accepts a missing final pad', () => {
      expect(decodeExtendedAttributes(vector)).to.deep.equal(eas);
      expect(decodeExtendedAttributes(vector.subarray(0, 33))).to.deep.equal(eas);
    });
    it('keeps flags and empty values', () => {
      const v = [{ name: 'A', value: Buffer.alloc(0), flags: 0x80 }];
      expect(decodeExtendedAttributes(encodeExtendedAttributes(v))).to.deep.equal(v);
    });
    it('rejects bad names, duplicates, large values and bad flags with ERR_EA_INVALID', () => {
      for (const bad of [
        [{ name: '', value: Buffer.alloc(0), flags: 0 }],
        [{ name: 'a'.repeat(256), value: Buffer.alloc(0), flags: 0 }],
        [{ name: 'caf\u00e9', value: Buffer.alloc(0), flags: 0 }],
        [{ name: 'a\tb', value: Buffer.alloc(0), flags: 0 }],
        [{ name: 'a:b', value: Buffer.alloc(0), flags: 0 }],
        [{ name: 'x', value: Buffer.alloc(65536), flags: 0 }],
        [{ name: 'x', value: Buffer.alloc(0), flags: 256 }],
        [
          { name: 'dup', value: Buffer.alloc(0), flags: 0 },
          { name: 'DUP', value: Buffer.alloc(0), flags: 0 },
        ],
      ]) {
        expectThrowsCode(() => encodeExtendedAttributes(bad), 'ERR_EA_INVALID');
      }
    });
    it('rejects every truncation and broken offsets with ERR_EA_INVALID', () => {
      for (let cut = 0; cut < 33; cut++) expectThrowsCode(() => decodeExtendedAttributes(vector.subarray(0, cut)), 'ERR_EA_INVALID');
      const loop = Buffer.from(vector);
      loop.writeUInt32LE(4, 0); // points inside its own entry
      expectThrowsCode(() => decodeExtendedAttributes(loop), 'ERR_EA_INVALID');
      const far = Buffer.from(vector);
      far.writeUInt32LE(1000, 0);
      expectThrowsCode(() => decodeExtendedAttributes(far), 'ERR_EA_INVALID');
      const noNul = Buffer.from(vector);
      noNul[11] = 0x41;
      expectThrowsCode(() => decodeExtendedAttributes(noNul), 'ERR_EA_INVALID');
      expectThrowsCode(() => decodeExtendedAttributes(Buffer.concat([vector, Buffer.alloc(8)])), 'ERR_EA_INVALID');
    });
    it('gives only ERR_EA_INVALID for random bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
          try {
            decodeExtendedAttributes(Buffer.from(bytes));
          } catch (err) {
            expect(isWinLayerError(err) && err.code).to.equal('ERR_EA_INVALID');
          }
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('reparse points (FORMATS.md §1.6)', () => {
    it('encodes the relative symlink ..\\foo vector', () => {
      const name = Buffer.from('..\\foo\0', 'utf16le');
      const expected = Buffer.concat([hex('0c0000a0 28000000 00000c00 0e000c00 01000000'), name, name]);
      expect(encodeReparsePoint({ target: '..\\foo', isMountPoint: false })).to.deep.equal(expected);
    });
    const cases: [string, boolean, string, number][] = [
      ['C:\\Windows', false, '\\??\\C:\\Windows', 0],
      ['\\\\?\\Volume{x}\\', false, '\\??\\Volume{x}\\', 0],
      ['\\\\server\\share', false, '\\??\\UNC\\server\\share', 0],
      ['rel\\\u{1F433}', false, 'rel\\\u{1F433}', 1],
      ['C:\\mnt', true, '\\??\\C:\\mnt', 0],
    ];
    for (const [target, isMountPoint, sub, flags] of cases) {
      it(`round-trips ${isMountPoint ? 'mount point' : 'symlink'} ${target} with substitute ${sub}`, () => {
        const rp = decodeReparsePoint(encodeReparsePoint({ target, isMountPoint }));
        expect(rp).to.deep.equal({
          target,
          isMountPoint,
          tag: isMountPoint ? IO_REPARSE_TAG_MOUNT_POINT : IO_REPARSE_TAG_SYMLINK,
          substituteName: sub,
          printName: target,
          flags,
        });
      });
    }
    it('rejects other tags with ERR_REPARSE_UNSUPPORTED', () => {
      const b = encodeReparsePoint({ target: 'x', isMountPoint: false });
      b.writeUInt32LE(0x80000017, 0); // WOF
      expectThrowsCode(() => decodeReparsePoint(b), 'ERR_REPARSE_UNSUPPORTED');
    });
    it('rejects an empty target and truncations with ERR_REPARSE_INVALID', () => {
      expectThrowsCode(() => encodeReparsePoint({ target: '', isMountPoint: false }), 'ERR_REPARSE_INVALID');
      expectThrowsCode(() => encodeReparsePoint({ target: 'x'.repeat(9000), isMountPoint: false }), 'ERR_REPARSE_INVALID');
      const b = encodeReparsePoint({ target: 'C:\\x', isMountPoint: true });
      for (let cut = 0; cut < b.length; cut++) expectThrowsCode(() => decodeReparsePoint(b.subarray(0, cut)), 'ERR_REPARSE_INVALID');
    });
    it('falls back to the substitute name when the print name is empty', () => {
      const sub = Buffer.from('\\??\\C:\\t', 'utf16le');
      const b = Buffer.alloc(8 + 8 + sub.length + 2 + 2);
      b.writeUInt32LE(IO_REPARSE_TAG_MOUNT_POINT, 0);
      b.writeUInt16LE(b.length - 8, 4);
      b.writeUInt16LE(sub.length, 10);
      b.writeUInt16LE(sub.length + 2, 12);
      sub.copy(b, 16);
      expect(decodeReparsePoint(b).target).to.equal('C:\\t');
    });
    it('gives only typed errors for random bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 60 }), fc.boolean(), (bytes, tagged) => {
          const b = Buffer.from(bytes);
          if (tagged && b.length >= 4) b.writeUInt32LE(IO_REPARSE_TAG_SYMLINK, 0);
          try {
            decodeReparsePoint(b);
          } catch (err) {
            expect(isWinLayerError(err) && ['ERR_REPARSE_INVALID', 'ERR_REPARSE_UNSUPPORTED'].includes(err.code)).to.equal(true);
          }
        }),
        { numRuns: 1000 },
      );
    });
  });
});
