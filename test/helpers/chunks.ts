/** Test helpers that feed a parser the same bytes in different chunkings. */

/** The three ways every parser test feeds its input: whole, one byte at a time, odd-sized chunks. */
export const CHUNKINGS = [
  { title: 'whole', size: Number.POSITIVE_INFINITY },
  { title: 'one byte at a time', size: 1 },
  { title: 'in 321-byte chunks', size: 321 },
] as const;

/** Splits `buf` into chunks of at most `size` bytes (a copy each, so parsers cannot rely on sharing). */
export function splitChunks(buf: Uint8Array, size: number): Buffer[] {
  if (buf.length === 0) return [];
  if (!Number.isFinite(size)) return [Buffer.from(buf)];
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(Buffer.from(buf.subarray(i, i + size)));
  return out;
}

/** An async iterable over `buf` in chunks of `size` bytes. */
export async function* feedInChunks(buf: Uint8Array, size: number): AsyncGenerator<Buffer> {
  for (const chunk of splitChunks(buf, size)) yield chunk;
}
