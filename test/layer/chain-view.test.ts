import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChainView } from '../../src/layer/chain-view.js';
import { ENTRIES_FILE, INDEX_DIR, LAYER_INFO_FILE, recordLine, type IndexEntry } from '../../src/layer/metadata-index.js';
import { cleanupTemp, layerSummary, tempDir } from '../helpers/store.js';

/** A layer directory holding only an index with `records`. */
function layerOf(records: IndexEntry[]): string {
  const root = tempDir();
  fs.mkdirSync(path.join(root, INDEX_DIR));
  fs.writeFileSync(path.join(root, INDEX_DIR, ENTRIES_FILE), records.map((r) => recordLine(r) + '\n').join(''));
  fs.writeFileSync(path.join(root, INDEX_DIR, LAYER_INFO_FILE), JSON.stringify(layerSummary(records.length)));
  return root;
}

describe('layer/chain-view', () => {
  after(cleanupTemp);

  // Names from a small tree, in two spellings, so that layers add, delete and re-add the same ones.
  const segment = fc.constantFrom('a', 'A', 'b', 'B', 'sys', 'SYS', 'é', 'É');
  const name = fc.array(segment, { minLength: 0, maxLength: 3 }).map((segs) => ['Files', ...segs].join('/'));
  const record = fc.record({ kind: fc.constantFrom<IndexEntry['kind']>('file', 'directory', 'whiteout', 'link'), name });
  const chain = fc.array(fc.array(record, { maxLength: 12 }), { minLength: 1, maxLength: 3 });

  /** Two views of the same chain of `layers`: one left to stream its answers, one built whole. */
  function viewsOf(layers: IndexEntry[][]): { streamed: ChainView; whole: ChainView } {
    const parents = layers.map((records) => layerOf(records));
    const whole = new ChainView(parents);
    whole.has('Files'); // builds the whole view
    return { streamed: new ChainView(parents), whole };
  }

  it('answers an opaque whiteout by streaming the indexes exactly as from the whole view', () => {
    fc.assert(
      fc.property(chain, fc.array(name, { minLength: 1, maxLength: 4 }), (layers, dirs) => {
        const { streamed, whole } = viewsOf(layers);
        for (const dir of dirs) expect(streamed.childrenOf(dir), `${JSON.stringify(layers)} ${dir}`).to.deep.equal(whole.childrenOf(dir));
      }),
      { numRuns: 300 },
    );
  });

  it('finds the children of several directories (nested ones too) in one pass exactly as the whole view has them', () => {
    fc.assert(
      fc.property(chain, fc.array(name, { minLength: 1, maxLength: 5 }), (layers, dirs) => {
        const { streamed, whole } = viewsOf(layers);
        const found = streamed.prefetchChildren(dirs);
        for (const dir of dirs) {
          const expected = whole.childrenOf(dir);
          expect(found.get(dir.toUpperCase()), `${JSON.stringify(layers)} ${dir}`).to.deep.equal(expected);
          // childrenOf hands the prefetched answer out once, then answers as before.
          expect(streamed.childrenOf(dir)).to.deep.equal(expected);
          expect(streamed.childrenOf(dir)).to.deep.equal(expected);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('drops what a directory held once a nearer layer puts a file in its place, streamed or whole', () => {
    const l0 = layerOf([{ kind: 'directory', name: 'Files' }, { kind: 'directory', name: 'Files/d' }, { kind: 'file', name: 'Files/d/f' }]);
    const l1 = layerOf([{ kind: 'directory', name: 'Files' }, { kind: 'file', name: 'Files/d' }]);
    const s = new ChainView([l1, l0]);
    expect(s.childrenOf('Files/d')).to.deep.equal([]);
    expect(s.childrenOf('Files')).to.deep.equal(['Files/d']);
    const w = new ChainView([l1, l0]);
    expect([w.has('Files/d'), w.has('Files/d/f')]).to.deep.equal([true, false]);
    expect(w.childrenOf('Files/d')).to.deep.equal([]);
  });

  it('keeps answering the same once it has built the whole view, after its streamed queries', () => {
    const parent = layerOf([
      { kind: 'directory', name: 'Files' },
      { kind: 'directory', name: 'Files/d' },
      { kind: 'file', name: 'Files/d/x' },
      { kind: 'file', name: 'Files/d/Y' },
      { kind: 'file', name: 'Files/d/sub/z' },
    ]);
    const child = layerOf([{ kind: 'whiteout', name: 'Files/d/x' }]);
    const view = new ChainView([child, parent]);
    const answers = Array.from({ length: 20 }, () => view.childrenOf('FILES/D'));
    for (const a of answers) expect(a).to.deep.equal(['Files/d/Y', 'Files/d/sub']);
  });
});
