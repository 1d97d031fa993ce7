/** Small base and delta layers shared by the driver, worker and CLI tests. */
import { CRANE_SECURITY_DESCRIPTOR, type BuilderEntry } from '../../src/convert/layer-tar-builder.js';
import { filetimeFromUnixNs } from '../../src/util/windows.js';

const sd = CRANE_SECURITY_DESCRIPTOR;
const T1 = filetimeFromUnixNs(1_600_000_000_000_000_000n);

export const baseLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Files/Windows', securityDescriptor: sd },
  { type: 'file', name: 'Files/Windows/win.ini', data: '[fonts]\r\n', securityDescriptor: sd, times: { lastWriteTime: T1 }, streams: [{ name: 'Zone.Identifier', data: 'zone' }] },
  { type: 'file', name: 'Files/Windows/keep.txt', data: 'keep', securityDescriptor: sd },
  { type: 'directory', name: 'Files/Program Files', securityDescriptor: sd },
  { type: 'file', name: 'Files/Program Files/app.exe', data: Buffer.alloc(3000, 7), securityDescriptor: sd },
  { type: 'symlink', name: 'Files/Windows/link.ini', target: 'win.ini' },
  { type: 'directory', name: 'Hives' },
  { type: 'file', name: 'Hives/System_Delta', data: 'regf' },
];

export const deltaLayer: BuilderEntry[] = [
  { type: 'directory', name: 'Files', securityDescriptor: sd },
  { type: 'directory', name: 'Files/Windows', securityDescriptor: sd },
  { type: 'file', name: 'Files/Windows/win.ini', data: '[fonts]\r\nnew\r\n', securityDescriptor: sd },
  { type: 'file', name: 'Files/Windows/added.txt', data: 'added', securityDescriptor: sd },
  { type: 'whiteout', name: 'Files/Program Files' },
  { type: 'link', name: 'Files/Windows/added-link.txt', target: 'Files/Windows/added.txt' },
];

/** A base layer of `files` files of `size` bytes each under Files/ (file i filled with the byte i & 0xff). */
export function filesLayer(files: number, size: number): BuilderEntry[] {
  const entries: BuilderEntry[] = [{ type: 'directory', name: 'Files' }];
  for (let i = 0; i < files; i++) entries.push({ type: 'file', name: `Files/f${i}.bin`, data: Buffer.alloc(size, i & 0xff) });
  return entries;
}
