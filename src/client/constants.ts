// Wire names and tuning the browser client shares with the server: the one definition (src/constants.ts re-exports
// them). Erasable TypeScript: the middleware serves it to browsers with the types stripped, and the package ships
// it compiled.

export const WIRE = Object.freeze({
  socketPath: "/upkeep/socket",
  eventsPath: "/upkeep/events",
  clientPath: "/upkeep/client/",
  turboScriptPath: "/upkeep/turbo.js",
  streamSourceTag: "upkeep-stream-source",
  tokenAttr: "token",
  offsetAttr: "offset",
  incarnationAttr: "incarnation",
  msg: Object.freeze({
    subscribe: "subscribe",
    unsubscribe: "unsubscribe",
    ack: "subscribed",
    patch: "patch",
    reload: "reload",
    error: "error",
    props: "props",
    value: "value",
  } as const),
  /** Data mode: where an Inertia page object carries its subscription ({ token, offset, incarnation }). */
  pageKey: "upkeep",
  /** Data mode: a live JSON resource's subscription, in response headers; the request header that asks for it. */
  tokenHeader: "upkeep-token",
  offsetHeader: "upkeep-offset",
  incarnationHeader: "upkeep-incarnation",
  liveHeader: "upkeep-live",
  close: Object.freeze({
    tooManySubscriptions: 4001,
    messageTooLarge: 4002,
    malformed: 4003,
    /** The client did not read its messages fast enough (its outbound buffer passed the bound). Reconnect. */
    slowConsumer: 4004,
    /** The client subscribed faster than the allowed rate. Reconnect with backoff. */
    tooManySubscribes: 4005,
  } as const),
} as const);

/** Reconnect backoff defaults for the browser client (full jitter). */
export const BACKOFF_DEFAULTS = Object.freeze({ initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2 } as const);

export const CLIENT_TUNING = Object.freeze({
  /** The connection stays open this long after the last subscription left, so a Turbo Drive navigation's new page
   * subscribes on the same socket. */
  lingerMs: 1_000,
  /** Consecutive WebSocket failures (never opened) after which the client falls back to SSE. */
  webSocketFailuresBeforeSse: 3,
  /** A connection open this long is healthy: the reconnect backoff starts from the beginning again. */
  healthyAfterMs: 5_000,
  /** More reloads than this for one URL within reloadWindowMs stop reloading (a server refusing every token). */
  maxReloads: 3,
  reloadWindowMs: 30_000,
  /** Tabs of one browser share one connection: subscriptions it carries before a further tab opens its own, until
   *  the server's acknowledgements name its own bound (`maxSubscriptions`, by default this same number). */
  maxSharedSubscriptions: 32,
  /** A tab whose link no leader tab answers within this opens a connection of its own. */
  leaderAnswerMs: 5_000,
  /** How often the leader tab looks for tabs that closed without saying so, to end their subscriptions. */
  tabSweepMs: 5_000,
} as const);

/** Token and ledger problems a page (or a live resource) can only fix by loading again: a fresh token, the current
 * identity, the new ledger. Other error codes leave it as it is. */
export const RELOAD_CODES: ReadonlySet<string> = new Set([
  "token_expired",
  "token_identity_mismatch",
  "token_incarnation_mismatch",
  "token_forged",
  "token_malformed",
  "incarnation_mismatch",
  "offset_too_old",
]);
