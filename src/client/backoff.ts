// Reconnect delays: exponential backoff with full jitter (a uniformly random delay between 0 and the exponential
// ceiling), so a server restart is not met by every browser at the same instant.
import { BACKOFF_DEFAULTS } from "./constants.ts";

export interface BackoffOptions {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
}

/** Defaults: BACKOFF_DEFAULTS. */
export const BACKOFF: BackoffOptions = BACKOFF_DEFAULTS;

/** The ceiling for the attempt-th consecutive retry (attempt 0 is the first). */
export function backoffCeiling(attempt: number, options: BackoffOptions = BACKOFF): number {
  const exponent = Math.max(0, Math.floor(attempt));
  return Math.min(options.maxDelayMs, options.initialDelayMs * options.multiplier ** exponent);
}

/** A delay in [0, backoffCeiling(attempt)); `random` returns a number in [0, 1). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = BACKOFF,
  random: () => number = Math.random,
): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(attempt, options));
}
