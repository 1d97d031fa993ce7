/**
 * The one error hierarchy of winlayer.
 *
 * Every failure a caller can act on is a `WinLayerError` with a stable `code` from
 * `ErrorCodes`. Subclasses say what the caller should do (fix the input, pick another
 * id, install something), not where the error was thrown. Errors cross the worker
 * process boundary as `{name, code, message, data}` and are rebuilt by
 * `errorFromSerialized` into the same class, so `instanceof` and `isWinLayerError`
 * hold on both sides. `docs/errors.md` documents every code; a test keeps the two in step.
 */

/** Every error code, with the class that carries it. */
export const ErrorCodes = {
  // archive and stream content (InvalidArchiveError)
  ERR_TAR_HEADER_INVALID: 'InvalidArchiveError',
  ERR_TAR_TRUNCATED: 'InvalidArchiveError',
  ERR_COMPRESSED_INVALID: 'InvalidArchiveError',
  ERR_PAX_RECORD_INVALID: 'InvalidArchiveError',
  ERR_METADATA_TOO_LARGE: 'InvalidArchiveError',
  ERR_ENTRY_TYPE_UNSUPPORTED: 'InvalidArchiveError',
  ERR_ENTRY_DUPLICATE: 'InvalidArchiveError',
  ERR_ADS_ORPHAN: 'InvalidArchiveError',
  ERR_BACKUP_STREAM_TRUNCATED: 'InvalidArchiveError',
  ERR_BACKUP_STREAM_ID_UNKNOWN: 'InvalidArchiveError',
  ERR_BACKUP_STREAM_INVALID: 'InvalidArchiveError',
  ERR_SIZE_MISMATCH: 'InvalidArchiveError',
  ERR_EA_INVALID: 'InvalidArchiveError',
  ERR_REPARSE_INVALID: 'InvalidArchiveError',
  ERR_SECURITY_DESCRIPTOR_INVALID: 'InvalidArchiveError',
  ERR_SDDL_INVALID: 'InvalidArchiveError',
  ERR_TOMBSTONES_INVALID: 'InvalidArchiveError',
  ERR_LINK_TARGET_NOT_FOUND: 'InvalidArchiveError',
  ERR_LINK_TARGET_INVALID: 'InvalidArchiveError',
  ERR_WHITEOUT_INVALID: 'InvalidArchiveError',
  ERR_PARENT_NOT_DIRECTORY: 'InvalidArchiveError',
  ERR_UTILITYVM_INVALID: 'InvalidArchiveError',
  // paths that would escape or abuse the layer (UnsafePathError)
  ERR_PATH_INVALID: 'UnsafePathError',
  ERR_PATH_ESCAPE: 'UnsafePathError',
  ERR_PATH_ROOT: 'UnsafePathError',
  ERR_PATH_RESERVED: 'UnsafePathError',
  ERR_PATH_TOO_LONG: 'UnsafePathError',
  ERR_PATH_THROUGH_LINK: 'UnsafePathError',
  // features winlayer cannot represent (UnsupportedError)
  ERR_REPARSE_UNSUPPORTED: 'UnsupportedError',
  ERR_SDDL_UNSUPPORTED: 'UnsupportedError',
  ERR_SPARSE_UNSUPPORTED: 'UnsupportedError',
  ERR_COMPRESSION_UNSUPPORTED: 'UnsupportedError',
  ERR_UNSUPPORTED_PLATFORM: 'UnsupportedError',
  // the store (NotFoundError, AlreadyExistsError, LayerStateError)
  ERR_LAYER_NOT_FOUND: 'NotFoundError',
  ERR_PARENT_NOT_FOUND: 'NotFoundError',
  ERR_LAYER_EXISTS: 'AlreadyExistsError',
  ERR_LAYER_CORRUPT: 'LayerStateError',
  ERR_STORE_UNSAFE: 'LayerStateError',
  ERR_INDEX_VERSION: 'LayerStateError',
  ERR_LAYER_IN_USE: 'LayerStateError',
  ERR_IO: 'LayerStateError',
  ERR_CLEANUP_INCOMPLETE: 'LayerStateError',
  // caller mistakes (InvalidArgumentError)
  ERR_ID_INVALID: 'InvalidArgumentError',
  ERR_ARGUMENT_INVALID: 'InvalidArgumentError',
  // processes and the native helper
  ERR_CANCELED: 'CanceledError',
  ERR_WORKER_EXITED: 'WorkerError',
  ERR_WORKER_PROTOCOL: 'WorkerError',
  ERR_WORKER_TIMEOUT: 'WorkerError',
  ERR_NATIVE_UNAVAILABLE: 'NativeHelperError',
  ERR_NATIVE_CALL_FAILED: 'NativeHelperError',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;
export type ErrorClassName = (typeof ErrorCodes)[ErrorCode];

/** Structured context; every value must survive JSON (it crosses the worker boundary). */
export type ErrorData = Readonly<Record<string, string | number | boolean | null | undefined | readonly string[]>>;

const BRAND = Symbol.for('winlayer.error');

/** Base class of every winlayer error. */
export class WinLayerError extends Error {
  readonly code: ErrorCode;
  readonly data: ErrorData;

  constructor(code: ErrorCode, message: string, data: ErrorData = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = data;
  }

  /** The form that crosses a process boundary. */
  toJSON(): SerializedError {
    return { name: this.name, code: this.code, message: this.message, data: { ...this.data } };
  }
}
Object.defineProperty(WinLayerError.prototype, BRAND, { value: true });
WinLayerError.prototype.name = 'WinLayerError';

/** A corrupt, truncated or malformed tar, backup stream or layer entry. */
export class InvalidArchiveError extends WinLayerError {}
InvalidArchiveError.prototype.name = 'InvalidArchiveError';
/** An entry name or link target that would leave, or misuse, the layer directory. */
export class UnsafePathError extends WinLayerError {}
UnsafePathError.prototype.name = 'UnsafePathError';
/** Well-formed input that winlayer cannot represent on this platform. */
export class UnsupportedError extends WinLayerError {}
UnsupportedError.prototype.name = 'UnsupportedError';
/** A layer or parent that does not exist. */
export class NotFoundError extends WinLayerError {}
NotFoundError.prototype.name = 'NotFoundError';
/** A layer id that is already taken. */
export class AlreadyExistsError extends WinLayerError {}
AlreadyExistsError.prototype.name = 'AlreadyExistsError';
/** A layer on disk that is damaged, in use, or unreadable. */
export class LayerStateError extends WinLayerError {}
LayerStateError.prototype.name = 'LayerStateError';
/** A caller passed a bad id or option. */
export class InvalidArgumentError extends WinLayerError {}
InvalidArgumentError.prototype.name = 'InvalidArgumentError';
/** The operation was canceled by its AbortSignal. */
export class CanceledError extends WinLayerError {}
CanceledError.prototype.name = 'CanceledError';
/** A worker process failed without reporting a structured error, or broke the protocol. */
export class WorkerError extends WinLayerError {}
WorkerError.prototype.name = 'WorkerError';
/** The native helper (edge-js + C#) is missing or one of its calls failed. */
export class NativeHelperError extends WinLayerError {}
NativeHelperError.prototype.name = 'NativeHelperError';

const CLASSES = {
  InvalidArchiveError,
  UnsafePathError,
  UnsupportedError,
  NotFoundError,
  AlreadyExistsError,
  LayerStateError,
  InvalidArgumentError,
  CanceledError,
  WorkerError,
  NativeHelperError,
} as const satisfies Record<ErrorClassName, typeof WinLayerError>;

/** True for any winlayer error, even one from another copy of this module. */
export function isWinLayerError(value: unknown): value is WinLayerError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** True when `code` is one of ours. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCodes, code);
}

/** Builds the error for `code`, of the class the code table names. */
export function createError(code: ErrorCode, message: string, data: ErrorData = {}, cause?: unknown): WinLayerError {
  const Class = CLASSES[ErrorCodes[code]];
  return new Class(code, message, data, cause === undefined ? undefined : { cause });
}

/** The JSON form of an error, as the worker prints it. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
  data: Record<string, unknown>;
}

/** Rebuilds an error serialized by `toJSON`; unknown codes become ERR_WORKER_PROTOCOL. */
export function errorFromSerialized(value: unknown): WinLayerError {
  if (typeof value !== 'object' || value === null) {
    return createError('ERR_WORKER_PROTOCOL', `worker error is not an object: ${String(value)}`);
  }
  const v = value as Partial<SerializedError>;
  const message = typeof v.message === 'string' ? v.message : 'worker error without a message';
  const data: Record<string, string | number | boolean | null> = {};
  if (typeof v.data === 'object' && v.data !== null) {
    for (const [k, d] of Object.entries(v.data)) {
      if (d === null || typeof d === 'string' || typeof d === 'number' || typeof d === 'boolean') data[k] = d;
    }
  }
  if (!isErrorCode(v.code)) {
    return createError('ERR_WORKER_PROTOCOL', `worker reported unknown error code ${String(v.code)}: ${message}`, data);
  }
  return createError(v.code, message, data);
}

/**
 * The error for a path the host's file system cannot hold (ENAMETOOLONG): Windows takes
 * 32,767 characters, a POSIX host stops at PATH_MAX (4,096 bytes on Linux). The message
 * shows a long entry by its two ends (the CLI prints the message as one line: a whole
 * entry near PATH_MAX made it 4 KB); `data.entry` holds it whole.
 */
/** Entry paths shorter than this fit a Linux path (4,096 bytes) below any store directory of reasonable length. */
const PATH_BYTES_SURELY_FIT = 3000;

export function pathTooLongError(entry: string, cause: unknown): WinLayerError {
  // A name of up to 255 bytes is too long here only with the `.$wcidirs$` (10 bytes) a
  // directory's metadata takes beside it: say so, not that the path is too long.
  const bytes = Buffer.byteLength(entry.slice(entry.lastIndexOf('/') + 1));
  // The store's own directory comes before the entry's path: ~4,000 bytes of path is the
  // path's length, whatever its name.
  const why =
    bytes > 255
      ? `its name is ${bytes} bytes, past the 255 this host's file system gives a name`
      : bytes + '.$wcidirs$'.length > 255 && Buffer.byteLength(entry) < PATH_BYTES_SURELY_FIT
        ? `its name (${bytes} bytes) and the .$wcidirs$ a directory's metadata takes beside it pass the 255 bytes this host's file system gives a name`
        : "the path is longer than this host's file system can hold";
  return createError('ERR_PATH_TOO_LONG', `${shownEntry(entry)}: ${why}`, { entry }, cause);
}

/**
 * An entry name for a message: whole up to 160 characters, else its start and end, cut
 * between characters (never inside a surrogate pair, which no UTF-8 could carry).
 */
export function shownEntry(entry: string): string {
  if (entry.length <= SHOWN_ENTRY_CHARS) return entry;
  let head = SHOWN_ENTRY_CHARS / 2;
  let tail = entry.length - SHOWN_ENTRY_CHARS / 2;
  if (isHighSurrogate(entry.charCodeAt(head - 1))) head--;
  if (isHighSurrogate(entry.charCodeAt(tail - 1))) tail++;
  return `${entry.slice(0, head)}…${entry.slice(tail)} (${entry.length} characters)`;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** The most characters of an entry name shownEntry keeps. */
const SHOWN_ENTRY_CHARS = 160;

/** Wraps an unknown thrown value (fs errors, bugs) so callers always see a WinLayerError. */
export function toWinLayerError(error: unknown, context: string, data: ErrorData = {}): WinLayerError {
  if (isWinLayerError(error)) return error;
  const e = error as NodeJS.ErrnoException | undefined;
  const detail = e instanceof Error ? e.message : String(error);
  return createError('ERR_IO', `${context}: ${detail}`, { ...data, errno: e?.code ?? null }, error);
}

/** What a file of a stored layer that fails to open or read this way says of the layer: it is not (or not a file) where the layer has it. */
const LAYER_DAMAGE_ERRNOS: ReadonlySet<string> = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP']);

/**
 * The error for a file of a stored layer that could not be opened or read (`context:
 * cause`): ERR_LAYER_CORRUPT when the layer is damaged (the file is missing, is not a
 * file, or is a link where the layer never makes one: LAYER_DAMAGE_ERRNOS; or what was
 * read did not parse, an error without an errno), else ERR_IO with the errno: a
 * permission, too many open files or a failing disk says nothing of the layer, which
 * reads whole once the cause is gone.
 */
export function layerFileError(cause: unknown, context: string, data: ErrorData = {}): WinLayerError {
  if (isWinLayerError(cause)) return cause;
  const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (errno !== undefined && !LAYER_DAMAGE_ERRNOS.has(errno)) return toWinLayerError(cause, context, data);
  const detail = cause instanceof Error ? cause.message : String(cause);
  return createError('ERR_LAYER_CORRUPT', `${context}: ${detail}`, { ...data, ...(errno === undefined ? {} : { errno }) }, cause);
}
