import { expect } from 'chai';
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

describe('util/safe-path', () => {
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
  });

  it('writes tombstone paths below Files with backslashes', () => {
    expect(windowsPathBelowFiles('Files/Windows/a.txt')).to.equal('\\Windows\\a.txt');
    expect(layerNameBelowFiles('\\Windows\\a.txt')).to.equal('Files/Windows/a.txt');
  });
});
