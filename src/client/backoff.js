// Reconnect delays: exponential backoff with full jitter (a uniformly random delay between 0 and the exponential
// ceiling), so a server restart is not met by every browser at the same instant.

/** Defaults (the same as BACKOFF_DEFAULTS in the server's constants). */
export const BACKOFF = Object.freeze({ initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2 });

/**
 * The ceiling for the attempt-th consecutive retry (attempt 0 is the first).
 * @param {number} attempt
 * @param {{ initialDelayMs: number, maxDelayMs: number, multiplier: number }} [options]
 */
export function backoffCeiling(attempt, options = BACKOFF) {
  const exponent = Math.max(0, Math.floor(attempt));
  return Math.min(options.maxDelayMs, options.initialDelayMs * options.multiplier ** exponent);
}

/**
 * A delay in [0, backoffCeiling(attempt)).
 * @param {number} attempt
 * @param {{ initialDelayMs: number, maxDelayMs: number, multiplier: number }} [options]
 * @param {() => number} [random] returns a number in [0, 1)
 */
export function backoffDelay(attempt, options = BACKOFF, random = Math.random) {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(attempt, options));
}
