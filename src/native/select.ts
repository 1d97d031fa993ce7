/**
 * The one place a native backend is chosen (STYLE.md: platform code behind an interface,
 * picked in one factory). `WINLAYER_NATIVE=portable|edge` decides; unset, Windows gets
 * edge (only the OS can restore Windows metadata there) and everything else portable.
 */
import { createError } from '../errors.js';
import type { BackendName, NativeBackend } from './backend.js';
import { edgeBackend } from './edge-backend.js';
import { portableBackend } from './portable.js';

/** The environment variable that picks the backend. */
export const NATIVE_BACKEND_ENV = 'WINLAYER_NATIVE';

const BACKENDS: Readonly<Record<BackendName, NativeBackend>> = { portable: portableBackend, edge: edgeBackend };

/** True for 'portable' and 'edge'. */
export function isBackendName(value: unknown): value is BackendName {
  return typeof value === 'string' && Object.hasOwn(BACKENDS, value);
}

export interface SelectBackendOptions {
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** @default process.platform */
  readonly platform?: NodeJS.Platform | undefined;
}

/** The backend's default when the variable is unset or empty. */
export function defaultBackendName(platform: NodeJS.Platform): BackendName {
  return platform === 'win32' ? 'edge' : 'portable';
}

/**
 * The backend for this process. Choosing edge does not load it: a missing edge-js,
 * runtime or helper DLL surfaces as ERR_NATIVE_UNAVAILABLE on the first import.
 * An unknown value is ERR_ARGUMENT_INVALID.
 */
export function selectBackend(options: SelectBackendOptions = {}): NativeBackend {
  const env = options.env ?? process.env;
  const raw = env[NATIVE_BACKEND_ENV];
  const name = raw === undefined || raw === '' ? defaultBackendName(options.platform ?? process.platform) : raw;
  if (!isBackendName(name)) {
    throw createError('ERR_ARGUMENT_INVALID', `${NATIVE_BACKEND_ENV}=${JSON.stringify(raw)} is not a native backend: use ${Object.keys(BACKENDS).join(' or ')}`, {
      variable: NATIVE_BACKEND_ENV,
      value: raw ?? null,
    });
  }
  return BACKENDS[name];
}
