// Connection states of the browser client: explicit, immutable, changed only by the pure `transition` below.
//
//   idle ──connect──► connecting ──opened──► open ──healthy──► open (backoff reset)
//                        │  ▲                 │
//                  failed│  │retry/wake       │failed
//                        ▼  │                 ▼
//                       backoff ◄─────────────┘
//   any ──stop──► closed ──connect──► connecting
//   open/connecting ──failed with a terminal code──► closed (closedBy: the code; no retry)
//
// The backoff grows until a connection has proved healthy (stayed open CLIENT_TUNING.healthyAfterMs), not merely
// opened: an event stream "opens" at once and a server may accept a socket only to close it, and either would
// otherwise reset the attempt count and retry at the shortest delay forever. A connection closed with a code that
// a reconnect would meet again (too many subscriptions, a message too large, malformed messages) is terminal.
// After an event-stream connection fails the next attempt tries WebSocket once more, so a client that fell back
// during an outage returns to WebSocket when the server is back.
//
// `epoch` numbers connection attempts. `opened` and `failed` name the epoch they come from; an event from a
// superseded attempt (a socket that was already given up) does not match the current epoch and changes nothing.
// That guard lives here, in the pure function, so the transition-table test covers it.

import { BACKOFF, type BackoffOptions, backoffDelay } from "./backoff.ts";
import { CLIENT_TUNING, WIRE } from "./constants.ts";

/** Close codes a reconnect would meet again. */
export const TERMINAL_CODES: readonly number[] = Object.freeze([
  WIRE.close.tooManySubscriptions,
  WIRE.close.messageTooLarge,
  WIRE.close.malformed,
]);

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
export const IDLE: ConnectionState = Object.freeze({
  status: "idle",
  epoch: 0,
  attempt: 0,
  transport: "websocket",
  webSocketFailures: 0,
  since: 0,
  retryAt: null,
  closedBy: null,
});

function next(state: ConnectionState, changes: Partial<ConnectionState>): ConnectionState {
  return Object.freeze({ ...state, ...changes });
}

/** The next state (the same object when the event does not apply). */
export function transition(
  state: ConnectionState,
  event: ConnectionEvent,
  options: TransitionOptions = {},
): ConnectionState {
  switch (event.type) {
    case "connect":
      if (state.status !== "idle" && state.status !== "closed") return state;
      return next(state, {
        status: "connecting",
        epoch: state.epoch + 1,
        attempt: 0,
        transport: event.transport ?? state.transport,
        since: event.now,
        retryAt: null,
        closedBy: null,
      });
    case "opened":
      if (state.status !== "connecting" || event.epoch !== state.epoch) return state;
      // A socket that opened proves WebSocket works; the backoff resets only once the connection is healthy.
      return next(state, {
        status: "open",
        webSocketFailures: state.transport === "websocket" ? 0 : state.webSocketFailures,
        since: event.now,
        retryAt: null,
      });
    case "healthy":
      if (state.status !== "open" || event.epoch !== state.epoch || state.attempt === 0) return state;
      return next(state, { attempt: 0 });
    case "failed": {
      if ((state.status !== "connecting" && state.status !== "open") || event.epoch !== state.epoch) return state;
      if (event.code !== undefined && TERMINAL_CODES.includes(event.code)) {
        return next(state, { status: "closed", attempt: 0, since: event.now, retryAt: null, closedBy: event.code });
      }
      const limit = options.webSocketFailuresBeforeSse ?? CLIENT_TUNING.webSocketFailuresBeforeSse;
      const neverOpened = state.status === "connecting" && state.transport === "websocket";
      let webSocketFailures = neverOpened ? state.webSocketFailures + 1 : 0;
      let transport = state.transport === "websocket" && webSocketFailures >= limit ? "sse" : state.transport;
      if (state.transport === "sse") {
        // Probe WebSocket once: if it still fails, the next failure brings the client back to SSE.
        transport = "websocket";
        webSocketFailures = limit - 1;
      }
      const delay = backoffDelay(state.attempt, options.backoff ?? BACKOFF, options.random ?? Math.random);
      return next(state, {
        status: "backoff",
        attempt: state.attempt + 1,
        transport,
        webSocketFailures,
        since: event.now,
        retryAt: event.now + delay,
      });
    }
    case "retry":
      // A timer that fires early (or late, for an earlier backoff) must not cut the wait short.
      if (state.status !== "backoff" || state.retryAt === null || event.now < state.retryAt) return state;
      return next(state, { status: "connecting", epoch: state.epoch + 1, since: event.now, retryAt: null });
    case "wake":
      // The network came back or the page became visible: retry now instead of waiting out the backoff.
      if (state.status !== "backoff") return state;
      return next(state, { status: "connecting", epoch: state.epoch + 1, since: event.now, retryAt: null });
    case "stop":
      if (state.status === "closed" || state.status === "idle") return state;
      return next(state, { status: "closed", attempt: 0, since: event.now, retryAt: null });
    default:
      return state;
  }
}
