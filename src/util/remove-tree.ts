/**
 * Removal of a directory tree without recursion, synchronous or asynchronous.
 *
 * - Depth: a layer may hold a tree thousands of levels deep (a Windows path has up to
 *   32,767 units), and `fs.rmSync` with `recursive` recurses once per level in
 *   JavaScript: ~1,900 levels overflowed its stack on Node 20 (RangeError, and the tree
 *   left in place).
 * - Width: `fs.promises.rm` with `recursive` starts the removal of every entry of a
 *   directory at once. An import of 80,000 files in one directory that failed at its end
 *   peaked at 228 MB RSS removing its staging directory (80,000 pending lstat calls and
 *   their Stats), against 83 MB for the import itself. The asynchronous removal here
 *   has at most UNLINK_BATCH calls in flight.
 *
 * - Listings: a directory is read at most LIST_BATCH entries at a time (reading a whole
 *   one made an object per entry: ~14 MiB for the 100,000 links of a base layer's
 *   System32). Those entries are removed (subdirectories first, from an explicit stack)
 *   before the directory is read again, from its start, for what is left; a directory
 *   read to its end goes once its last subdirectory has.
 *
 * Symbolic links are removed, never followed. A path that does not exist is not an error
 * (as `force: true`). One walk (`removalSteps`) serves both forms; each runs the steps
 * with its own calls.
 */
import * as fs from 'node:fs';

/** Unlinks in flight at most, in the asynchronous removal. */
const UNLINK_BATCH = 64;

/** Entries read from a directory at a time. */
export const LIST_BATCH = 4096;

/** What the walk asks its runner to do, and what it expects back. */
type Step =
  /** → true for a directory, false for anything else, undefined when absent */
  | { op: 'kind'; path: string }
  /** → its first `max` entries (fewer: all of them), or undefined when the directory is gone */
  | { op: 'list'; path: string; max: number }
  /** → nothing; absent files are skipped */
  | { op: 'unlink'; paths: string[] }
  /** → nothing; an absent directory is skipped */
  | { op: 'rmdir'; path: string };

type Answer = boolean | fs.Dirent[] | undefined;

function* removalSteps(target: string, listBatch: number): Generator<Step, void, Answer> {
  const isDirectory = yield { op: 'kind', path: target };
  if (isDirectory === undefined) return;
  if (isDirectory !== true) {
    yield { op: 'unlink', paths: [target] };
    return;
  }
  // Directories read to their end (their subdirectories are above them on the stack).
  const listed = new Set<string>();
  const stack = [target];
  while (stack.length > 0) {
    const dir = stack[stack.length - 1] as string;
    if (listed.has(dir)) {
      stack.pop();
      listed.delete(dir);
      yield { op: 'rmdir', path: dir };
      continue;
    }
    const entries = (yield { op: 'list', path: dir, max: listBatch }) as fs.Dirent[] | undefined;
    if (entries === undefined) {
      stack.pop();
      continue;
    }
    // A full batch: the directory is read again, once these entries are gone.
    if (entries.length < listBatch) listed.add(dir);
    const files: string[] = [];
    for (const entry of entries) {
      const child = `${dir}/${entry.name}`;
      if (entry.isDirectory()) stack.push(child);
      else files.push(child);
    }
    if (files.length > 0) yield { op: 'unlink', paths: files };
  }
}

/**
 * The first `max` entries of `dir` (all of them when it has fewer), read a few at a time:
 * a directory of 100,000 entries costs no more than its first `max`.
 */
export function firstEntriesSync(dir: string, max: number): fs.Dirent[] {
  const handle = fs.opendirSync(dir, { bufferSize: 256 });
  try {
    const out: fs.Dirent[] = [];
    for (let d = handle.readSync(); d !== null; d = out.length < max ? handle.readSync() : null) out.push(d);
    return out;
  } finally {
    handle.closeSync();
  }
}

async function list(dir: string, max: number): Promise<fs.Dirent[]> {
  const handle = await fs.promises.opendir(dir, { bufferSize: 256 });
  try {
    const out: fs.Dirent[] = [];
    for (let d = await handle.read(); d !== null; d = out.length < max ? await handle.read() : null) out.push(d);
    return out;
  } finally {
    await handle.close();
  }
}

/** What each step does, synchronously. */
const syncSteps: { [K in Step['op']]: (step: Extract<Step, { op: K }>) => Answer } = {
  kind: (step) => absentAsUndefined(() => fs.lstatSync(step.path).isDirectory()),
  list: (step) => absentAsUndefined(() => firstEntriesSync(step.path, step.max)),
  unlink: (step) => {
    for (const file of step.paths) unlinkIfThere(file);
    return undefined;
  },
  rmdir: (step) => {
    absentAsUndefined(() => fs.rmdirSync(step.path));
    return undefined;
  },
};

/** What each step does, asynchronously: unlinks UNLINK_BATCH at a time. */
const asyncSteps: { [K in Step['op']]: (step: Extract<Step, { op: K }>) => Promise<Answer> } = {
  kind: (step) => absentAsUndefinedAsync(async () => (await fs.promises.lstat(step.path)).isDirectory()),
  list: (step) => absentAsUndefinedAsync(() => list(step.path, step.max)),
  unlink: async (step) => {
    for (let i = 0; i < step.paths.length; i += UNLINK_BATCH) {
      await Promise.all(step.paths.slice(i, i + UNLINK_BATCH).map(unlinkIfThereAsync));
    }
    return undefined;
  },
  rmdir: async (step) => {
    await absentAsUndefinedAsync(() => fs.promises.rmdir(step.path));
    return undefined;
  },
};

/** A step always goes to the runner of its own op; an index by op cannot show TypeScript that, hence the widening casts. */
type StepRunner<R> = (step: Step) => R;

/** `listBatch`: entries read from a directory at a time (tests make it small). */
export function removeTreeSync(target: string, listBatch = LIST_BATCH): void {
  const run = syncSteps as unknown as Record<Step['op'], StepRunner<Answer>>;
  const steps = removalSteps(target, listBatch);
  for (let s = steps.next(); s.done !== true; s = steps.next(run[s.value.op](s.value)));
}

/** removeTreeSync without blocking the event loop, with at most UNLINK_BATCH calls in flight. */
export async function removeTree(target: string, listBatch = LIST_BATCH): Promise<void> {
  const run = asyncSteps as unknown as Record<Step['op'], StepRunner<Promise<Answer>>>;
  const steps = removalSteps(target, listBatch);
  for (let s = steps.next(); s.done !== true; s = steps.next(await run[s.value.op](s.value)));
}

function isAbsent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function absentAsUndefined<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch (error) {
    if (isAbsent(error)) return undefined;
    throw error;
  }
}

async function absentAsUndefinedAsync<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (isAbsent(error)) return undefined;
    throw error;
  }
}

/** Windows refuses to delete a read-only file (a layer's files may carry that attribute). */
function readOnlyOnWindows(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EPERM' && process.platform === 'win32';
}

function unlinkIfThere(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if (isAbsent(error)) return;
    if (!readOnlyOnWindows(error)) throw error;
    fs.chmodSync(file, 0o666);
    fs.unlinkSync(file);
  }
}

async function unlinkIfThereAsync(file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch (error) {
    if (isAbsent(error)) return;
    if (!readOnlyOnWindows(error)) throw error;
    await fs.promises.chmod(file, 0o666);
    await fs.promises.unlink(file);
  }
}
