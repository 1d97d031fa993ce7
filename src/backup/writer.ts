/**
 * A backup-stream writer that counts bytes: each sub-stream gets exactly the payload its
 * header declared, or the writer fails (a short or over-long stream is never emitted).
 */
import { createError } from '../errors.js';
import { BackupStreamId } from './constants.js';
import { encodeBackupHeader, type BackupHeaderInput } from './header.js';

export class BackupStreamWriter {
  readonly #push: (chunk: Buffer) => void;
  readonly #entry: string;
  #left = 0;
  #id: BackupStreamId | undefined;
  #bytesWritten = 0;
  #ended = false;

  /** `push` receives every encoded byte, in order. */
  constructor(push: (chunk: Buffer) => void, options: { entryName?: string } = {}) {
    this.#push = push;
    this.#entry = options.entryName ?? '';
  }

  /** Payload bytes still owed to the current sub-stream. */
  get bytesLeft(): number {
    return this.#left;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Starts a sub-stream; the previous one must be complete. */
  header(h: BackupHeaderInput): void {
    this.#checkOpen();
    this.#checkComplete();
    const buf = encodeBackupHeader(h);
    this.#id = h.id;
    this.#left = h.size;
    this.#emit(buf);
  }

  /** Writes payload bytes of the current sub-stream. */
  data(chunk: Buffer): void {
    this.#checkOpen();
    if (chunk.length === 0) return;
    if (this.#id === undefined || chunk.length > this.#left) {
      throw createError('ERR_SIZE_MISMATCH', `${this.#prefix()}${chunk.length} payload bytes where ${this.#left} remain`, this.#data({ left: this.#left }));
    }
    this.#left -= chunk.length;
    this.#emit(chunk);
  }

  /** Finishes the stream; the last sub-stream must be complete. */
  end(): void {
    if (this.#ended) return;
    this.#checkComplete();
    this.#ended = true;
  }

  #emit(buf: Buffer): void {
    this.#bytesWritten += buf.length;
    this.#push(buf);
  }

  #checkOpen(): void {
    if (this.#ended) throw createError('ERR_BACKUP_STREAM_INVALID', `${this.#prefix()}write after end of backup stream`, this.#data({}));
  }

  #checkComplete(): void {
    if (this.#left !== 0) {
      throw createError('ERR_SIZE_MISMATCH', `${this.#prefix()}backup stream ${String(this.#id)} is ${this.#left} bytes short of its declared size`, this.#data({ left: this.#left }));
    }
  }

  #prefix(): string {
    return this.#entry === '' ? '' : `${this.#entry}: `;
  }

  #data(d: Record<string, number>): Record<string, string | number> {
    return this.#entry === '' ? d : { entry: this.#entry, ...d };
  }
}
