// Upkeep: keeps ordinary server-rendered pages live.
export { createUpkeep, Upkeep, type UpkeepOptions, type ServeOptions, type Served } from "./upkeep.ts";
export * from "./errors.ts";
export { WIRE, DELIVERY_TUNING, LEDGER, LEDGER_TUNING, BACKOFF_DEFAULTS } from "./constants.ts";
export type { Fact, Row, Operation, Ledger, LedgerOptions } from "./ledger/types.ts";
export { install, uninstall, openLedger } from "./ledger/index.ts";
export type { QueryDependency, MatchResult, MissReason } from "./analysis/types.ts";
export type { ServerMessage, ClientMessage, SubscribeRequest } from "./deliver/types.ts";
