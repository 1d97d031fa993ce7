/**
 * Checks of the arguments a public method takes besides ids and tars: an options object,
 * an AbortSignal, a callback. Callers from JavaScript (or with `as`) get past the types;
 * what they pass wrong is ERR_ARGUMENT_INVALID naming the argument, not a TypeError from
 * deep inside the work (or an ERR_IO that blames the disk).
 */
import { createError } from '../errors.js';

/** How a wrong value is shown in a message: `null`, an array, `"abc"` (string), `5` (number). */
export function shown(value: unknown): string {
  if (value === null) return '`null`';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `\`${JSON.stringify(value).slice(0, 60)}\` (string)`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  return `\`${String(value)}\` (${typeof value})`;
}

/** True for an object that is neither null nor an array. */
export function isOptionsObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What an option must be when it is not undefined. */
export type OptionKind = 'signal' | 'function';

const IS_KIND: Readonly<Record<OptionKind, { test: (v: unknown) => boolean; name: string }>> = {
  signal: { test: (v) => v instanceof AbortSignal, name: 'an AbortSignal' },
  function: { test: (v) => typeof v === 'function', name: 'a function' },
};

/**
 * `value` when it is an options object whose properties named in `kinds` are undefined or
 * of their kind, `{}` when undefined; anything else is ERR_ARGUMENT_INVALID naming `what`
 * or the option. Properties not named are the caller's to check.
 */
export function checkOptions<T extends object>(value: T | undefined, what: string, kinds: Readonly<Record<string, OptionKind>> = {}): Partial<T> {
  if (value === undefined) return {};
  if (!isOptionsObject(value)) throw createError('ERR_ARGUMENT_INVALID', `Expected \`${what}\` to be an object or undefined, got ${shown(value)}`, { option: what });
  for (const [name, kind] of Object.entries(kinds)) {
    const v = (value as Record<string, unknown>)[name];
    if (v !== undefined && !IS_KIND[kind].test(v)) {
      throw createError('ERR_ARGUMENT_INVALID', `Expected \`${name}\` to be ${IS_KIND[kind].name} or undefined, got ${shown(v)}`, { option: name });
    }
  }
  return value;
}

/** Throws ERR_ARGUMENT_INVALID unless `fn` is a function. */
export function checkFunction(fn: unknown, what: string): void {
  if (typeof fn !== 'function') throw createError('ERR_ARGUMENT_INVALID', `Expected \`${what}\` to be a function, got ${shown(fn)}`, { option: what });
}

/** Throws ERR_ARGUMENT_INVALID unless `value` is a string. */
export function checkString(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string') throw createError('ERR_ARGUMENT_INVALID', `Expected \`${what}\` to be a string, got ${shown(value)}`, { option: what });
}

/**
 * `onProgress` as the work calls it: one that throws is ignored, as the worker's progress
 * pipe ignores it. Progress never fails the work it reports on (a drawing error must not
 * undo a 10-minute import), in a worker or in process alike.
 */
export function quietProgress<P>(onProgress: ((p: P) => void) | undefined): ((p: P) => void) | undefined {
  if (onProgress === undefined) return undefined;
  return (p) => {
    try {
      // An async callback's rejection too: left alone, it would end the process (unhandled).
      const returned = onProgress(p) as unknown;
      if (typeof (returned as PromiseLike<unknown> | null | undefined)?.then === 'function') {
        Promise.resolve(returned).catch(() => undefined);
      }
    } catch {
      // see above
    }
  };
}
