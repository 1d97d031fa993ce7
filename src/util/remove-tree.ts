/**
 * Synchronous removal of a directory tree without recursion. A layer may hold a tree
 * thousands of levels deep (a Windows path has up to 32,767 units), and `fs.rmSync` with
 * `recursive` recurses once per level in JavaScript: ~1,900 levels overflowed its stack
 * on Node 20 (RangeError, and the tree left in place).
 *
 * Symbolic links are removed, never followed. A path that does not exist is not an error
 * (as `force: true`). Each directory is read once: its files go at once and its
 * subdirectories wait on an explicit stack, so a wide tree is no slower than a deep one.
 */
import * as fs from 'node:fs';

export function removeTreeSync(target: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = fs.lstatSync(target).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isDirectory) {
    unlinkIfThere(target);
    return;
  }
  // Directories whose contents were listed (their subdirectories are above them on the stack).
  const listed = new Set<string>();
  const stack = [target];
  while (stack.length > 0) {
    const dir = stack[stack.length - 1] as string;
    if (listed.has(dir)) {
      stack.pop();
      listed.delete(dir);
      rmdirIfThere(dir);
      continue;
    }
    listed.add(dir);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    for (const entry of entries) {
      const child = `${dir}/${entry.name}`;
      if (entry.isDirectory()) stack.push(child);
      else unlinkIfThere(child);
    }
  }
}

function unlinkIfThere(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    // Windows refuses to delete a read-only file (a layer's files may carry that attribute).
    if (code === 'EPERM' && process.platform === 'win32') {
      fs.chmodSync(file, 0o666);
      fs.unlinkSync(file);
      return;
    }
    throw error;
  }
}

function rmdirIfThere(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
