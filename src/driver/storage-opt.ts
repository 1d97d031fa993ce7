/**
 * Storage options of read-write layers, as windowsfilter reads them: `key=value` pairs
 * (or an object), keys case-insensitive, only `size` understood, in go-units RAMInBytes
 * syntax: a decimal number, an optional space, an optional unit k/m/g/t/p (powers of 1024),
 * an optional `i` and an optional `b` — `20GB`, `1.5g`, `512m`, `4096`. Unknown keys are
 * an error here (windowsfilter ignores them; a typo silently losing a size limit is worse).
 */
import { createError } from '../errors.js';

const SIZE = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/;
const UNITS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** Bytes of a go-units RAM size. */
export function parseRamSize(value: string, option = 'size'): number {
  const m = SIZE.exec(value);
  const number = m === null ? Number.NaN : Number.parseFloat(m[1] as string);
  if (m === null || !Number.isFinite(number) || (m[1] as string).split('.').length > 2) {
    throw createError('ERR_ARGUMENT_INVALID', `storage option ${option}=${JSON.stringify(value)} is not a size such as 20GB, 1.5g or 512m`, { option, value });
  }
  const unit = m[2] === undefined ? 1 : (UNITS[m[2].toLowerCase()] as number);
  const bytes = Math.trunc(number * unit);
  if (!Number.isSafeInteger(bytes)) {
    throw createError('ERR_ARGUMENT_INVALID', `storage option ${option}=${JSON.stringify(value)} is too large`, { option, value });
  }
  return bytes;
}

export interface StorageOptions {
  /** Size limit of a read-write layer in bytes. */
  size?: number;
}

/** Parses `{size: '20GB'}` or `['size=20GB']`; anything else (null, a string, a number) is ERR_ARGUMENT_INVALID. */
export function parseStorageOptions(input: Readonly<Record<string, string>> | readonly string[] | undefined): StorageOptions {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null) {
    const got = input === null ? 'null' : `${JSON.stringify(input)} (${typeof input})`;
    throw createError('ERR_ARGUMENT_INVALID', `Expected \`storageOpt\` to be an object such as {size: '20GB'} or an array such as ['size=20GB'], got ${got}`, { option: 'storageOpt' });
  }
  const pairs: [string, string][] = Array.isArray(input)
    ? (input as readonly unknown[]).map((kv) => {
        const eq = typeof kv === 'string' ? kv.indexOf('=') : -1;
        if (eq <= 0) throw createError('ERR_ARGUMENT_INVALID', `storage option ${JSON.stringify(kv) ?? String(kv)} is not key=value`, { option: String(kv) });
        return [(kv as string).slice(0, eq), (kv as string).slice(eq + 1)];
      })
    : Object.entries(input as Readonly<Record<string, string>>);
  const out: StorageOptions = {};
  for (const [key, value] of pairs) {
    if (key.toLowerCase() !== 'size') throw createError('ERR_ARGUMENT_INVALID', `unknown storage option ${JSON.stringify(key)}: only size is understood`, { option: key });
    out.size = parseRamSize(String(value), key);
  }
  return out;
}
