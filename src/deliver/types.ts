// The transports' contract with the hub lives in src/protocol.ts (below the pipeline folders); re-exported here.
export type { ClientMessage, ServerMessage, Sink, SubscribeRequest, SubscriptionHub } from "../protocol.ts";

import type { Ledger } from "../ledger/types.ts";
import type { PageRegistry } from "../register/registry.ts";

export type Mode = "development" | "test" | "production";

export interface HubOptions {
  ledger: Ledger;
  secret: string;
  mode: Mode;
  tokenTtlMs?: number;
  /** Idle page groups (no subscriber, no render) are forgotten after this long. */
  idleGroupMs?: number;
  /** After a batch makes a page dirty, facts committed within this window join the same replay. */
  coalesceMs?: number;
  /** Where page groups are kept (default: in memory). */
  registry?: PageRegistry;
  /** Render frames on their own (default). false: every write replays the whole page (for comparison). */
  frames?: boolean;
  /** Origins (scheme://host[:port]) pages may subscribe from; a subscribe whose Origin header is not listed is
   *  refused. Default: any (tokens are bound to the page's own origin either way). */
  origins?: string[];
  log?: (level: "warn" | "error", message: string) => void;
  /** Spans and latency for telemetry (src/telemetry.ts). */
  instruments?: HubInstruments;
}

export interface RegisteredRender {
  token: string;
  offset: number;
  incarnation: string;
}

/** What the hub reports to telemetry while it works. */
export interface HubInstruments {
  /** Runs a render inside a span (when tracing is on). */
  span<T>(name: string, attributes: Record<string, string | number>, run: () => Promise<T>): Promise<T>;
  /** A render caused by planned facts was sent, `latencyMs` after the newest of them committed. */
  delivered(latencyMs: number): void;
}

export const NO_INSTRUMENTS: HubInstruments = {
  span: (_name, _attributes, run) => run(),
  delivered: () => {},
};
