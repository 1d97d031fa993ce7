/**
 * Go's `path` package (slash paths), as much of it as the tar writer uses to name the
 * PAX pseudo-entry. Kept separate from util/safe-path.ts on purpose: this reproduces Go's
 * lexical rules byte for byte and makes no safety decisions.
 */

/** Go's path.Clean: collapse `//`, drop `.`, resolve `..` lexically, no trailing slash; "" → ".". */
export function cleanGoPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const element of p.split('/')) {
    if (element === '' || element === '.') continue;
    if (element === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..'); // a rooted path cannot climb above "/"
      continue;
    }
    out.push(element);
  }
  const cleaned = (rooted ? '/' : '') + out.join('/');
  return cleaned === '' ? '.' : cleaned;
}

/** Go's path.Split: everything up to and including the last `/`, and the rest. */
export function splitGoPath(p: string): { dir: string; file: string } {
  const slash = p.lastIndexOf('/');
  return { dir: p.slice(0, slash + 1), file: p.slice(slash + 1) };
}

/** Go's path.Join: the non-empty elements joined with `/` and cleaned; "" when all are empty. */
export function joinGoPath(...elements: string[]): string {
  const nonEmpty = elements.filter((e) => e !== '');
  return nonEmpty.length === 0 ? '' : cleanGoPath(nonEmpty.join('/'));
}
