import { expect } from 'chai';
import { recentTexts } from '../../src/util/recent-texts.js';

describe('util/recent-texts', () => {
  it('gives the text of each argument, computing it again only once it has left the last few', () => {
    const calls: bigint[] = [];
    const text = recentTexts(2, (t) => {
      calls.push(t);
      return `t${t}`;
    });
    expect([text(1n), text(1n), text(2n), text(1n), text(2n)]).to.deep.equal(['t1', 't1', 't2', 't1', 't2']);
    expect(calls).to.deep.equal([1n, 2n]);
    // A third time pushes out the oldest (1n): asked for again, it is computed again.
    expect([text(3n), text(1n), text(3n)]).to.deep.equal(['t3', 't1', 't3']);
    expect(calls).to.deep.equal([1n, 2n, 3n, 1n]);
    expect(text(-5n)).to.equal('t-5');
    expect(text(2n ** 70n)).to.equal(`t${2n ** 70n}`);
  });
});
