// Upkeep: keeps ordinary server-rendered pages live.

// Views without JSX (any adapter): hono's html`` escapes the values put into it and keeps the markup of partials,
// collections and nested html`` results, awaiting them; the app need not depend on hono for it.
export { html } from "hono/html";
export type { MatchResult, MissReason, QueryDependency } from "./analysis/types.ts";
export { cookie, header } from "./capture/context.ts";
export { createIdentifiersTable, depends, IDENTIFIERS_TABLE, touch } from "./capture/identifiers.ts";
export type { ChangefeedAccess, ChangefeedOptions } from "./changefeed/http.ts";
export {
  BACKOFF_DEFAULTS,
  DATA_TUNING,
  DELIVERY_TUNING,
  LEDGER,
  LEDGER_TUNING,
  TRANSPORT_TUNING,
  WIRE,
} from "./constants.ts";
export type { ClientMessage, ServerMessage, SubscribeRequest } from "./deliver/types.ts";
export * from "./errors.ts";
export type { RowAt, RowHistory } from "./ledger/history.ts";
export { install, openLedger, uninstall } from "./ledger/index.ts";
export type {
  Fact,
  Horizons,
  Ledger,
  LedgerOptions,
  Operation,
  Retention,
  RetentionPolicy,
  Row,
} from "./ledger/types.ts";
export { PRESENCE_TABLE, type PresenceOptions, presence } from "./presence.ts";
export {
  Collection,
  type CollectionProps,
  type CollectionQuery,
  type CollectionRows,
  type HtmlString,
  type Partial,
  partial,
} from "./render/frames.ts";
export { consoleLogger, type UpkeepLogger } from "./telemetry.ts";
export {
  createUpkeep,
  type Served,
  type ServeOptions,
  Upkeep,
  type UpkeepOptions,
  type UpkeepStats,
} from "./upkeep.ts";
