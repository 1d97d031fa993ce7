/**
 * The published types, checked by the compiler: `npm run build` compiles this file (the
 * tsconfig includes test/, with exactOptionalPropertyTypes) and never runs it. It fails
 * when a caller's possibly-undefined option no longer compiles, or when a line marked
 * `@ts-expect-error` compiles (an `any` leaking through a return type).
 */
import { Readable } from 'node:stream';
import { exportLayer, importLayer, portableBackend, streamLayerTar, WindowsFilterDriver, type ImportProgress, type LayerStore, type NativeBackend } from '../../src/index.js';

/** Every optional option takes undefined: a caller forwards its own optional values as they are. */
export async function forwardsUndefined(
  home: string,
  n: number | undefined,
  flag: boolean | undefined,
  text: string | undefined,
  signal: AbortSignal | undefined,
  onProgress: ((p: ImportProgress) => void) | undefined,
  storageOpt: readonly string[] | undefined,
  backend: NativeBackend | undefined,
  store: LayerStore,
): Promise<void> {
  const d = await WindowsFilterDriver.open({ home, concurrency: n, timeout: n, startTimeout: n, backend, cleanup: flag, inProcess: flag, workerPath: text });
  await d.applyDiff('a', undefined, Readable.from([]), { signal, onProgress });
  d.diff('a', undefined, { signal, onProgress });
  await d.diffTo('a', 1, { signal, onProgress });
  await d.create('b', undefined, { storageOpt });
  await d.createReadWrite('c', undefined, { storageOpt });
  await d.forEachChange('a', () => undefined, { signal });
  await d.get('a', { onProgress });
  await importLayer(store, portableBackend, 'e', Readable.from([]), { parents: [], signal, onProgress, durable: flag, beforeCommit: undefined });
  for await (const _ of exportLayer(store, portableBackend, 'e', { signal, onProgress })) void _;
}

/** Generators yield bytes and return nothing: their results are not `any`. */
export async function yieldsBytes(store: LayerStore, backend: NativeBackend): Promise<void> {
  // @ts-expect-error a Buffer (or the generator's void return) is no string
  const s: string = (await exportLayer(store, portableBackend, 'a').next()).value;
  // @ts-expect-error a Uint8Array is no number
  const n: number = (await streamLayerTar([]).next()).value;
  // @ts-expect-error a Buffer is no string
  const r: string = (await backend.readLayer({ root: '/' }).next()).value;
  void s;
  void n;
  void r;
}
