import { expect } from 'chai';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveView } from '../../src/driver/view.js';
import { ENTRIES_FILE, INDEX_DIR, LAYER_INFO_FILE, recordLine, type IndexEntry } from '../../src/layer/metadata-index.js';
import { caseFoldKey } from '../../src/util/safe-path.js';
import { FILE_ATTRIBUTE_DIRECTORY } from '../../src/util/windows.js';
import { cleanupTemp, layerSummary, tempDir } from '../helpers/store.js';

/** A layer directory holding only a summary and an index with `records`. */
function layerOf(records: IndexEntry[]): string {
  const root = tempDir();
  fs.mkdirSync(path.join(root, INDEX_DIR));
  fs.writeFileSync(path.join(root, INDEX_DIR, LAYER_INFO_FILE), JSON.stringify(layerSummary(records.length)));
  fs.writeFileSync(path.join(root, INDEX_DIR, ENTRIES_FILE), records.map((r) => recordLine(r) + '\n').join(''));
  return root;
}

/**
 * The view by its definition, in the plainest way: the lower layers first, a deletion
 * takes the name and every name below it, a non-directory (or a directory over a
 * non-directory) takes every name below its own.
 */
function modelView(layers: readonly (readonly IndexEntry[])[]): Map<string, IndexEntry> {
  const view = new Map<string, IndexEntry>();
  const dropBelow = (key: string): void => {
    for (const k of [...view.keys()]) if (k.startsWith(key + '/')) view.delete(k);
  };
  for (let i = layers.length - 1; i >= 0; i--) {
    const records = layers[i] as readonly IndexEntry[];
    for (const r of records) {
      if (r.kind !== 'whiteout') continue;
      const key = caseFoldKey(r.name.slice('Files/'.length));
      view.delete(key);
      dropBelow(key);
    }
    for (const r of records) {
      if (r.kind === 'whiteout') continue;
      const key = caseFoldKey(r.name === 'Files' ? '' : r.name.slice('Files/'.length));
      const isDir = r.kind === 'directory';
      const prior = view.get(key);
      if (!isDir || (prior !== undefined && prior.kind !== 'directory')) dropBelow(key);
      view.set(key, r);
    }
  }
  return view;
}

describe('driver/view: resolveView', () => {
  after(cleanupTemp);

  // Names from a small tree in two spellings, so that layers add, delete and re-add the same ones,
  // and deep names whose parents no layer holds.
  const segment = fc.constantFrom('a', 'A', 'b', 'B', 'sys', 'SYS', 'é', 'É');
  const name = fc.array(segment, { minLength: 1, maxLength: 4 }).map((segs) => ['Files', ...segs].join('/'));
  const record = fc
    .record({ kind: fc.constantFrom<IndexEntry['kind']>('file', 'directory', 'whiteout', 'symlink'), name })
    .map((r): IndexEntry => (r.kind === 'directory' ? { ...r, attributes: FILE_ATTRIBUTE_DIRECTORY } : r));
  const chain = fc.array(fc.array(record, { maxLength: 14 }), { minLength: 1, maxLength: 4 });

  it('holds exactly the entries of the plain definition, nearest layer winning', () => {
    fc.assert(
      fc.property(chain, (layers) => {
        const view = resolveView(layers.map((records) => layerOf(records)));
        const model = modelView(layers);
        const got = [...view].map(([k, e]) => [k, e.record.kind, e.record.name] as const).sort();
        const want = [...model].map(([k, r]) => [k, r.kind, r.name] as const).sort();
        expect(got, JSON.stringify(layers)).to.deep.equal(want);
      }),
      { numRuns: 400 },
    );
  });

  it('resolves a hard link to a name a nearer layer replaced, when that name was itself a hard link', () => {
    // What the import accepts (the target is found in the parent layers): `Windows` becomes a
    // link to the file `Windows/win.ini`, which was a link to `Windows/keep.txt`.
    const dir = (name: string): IndexEntry => ({ kind: 'directory', name, attributes: FILE_ATTRIBUTE_DIRECTORY });
    const base = layerOf([dir('Files'), dir('Files/Windows'), { kind: 'file', name: 'Files/Windows/keep.txt' }]);
    const p1 = layerOf([dir('Files'), { kind: 'link', name: 'Files/Windows/win.ini', target: 'Files/Windows/keep.txt' }]);
    const top = layerOf([dir('Files'), { kind: 'link', name: 'Files/Windows', target: 'Files/Windows/win.ini' }]);
    const view = resolveView([top, p1, base]);
    expect(view.get(caseFoldKey('Windows'))?.linkTo?.record.name).to.equal('Files/Windows/keep.txt');
    expect(view.has(caseFoldKey('Windows/keep.txt'))).to.equal(false);
  });

  it("resolves a hard link named as its parent's target (`Files/A` → the parent's `Files/a`, which it replaces)", () => {
    const base = layerOf([{ kind: 'directory', name: 'Files', attributes: FILE_ATTRIBUTE_DIRECTORY }, { kind: 'file', name: 'Files/a' }]);
    const delta = layerOf([
      { kind: 'directory', name: 'Files', attributes: FILE_ATTRIBUTE_DIRECTORY },
      { kind: 'link', name: 'Files/A', target: 'Files/a', parentTarget: true },
    ]);
    const view = resolveView([delta, base]);
    const link = view.get(caseFoldKey('a'));
    expect([link?.kind, link?.linkTo?.record.name, link?.linkTo?.layerRoot]).to.deep.equal(['link', 'Files/a', base]);
  });

  it('resolves a 60,000-entry layer under deletions and case-changed replacements', () => {
    // Each non-directory and each deletion once scanned the whole view (about 30 s here).
    const base: IndexEntry[] = [{ kind: 'directory', name: 'Files', attributes: FILE_ATTRIBUTE_DIRECTORY }];
    for (let d = 0; d < 300; d++) {
      base.push({ kind: 'directory', name: `Files/d${d}`, attributes: FILE_ATTRIBUTE_DIRECTORY });
      for (let f = 0; f < 200; f++) base.push({ kind: 'file', name: `Files/d${d}/f${f}` });
    }
    const top: IndexEntry[] = [];
    for (let d = 0; d < 300; d += 2) top.push({ kind: 'whiteout', name: `Files/d${d}` });
    for (let d = 1; d < 300; d += 2) for (let f = 0; f < 200; f += 2) top.push({ kind: 'file', name: `Files/D${d}/F${f}` });
    const view = resolveView([layerOf(top), layerOf(base)]);
    // The root, 150 directories, their 30,000 files.
    expect(view.size).to.equal(1 + 150 + 150 * 200);
    expect(view.get(caseFoldKey('d1/f0'))?.record.name).to.equal('Files/D1/F0');
    expect(view.get(caseFoldKey('d1/f1'))?.record.name).to.equal('Files/d1/f1');
    expect(view.has(caseFoldKey('d0'))).to.equal(false);
    expect(view.has(caseFoldKey('d0/f1'))).to.equal(false);
  });
});
