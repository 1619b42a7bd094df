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
}

export interface RegisteredRender {
  token: string;
  offset: number;
  incarnation: string;
}
