import { expect } from 'chai';
import fc from 'fast-check';
import { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE, type TarHeaderInput } from '../../src/tar/encode.js';
import { golden, goldenBody, goldenInput, readGoldenFile } from '../fixtures/tar/index.js';
import { arbitraryEntry, buildTar, expectSameBytes, expectThrowsCode, gnuTar } from './tar-helpers.js';

describe('tar/encode', () => {
  describe(`byte for byte against Go's archive/tar (${golden.goVersion})`, () => {
    for (const file of golden.files) {
      describe(file.file, () => {
        const bytes = readGoldenFile(file);
        for (const entry of file.entries) {
          it(entry.title, () => {
            const expected = bytes.subarray(entry.offset, entry.offset + entry.headerLength);
            expectSameBytes(encodeTarHeader(goldenInput(entry)), expected, `${file.file}: ${entry.title}`);
          });
        }
        if (file.complete) {
          it('the whole archive: headers, data, padding, end-of-archive', () => {
            const rebuilt = buildTar(file.entries.map((e) => ({ input: goldenInput(e), body: goldenBody(e) })));
            expectSameBytes(rebuilt, bytes, file.file);
          });
        }
      });
    }

    it('covers every case the brief lists', () => {
      const titles = golden.files.flatMap((f) => f.entries.map((e) => e.title)).join('\n');
      for (const needle of ['plain file', 'directory', 'file symlink', 'directory symlink', 'junction', 'hard link', 'ADS', 'empty file',
        'whiteout, short', 'whiteout, long splittable', 'whiteout, non-ASCII', 'over 100 bytes', 'outside the BMP', 'over 260',
        'pre-1970', '100-ns', 'extended attributes', 'size 8 GiB']) {
        expect(titles, needle).to.include(needle);
      }
    });
  });

  describe('format decisions', () => {
    const base: TarHeaderInput = { name: 'a.txt', typeflag: '0', mode: 0o100000, size: 0, mtime: 7_000_000_000n, format: 'pax' };

    it('writes plain USTAR (one block) when PAX is asked for but nothing needs a record', () => {
      const out = encodeTarHeader(base);
      expect(out.length).to.equal(512);
      expect(out.subarray(257, 265).toString('latin1')).to.equal('ustar\u000000');
    });

    it('needs a PAX entry for a sub-second mtime, atime, ctime or any user record', () => {
      expect(encodeTarHeader({ ...base, mtime: 7_000_000_001n }).length).to.equal(1536);
      expect(encodeTarHeader({ ...base, atime: 1n }).length).to.equal(1536);
      expect(encodeTarHeader({ ...base, ctime: 0n }).length).to.equal(1536);
      expect(encodeTarHeader({ ...base, paxRecords: { 'MSWINDOWS.fileattr': '32' } }).length).to.equal(1536);
    });

    it('drops atime/ctime and rounds mtime for the unknown format', () => {
      const out = encodeTarHeader({ ...base, format: 'unknown', mtime: 7_600_000_000n, atime: 1n, ctime: 2n });
      expect(out.length).to.equal(512);
      expect(out.subarray(136, 148).toString('latin1')).to.equal('00000000010\0'); // 8 s
    });

    it('writes the x entry with mode, uid, gid and mtime 0 and octal zeros in the main header', () => {
      const out = encodeTarHeader({ ...base, atime: 1n });
      const x = out.subarray(0, 512);
      expect(x.subarray(0, 100).toString('latin1').replace(/\0+$/, '')).to.equal('PaxHeaders.0/a.txt');
      expect(x.subarray(100, 108).toString('latin1')).to.equal('0000000\0');
      expect(x.subarray(136, 148).toString('latin1')).to.equal('00000000000\0');
      expect(x.subarray(329, 345).every((b) => b === 0)).to.equal(true); // no devmajor/devminor in the x entry
      const main = out.subarray(1024);
      expect(main.subarray(329, 345).toString('latin1')).to.equal('0000000\u00000000000\0');
      expect(main.subarray(148, 156).toString('latin1')).to.match(/^[0-7]{6}\0 $/);
    });

    it('promotes the legacy type like Go', () => {
      expect(String.fromCharCode(encodeTarHeader({ ...base, typeflag: '\0' })[156] ?? 0)).to.equal('0');
      expect(String.fromCharCode(encodeTarHeader({ ...base, typeflag: '\0', name: 'd/' })[156] ?? 0)).to.equal('5');
    });
  });

  describe('refuses what Go refuses', () => {
    const base: TarHeaderInput = { name: 'a.txt', typeflag: '0', mode: 0, size: 0, mtime: 0n, format: 'pax' };
    const cases: { title: string; input: TarHeaderInput; code: string }[] = [
      { title: 'a name with NUL', input: { ...base, name: 'a\0b' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a link name with NUL', input: { ...base, typeflag: '2', linkname: 'x\0' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a regular file with a trailing slash', input: { ...base, name: 'a/' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: "the writer's own type 'x'", input: { ...base, typeflag: 'x' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: "GNU long name type 'L'", input: { ...base, typeflag: 'L' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a global header', input: { ...base, typeflag: 'g' }, code: 'ERR_ENTRY_TYPE_UNSUPPORTED' },
      { title: 'a two-char typeflag', input: { ...base, typeflag: '00' }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a mode beyond 7 octal digits', input: { ...base, mode: 0o10000000 }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a negative mode', input: { ...base, mode: -1 }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a negative size on a regular file', input: { ...base, size: -1 }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a fractional size', input: { ...base, size: 1.5 }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'an mtime beyond int64 seconds', input: { ...base, mtime: 2n ** 63n * 1_000_000_000n }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'an mtime before int64 seconds', input: { ...base, mtime: -(2n ** 63n) * 1_000_000_000n - 1n }, code: 'ERR_TAR_HEADER_INVALID' },
      { title: 'a record key with "="', input: { ...base, paxRecords: { 'a=b': 'c' } }, code: 'ERR_PAX_RECORD_INVALID' },
      { title: 'an empty record key', input: { ...base, paxRecords: { '': 'c' } }, code: 'ERR_PAX_RECORD_INVALID' },
      { title: 'a record key with NUL', input: { ...base, paxRecords: { 'a\0': 'c' } }, code: 'ERR_PAX_RECORD_INVALID' },
      { title: 'more than 1 MiB of records', input: { ...base, paxRecords: { 'MSWINDOWS.rawsd': 'x'.repeat(1 << 20) } }, code: 'ERR_METADATA_TOO_LARGE' },
    ];
    for (const c of cases) it(c.title, () => expectThrowsCode(() => encodeTarHeader(c.input), c.code));

    it('allows NUL in the value of a non-path record (Go does)', () => {
      expect(encodeTarHeader({ ...base, paxRecords: { 'MSWINDOWS.xattr.bin': 'a\0b' } }).length).to.equal(1536);
    });

    it('writes a negative size on a header-only type as a PAX size record (as Go)', () => {
      const out = encodeTarHeader({ ...base, typeflag: '5', name: 'd', size: -1 });
      expect(out.subarray(512, 1024).toString('latin1')).to.include('size=-1\n');
    });
  });

  describe('padding and end of archive', () => {
    for (const [size, expected] of [[0, 0], [1, 511], [511, 1], [512, 0], [513, 511], [2 ** 40 + 3, 509]] as const) {
      it(`pads ${size} bytes with ${expected} zeros`, () => {
        const pad = tarPadding(size);
        expect(pad.length).to.equal(expected);
        expect(pad.every((b) => b === 0)).to.equal(true);
      });
    }
    it('refuses a negative size', () => expectThrowsCode(() => tarPadding(-1), 'ERR_TAR_HEADER_INVALID'));
    it('ends an archive with two zero blocks', () => {
      expect(TAR_END_OF_ARCHIVE.length).to.equal(1024);
      expect(TAR_END_OF_ARCHIVE.every((b) => b === 0)).to.equal(true);
    });
  });

  describe('GNU tar can list what we write', () => {
    it('lists every golden input, encoded by us, with its real name', () => {
      const entries = golden.files.filter((f) => f.complete).flatMap((f) => f.entries.map((e) => ({ input: goldenInput(e), body: goldenBody(e) })));
      const tar = buildTar(entries);
      const listing = gnuTar(['-t', '--quoting-style=literal', '-f', '-'], tar);
      expect(listing.status, listing.stderr).to.equal(0);
      expect(listing.stdout.split('\n').filter((l) => l !== '')).to.deep.equal(entries.map((e) => e.input.name));
      const verbose = gnuTar(['-tvv', '--full-time', '-f', '-'], tar);
      expect(verbose.status, verbose.stderr).to.equal(0);
    });

    it('lists random headers', () => {
      fc.assert(fc.property(fc.array(arbitraryEntry(), { minLength: 1, maxLength: 8 }), (entries) => {
        const unique = entries.map((e, i) => ({ ...e, input: { ...e.input, name: `${i}/${e.input.name}` } }));
        const listing = gnuTar(['-t', '--quoting-style=literal', '-f', '-'], buildTar(unique));
        expect(listing.status, listing.stderr).to.equal(0);
        expect(listing.stdout.split('\n').filter((l) => l !== '')).to.deep.equal(unique.map((e) => e.input.name));
      }), { numRuns: 40 });
    });
  });
});
