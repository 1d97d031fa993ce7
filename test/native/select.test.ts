/** src/native/select.ts: the one place a native backend is chosen. */
import { expect } from 'chai';
import { isWinLayerError } from '../../src/errors.js';
import { isBackendName, NATIVE_BACKEND_ENV, selectBackend } from '../../src/native/select.js';

describe('native/select', () => {
  const cases: { title: string; value: string | undefined; platform: NodeJS.Platform; backend: string }[] = [
    { title: 'unset on Linux', value: undefined, platform: 'linux', backend: 'portable' },
    { title: 'unset on macOS', value: undefined, platform: 'darwin', backend: 'portable' },
    { title: 'unset on Windows', value: undefined, platform: 'win32', backend: 'edge' },
    { title: 'empty on Windows', value: '', platform: 'win32', backend: 'edge' },
    { title: 'portable on Windows', value: 'portable', platform: 'win32', backend: 'portable' },
    { title: 'edge on Linux', value: 'edge', platform: 'linux', backend: 'edge' },
  ];
  for (const c of cases) {
    it(`${NATIVE_BACKEND_ENV} ${c.title} selects ${c.backend}`, () => {
      const env = c.value === undefined ? {} : { [NATIVE_BACKEND_ENV]: c.value };
      expect(selectBackend({ env, platform: c.platform }).name).to.equal(c.backend);
    });
  }

  for (const value of ['Edge', 'native', 'portable ', 'constructor', '__proto__']) {
    it(`rejects ${JSON.stringify(value)} with ERR_ARGUMENT_INVALID`, () => {
      let code: unknown;
      try {
        selectBackend({ env: { [NATIVE_BACKEND_ENV]: value }, platform: 'linux' });
      } catch (e) {
        code = isWinLayerError(e) ? e.code : e;
      }
      expect(code).to.equal('ERR_ARGUMENT_INVALID');
    });
  }

  it('knows exactly the two backend names', () => {
    expect(['portable', 'edge', 'x', 'toString'].map(isBackendName)).to.deep.equal([true, true, false, false]);
  });

  it('does not load the edge backend by choosing it', () => {
    // Choosing must work where edge-js is absent: loading happens on the first import.
    expect(selectBackend({ env: { [NATIVE_BACKEND_ENV]: 'edge' } }).name).to.equal('edge');
  });
});
