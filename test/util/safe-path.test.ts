import { expect } from 'chai';
import fc from 'fast-check';
import { isWinLayerError } from '../../src/errors.js';
import { caseFoldKey, layerNameBelowFiles, parseLayerPath, windowsPathBelowFiles } from '../../src/util/safe-path.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isWinLayerError(e), String(e)).to.equal(true);
    return (e as { code: string }).code;
  }
  return 'no error';
}

/**
 * The rules of parseLayerPath written the plain way (split, then a regular expression per
 * segment): the model the one-pass parser must agree with, code for code.
 */
function modelCode(raw: string): string {
  if (raw.length === 0 || raw.includes('\0')) return 'ERR_PATH_INVALID';
  if (raw.startsWith('/') || raw.startsWith('\\') || /^[A-Za-z]:/.test(raw)) return 'ERR_PATH_ESCAPE';
  if (raw.includes('\\')) return 'ERR_PATH_INVALID';
  let name = raw.startsWith('./') ? raw.slice(2) : raw;
  while (name.endsWith('/')) name = name.slice(0, -1);
  if (name.length === 0) return 'ERR_PATH_INVALID';
  const segments = name.split('/');
  for (const seg of segments) {
    if (seg === '..') return 'ERR_PATH_ESCAPE';
    if (seg === '' || seg === '.') return 'ERR_PATH_INVALID';
    // eslint-disable-next-line no-control-regex -- control characters are what is rejected
    if (/[\u0000-\u001f<>:"|?*\\]/.test(seg)) return 'ERR_PATH_INVALID';
    if (seg.toLowerCase().endsWith('.$wcidirs$')) return 'ERR_PATH_RESERVED';
    if (seg.length > 255) return 'ERR_PATH_TOO_LONG';
  }
  if (name.length > 32767) return 'ERR_PATH_TOO_LONG';
  if (!['Files', 'Hives', 'UtilityVM'].includes(segments[0] as string)) return 'ERR_PATH_ROOT';
  return `ok ${name}`;
}

describe('util/safe-path', () => {
  it('agrees with the plain model of its rules on any name made of the parts that matter', () => {
    const part = fc.constantFrom(
      'Files', 'Hives', 'UtilityVM', 'files', '/', '/', '/', '.', '..', './', 'a', 'Z', 'é', '𝄞', '\ud800', ':', 'C:', '\\', '\0', '\u001f', '\u007f', '<', '?',
      '.$wcidirs$', '$wcidirs$', '.$WcIdIrS$', 'x'.repeat(250), 'y'.repeat(6), ' ',
    );
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), (parts) => {
        const raw = parts.join('');
        let got: string;
        try {
          const p = parseLayerPath(raw);
          got = `ok ${p.name}`;
          expect(p.root).to.equal(p.name.split('/')[0]);
        } catch (e) {
          expect(isWinLayerError(e), String(e)).to.equal(true);
          got = (e as { code: string }).code;
        }
        expect(got, JSON.stringify(raw)).to.equal(modelCode(raw));
      }),
      { numRuns: 20_000 },
    );
    expect(modelCode('Files/' + 'a/'.repeat(16_384))).to.equal('ERR_PATH_TOO_LONG');
    expect(codeOf(() => parseLayerPath('Files/' + 'a/'.repeat(16_384)))).to.equal('ERR_PATH_TOO_LONG');
  });

  const valid = [
    { title: 'a root', input: 'Files', name: 'Files', root: 'Files' },
    { title: 'a nested file', input: 'Files/Windows/System32/a.dll', name: 'Files/Windows/System32/a.dll', root: 'Files' },
    { title: 'a trailing slash', input: 'Files/dir/', name: 'Files/dir', root: 'Files' },
    { title: 'a leading ./', input: './Hives/System_Delta', name: 'Hives/System_Delta', root: 'Hives' },
    { title: 'UtilityVM', input: 'UtilityVM/Files/EFI', name: 'UtilityVM/Files/EFI', root: 'UtilityVM' },
    { title: 'non-BMP characters', input: 'Files/𝄞 music', name: 'Files/𝄞 music', root: 'Files' },
    { title: 'dots inside names', input: 'Files/a..b/.hidden', name: 'Files/a..b/.hidden', root: 'Files' },
  ] as const;
  for (const c of valid) {
    it(`accepts ${c.title}`, () => {
      const p = parseLayerPath(c.input);
      expect({ name: p.name, root: p.root }).to.deep.equal({ name: c.name, root: c.root });
    });
  }

  const rejected = [
    { title: 'an empty name', input: '', code: 'ERR_PATH_INVALID' },
    { title: 'a NUL', input: 'Files/a\0b', code: 'ERR_PATH_INVALID' },
    { title: 'a backslash', input: 'Files\\..\\x', code: 'ERR_PATH_INVALID' },
    { title: 'an absolute path', input: '/etc/passwd', code: 'ERR_PATH_ESCAPE' },
    { title: 'a drive letter', input: 'C:/Windows', code: 'ERR_PATH_ESCAPE' },
    { title: 'a UNC path', input: '//server/share/x', code: 'ERR_PATH_ESCAPE' },
    { title: '.. at the start', input: '../Files/x', code: 'ERR_PATH_ESCAPE' },
    { title: '.. inside', input: 'Files/a/../../../etc', code: 'ERR_PATH_ESCAPE' },
    { title: 'an empty segment', input: 'Files//a', code: 'ERR_PATH_INVALID' },
    { title: 'a . segment', input: 'Files/./a', code: 'ERR_PATH_INVALID' },
    { title: 'a colon (stream syntax)', input: 'Files/a:b', code: 'ERR_PATH_INVALID' },
    { title: 'a forbidden character', input: 'Files/a?b', code: 'ERR_PATH_INVALID' },
    { title: 'a control character', input: 'Files/a\u0001b', code: 'ERR_PATH_INVALID' },
    { title: 'another root', input: 'etc/passwd', code: 'ERR_PATH_ROOT' },
    { title: 'a root in the wrong case', input: 'files/a', code: 'ERR_PATH_ROOT' },
    { title: 'a $wcidirs$ sidecar name', input: 'Files/dir.$wcidirs$', code: 'ERR_PATH_RESERVED' },
    { title: 'a $wcidirs$ sidecar name in another case (the same file on NTFS)', input: 'Files/dir.$WCIDIRS$/x', code: 'ERR_PATH_RESERVED' },
    { title: 'a segment over 255 units', input: 'Files/' + 'a'.repeat(256), code: 'ERR_PATH_TOO_LONG' },
    { title: 'a path over 32767 units', input: 'Files/' + ('a'.repeat(200) + '/').repeat(170) + 'x', code: 'ERR_PATH_TOO_LONG' },
    { title: 'only ./', input: './', code: 'ERR_PATH_INVALID' },
  ] as const;
  for (const c of rejected) {
    it(`rejects ${c.title} with ${c.code}`, () => {
      expect(codeOf(() => parseLayerPath(c.input))).to.equal(c.code);
    });
  }

  it('folds case per UTF-16 unit, as NTFS does', () => {
    expect(caseFoldKey('Files/abc')).to.equal('FILES/ABC');
    expect(caseFoldKey('Files/straße')).to.equal('FILES/STRAßE');
    expect(caseFoldKey('Files/ÄÖü')).to.equal(caseFoldKey('Files/äöÜ'));
    // Outside the BMP a character is two surrogate units, each its own upper case.
    for (const [upper, lower] of [['𐐀', '𐐨'], ['𞤀', '𞤢']]) {
      expect(caseFoldKey(`Files/${upper}`)).to.not.equal(caseFoldKey(`Files/${lower}`));
      expect(caseFoldKey(`Files/a${lower}`)).to.equal(`FILES/A${lower}`);
    }
    expect(caseFoldKey('Files/\ud801x')).to.equal('FILES/\ud801X');
    // A full upper case of several characters: NTFS's simple one where there is one
    // (the Greek letters with ypogegrammeni take their title-case forms), else the character.
    const folds: [number, number][] = [];
    for (const start of [0x1f80, 0x1f90, 0x1fa0]) for (let c = start; c < start + 8; c++) folds.push([c, c + 8]);
    folds.push([0x1fb3, 0x1fbc], [0x1fc3, 0x1fcc], [0x1ff3, 0x1ffc]);
    for (const [small, title] of folds) {
      expect(caseFoldKey(String.fromCharCode(small)), small.toString(16)).to.equal(String.fromCharCode(title));
      expect(caseFoldKey(String.fromCharCode(title)), title.toString(16)).to.equal(String.fromCharCode(title));
    }
    for (const unchanged of ['ß', 'ŉ', 'ǰ', 'ΐ', 'ﬀ', 'ᾲ', 'ᾶ', 'ῂ']) expect(caseFoldKey(unchanged), unchanged).to.equal(unchanged);
  });

  it('writes tombstone paths below Files with backslashes', () => {
    expect(windowsPathBelowFiles('Files/Windows/a.txt')).to.equal('\\Windows\\a.txt');
    expect(layerNameBelowFiles('\\Windows\\a.txt')).to.equal('Files/Windows/a.txt');
  });
});
