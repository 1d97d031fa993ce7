/**
 * The bridge to the C# helper (dotnet/, assembly WinLayer.Native.dll) through edge-js:
 * the only module that imports edge-js, and it does so lazily, inside
 * `loadNativeHelper`, so nothing pays for (or depends on) edge-js, Mono or the .NET
 * Framework until the edge backend is used.
 *
 * Two kinds of failure, two codes:
 * - ERR_NATIVE_UNAVAILABLE: the helper cannot be reached — edge-js is not installed, its
 *   native addon or the runtime under it (Mono off Windows) cannot load, or the DLL is
 *   missing or unusable. `data.reason` says which; the message says what to install.
 * - ERR_NATIVE_CALL_FAILED: a call was made and failed inside the helper (a Win32 or
 *   HRESULT failure carries `data.win32Error` and `data.hresult`). A failure the helper
 *   classified with one of winlayer's own input codes (a truncated backup stream, a
 *   Windows-only call off Windows…) keeps that code, so both backends report bad input
 *   the same way; so does an operating-system error of a file the helper restores, or a
 *   full disk a Win32 call reports: ERR_IO, as node:fs's would be (nativeErrorFromThrown).
 *
 * File calls are synchronous (`func(payload, true)`): the layer writer is synchronous and
 * each call finishes in the helper before returning. The vmcompute (HCS) calls can take
 * minutes, so they run on a CLR pool thread and return promises.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createError, isErrorCode, isWinLayerError, type ErrorCode, type ErrorData, type WinLayerError } from '../errors.js';
import { STREAM_ID_SIZE } from '../backup/constants.js';
import type { FileBasicInfo } from '../util/windows.js';

/** The npm package that hosts the CLR in Node. */
export const EDGE_MODULE = 'edge-js';
/** The helper's class; every entry point is a `Task<object> Method(object input)` on it. */
export const HELPER_TYPE_NAME = 'WinLayer.Native.Helper';
/** The entry-point shapes this module expects (`Helper.ProtocolVersion` in C#). */
export const HELPER_PROTOCOL = 1;
/** What a layer import or export needs on Windows (moby's windowsfilter since 2021). */
export const LAYER_PRIVILEGES = ['SeBackupPrivilege', 'SeRestorePrivilege', 'SeSecurityPrivilege'] as const;

/** dotnet/bin/WinLayer.Native.dll of this package (this file runs from dist/src/native/). */
export const DEFAULT_ASSEMBLY_FILE = fileURLToPath(new URL('../../../dotnet/bin/WinLayer.Native.dll', import.meta.url));

/** Why the helper cannot be reached. */
export type UnavailableReason = 'edge-js-missing' | 'runtime-missing' | 'coreclr-selected' | 'assembly-missing' | 'assembly-invalid' | 'protocol-mismatch';

/** Codes the helper may assign itself; anything else it reports is ERR_NATIVE_CALL_FAILED. */
const HELPER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_BACKUP_STREAM_TRUNCATED',
  'ERR_BACKUP_STREAM_INVALID',
  'ERR_BACKUP_STREAM_ID_UNKNOWN',
  'ERR_METADATA_TOO_LARGE',
  'ERR_SIZE_MISMATCH',
  'ERR_SPARSE_UNSUPPORTED',
  'ERR_UNSUPPORTED_PLATFORM',
  'ERR_ARGUMENT_INVALID',
  'ERR_IO',
]);

/**
 * Win32 codes of a call that failed for the disk, not for the call: reported as ERR_IO
 * with the errno a POSIX system gives the same failure, as the portable backend reports
 * it. ERROR_HANDLE_DISK_FULL is what Mono gives ENOSPC.
 */
const DISK_WIN32_ERRORS: ReadonlyMap<number, string> = new Map([
  [39, 'ENOSPC'], // ERROR_HANDLE_DISK_FULL
  [112, 'ENOSPC'], // ERROR_DISK_FULL
  [223, 'EFBIG'], // ERROR_FILE_TOO_LARGE
]);

/** The errno of an ERR_IO the helper reports itself, where its Win32 code tells it. */
const IO_WIN32_ERRNO: ReadonlyMap<number, string> = new Map([
  ...DISK_WIN32_ERRORS,
  [2, 'ENOENT'], // ERROR_FILE_NOT_FOUND
  [3, 'ENOENT'], // ERROR_PATH_NOT_FOUND
  [5, 'EACCES'], // ERROR_ACCESS_DENIED
  [80, 'EEXIST'], // ERROR_FILE_EXISTS
  [183, 'EEXIST'], // ERROR_ALREADY_EXISTS
]);

export interface NativeHelperOptions {
  /** The helper assembly. @default DEFAULT_ASSEMBLY_FILE */
  readonly assemblyFile?: string | undefined;
  /** Specifier or absolute path of the edge-js module (tests substitute their own). @default 'edge-js' */
  readonly edgeModule?: string | undefined;
  /** Environment consulted for edge-js's runtime switches. @default process.env */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** What `Info` reports: which runtime and platform the bridge reached. */
export interface HelperInfo {
  platform: 'windows' | 'unix';
  runtime: string;
  protocol: number;
  is64Bit: boolean;
  assemblyVersion: string;
  /** Restore and reader handles currently open in the helper. */
  openHandles: number;
  /** Whether the runtime's file API works in this process (see exposeMonoRuntimeSymbols). */
  fileApi: boolean;
}

/** One sub-stream as the C# parser saw it. */
export interface ParsedSubStream {
  id: number;
  attributes: number;
  /** Payload bytes (a sparse block's excludes its 8-byte offset). */
  size: number;
  name: string;
  offset: number;
  /** Header, name and (sparse) offset exactly as read. */
  encoded: Buffer;
  payloadBytes: number;
}

/** What a finished restore reports: the data bytes written (the caller keeps the other sub-streams). */
export interface RestoreResult {
  dataSize: number;
}

/** WC_LAYER_DESCRIPTOR as marshalled by the helper, read back from unmanaged memory. */
export interface LayerDescriptorLayout {
  stride: number;
  layerIdOffset: number;
  flagsOffset: number;
  pathOffset: number;
  driverInfoSize: number;
  fileBasicInfoSize: number;
  layers: { id: string; idBytes: string; flags: number; path: string }[];
}

/** An edge-js function: synchronous with `true`, asynchronous with a callback. */
interface EdgeFunc {
  (payload: unknown, sync: true): unknown;
  (payload: unknown, callback: (error: unknown, result: unknown) => void): void;
}

interface EdgeModule {
  func(options: { assemblyFile: string; typeName: string; methodName: string }): EdgeFunc;
}

/** The helper, reached through edge-js. Get one with {@link loadNativeHelper}. */
export class NativeHelper {
  readonly assemblyFile: string;
  readonly #edge: EdgeModule;
  readonly #funcs = new Map<string, EdgeFunc>();

  /** @internal use loadNativeHelper, which checks the helper is reachable first. */
  constructor(edge: EdgeModule, assemblyFile: string) {
    this.#edge = edge;
    this.assemblyFile = assemblyFile;
  }

  info(): HelperInfo {
    return this.#call('Info', null) as HelperInfo;
  }

  /** A call that does nothing: the fixed cost of crossing the bridge. */
  noop(payload: unknown = null): void {
    this.#call('Noop', payload);
  }

  /** Returns what it is given, after a round trip through the CLR's types. */
  echo(payload: unknown): unknown {
    return this.#call('Echo', payload);
  }

  /** Parses a whole backup stream in the helper, fed `chunkSize` bytes at a time. */
  parseBackupStream(data: Buffer, options: { chunkSize?: number; entry?: string } = {}): { streams: ParsedSubStream[]; bytesRead: number } {
    const r = this.#call('ParseBackupStream', { data, chunkSize: options.chunkSize ?? data.length, entry: options.entry ?? '' }) as {
      streams: ParsedSubStream[];
      bytesRead: number;
    };
    // Strings cross the bridge as UTF-8, which turns a lone surrogate (NTFS takes one in a
    // name) into U+FFFD: each name is read again from the header bytes, as TypeScript does.
    for (const s of r.streams) s.name = s.encoded.subarray(STREAM_ID_SIZE, STREAM_ID_SIZE + s.encoded.readUInt32LE(16)).toString('utf16le');
    return r;
  }

  /**
   * Creates `path` (it must not exist) for restoring entry `entry` and returns its handle;
   * with `directory`, opens the directory already made at `path` (a directory must exist
   * before its children, and BackupWrite then restores its security, EAs, ADS and reparse
   * data). `processSecurity` is BackupWrite's flag: hcsshim restores Hives/ without it.
   */
  restoreCreate(path: string, entry: string, processSecurity: boolean, directory = false): number {
    return this.#call('RestoreCreate', { path, entry, processSecurity, directory }) as number;
  }

  /** The next bytes of the entry's backup stream. A failure closes the handle. */
  restoreWrite(handle: number, chunk: Uint8Array): void {
    this.#call('RestoreWrite', { handle, chunk });
  }

  /** Ends the stream, sets the times, closes the file; the handle is closed either way. */
  restoreFinish(handle: number, info: FileBasicInfo): RestoreResult {
    const r = this.#call('RestoreFinish', { handle, ...basicInfoPayload(info) }) as { dataSize: number };
    return { dataSize: r.dataSize };
  }

  /** Closes a restore after a failure. */
  restoreAbort(handle: number): void {
    this.#call('RestoreAbort', { handle });
  }

  /** Opens `path` for BackupRead (off Windows: one DATA sub-stream of the file's bytes). */
  backupReadOpen(path: string, processSecurity: boolean): number {
    return this.#call('BackupReadOpen', { path, processSecurity }) as number;
  }

  /** Up to `size` bytes of the stream; empty at its end. */
  backupReadChunk(handle: number, size: number): Buffer {
    return (this.#call('BackupReadChunk', { handle, size }) as Buffer | null) ?? Buffer.alloc(0);
  }

  /** Closes a restore or reader handle; closing twice is harmless. */
  closeHandle(handle: number): void {
    this.#call('CloseHandle', { handle });
  }

  getFileBasicInfo(path: string): FileBasicInfo {
    const r = this.#call('GetFileBasicInfo', { path }) as Record<'creationTime' | 'lastAccessTime' | 'lastWriteTime' | 'changeTime', string> & {
      fileAttributes: number;
    };
    return {
      creationTime: BigInt(r.creationTime),
      lastAccessTime: BigInt(r.lastAccessTime),
      lastWriteTime: BigInt(r.lastWriteTime),
      changeTime: BigInt(r.changeTime),
      fileAttributes: r.fileAttributes,
    };
  }

  setFileBasicInfo(path: string, info: FileBasicInfo): void {
    this.#call('SetFileBasicInfo', { path, ...basicInfoPayload(info) });
  }

  createHardLink(link: string, target: string): void {
    this.#call('CreateHardLink', { link, target });
  }

  /** Enables privileges on the process token (Windows only; see docs/windows.md). */
  enablePrivileges(names: readonly string[] = LAYER_PRIVILEGES): string[] {
    return this.#call('EnablePrivileges', { names: [...names] }) as string[];
  }

  /** Marshals WC_LAYER_DESCRIPTORs and reads them back: the vmcompute layout, checkable anywhere. */
  describeLayerDescriptors(layers: readonly { path: string; id: string; flags?: number }[]): LayerDescriptorLayout {
    return this.#call('DescribeLayerDescriptors', { layers: layers.map((l) => ({ path: l.path, id: l.id, flags: l.flags ?? 0 })) }) as LayerDescriptorLayout;
  }

  // vmcompute (HCS) layer calls, as windowsfilter makes them. Paths are full layer paths;
  // `parents` are layer paths, nearest first.
  activateLayer(path: string): Promise<void> {
    return this.#callAsync('ActivateLayer', { path }).then(() => undefined);
  }
  deactivateLayer(path: string): Promise<void> {
    return this.#callAsync('DeactivateLayer', { path }).then(() => undefined);
  }
  createLayer(path: string, parent: string): Promise<void> {
    return this.#callAsync('CreateLayer', { path, parent }).then(() => undefined);
  }
  createSandboxLayer(path: string, parents: readonly string[]): Promise<void> {
    return this.#callAsync('CreateSandboxLayer', { path, parents: [...parents] }).then(() => undefined);
  }
  expandSandboxSize(path: string, size: bigint): Promise<void> {
    return this.#callAsync('ExpandSandboxSize', { path, size: size.toString() }).then(() => undefined);
  }
  destroyLayer(path: string): Promise<void> {
    return this.#callAsync('DestroyLayer', { path }).then(() => undefined);
  }
  importLayer(path: string, importFolder: string, parents: readonly string[]): Promise<void> {
    return this.#callAsync('ImportLayer', { path, importFolder, parents: [...parents] }).then(() => undefined);
  }
  exportLayer(path: string, exportFolder: string, parents: readonly string[]): Promise<void> {
    return this.#callAsync('ExportLayer', { path, exportFolder, parents: [...parents] }).then(() => undefined);
  }
  prepareLayer(path: string, parents: readonly string[]): Promise<void> {
    return this.#callAsync('PrepareLayer', { path, parents: [...parents] }).then(() => undefined);
  }
  unprepareLayer(path: string): Promise<void> {
    return this.#callAsync('UnprepareLayer', { path }).then(() => undefined);
  }
  getLayerMountPath(path: string): Promise<string> {
    return this.#callAsync('GetLayerMountPath', { path }) as Promise<string>;
  }
  layerExists(path: string): Promise<boolean> {
    return this.#callAsync('LayerExists', { path }) as Promise<boolean>;
  }
  nameToGuid(name: string): Promise<string> {
    return this.#callAsync('NameToGuid', { name }) as Promise<string>;
  }
  processBaseImage(path: string): Promise<void> {
    return this.#callAsync('ProcessBaseImage', { path }).then(() => undefined);
  }
  processUtilityImage(path: string): Promise<void> {
    return this.#callAsync('ProcessUtilityImage', { path }).then(() => undefined);
  }

  #func(method: string): EdgeFunc {
    let f = this.#funcs.get(method);
    if (f === undefined) {
      try {
        f = this.#edge.func({ assemblyFile: this.assemblyFile, typeName: HELPER_TYPE_NAME, methodName: method });
      } catch (cause) {
        throw unavailableError('assembly-invalid', `${this.assemblyFile} has no usable ${HELPER_TYPE_NAME}.${method}: ${messageOf(cause)}`, { assemblyFile: this.assemblyFile }, cause);
      }
      this.#funcs.set(method, f);
    }
    return f;
  }

  #call(method: string, payload: unknown): unknown {
    const f = this.#func(method);
    try {
      return f(payload, true);
    } catch (thrown) {
      throw nativeErrorFromThrown(method, thrown);
    }
  }

  #callAsync(method: string, payload: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      try {
        this.#func(method)(payload, (error, result) => {
          if (error !== null && error !== undefined) reject(nativeErrorFromThrown(method, error));
          else resolve(result);
        });
      } catch (thrown) {
        reject(nativeErrorFromThrown(method, thrown));
      }
    });
  }
}

const loaded = new Map<string, NativeHelper>();

/**
 * Loads edge-js and checks that the helper answers, once per (edge module, assembly).
 * Throws ERR_NATIVE_UNAVAILABLE, with `data.reason`, when it cannot.
 */
export function loadNativeHelper(options: NativeHelperOptions = {}): NativeHelper {
  const assemblyFile = options.assemblyFile ?? DEFAULT_ASSEMBLY_FILE;
  const edgeModule = options.edgeModule ?? EDGE_MODULE;
  const env = options.env ?? process.env;
  const key = edgeModule + '\0' + assemblyFile;
  const cached = loaded.get(key);
  if (cached !== undefined) return cached;

  const where = { assemblyFile, edgeModule };
  if (env.EDGE_USE_CORECLR !== undefined && env.EDGE_USE_CORECLR !== '') {
    throw unavailableError(
      'coreclr-selected',
      'EDGE_USE_CORECLR is set, which makes edge-js host .NET Core; the helper is built for the .NET Framework (Windows) or Mono: unset EDGE_USE_CORECLR',
      where,
    );
  }
  if (!fs.existsSync(assemblyFile)) {
    throw unavailableError(
      'assembly-missing',
      `the native helper ${assemblyFile} is not built: run \`node scripts/build-dotnet.mjs\` (needs ${process.platform === 'win32' ? 'csc from the .NET Framework 4.x' : 'mcs, from Mono: apt-get install mono-devel'})`,
      where,
    );
  }
  const wasCoreClr = process.env.EDGE_USE_CORECLR;
  const edge = requireEdge(edgeModule, where);
  if (wasCoreClr === undefined && process.env.EDGE_USE_CORECLR !== undefined) {
    // edge-js falls back to its .NET Core addon, and says so in this variable, when it was built without Mono.
    throw unavailableError('runtime-missing', `${edgeModule} was built without Mono and selected .NET Core; ${runtimeAdvice()}`, where);
  }
  exposeMonoRuntimeSymbols();
  const helper = new NativeHelper(edge, assemblyFile);
  let info: HelperInfo;
  try {
    info = helper.info();
  } catch (cause) {
    if (isWinLayerError(cause) && cause.code === 'ERR_NATIVE_UNAVAILABLE') throw cause;
    throw unavailableError('assembly-invalid', `${assemblyFile} does not answer through edge-js: ${messageOf(cause)}`, where, cause);
  }
  if (info.fileApi !== true) {
    throw unavailableError(
      'runtime-missing',
      `the runtime under ${edgeModule} (${info.runtime}) cannot use its file API in this process (Mono: libmono-native.so did not load); ${runtimeAdvice()}`,
      where,
    );
  }
  if (info.protocol !== HELPER_PROTOCOL) {
    throw unavailableError(
      'protocol-mismatch',
      `${assemblyFile} speaks protocol ${String(info.protocol)}, this package expects ${HELPER_PROTOCOL}: rebuild it with \`node scripts/build-dotnet.mjs --force\``,
      where,
    );
  }
  loaded.set(key, helper);
  return helper;
}

function requireEdge(edgeModule: string, where: { assemblyFile: string; edgeModule: string }): EdgeModule {
  const require = createRequire(import.meta.url);
  let mod: unknown;
  try {
    mod = require(edgeModule);
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException;
    // MODULE_NOT_FOUND for the package itself; the same code for a file *inside* it means a broken install.
    if (e?.code === 'MODULE_NOT_FOUND' && messageOf(cause).includes(`'${edgeModule}'`)) {
      throw unavailableError(
        'edge-js-missing',
        `${edgeModule} is not installed: run \`npm install ${EDGE_MODULE}\` (an optional dependency of winlayer; off Windows it builds against Mono, so install mono-devel and pkg-config first)`,
        where,
        cause,
      );
    }
    throw unavailableError('runtime-missing', `${edgeModule} cannot load its native addon: ${messageOf(cause)}; ${runtimeAdvice()}`, where, cause);
  }
  if (typeof (mod as Partial<EdgeModule> | null)?.func !== 'function') {
    throw unavailableError('runtime-missing', `${edgeModule} loaded but has no func(): ${runtimeAdvice()}`, where);
  }
  return mod as EdgeModule;
}

/** A line of /proc/self/maps naming the Mono runtime library. */
const MONO_RUNTIME_MAPPING = /\s(\/\S*\/libmonosgen-2\.0\.so[.0-9]*)$/;

/**
 * Node opens addons RTLD_LOCAL, so the Mono runtime that edge-js's addon links
 * (libmonosgen-2.0) stays out of the global symbol scope. Mono's libmono-native.so, which
 * the class library's file, path and time-zone code P/Invokes, resolves the runtime's
 * symbols from that scope, fails to load, and takes every System.IO call down with it.
 * Opening the already-loaded runtime again with RTLD_GLOBAL promotes it. Node then
 * reports that the library is not an addon, which is expected: the promotion stays, since
 * edge-js's addon keeps the library loaded. Linux only; it must run before the first call.
 */
function exposeMonoRuntimeSymbols(): void {
  if (process.platform !== 'linux') return;
  let maps: string;
  try {
    maps = fs.readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return;
  }
  for (const line of maps.split('\n')) {
    const lib = MONO_RUNTIME_MAPPING.exec(line)?.[1];
    if (lib === undefined) continue;
    try {
      process.dlopen({ exports: {} }, lib, os.constants.dlopen.RTLD_NOW | os.constants.dlopen.RTLD_GLOBAL);
    } catch {
      // "Module did not self-register": the library is loaded and now global, which was the point.
    }
    return;
  }
}

function runtimeAdvice(): string {
  return process.platform === 'win32'
    ? 'install the .NET Framework 4.5 or later and reinstall edge-js (`npm rebuild edge-js`)'
    : 'install Mono (Debian/Ubuntu: `apt-get install mono-devel pkg-config`; macOS: `brew install mono`), leave EDGE_USE_CORECLR unset, then `npm rebuild edge-js`';
}

/** ERR_NATIVE_UNAVAILABLE with its reason. */
export function unavailableError(reason: UnavailableReason, message: string, where: { assemblyFile?: string; edgeModule?: string } = {}, cause?: unknown): WinLayerError {
  return createError('ERR_NATIVE_UNAVAILABLE', message, { reason, platform: process.platform, ...where }, cause);
}

/**
 * The WinLayerError for something a helper call threw. edge-js raises the CLR exception
 * with its public properties copied on: `Code`, `Operation`, `Win32Error`, `HResult`.
 */
export function nativeErrorFromThrown(method: string, thrown: unknown): WinLayerError {
  if (isWinLayerError(thrown)) return thrown;
  const e = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as Record<string, unknown>;
  const message = messageOf(thrown);
  const win32Error = typeof e.Win32Error === 'number' ? e.Win32Error : null;
  const data: ErrorData = {
    method,
    operation: typeof e.Operation === 'string' ? e.Operation : null,
    nativeType: typeof e.name === 'string' ? e.name : null,
    win32Error,
    hresult: typeof e.HResult === 'number' ? e.HResult : null,
    // The helper names the entry of a file it restores itself.
    ...(typeof e.Entry === 'string' ? { entry: e.Entry } : {}),
  };
  const code = e.Code;
  // A full disk or a file too large, however the helper met it (an IOException of its
  // own write, BackupWrite's Win32 error): ERR_IO, as the portable backend reports it.
  const disk = win32Error === null ? undefined : DISK_WIN32_ERRORS.get(win32Error);
  if (code === 'ERR_IO' || disk !== undefined) {
    const errno = win32Error === null ? undefined : IO_WIN32_ERRNO.get(win32Error);
    return createError('ERR_IO', `${method}: ${message}`, { ...data, ...(errno === undefined ? {} : { errno }) }, thrown);
  }
  if (isErrorCode(code) && HELPER_CODES.has(code)) return createError(code, message, data, thrown);
  return createError('ERR_NATIVE_CALL_FAILED', `${method}: ${message}`, data, thrown);
}

function messageOf(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string') return (value as { message: string }).message;
  return String(value);
}

function basicInfoPayload(info: FileBasicInfo): Record<string, string | number> {
  return {
    creationTime: info.creationTime.toString(),
    lastAccessTime: info.lastAccessTime.toString(),
    lastWriteTime: info.lastWriteTime.toString(),
    changeTime: info.changeTime.toString(),
    fileAttributes: info.fileAttributes >>> 0,
  };
}
