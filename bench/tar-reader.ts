/**
 * The tar boundary against a peer: readTar (our framer with every check Go's archive/tar
 * makes, and the PAX records parsed) against tar-stream's iterator (lenient, the parser most
 * Node tools use) on the same 20,000 small entries fed in 64 KiB chunks, every body read.
 * Medians of five runs in one process.
 */
import tarStream from 'tar-stream';
import { encodeTarHeader, tarPadding, TAR_END_OF_ARCHIVE } from '../src/tar/encode.js';
import { readTar } from '../src/tar/reader.js';

function buildTar(n: number): Buffer {
  const parts: Buffer[] = [];
  const body = Buffer.from('0123456789');
  for (let i = 0; i < n; i++) {
    parts.push(
      encodeTarHeader({ name: `Files/dir-${i % 100}/file-${i}.txt`, typeflag: '0', mode: 0o100000, size: body.length, mtime: 1_600_000_000_123_456_700n, format: 'pax', paxRecords: { 'MSWINDOWS.fileattr': '32' } }),
      body,
      tarPadding(body.length),
    );
  }
  parts.push(TAR_END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

function* chunks(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function* asyncChunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  yield* chunks(buf, size);
}

async function timeTarStream(tar: Buffer): Promise<number> {
  const start = performance.now();
  const extract = tarStream.extract();
  const feeding = (async () => {
    for (const c of chunks(tar, 65536)) if (!extract.write(c)) await new Promise<void>((r) => extract.once('drain', () => r()));
    extract.end(null);
  })();
  for await (const entry of extract) for await (const c of entry) void c;
  await feeding;
  return performance.now() - start;
}

async function timeReadTar(tar: Buffer): Promise<number> {
  const start = performance.now();
  for await (const entry of readTar(asyncChunks(tar, 65536))) for await (const c of entry.body) void c;
  return performance.now() - start;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

export async function benchTarReader(runs = 5): Promise<{ tarStreamMs: number; readTarMs: number }> {
  const tar = buildTar(20_000);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    a.push(await timeTarStream(tar));
    b.push(await timeReadTar(tar));
  }
  return { tarStreamMs: median(a), readTarMs: median(b) };
}

export function tarReaderTable(r: { tarStreamMs: number; readTarMs: number }): string {
  return [
    '| 20,000-entry tar, parse only | time |',
    '|---|---|',
    `| tar-stream's iterator | ${r.tarStreamMs.toFixed(0)} ms |`,
    `| readTar (archive/tar's checks) | ${r.readTarMs.toFixed(0)} ms (${(r.readTarMs / r.tarStreamMs).toFixed(2)}× tar-stream) |`,
  ].join('\n');
}
