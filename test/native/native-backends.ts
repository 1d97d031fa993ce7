/**
 * Which native backends this machine can run, decided once when mocha loads the tests.
 * The edge backend needs edge-js, a runtime under it (Mono off Windows) and the built
 * helper DLL; where one is missing its suites are skipped with the reason in their title,
 * except on CI with WINLAYER_REQUIRE_EDGE=1, where a missing edge backend fails the run.
 */
import { isWinLayerError } from '../../src/errors.js';
import type { NativeBackend } from '../../src/native/backend.js';
import { createEdgeBackend } from '../../src/native/edge-backend.js';
import { loadNativeHelper, type NativeHelper } from '../../src/native/edge.js';
import { portableBackend } from '../../src/native/portable.js';

/** True when a missing edge backend must fail the run rather than skip. */
export const isEdgeRequired = process.env.CI === 'true' && process.env.WINLAYER_REQUIRE_EDGE === '1';

export type Availability = { helper: NativeHelper; reason?: undefined } | { helper?: undefined; reason: string };

function probeEdge(): Availability {
  try {
    return { helper: loadNativeHelper() };
  } catch (error) {
    if (isWinLayerError(error) && error.code === 'ERR_NATIVE_UNAVAILABLE') return { reason: `${String(error.data.reason)}: ${error.message}` };
    throw error;
  }
}

/** The helper, or why there is none. */
export const edgeAvailability: Availability = probeEdge();

/**
 * In a `before` hook: skips the suite when the helper is unavailable, or fails it when
 * this run requires the edge backend.
 */
export function requireHelperOrSkip(ctx: Mocha.Context): NativeHelper {
  if (edgeAvailability.helper !== undefined) return edgeAvailability.helper;
  if (isEdgeRequired) throw new Error(`the edge backend is required here (CI=true, WINLAYER_REQUIRE_EDGE=1) but unavailable: ${edgeAvailability.reason}`);
  ctx.skip();
}

/** A title suffix that says why a suite is skipped (or, when it is required, why it will fail). */
export function skipNote(reason: string | undefined = edgeAvailability.reason): string {
  if (reason === undefined) return '';
  return isEdgeRequired ? ` (required but unavailable: ${reason})` : ` (skipped: ${reason})`;
}

export interface BackendUnderTest {
  name: string;
  /** Undefined when the backend cannot run here. */
  backend: NativeBackend | undefined;
  /** Why the backend cannot run here. */
  reason: string | undefined;
  /** Handles the native side holds open (restores in progress); undefined for portable. */
  openHandles: (() => number) | undefined;
}

/** Every backend the conformance suite runs against. */
export function backendsUnderTest(): BackendUnderTest[] {
  return [
    { name: 'portable', backend: portableBackend, reason: undefined, openHandles: undefined },
    {
      name: 'edge',
      backend: edgeAvailability.helper === undefined ? undefined : createEdgeBackend({ helper: edgeAvailability.helper }),
      reason: edgeAvailability.reason,
      openHandles: edgeAvailability.helper === undefined ? undefined : () => (edgeAvailability.helper as NativeHelper).info().openHandles,
    },
  ];
}
