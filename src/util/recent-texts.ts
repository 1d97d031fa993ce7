/**
 * `text` with its results for the last `size` arguments remembered. The entries of a layer
 * share a handful of times (an image's files are stamped together), and each conversion of
 * a BigInt time to text is a new allocation, and for a PAX time a BigInt division too.
 */
export function recentTexts(size: number, text: (t: bigint) => string): (t: bigint) => string {
  const keys = new Array<bigint | undefined>(size).fill(undefined);
  const texts = new Array<string>(size).fill('');
  let next = 0;
  return (t: bigint): string => {
    for (let i = 0; i < size; i++) if (keys[i] === t) return texts[i] as string;
    const s = text(t);
    keys[next] = t;
    texts[next] = s;
    next = (next + 1) % size;
    return s;
  };
}
