/**
 * Counts the header blocks of a tar in a file, up to a limit, reading only the headers:
 * one positional read of 512 bytes per header, data skipped by its size. It does not
 * check entries (the import does that); it only tells a tar of few large files from one
 * of many small ones before an import starts, to choose the worker's heap options. A
 * 256 MiB tar of 4 files costs 10 reads; a 20,000-file tar is cut off at the limit.
 *
 * PAX and GNU long-name headers count as blocks of their own, so a layer tar has about
 * twice as many header blocks as entries. A PAX `size` record sets the size of the entry
 * that follows, as the import reads it, so that a header field saying otherwise cannot
 * make the walk skip entries the import will see.
 */
import * as fs from 'node:fs';
import { BLOCK_SIZE, blockPaddingLength, checksumMatches, FIELD, isAllZero, readNumericField } from './block.js';

/**
 * The number of header blocks in the tar at the start of file `fd` when it ends (with an
 * end-of-archive block or the end of the file) before `limit` of them; `limit` when there
 * are at least that many; undefined when the walk cannot tell: not a seekable file, not
 * a plain tar (compressed, say), or a header that does not check out.
 */
export function countHeaderBlocks(fd: number, limit: number): number | undefined {
  const block = Buffer.alloc(BLOCK_SIZE);
  let position = 0;
  let count = 0;
  /** The size a PAX header gave the entry that follows it. */
  let paxSize: number | undefined;
  try {
    while (count < limit) {
      const n = fs.readSync(fd, block, 0, BLOCK_SIZE, position);
      if (n === 0) return count;
      if (n < BLOCK_SIZE) return undefined;
      if (isAllZero(block)) return count;
      if (!checksumMatches(block)) return undefined;
      const field = readNumericField(block, FIELD.size);
      if (field === undefined || field < 0n || field > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      const flag = String.fromCharCode(block[FIELD.typeflag.offset] ?? 0);
      let size = Number(field);
      if (flag === 'x' || flag === 'g') {
        const records = readRecords(fd, position + BLOCK_SIZE, size);
        if (records === undefined) return undefined;
        const sizeRecord = /(?:^|\n)\d+ size=([^\n]*)\n/.exec(records);
        // A global size record is refused by the import; an unreadable one cannot be followed.
        if (sizeRecord !== null && (flag === 'g' || !/^\d{1,15}$/.test(sizeRecord[1] ?? ''))) return undefined;
        if (sizeRecord !== null) paxSize = Number(sizeRecord[1]);
      } else if (flag !== 'L' && flag !== 'K') {
        if (paxSize !== undefined) size = paxSize;
        paxSize = undefined;
      }
      // Header-only types carry no data whatever their size says.
      const data = flag === '1' || flag === '2' || flag === '3' || flag === '4' || flag === '5' || flag === '6' ? 0 : size;
      position += BLOCK_SIZE + data + blockPaddingLength(data);
      count++;
    }
    return limit;
  } catch {
    return undefined; // a pipe (no positional reads), or the file went away
  }
}

/** Extended-header data this large is not read ahead; the walk gives up instead. */
const MAX_RECORDS_BYTES = 64 * 1024;

/** The records of a PAX header, as text, or undefined when they are too large or cut short. */
function readRecords(fd: number, position: number, size: number): string | undefined {
  if (size > MAX_RECORDS_BYTES) return undefined;
  const data = Buffer.alloc(size);
  return fs.readSync(fd, data, 0, size, position) === size ? data.toString('latin1') : undefined;
}
