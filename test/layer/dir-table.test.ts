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

  it("keeps each directory below its parent's record: a child's path stays when the parent is set again or deleted", () => {
    const dirs = new DirTable();
    const files = dirs.set('FILES', 'Files');
    const a = dirs.set('FILES/A', 'Files/A');
    const b = dirs.set('FILES/A/B', 'Files/A/b');
    // Set again to the spelling it has: the same record.
    expect(dirs.set('FILES/A', 'Files/A')).to.equal(a);
    // Another spelling: a new record; what was made below the old one keeps its path.
    const a2 = dirs.set('FILES/A', 'Files/a');
    expect(a2).to.not.equal(a);
    expect([dirs.get('FILES/A'), dirs.get('FILES/A/B'), dirs.hostAt(a), dirs.hostAt(b)]).to.deep.equal(['Files/a', 'Files/A/b', 'Files/A', 'Files/A/b']);
    const c = dirs.set('FILES/A/C', 'Files/a/C');
    dirs.delete('FILES/A');
    expect([dirs.has('FILES/A'), dirs.get('FILES/A/C'), dirs.hostAt(c), dirs.hostAt(files)]).to.deep.equal([false, 'Files/a/C', 'Files/a/C', 'Files']);
    expect([...dirs.hosts()].sort()).to.deep.equal(['Files', 'Files/A/b', 'Files/a/C']);
    expect([dirs.recordOf('FILES/A/C'), dirs.recordOf('FILES/A')]).to.deep.equal([c, -1]);
  });

  it('holds deep paths by their own names: 60 levels of 200 characters come back whole', () => {
    const dirs = new DirTable();
    const segment = (i: number): string => `level-${i}-`.padEnd(200, 'x');
    let host = 'Files';
    dirs.set('FILES', host);
    const records: [number, string][] = [];
    for (let i = 0; i < 60; i++) {
      host += '/' + segment(i);
      records.push([dirs.set(caseFoldKey(host), host), host]);
    }
    for (const [record, h] of [records[0], records[29], records[59]] as [number, string][]) {
      expect(dirs.hostAt(record)).to.equal(h);
      expect(dirs.get(caseFoldKey(h))).to.equal(h);
    }
  });

  it('never returns a host path that does not fold to the name asked for', () => {
    const dirs = new DirTable();
    // A host recorded under a key it does not fold to is never found: hits are confirmed.
    dirs.set('FILES/X', 'Files/y');
    expect(dirs.get('FILES/X')).to.equal(undefined);
  });
});
