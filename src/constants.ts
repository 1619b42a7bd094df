// Wire keys and tuning values live here, once. Tests import these instead of repeating literals.
import { CLIENT_TUNING } from "./client/constants.ts";

/**
 * The Node versions Upkeep runs on: `target` is the LTS major it is built and tested for, which `upkeep init` and
 * `upkeep doctor` tell an app to install (`npm install --save-dev node@24`); `minimum` is the oldest that works
 * (package.json's engines).
 */
export const NODE_VERSIONS = Object.freeze({ target: 24, minimum: Object.freeze({ major: 22, minor: 18 }) });

/** Names of the objects the ledger installs in a user's database. */
export const LEDGER = {
  factsTable: "upkeep_facts",
  metaTable: "upkeep_meta",
  /** Followers' position holds (Ledger.holdPosition): pruning never cuts above a live one. */
  holdsTable: "upkeep_holds",
  triggerPrefix: "upkeep_capture_",
  pgFunction: "upkeep_capture_fact",
  pgNotifyChannel: "upkeep_ledger",
  /** Advisory lock key base: installs and uninstalls are serialized with key + 1. */
  pgSequencerLockKey: 0x75706b70,
  /** PostgreSQL: the sequencer's leadership lease (one row: holder and expiry, judged by the database clock). */
  pgLeaseTable: "upkeep_lease",
} as const;

/** Tables Upkeep creates in the application's database when asked (presence, explicit identifiers). They are
 *  captured like the application's own tables, but hold Upkeep's bookkeeping, not the application's data: a
 *  changefeed granted `tables: "*"` leaves them out (docs/changefeed.md). */
export const UPKEEP_TABLES = {
  presence: "upkeep_presence",
  identifiers: "upkeep_identifiers",
} as const;

export const LEDGER_TUNING = {
  /** Facts read per batch by readers and followers. */
  readBatch: 1000,
  /** How often a follower polls for external commits (SQLite data_version, PostgreSQL sequencer). */
  pollIntervalMs: 10,
  /** Most facts the PostgreSQL sequencer assigns offsets to in one transaction. */
  sequenceBatch: 5000,
  /** Largest text or blob value a SQLite capture trigger puts into a row image; a larger one is left out and its
   *  fact is marked `unavailable` (the planner then replays every read of the table). Keeps images far below
   *  SQLite's string limit, so a capture never fails a write. */
  maxImageValueBytes: 8 * 1024 * 1024,
  /** How often a running ledger checks for schema changes (new tables or columns) and refreshes its triggers. */
  schemaCheckMs: 1000,
  /** PostgreSQL: how long the sequencer's lease lasts without renewal; another process takes over after it. */
  leaseMs: 1000,
  /** PostgreSQL: how often the sequencer renews its lease. */
  leaseRenewMs: 250,
  /** PostgreSQL, logical capture: most changes appended per INSERT (a larger transaction is appended in several,
   *  inside one database transaction). */
  logicalBatch: 20_000,
  /** PostgreSQL, logical capture: most changes the leader holds decoded and not yet appended, whatever the size of
   *  the transaction they belong to; at the bound it stops reading the replication stream until a batch is
   *  appended. Bounds the leader's memory (about 4 kB a change for narrow rows). */
  logicalHeldChanges: 20_000,
  /** PostgreSQL: the leader's session ends a transaction left idle this long (a leader paused in the middle of
   *  an append), so that the next leader is not kept waiting for the position rows it locked. */
  leaderIdleMs: 3000,
  /** PostgreSQL, logical capture: while nothing is queued, the leader asks the server for its position this
   *  often, so the slot's confirmed position follows WAL that has nothing to capture. */
  logicalConfirmMs: 100,
  /** PostgreSQL, logical capture: the slot lag past which the ledger warns (LedgerOptions.maxSlotLagBytes). */
  slotLagWarnBytes: 1024 ** 3,
  /** PostgreSQL, logical capture: how often the lag is checked, and the least time between two warnings. */
  slotLagCheckMs: 10_000,
  slotLagWarnMs: 5 * 60_000,
  /** A follower's position hold (see Ledger.holdPosition) expires when not renewed for this long. */
  holdLeaseMs: 60_000,
} as const;

/** Browser ↔ server protocol: wire names, defined once with the browser client (src/client/constants.ts). */
export { BACKOFF_DEFAULTS, WIRE } from "./client/constants.ts";

/** Data mode (Inertia props, live JSON resources). */
export const DATA_TUNING = Object.freeze({
  /** A prop whose JSON is longer than this (and whose patch is not shorter) is named for a partial reload by the
   *  browser instead of being pushed. */
  maxPropBytes: 64 * 1024,
  /** Explicit identifiers (`depends`) one frame may declare. */
  maxIdentifiersPerFrame: 100,
} as const);

/** Presence (src/presence.ts): who views which page, as rows of `upkeep_presence`. */
export const PRESENCE_TUNING = {
  /** Joins and departures within this window are written together, in one transaction: every page that shows its
   *  viewers is rendered once for them, not once per viewer (a crowd joining would cost n² messages). */
  flushMs: 200,
  /** How long a label stays after its last subscription left (a reload or reconnect within it writes nothing). */
  graceMs: 5_000,
  /** How often rows of processes that died are deleted. */
  sweepMs: 15_000,
  /** Longest label kept, in characters; a longer one is cut (and logged once). */
  maxLabelLength: 200,
  /** Rows per statement of a flush (four parameters each). */
  rowsPerStatement: 500,
} as const;

export const DELIVERY_TUNING = {
  /** After a batch makes a page dirty, facts committed within this window join the same replay. */
  coalesceMs: 3,
  /** A browser's tabs share one connection, so this bounds the live pages of one browser (beyond it, a tab opens
   *  a connection of its own: CLIENT_TUNING.maxSharedSubscriptions). */
  maxSubscriptionsPerConnection: CLIENT_TUNING.maxSharedSubscriptions,
  maxInboundMessageBytes: 16 * 1024,
  tokenTtlMs: 24 * 60 * 60 * 1000,
  /** How long a rendered page's registration waits for its first subscriber. */
  pendingRegistrationMs: 60_000,
  /** Default age after which facts are pruned, and how often pruning runs. */
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  retentionCheckMs: 60 * 60 * 1000,
} as const;

/** Transports (WebSocket, SSE) and the browser client's connection manager. */
export const TRANSPORT_TUNING = {
  /** The server pings each WebSocket this often; a socket that missed the previous pong is terminated. */
  pingIntervalMs: 30_000,
  /** SSE comment lines keep proxies from closing an idle event stream. */
  sseHeartbeatMs: 15_000,
  /** The `retry:` an event stream announces (the browser client manages its own backoff). */
  sseRetryMs: 1_000,
  /** Malformed messages tolerated on one WebSocket before it is closed with WIRE.close.malformed. */
  maxMalformedMessages: 10,
  /** Longest subscription id a client may choose. */
  maxSubscriptionIdLength: 128,
  /** The browser keeps its connection this long after the last subscription left (Turbo Drive navigation). */
  clientLingerMs: CLIENT_TUNING.lingerMs,
  /** Bytes a connection may have queued toward its client (WebSocket bufferedAmount, SSE stream queue); a client
   *  that reads slower than this is closed with WIRE.close.slowConsumer (SSE: its stream ends) and resumes. */
  maxBufferedBytes: 4 * 1024 * 1024,
  /** Subscribes one connection may make in a burst, and the rate at which that allowance refills. Beyond it the
   *  connection is closed with WIRE.close.tooManySubscribes (a client re-subscribing in a loop). */
  subscribeBurst: 64,
  subscribesPerSecond: 16,
  /** Consecutive WebSocket connection failures (never opened) after which the client falls back to SSE. */
  clientWebSocketFailuresBeforeSse: CLIENT_TUNING.webSocketFailuresBeforeSse,
  /** A browser connection open this long is healthy: its reconnect backoff starts from the beginning again. */
  clientHealthyAfterMs: CLIENT_TUNING.healthyAfterMs,
} as const;
