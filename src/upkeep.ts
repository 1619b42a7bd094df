// createUpkeep: opens the ledger, starts the hub, and hands out the captured Kysely instance.

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve as serveNode } from "@hono/node-server";
import { Kysely } from "kysely";
import { captureDialect, primaryKeyCatalog } from "./capture/dialect.ts";
import { type CaptureHost, createHost, patchDriver, registerHost } from "./capture/drivers/index.ts";
import { createIdentifiersTable } from "./capture/identifiers.ts";
import type { ChangefeedOptions } from "./changefeed/http.ts";
import { DELIVERY_TUNING, LEDGER } from "./constants.ts";
import { type Deoptimization, Hub, type Mode } from "./deliver/hub.ts";
import { attachWebSocket } from "./deliver/websocket.ts";
import { ConfigError } from "./errors.ts";
import type { InspectOptions } from "./inspect/options.ts";
import { type ChangesOptions, changes } from "./ledger/changes.ts";
import { history, type RowAt, type RowHistory, rowAt } from "./ledger/history.ts";
import { createDialect, install, openLedger } from "./ledger/index.ts";
import { checkPolicy, resolveRetention, windowsOf } from "./ledger/retention.ts";
import type { Fact, Ledger, Retention, Row } from "./ledger/types.ts";
import { createPresenceTable, Presence, type PresenceOptions } from "./presence.ts";
import type { FetchApp } from "./render/page.ts";
import { consoleLogger, startTelemetry, type UpkeepLogger } from "./telemetry.ts";
import { fetchAppOf, type NodeListener } from "./web/inject.ts";

export interface UpkeepOptions {
  /** `file:path` / a path / `:memory:` for embedded SQLite, `postgres://…` for PostgreSQL. */
  database: string;
  /** Key for signing subscription tokens: at least 32 characters, the same on every process of the app. */
  secret: string;
  /** development and test throw on refused pages; production warns and serves them as ordinary pages.
   *  Default: from NODE_ENV. */
  mode?: Mode;
  /** What a page Upkeep cannot prove does: "throw" (an error naming the reason and the rewrite) or "warn" (one
   *  warning; the page is served as an ordinary, non-live page). Default: "warn" in production, else "throw". */
  refusals?: "throw" | "warn";
  /** Install (or refresh) the ledger and its capture triggers on start. Default false. */
  install?: boolean;
  /** Create the table of explicit identifiers (`touch`/`depends`) before installing. Default false. */
  identifiers?: boolean;
  /** Record who views each page (src/presence.ts): `{ label(headers) }` names a subscriber's viewer; renders read
   *  the viewers of their page with `presence(db)`. Creates the `upkeep_presence` table before installing. */
  presence?: PresenceOptions;
  /** Tables never captured. */
  exclude?: string[];
  /** PostgreSQL, with `install`: how changes are captured — "auto" (default: logical decoding when the server
   *  allows it, else triggers with a warning), "logical" or "triggers". See LedgerOptions.capture. */
  capture?: "auto" | "logical" | "triggers";
  /** PostgreSQL, logical capture: replication-slot lag (bytes) past which the ledger warns. Default 1 GB. */
  maxSlotLagBytes?: number;
  /** Subscription token lifetime. */
  tokenTtlMs?: number;
  /** After a write makes a page dirty, later commits within this window join the same replay. Default 3 ms. */
  coalesceMs?: number;
  /** The default retention window: facts older than this (and below every subscriber of this process) are pruned.
   *  Default 7 days; 0 keeps every fact. The same as `retention.default: { windowMs }` (give one of them). */
  retentionMs?: number;
  /** Retention per table (docs/ledger.md, Retention): `{ default, tables: { audit_log: "forever", sessions:
   *  "minimal", events: { windowMs } } }`. Tables not named follow `default` (default: `{ windowMs: retentionMs }`). */
  retention?: Retention;
  /** Origins (scheme://host[:port]) pages may subscribe from (checked against the connection's Origin header).
   *  Default: any; a token subscribes only the page's own URL and origin either way. */
  origins?: string[];
  /** What the ledger does when tables appear while the app runs: regenerate the triggers (default) or report. */
  schemaChanges?: "refresh" | "report";
  /** Serve the ledger as a changefeed at /upkeep/changes (SSE and JSON long-poll) to callers `authorize` admits.
   *  Off by default. */
  changefeed?: ChangefeedOptions;
  /** Who may see the inspector at /upkeep/inspect, in any mode. Without it: only in development, and only over a
   *  connection from this machine (the socket's loopback address) to localhost. */
  inspect?: InspectOptions;
  /** Where Upkeep's log records go: any logger with pino's methods (`info`, `warn`, `error` taking a record and a
   *  message). Default: the console. */
  logger?: UpkeepLogger;
  /** Render `partial`s and `Collection`s on their own when only they are affected (default true). false replays
   *  the whole page for every affecting write, as if the app marked no frames (for comparisons and diagnosis). */
  frames?: boolean;
}

/** A read-only snapshot of what Upkeep has done in this process (upkeep.stats()). */
export interface UpkeepStats {
  /** Page replays run. */
  renders: number;
  /** Frames rendered on their own: fragments and members rendered, collection queries run again. */
  frameRenders: number;
  /** Patches handed to open connections, and their bytes. */
  messages: number;
  bytes: number;
  /** Whole-body patches sent where a narrower one could not be proven, by reason. */
  deoptimizations: Readonly<Record<Deoptimization, number>>;
  /** Pages refused (served as ordinary pages, or an error in development and tests), by refusal code. */
  refusals: Readonly<Record<string, number>>;
  /** Data mode: prop values or patches pushed to browsers. */
  propsPushed: number;
  /** The Turbo Stream actions frame renders chose, once per render (replace, after, prepend, remove …). */
  actions: Readonly<Record<string, number>>;
  factsPlanned: number;
  /** Facts planned against every read of their table (TRUNCATE, an image the capture could not build). */
  factsTableWide: number;
  /** Times the follower resynchronised (pruned past its position, or a new ledger incarnation). */
  resyncs: number;
  /** Page groups known to this process, and the subscribers connected to it. */
  groups: number;
  subscribers: number;
  /** Offset of the last fact planned, the ledger's head, and how far behind the planner is. */
  position: number;
  head: number;
  lag: number;
  incarnation: string;
}

export interface ServeOptions {
  port?: number;
  hostname?: string;
}

export interface Served {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

export class Upkeep {
  readonly mode: Mode;
  /** Where Upkeep's log records go (UpkeepOptions.logger). */
  logger: UpkeepLogger = consoleLogger;
  /** The changefeed's settings, when it is served (UpkeepOptions.changefeed). */
  changefeed: ChangefeedOptions | null = null;
  /** Who views which page, when presence is on (UpkeepOptions.presence). */
  presence: Presence | null = null;
  /** Who may see the inspector (UpkeepOptions.inspect). */
  inspect: InspectOptions | null = null;
  /** The retention policies in force (UpkeepOptions.retention and retentionMs, checked): `default`, and the tables
   *  with their own. Pruning is off when every policy is "forever". */
  retention: Required<Retention> = { default: "forever", tables: {} };
  readonly refusals: "throw" | "warn";
  readonly ledger: Ledger;
  readonly hub: Hub;
  readonly database: string;
  private kysely: Kysely<any> | null = null;
  private captureHost: CaptureHost | null = null;
  private readonly closers: Array<() => Promise<void>> = [];

  constructor(options: { database: string; mode: Mode; refusals: "throw" | "warn"; ledger: Ledger; hub: Hub }) {
    this.database = options.database;
    this.mode = options.mode;
    this.refusals = options.refusals;
    this.ledger = options.ledger;
    this.hub = options.hub;
  }

  /** The application's Kysely instance: reads during a live GET are captured, commits wake the ledger. */
  db<DB>(): Kysely<DB> {
    if (!this.kysely) {
      const inner = createDialect(this.database, { onCommit: () => this.ledger.poke() });
      const capturedTables = () => this.ledger.capturedTables();
      this.kysely = new Kysely<any>({
        dialect: captureDialect(inner, { ...primaryKeyCatalog(this.ledger.kind), capturedTables }),
      });
      const kysely = this.kysely;
      this.closers.push(() => kysely.destroy());
    }
    return this.kysely as Kysely<DB>;
  }

  /**
   * Captures reads and writes at the database driver the app (or its ORM) uses, with one line where the app starts:
   * `upkeep.capture(pg)` (the `pg` module: Drizzle's node-postgres driver, Prisma's @prisma/adapter-pg, Knex, TypeORM
   * and raw `pg` all send through it), `upkeep.capture(sqlite)` (`node:sqlite`), `upkeep.capture(Database)`
   * (better-sqlite3). During a live GET each statement's SQL is analysed with the database's own grammar; a write
   * outside a transaction, and a COMMIT, wake the ledger. See docs/data-layers.md.
   */
  capture(driver: unknown): void {
    const dialect = patchDriver(driver);
    if (dialect !== this.ledger.kind) {
      throw new ConfigError(
        `capture() was given a ${dialect === "postgres" ? "PostgreSQL" : "SQLite"} driver, but this Upkeep's database is ${this.ledger.kind === "postgres" ? "PostgreSQL" : "SQLite"}.`,
        "capture the driver that connects to the database createUpkeep({ database }) names",
      );
    }
    if (!this.captureHost) {
      this.captureHost = createHost(this.database, this.ledger, () => this.db());
      const unregister = registerHost(this.captureHost);
      this.closers.push(async () => unregister());
    }
  }

  /** Replays run through this app: a fetch-style app (Hono) or a Node request listener (an Express app, a
   *  node:http listener), run in-process. `serve` sets it; call it yourself when you run your own server. */
  use(app: FetchApp | NodeListener): void {
    this.hub.app = typeof app === "function" ? fetchAppOf(app) : app;
  }

  /** Attach the WebSocket endpoint to a Node HTTP server you run yourself; replays run through `app`. */
  attach(server: Server, app: FetchApp | NodeListener): void {
    this.use(app);
    const socket = attachWebSocket(server, this.hub);
    this.closers.push(() => socket.close());
  }

  /** Serve the app on Node's HTTP server with the WebSocket endpoint attached. */
  async serve(app: FetchApp, options: ServeOptions = {}): Promise<Served> {
    const hostname = options.hostname ?? "127.0.0.1";
    const server = await new Promise<Server>((resolve) => {
      const s = serveNode({ fetch: (request) => app.fetch(request), port: options.port ?? 3000, hostname }, () =>
        resolve(s as Server),
      ) as Server;
    });
    this.attach(server, app);
    const port = (server.address() as AddressInfo).port;
    const close = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      });
    this.closers.push(close);
    return { server, port, url: `http://${hostname}:${port}`, close };
  }

  /**
   * Prune what the retention policies let go (a number: every table's window), now and then periodically (hourly,
   * or every shortest window when shorter), never a fact this process still needs (planned, and at or above every
   * subscriber's offset) nor one above another live process's hold. A browser asking for pruned offsets of a table
   * its page read is told to reload.
   */
  retain(retention: number | Retention, everyMs?: number): void {
    const policies =
      typeof retention === "number"
        ? resolveRetention(undefined, checkPolicy({ windowMs: retention }, "retain()"), "retain()")
        : resolveRetention(retention, checkPolicy({ windowMs: DELIVERY_TUNING.retentionMs }, "retain()"), "retain()");
    const windows = windowsOf(policies).filter((w) => w > 0);
    const every = everyMs ?? Math.min(DELIVERY_TUNING.retentionCheckMs, ...windows);
    const options = { retention: { default: policies.default, tables: Object.fromEntries(policies.tables) } };
    const prune = async () => {
      await this.hub.holdPosition(); // this process's own hold, renewed to what it needs now
      await this.ledger.prune({ ...options, atOrBelow: this.hub.lowestOffset() }).catch((error) => {
        this.logger.error(
          { event: "upkeep.prune_failed", err: (error as Error).message },
          `upkeep: pruning the ledger failed: ${(error as Error).message}`,
        );
      });
    };
    const timer = setInterval(prune, every);
    timer.unref();
    this.closers.push(async () => clearInterval(timer));
  }

  /** What Upkeep has done in this process: a snapshot, safe to expose to operators and tests. */
  async stats(): Promise<UpkeepStats> {
    const hub = this.hub;
    let groups = 0;
    let subscribers = 0;
    for (const group of hub.registry.groups()) {
      groups++;
      subscribers += group.local.subscribers.size;
    }
    const head = await this.ledger.head().catch(() => hub.position);
    return {
      renders: hub.stats.renders,
      frameRenders: hub.stats.frameRenders,
      messages: hub.stats.messages,
      bytes: hub.stats.bytes,
      deoptimizations: { ...hub.stats.deoptimizations },
      refusals: { ...hub.stats.refusals },
      actions: { ...hub.stats.actions },
      propsPushed: hub.stats.propsPushed,
      factsPlanned: hub.stats.factsPlanned,
      factsTableWide: hub.stats.factsTableWide,
      resyncs: hub.stats.resyncs,
      groups,
      subscribers,
      position: hub.position,
      head,
      lag: Math.max(0, head - hub.position),
      incarnation: this.ledger.incarnation,
    };
  }

  /** The ledger's facts after an offset, from Node (see upkeep/ledger's `changes`). */
  changes(options: ChangesOptions = {}): AsyncGenerator<Fact> {
    return changes(this.ledger, options);
  }

  /** Every retained fact of one row, oldest first, and the table's horizon after which they are complete (see
   *  upkeep/ledger's `history`). */
  history(table: string, key: Row): Promise<RowHistory> {
    return history(this.ledger, table, key);
  }

  /** One row as of an offset, within retention (see upkeep/ledger's `rowAt`). */
  rowAt(table: string, key: Row, offset: number): Promise<RowAt> {
    return rowAt(this.ledger, table, key, offset);
  }

  /** Runs `close` when the instance closes (after the hub stops, before the ledger closes). */
  onClose(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  /** Every fact committed before the call planned, and its renders sent. */
  settle(timeoutMs?: number): Promise<void> {
    return this.hub.settle(timeoutMs);
  }

  async close(): Promise<void> {
    await this.hub.close();
    for (const close of this.closers.reverse()) await close().catch(() => {});
    await this.ledger.close();
  }
}

function defaultMode(): Mode {
  const env = process.env.NODE_ENV;
  return env === "production" ? "production" : env === "test" ? "test" : "development";
}

/** The retention policies of createUpkeep's options, checked before anything is opened. */
function retentionOf(options: UpkeepOptions) {
  const where = "createUpkeep({ retention })";
  if (options.retentionMs !== undefined && options.retention?.default !== undefined) {
    throw new ConfigError(
      "createUpkeep was given both retentionMs and retention.default.",
      "retentionMs is the default policy's window: pass one of them",
    );
  }
  const retentionMs = options.retentionMs ?? DELIVERY_TUNING.retentionMs;
  const fallback = retentionMs === 0 ? "forever" : checkPolicy({ windowMs: retentionMs }, "the default (retentionMs)");
  return resolveRetention(options.retention, fallback, where);
}

export async function createUpkeep(options: UpkeepOptions): Promise<Upkeep> {
  if (!options.database) {
    throw new ConfigError(
      "createUpkeep needs a database.",
      "pass { database: 'file:./data/app.sqlite' } or a postgres:// URL",
    );
  }
  if (typeof options.secret !== "string" || options.secret.length < 32) {
    throw new ConfigError(
      "createUpkeep needs a secret of at least 32 characters to sign subscription tokens.",
      "pass { secret: process.env.UPKEEP_SECRET } with a long random value shared by all processes of the app",
    );
  }
  const retention = retentionOf(options);
  const mode = options.mode ?? defaultMode();
  const logger = options.logger ?? consoleLogger;
  const log = (level: "warn" | "error", message: string) => logger[level]({ event: "upkeep.log" }, message);
  if (options.identifiers || options.presence) {
    const db = new Kysely<any>({ dialect: createDialect(options.database) });
    try {
      if (options.identifiers) await createIdentifiersTable(db);
      if (options.presence) await createPresenceTable(db);
    } finally {
      await db.destroy();
    }
  }
  if (options.install) {
    await install({ database: options.database, exclude: options.exclude, capture: options.capture });
  }
  const ledger = await openLedger({
    database: options.database,
    exclude: options.exclude,
    schemaChanges: options.schemaChanges,
    log,
    maxSlotLagBytes: options.maxSlotLagBytes,
  });
  const hub = new Hub({
    ledger,
    secret: options.secret,
    mode,
    tokenTtlMs: options.tokenTtlMs,
    coalesceMs: options.coalesceMs,
    origins: options.origins,
    frames: options.frames,
    log,
  });
  await hub.start();
  const telemetry = await startTelemetry(hub, ledger);
  hub.instruments = telemetry.instruments;
  const refusals = options.refusals ?? (mode === "production" ? "warn" : "throw");
  const upkeep = new Upkeep({ database: options.database, mode, refusals, ledger, hub });
  upkeep.logger = logger;
  upkeep.changefeed = options.changefeed ?? null;
  upkeep.inspect = options.inspect ?? null;
  if (options.presence) {
    const present = new Presence(upkeep.db(), hub.processId, ledger.kind, LEDGER.holdsTable, options.presence, log);
    hub.presence = present;
    upkeep.presence = present;
    upkeep.onClose(() => present.close());
  }
  upkeep.onClose(async () => telemetry.stop());
  const named = [...retention.tables.keys()].filter((table) => !ledger.capturedTables().has(table));
  if (named.length > 0)
    log(
      "warn",
      `upkeep: retention names ${named.join(", ")}, not captured (yet): a policy applies to a table's facts once it is captured; check the names (as queries name the tables)`,
    );
  upkeep.retention = { default: retention.default, tables: Object.fromEntries(retention.tables) };
  const pruned = [retention.default, ...retention.tables.values()].some((policy) => policy !== "forever");
  if (pruned) upkeep.retain(upkeep.retention);
  return upkeep;
}
