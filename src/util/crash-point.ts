/**
 * Fault injection for the crash tests: when `WINLAYER_CRASH_AT` names a point, the process
 * kills itself with SIGKILL on reaching it — no cleanup, no exit handlers, as a power cut
 * or the OOM killer would. Points: `data` (after the first file's data of an import),
 * `index` (half way through writing the metadata index summary), `rename` (after the
 * flush, just before the commit rename), `committed` (after the commit rename, before the
 * worker prints the size). Unset, each call is one comparison. One more,
 * `file-thread`, is not a kill: the import's file-writing thread throws on its first
 * batch, as a bug there would, and ends (src/layer/file-thread.ts).
 */
const point = process.env['WINLAYER_CRASH_AT'];

export type CrashPoint = 'data' | 'index' | 'rename' | 'committed';

export function crashPoint(name: CrashPoint): void {
  if (point === name) process.kill(process.pid, 'SIGKILL');
}
