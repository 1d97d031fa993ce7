/** Helpers for the tar tests: building archives, crafting broken headers, reading everything. */

import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import fc from 'fast-check';
import { isWinLayerError, type WinLayerError } from '../../src/errors.js';
import { FIELD, writeChecksum, type BlockField } from '../../src/tar/block.js';
import { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE, type TarHeaderInput } from '../../src/tar/encode.js';
import { readTar, type ReadTarOptions, type TarHeader } from '../../src/tar/reader.js';
import { feedInChunks } from '../helpers/chunks.js';

/** An entry to put in a test archive. */
export interface TestEntry {
  input: TarHeaderInput;
  body?: Buffer;
}

/** A regular-file input with go-winio-like defaults. */
export function fileInput(name: string, size: number, extra: Partial<TarHeaderInput> = {}): TarHeaderInput {
  return { name, typeflag: '0', mode: 0o100000, size, mtime: 1_600_000_000_123_456_700n, format: 'pax', paxRecords: { 'MSWINDOWS.fileattr': '32' }, ...extra };
}

/** Header + data + padding for one entry. */
export function entryBytes(e: TestEntry): Buffer {
  const body = e.body ?? Buffer.alloc(0);
  return Buffer.concat([encodeTarHeader(e.input), body, tarPadding(body.length)]);
}

/** A whole archive, closed like Go's Writer.Close unless `end` is false. */
export function buildTar(entries: readonly TestEntry[], end = true): Buffer {
  return Buffer.concat([...entries.map(entryBytes), end ? TAR_END_OF_ARCHIVE : Buffer.alloc(0)]);
}

/** Overwrites a field of the header block at `blockOffset` and fixes the checksum (unless told not to). */
export function patchField(tar: Buffer, blockOffset: number, field: BlockField, bytes: Uint8Array | string, fixChecksum = true): Buffer {
  const out = Buffer.from(tar);
  const value = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  out.fill(0, blockOffset + field.offset, blockOffset + field.offset + field.length);
  out.set(value.subarray(0, field.length), blockOffset + field.offset);
  if (fixChecksum) writeChecksum(out.subarray(blockOffset, blockOffset + 512));
  return out;
}

export { FIELD };

/** What a test sees of one entry. */
export interface ReadEntry {
  header: TarHeader;
  body: Buffer;
}

/** Reads every entry and its whole body. */
export async function readAll(source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, options: ReadTarOptions = {}): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  for await (const entry of readTar(source, options)) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry.body) chunks.push(chunk);
    out.push({ header: entry.header, body: Buffer.concat(chunks) });
  }
  return out;
}

/** Reads `tar` fed in chunks of `size` bytes. */
export function readChunked(tar: Uint8Array, size: number, options: ReadTarOptions = {}): Promise<ReadEntry[]> {
  return readAll(feedInChunks(tar, size), options);
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  expect.fail('expected a rejection');
}

/** Asserts a WinLayerError with `code` and returns it. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<WinLayerError> {
  const err = await rejection(promise);
  if (!isWinLayerError(err)) throw err;
  expect(err.code, err.message).to.equal(code);
  return err;
}

/** Asserts that a synchronous call throws a WinLayerError with `code`. */
export function expectThrowsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (err) {
    if (!isWinLayerError(err)) throw err;
    expect(err.code, err.message).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Fails with the first differing offset and some context when `actual` and `expected` differ. */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  if (at === -1) return;
  const context = (b: Uint8Array): string => JSON.stringify(Buffer.from(b.subarray(Math.max(0, at - 8), at + 24)).toString('latin1'));
  expect.fail(`${what}: first difference at byte ${at} (block ${Math.floor(at / 512)}, offset ${at % 512}); `
    + `lengths ${actual.length} vs ${expected.length}; actual ${context(actual)} expected ${context(expected)}`);
}

/** GNU tar (present here and on CI) run with `args` on `input`. */
export function gnuTar(args: readonly string[], input: Buffer): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('/usr/bin/tar', args, { input, env: { ...process.env, LC_ALL: 'C.UTF-8' }, maxBuffer: 64 * 1024 * 1024 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8') };
}

/** A random go-winio-like entry (names without newlines so listings split cleanly). */
export function arbitraryEntry(): fc.Arbitrary<{ input: TarHeaderInput; body: Buffer }> {
  const segment = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9._ -]{1,40}$/),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((s) => !/[\0/\n\r]/.test(s) && s !== '.' && s !== '..'),
  );
  const name = fc.array(segment, { minLength: 1, maxLength: 12 }).map((parts) => ['Files', ...parts].join('/'));
  const ns = fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n });
  return fc.record({
    name,
    kind: fc.constantFrom('file', 'dir', 'symlink'),
    body: fc.uint8Array({ maxLength: 1500 }),
    mtime: ns,
    atime: fc.option(ns, { nil: undefined }),
    ctime: fc.option(ns, { nil: undefined }),
    target: fc.string({ maxLength: 150 }).filter((s) => !s.includes('\0')),
    records: fc.dictionary(fc.stringMatching(/^MSWINDOWS\.xattr\.[A-Za-z0-9.$]{1,20}$/), fc.base64String({ maxLength: 200 }), { maxKeys: 4 }),
    format: fc.constantFrom('pax' as const, 'unknown' as const),
  }).map((r) => {
    const body = r.kind === 'file' ? Buffer.from(r.body) : Buffer.alloc(0);
    const input = fileInput(r.name, body.length, {
      typeflag: r.kind === 'file' ? '0' : r.kind === 'dir' ? '5' : '2',
      mode: r.kind === 'file' ? 0o100000 : r.kind === 'dir' ? 0o40000 : 0o120000,
      mtime: r.mtime,
      paxRecords: { 'MSWINDOWS.fileattr': r.kind === 'dir' ? '16' : '32', ...r.records },
      format: r.format,
    });
    if (r.kind === 'symlink') input.linkname = r.target;
    if (r.atime !== undefined) input.atime = r.atime;
    if (r.ctime !== undefined) input.ctime = r.ctime;
    return { input, body };
  });
}
