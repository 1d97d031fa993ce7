/**
 * windowsfilter refuses a home on ReFS: the layer calls it makes (and the backup
 * semantics it relies on) are NTFS's. On Windows the file system of HOME's volume is read
 * with `fsutil fsinfo volumeinfo`; elsewhere there is nothing to check. An unreadable
 * answer (another language, no fsutil) is not an error: the check only refuses what it
 * positively recognizes.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { createError } from '../errors.js';

/** The "File System Name" line of fsutil's volume information, or undefined. */
export function fileSystemNameFromFsutil(output: string): string | undefined {
  const m = /^\s*File System Name\s*:\s*(\S+)\s*$/im.exec(output);
  return m?.[1];
}

/** Throws ERR_UNSUPPORTED_PLATFORM when `home` is on ReFS (Windows only). */
export function refuseReFS(home: string, platform: NodeJS.Platform = process.platform, probe: (volume: string) => string | undefined = fsutilVolumeInfo): void {
  if (platform !== 'win32') return;
  const volume = path.win32.parse(path.win32.resolve(home)).root;
  const output = probe(volume);
  const name = output === undefined ? undefined : fileSystemNameFromFsutil(output);
  if (name !== undefined && name.toUpperCase() === 'REFS') {
    throw createError('ERR_UNSUPPORTED_PLATFORM', `${home} is on ReFS: Windows layers need NTFS, as windowsfilter requires`, { home, fileSystem: name });
  }
}

function fsutilVolumeInfo(volume: string): string | undefined {
  const r = spawnSync('fsutil', ['fsinfo', 'volumeinfo', volume], { encoding: 'utf8', windowsHide: true });
  return r.status === 0 ? r.stdout : undefined;
}
