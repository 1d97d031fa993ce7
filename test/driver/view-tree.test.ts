import { expect } from 'chai';
import fc from 'fast-check';
import { NONE, ViewTree } from '../../src/driver/view-tree.js';
import { caseFoldKey } from '../../src/util/safe-path.js';

/** The live nodes of `tree` below `id`, as folded path → [spelled path, kind], walked through children(). */
function contents(tree: ViewTree, id = tree.root, out = new Map<string, [string, string]>()): Map<string, [string, string]> {
  for (const c of tree.children(id)) {
    out.set(caseFoldKey(tree.pathOf(c)), [tree.pathOf(c), tree.kind(c)]);
    contents(tree, c, out);
  }
  return out;
}

describe('driver/view-tree', () => {
  it('finds, renames and removes names through many growths of its arrays, table and name chunks', () => {
    const tree = new ViewTree();
    const n = 30_000;
    const dirs: number[] = [];
    for (let d = 0; d < 30; d++) dirs.push(tree.add(tree.root, `Dir${d}`, 'directory', 0, d, 1));
    const files: number[] = [];
    for (let i = 0; i < n; i++) files.push(tree.add(dirs[i % 30] as number, `File-${i}.DLL`, 'file', 1, i, 2));
    expect(tree.size).to.equal(30 + n);
    // A directory named again by a nearer layer keeps its node and children, with the new spelling.
    tree.update(dirs[7] as number, 'DIR7', 'directory', 2, 99, 3);
    expect(tree.find('DIR7')).to.equal(dirs[7]);
    expect(tree.pathOf(files[37] as number)).to.equal('DIR7/File-37.DLL');
    expect(tree.find(caseFoldKey('dir7/file-37.dll'))).to.equal(files[37]);
    expect([tree.layer(dirs[7] as number), tree.offset(dirs[7] as number), tree.length(dirs[7] as number)]).to.deep.equal([2, 99, 3]);
    // Every third file removed: the rest still found, the removed ones not, and added again.
    for (let i = 0; i < n; i += 3) tree.remove(files[i] as number);
    let wrong = 0;
    for (let i = 0; i < n; i++) if (tree.find(caseFoldKey(`dir${i % 30}/file-${i}.dll`)) !== (i % 3 === 0 ? NONE : files[i])) wrong++;
    expect(wrong).to.equal(0);
    const again = tree.add(dirs[0] as number, 'file-0.dll', 'symlink', 3, 5, 6);
    expect(tree.find(caseFoldKey('dir0/FILE-0.DLL'))).to.equal(again);
    expect([tree.kind(again), tree.isAlive(files[0] as number)]).to.deep.equal(['symlink', false]);
    expect(tree.size).to.equal(30 + n - n / 3 + 1);
  });

  it('takes a directory and all below it, telling each node before it goes', () => {
    const tree = new ViewTree();
    const a = tree.add(tree.root, 'a', 'implicit', 0, -1, 0);
    const b = tree.add(a, 'b', 'directory', 0, 1, 1);
    const c = tree.add(b, 'c', 'file', 0, 2, 1);
    const d = tree.add(a, 'd', 'link', 0, 3, 1);
    const told: string[] = [];
    tree.remove(a, (id) => told.push(caseFoldKey(tree.pathOf(id))));
    expect(told.sort()).to.deep.equal(['A', 'A/B', 'A/B/C', 'A/D']);
    for (const id of [a, b, c, d]) expect(tree.isAlive(id)).to.equal(false);
    expect([tree.find('A'), tree.find('A/B/C'), tree.size, [...tree.children(tree.root)].length]).to.deep.equal([NONE, NONE, 0, 0]);
  });

  it('agrees with a map of paths under random adds, renames and removals', () => {
    const segment = fc.constantFrom('a', 'A', 'b', 'Bé', 'BÉ', 'x'.repeat(300), 'X'.repeat(300), '😀');
    const op = fc.record({ op: fc.constantFrom('add', 'add', 'rename', 'remove'), path: fc.array(segment, { minLength: 1, maxLength: 3 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const tree = new ViewTree();
        const model = new Map<string, [string, string]>();
        for (const { op: what, path } of ops) {
          const key = caseFoldKey(path.join('/'));
          const id = tree.find(key);
          if (what === 'remove') {
            if (id !== NONE) tree.remove(id);
            for (const k of [...model.keys()]) if (k === key || k.startsWith(`${key}/`)) model.delete(k);
          } else if (what === 'rename') {
            if (id === NONE) continue;
            tree.update(id, path[path.length - 1] as string, 'directory', 1, 0, 0);
            const spelled = [...(model.get(key) as [string, string])[0].split('/').slice(0, -1), path[path.length - 1] as string].join('/');
            for (const [k, [name, kind]] of [...model]) {
              if (k === key) model.set(k, [spelled, 'directory']);
              else if (k.startsWith(`${key}/`)) model.set(k, [spelled + name.slice(spelled.length), kind]);
            }
          } else if (id === NONE) {
            // Each missing directory above made on the way, as its first name spells it.
            let parent = tree.root;
            for (const [i, seg] of path.entries()) {
              const k = caseFoldKey(path.slice(0, i + 1).join('/'));
              const found = tree.child(parent, caseFoldKey(seg));
              const last = i === path.length - 1;
              parent = found !== NONE ? found : tree.add(parent, seg, last ? 'file' : 'implicit', 0, 0, 0);
              if (found === NONE) model.set(k, [tree.pathOf(parent), last ? 'file' : 'implicit']);
            }
          }
        }
        expect(contents(tree)).to.deep.equal(model);
        expect(tree.size).to.equal([...model.values()].filter(([, kind]) => kind !== 'implicit').length);
      }),
      { numRuns: 300 },
    );
  });
});
