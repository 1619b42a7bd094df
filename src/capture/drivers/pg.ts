// Capture at `pg`: Client.prototype.query sees every statement of the module — pg.Pool's clients, `pool.connect()`
// transactions, Knex's own clients, Drizzle's node-postgres driver, Prisma's @prisma/adapter-pg — so one patch of the
// module captures every data layer above it. Pool.prototype.connect binds its callback to the caller's async context:
// a client handed over by another request's release would otherwise run the caller's statement in that request's
// context (the wrong page's capture). Upkeep's own clients (own.ts) pass through untouched.
//
// Outside a live render a statement costs an own-client check, one AsyncLocalStorage lookup and a regular expression
// (is it a read, BEGIN, COMMIT?); a write outside a transaction, and a COMMIT, wake the ledger when they complete.
import { AsyncLocalStorage } from "node:async_hooks";
import { ConfigError, RefusedBoundaryError } from "../../errors.ts";
import { isOwn } from "../../own.ts";
import { currentFrame, type FrameCapture } from "../context.ts";
import { hostFor, pokeHosts, record as recordStatement } from "./host.ts";
import { transactionEffect } from "./text-kind.ts";

/** The parts of the `pg` module the capture patches. */
export interface PgModule {
  Client: abstract new (...args: never) => unknown;
  Pool?: abstract new (...args: never) => unknown;
}

const PATCHED = Symbol.for("upkeep.capture.pg");
const IN_TRANSACTION = Symbol.for("upkeep.capture.pg.transaction");

type Callback = (error: Error | null, result?: unknown) => void;
type QueryFn = (this: object, ...args: unknown[]) => unknown;

interface PgResult {
  rows?: unknown[];
  fields?: { name: string }[];
}

/** Patches a `pg` module (once; later calls do nothing). */
export function patchPg(pg: PgModule): void {
  if (
    !pg ||
    typeof pg.Client !== "function" ||
    typeof (pg.Client.prototype as { query?: unknown }).query !== "function"
  ) {
    throw new ConfigError(
      "capture(pg) needs the `pg` module (with Client.prototype.query).",
      'pass the module the app uses: import pg from "pg"; upkeep.capture(pg)',
    );
  }
  const proto = pg.Client.prototype as Record<PropertyKey, unknown>;
  if (proto[PATCHED]) return;
  proto[PATCHED] = true;
  const original = proto.query as QueryFn;
  proto.query = function query(this: Record<PropertyKey, unknown>, ...args: unknown[]): unknown {
    if (isOwn(this)) return original.apply(this, args);
    const config = args[0] as { text?: unknown; values?: unknown; rowMode?: string; submit?: unknown } | string;
    const text = typeof config === "string" ? config : config?.text;
    if (typeof text !== "string") return original.apply(this, args);
    const frame = currentFrame();
    // Transaction state of this client, from the statements it is sent (pg keeps none).
    const effect = transactionEffect(text);
    let wake = false;
    if (effect === "begin") this[IN_TRANSACTION] = true;
    else if (effect === "rollback") this[IN_TRANSACTION] = false;
    else if (effect === "commit") {
      this[IN_TRANSACTION] = false;
      wake = true;
    } else if (effect !== "read") wake = this[IN_TRANSACTION] !== true;
    // Reads are analysed; writes (and `with …`, which may be either) are parsed to be refused during a render.
    const capturing = frame !== undefined && (effect === "read" || effect === "write" || effect === "unknown");
    if (!wake && !capturing) return original.apply(this, args);
    const values = Array.isArray(args[1])
      ? (args[1] as unknown[])
      : typeof config === "object" && Array.isArray(config.values)
        ? (config.values as unknown[])
        : [];
    const arrayRows = typeof config === "object" && config.rowMode === "array";
    // Synchronous when the read is known (its parse and dependency cached): no extra turns of the event loop.
    const after = (result: unknown): void | Promise<void> => {
      if (wake) pokeHosts("postgres");
      if (capturing) return record(frame as FrameCapture, text, values, result as PgResult | PgResult[], arrayRows);
    };
    // A submittable (pg.Query, pg-cursor, pg-query-stream): its rows arrive as events.
    if (typeof config === "object" && typeof config.submit === "function") {
      if (capturing) {
        refuseStream(frame as FrameCapture, text);
      }
      const submitted = original.apply(this, args) as { on?(event: string, listener: () => void): unknown };
      if (wake) submitted?.on?.("end", () => pokeHosts("postgres"));
      return submitted;
    }
    const last = args[args.length - 1];
    if (typeof last === "function") {
      const callback = last as Callback;
      const wrapped: Callback = (error, result) => {
        if (error) return callback(error, result);
        let done: void | Promise<void>;
        try {
          done = after(result);
        } catch (failure) {
          return callback(failure as Error);
        }
        if (!done) return callback(null, result);
        done.then(
          () => callback(null, result),
          (failure) => callback(failure as Error),
        );
      };
      return original.apply(this, [...args.slice(0, -1), wrapped]);
    }
    const pending = original.apply(this, args) as Promise<unknown>;
    return pending.then((result) => {
      const done = after(result);
      return done ? done.then(() => result) : result;
    });
  };
  const pool = pg.Pool?.prototype as Record<PropertyKey, unknown> | undefined;
  if (pool && typeof pool.connect === "function" && !Object.hasOwn(pool, PATCHED)) {
    pool[PATCHED] = true;
    const connect = pool.connect as QueryFn;
    pool.connect = function connect_(this: object, ...args: unknown[]): unknown {
      const callback = args[0];
      if (typeof callback === "function") return connect.call(this, AsyncLocalStorage.bind(callback as Callback));
      return connect.apply(this, args);
    };
  }
}

function record(
  frame: FrameCapture,
  sql: string,
  params: readonly unknown[],
  result: PgResult | PgResult[],
  arrayRows: boolean,
): void | Promise<void> {
  const host = hostFor("postgres");
  if (!host) return;
  const one = Array.isArray(result) ? result[result.length - 1] : result;
  let rows = (one?.rows ?? []) as Record<string, unknown>[];
  if (arrayRows && one?.fields) {
    const names = one.fields.map((f) => f.name);
    rows = (rows as unknown as unknown[][]).map((values) => {
      const row: Record<string, unknown> = {};
      names.forEach((name, i) => {
        if (!Object.hasOwn(row, name)) row[name] = values[i];
      });
      return row;
    });
  }
  return recordStatement(frame, host, { sql, params, rows });
}

function refuseStream(frame: FrameCapture, sql: string): void {
  frame.page.refusals.push(
    new RefusedBoundaryError(
      "unsupported_query",
      sql,
      "a read through a cursor or stream (pg-cursor, pg-query-stream, a pg.Query): Upkeep cannot see its rows",
      "read the page's rows with client.query(text, values) (or your data layer's plain query)",
    ),
  );
}
