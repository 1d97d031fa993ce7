/**
 * Fault injection for the crash tests: when `WINLAYER_CRASH_AT` names a point, the process
 * kills itself with SIGKILL on reaching it — no cleanup, no exit handlers, as a power cut
 * or the OOM killer would. Points: `data` (after the first file's data of an import),
 * `index` (half way through writing the metadata index summary), `rename` (after the
 * flush, just before the commit rename). Unset, each call is one comparison.
 */
const point = process.env['WINLAYER_CRASH_AT'];

export type CrashPoint = 'data' | 'index' | 'rename';

export function crashPoint(name: CrashPoint): void {
  if (point === name) process.kill(process.pid, 'SIGKILL');
}
