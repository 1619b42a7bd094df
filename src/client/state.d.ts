import type { BackoffOptions } from "./backoff.js";

export type Transport = "websocket" | "sse";
export type ConnectionStatus = "idle" | "connecting" | "open" | "backoff" | "closed";
export interface ConnectionState {
  readonly status: ConnectionStatus;
  /** Numbers connection attempts; events from another epoch are ignored. */
  readonly epoch: number;
  /** Consecutive failed attempts (drives the backoff ceiling). */
  readonly attempt: number;
  readonly transport: Transport;
  /** Consecutive WebSocket attempts that never opened (drives the SSE fallback). */
  readonly webSocketFailures: number;
  /** When the current state was entered (the injected clock's time). */
  readonly since: number;
  /** In backoff: when to try again. */
  readonly retryAt: number | null;
  /** Closed by the server with a terminal close code (no reconnect), else null. */
  readonly closedBy: number | null;
}
export type ConnectionEvent =
  | { type: "connect"; now: number; transport?: Transport }
  | { type: "opened"; epoch: number; now: number }
  | { type: "healthy"; epoch: number; now: number }
  | { type: "failed"; epoch: number; now: number; code?: number }
  | { type: "retry"; now: number }
  | { type: "wake"; now: number }
  | { type: "stop"; now: number };
export interface TransitionOptions {
  backoff?: BackoffOptions;
  random?: () => number;
  webSocketFailuresBeforeSse?: number;
}
export declare const IDLE: ConnectionState;
export declare const TERMINAL_CODES: readonly number[];
export declare function transition(
  state: ConnectionState,
  event: ConnectionEvent,
  options?: TransitionOptions,
): ConnectionState;
