/**
 * tombstones.txt: UTF-8 BOM, `Version 1.0`, then one `\path` line per deleted file,
 * relative to Files with backslashes (FORMATS.md §3.2). Written LF, read LF or CRLF.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError } from '../errors.js';

export const TOMBSTONES_FILE = 'tombstones.txt';
const HEADER = '\ufeffVersion 1.0';

/** Writes tombstones.txt into `layerRoot`. */
export function writeTombstones(layerRoot: string, lines: readonly string[], durable: boolean): void {
  const fd = fs.openSync(path.join(layerRoot, TOMBSTONES_FILE), 'wx');
  try {
    fs.writeSync(fd, [HEADER, ...lines].join('\n') + '\n');
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses tombstones.txt content into `\path` lines. */
export function parseTombstones(text: string, file = TOMBSTONES_FILE): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines[0] !== HEADER) throw createError('ERR_TOMBSTONES_INVALID', `${file}: does not start with a BOM and 'Version 1.0'`, { path: file });
  const out: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') continue;
    if (!line.startsWith('\\')) throw createError('ERR_TOMBSTONES_INVALID', `${file}:${i + 1}: a tombstone must start with '\\'`, { path: file, line: i + 1 });
    out.push(line);
  }
  return out;
}

/** Reads a layer's tombstones.txt (none → empty). */
export function readTombstones(layerRoot: string): string[] {
  const file = path.join(layerRoot, TOMBSTONES_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw cause;
  }
  return parseTombstones(text, file);
}
