// Wire names and tuning the browser client shares with the server (src/constants.ts holds the originals; a unit
// test keeps the two in step). Plain JavaScript so browsers load it without a build step.

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
  }),
  close: Object.freeze({
    tooManySubscriptions: 4001,
    messageTooLarge: 4002,
    malformed: 4003,
    slowConsumer: 4004,
    tooManySubscribes: 4005,
  }),
});

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
});
