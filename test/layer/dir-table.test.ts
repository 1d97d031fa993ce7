import { expect } from 'chai';
import { DirTable } from '../../src/layer/dir-table.js';
import { caseFoldKey } from '../../src/util/safe-path.js';

describe('layer/dir-table', () => {
  it('maps folded names to host paths through many growths, and knows plain entries', () => {
    const dirs = new DirTable();
    const n = 50_000;
    const host = (i: number): string => `Files/Windows/WinSxS/Component-${i}_Abc`;
    for (let i = 0; i < n; i++) {
      dirs.set(caseFoldKey(host(i)), host(i));
      if (i % 3 === 0) dirs.markPlain(caseFoldKey(host(i)));
    }
    for (const i of [0, 1, 2, 3, 4999, n - 1]) {
      expect(dirs.get(caseFoldKey(host(i))), `dir ${i}`).to.equal(host(i));
      expect(dirs.isPlain(caseFoldKey(host(i))), `dir ${i}`).to.equal(i % 3 === 0);
    }
    expect(dirs.has(caseFoldKey(host(n)))).to.equal(false);
    expect(dirs.get('FILES/WINDOWS/WINSXS/COMPONENT-1_ABC/')).to.equal(undefined);
  });

  it('replaces, deletes and sets again', () => {
    const dirs = new DirTable();
    dirs.set('FILES/A', 'Files/A');
    dirs.markPlain('FILES/A');
    dirs.set('FILES/A', 'Files/a');
    expect([dirs.get('FILES/A'), dirs.isPlain('FILES/A')]).to.deep.equal(['Files/a', false]);
    dirs.delete('FILES/A');
    expect([dirs.has('FILES/A'), dirs.get('FILES/A')]).to.deep.equal([false, undefined]);
    dirs.set('FILES/A', 'Files/A');
    expect(dirs.get('FILES/A')).to.equal('Files/A');
  });

  it('never returns a host path that does not fold to the name asked for', () => {
    const dirs = new DirTable();
    // A host recorded under a key it does not fold to is never found: hits are confirmed.
    dirs.set('FILES/X', 'Files/y');
    expect(dirs.get('FILES/X')).to.equal(undefined);
  });
});
