export interface BackoffOptions {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
}
export declare const BACKOFF: Readonly<{ initialDelayMs: 100; maxDelayMs: 10000; multiplier: 2 }>;
export declare function backoffCeiling(attempt: number, options?: BackoffOptions): number;
export declare function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;
