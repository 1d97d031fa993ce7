#!/usr/bin/env node
/**
 * The worker process: one import (`write-layer`) or export (`export-layer`) per process,
 * the role of Docker's `docker-windows-write-layer` re-exec. A hostile tar can crash
 * only this process; the controller that spawned it stays small and alive. See
 * src/controller/protocol.ts for the contract.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createError, toWinLayerError } from '../src/errors.js';
import { isWorkerCommand, PROGRESS_FD } from '../src/controller/protocol.js';
import { selectBackend } from '../src/native/select.js';
import { exportLayer, importLayer } from '../src/store/layer-ops.js';
import { stdinStream } from '../src/util/stdin.js';
import { LayerStore, validateLayerId } from '../src/store/layer-store.js';

function progressWriter(): ((p: { entries: number; bytes: number }) => void) | undefined {
  try {
    fs.fstatSync(PROGRESS_FD);
  } catch {
    return undefined;
  }
  return (p) => {
    try {
      fs.writeSync(PROGRESS_FD, JSON.stringify({ entries: p.entries, bytes: p.bytes }) + '\n');
    } catch {
      // the controller stopped listening: progress is best effort
    }
  };
}

const OUTPUT_CHUNK = 1024 * 1024;

/**
 * Writes straight to a descriptor: a stream on stdout costs an event-loop turn per chunk,
 * which for a 1 MiB chunk is more than the write. A pipe set non-blocking by its other end
 * answers EAGAIN when full: then wait for the reader.
 */
async function writeAll(fd: number, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    try {
      done += fs.writeSync(fd, chunk, done, chunk.length - done);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}

async function run(argv: readonly string[]): Promise<void> {
  const [command, home, id, ...parents] = argv;
  if (!isWorkerCommand(command) || home === undefined || id === undefined) {
    throw createError('ERR_ARGUMENT_INVALID', 'usage: worker write-layer|export-layer HOME ID [PARENT_LAYER_PATH ...]');
  }
  validateLayerId(id);
  const backend = selectBackend();
  // The controller opened the store (and cleaned it); a worker must not remove another worker's staging directory.
  const store = await LayerStore.open(home, { cleanup: false });
  const parentPaths = parents.map((p) => path.resolve(p));
  const onProgress = progressWriter();
  if (command === 'write-layer') {
    const result = await importLayer(store, backend, id, stdinStream(), { parents: parentPaths, onProgress });
    process.stdout.write(`${result.size}\n`);
    return;
  }
  // Headers, data and padding arrive as separate small chunks: gather them into 1 MiB writes.
  let parts: Uint8Array[] = [];
  let gathered = 0;
  for await (const chunk of exportLayer(store, backend, id, { onProgress })) {
    parts.push(chunk);
    gathered += chunk.length;
    if (gathered >= OUTPUT_CHUNK) {
      await writeAll(1, Buffer.concat(parts, gathered));
      parts = [];
      gathered = 0;
    }
  }
  if (gathered > 0) await writeAll(1, Buffer.concat(parts, gathered));
}

try {
  await run(process.argv.slice(2));
} catch (error) {
  const e = toWinLayerError(error, 'worker failed');
  process.stderr.write('\n' + JSON.stringify(e.toJSON()) + '\n');
  process.exitCode = 1;
}
