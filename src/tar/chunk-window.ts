/**
 * References to the most recent input chunks, by absolute stream offset.
 *
 * tar-stream decodes headers leniently and throws their raw bytes away. The reader keeps the
 * chunks it fed to tar-stream (references, not copies) from the end of the previous entry's
 * data onward, so that when tar-stream announces an entry it can look at the exact bytes of
 * the extended headers and the main header. Data the reader will never look at again (entry
 * bodies) is released as soon as an entry is announced, so the window only ever spans
 * metadata plus a little read-ahead.
 */

import { isAllZero } from './block.js';

interface Piece {
  start: number;
  /** null once the piece was found to be all zeros and its buffer dropped. */
  buf: Buffer | null;
  length: number;
}

/** Chunk references covering the stream from a movable floor up to the last byte fed. */
export class ChunkWindow {
  #pieces: (Piece | undefined)[] = [];
  #head = 0;
  #end = 0;
  #floor = 0;
  #liveBytes = 0;

  /** Total bytes fed so far (the offset just past the last byte). */
  get end(): number {
    return this.#end;
  }

  /** Bytes held by buffers in the window (zero runs that were compacted do not count). */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Records the next input chunk; chunks entirely below the floor are not kept. */
  push(buf: Buffer): void {
    const start = this.#end;
    this.#end += buf.length;
    if (this.#end <= this.#floor || buf.length === 0) return;
    this.#pieces.push({ start, buf, length: buf.length });
    this.#liveBytes += buf.length;
  }

  /** Forgets every byte before `offset`. */
  release(offset: number): void {
    if (offset <= this.#floor) return;
    this.#floor = offset;
    while (this.#head < this.#pieces.length) {
      const piece = this.#pieces[this.#head];
      if (piece === undefined || piece.start + piece.length > offset) break;
      this.#liveBytes -= piece.buf === null ? 0 : piece.length;
      this.#pieces[this.#head] = undefined; // let the buffer go now
      this.#head++;
    }
    // Compact the array once most of it is dead, keeping release amortised O(1).
    if (this.#head > 64 && this.#head * 2 > this.#pieces.length) {
      this.#pieces = this.#pieces.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Drops the buffers of pieces that are all zeros (trailing end-of-archive padding can be long). */
  compactZeros(): void {
    for (let i = this.#head; i < this.#pieces.length; i++) {
      const piece = this.#pieces[i];
      if (piece?.buf != null && isAllZero(piece.buf)) {
        piece.buf = null;
        this.#liveBytes -= piece.length;
      }
    }
  }

  /** True when the window still holds every byte of [start, end). */
  covers(start: number, end: number): boolean {
    return start >= this.#floor && end <= this.#end && start <= end;
  }

  /** The bytes [start, end): a view when they lie in one chunk, else a copy. */
  read(start: number, end: number): Buffer {
    const parts: Buffer[] = [];
    for (let i = this.#head; i < this.#pieces.length; i++) {
      const piece = this.#pieces[i];
      if (piece === undefined) continue;
      const pieceEnd = piece.start + piece.length;
      if (pieceEnd <= start) continue;
      if (piece.start >= end) break;
      const from = Math.max(start, piece.start) - piece.start;
      const to = Math.min(end, pieceEnd) - piece.start;
      parts.push(piece.buf === null ? Buffer.alloc(to - from) : piece.buf.subarray(from, to));
    }
    if (parts.length === 1 && parts[0] !== undefined) return parts[0];
    return Buffer.concat(parts, end - start);
  }

  /** True when every byte of [start, end) is zero. */
  isZero(start: number, end: number): boolean {
    for (let i = this.#head; i < this.#pieces.length; i++) {
      const piece = this.#pieces[i];
      if (piece === undefined || piece.buf === null) continue;
      const pieceEnd = piece.start + piece.length;
      if (pieceEnd <= start) continue;
      if (piece.start >= end) break;
      const from = Math.max(start, piece.start) - piece.start;
      const to = Math.min(end, pieceEnd) - piece.start;
      if (!isAllZero(piece.buf.subarray(from, to))) return false;
    }
    return true;
  }
}
