// Capture at SQLite's drivers: node:sqlite (DatabaseSync: prepare and exec; a statement's all, get, iterate and run)
// and better-sqlite3 (Database: prepare, exec, transaction; a statement's all, get, iterate, run and bind). Both are
// synchronous, so a read is analysed before the call returns: primary keys and SQLite's authorizer are read on
// Upkeep's own connection, synchronously too. Upkeep's own databases and their statements pass through (own.ts).
//
// Waking: a statement that is not a read, run outside a transaction, wakes the ledger. Inside one (the connection
// says so: isTransaction / inTransaction), the wake waits for the transaction's end — a COMMIT through exec or
// prepare wakes as it runs; better-sqlite3's db.transaction() commits without either, so the check is repeated
// once the synchronous work of the turn is done.
import { ConfigError } from "../../errors.ts";
import { isOwn, markOwn } from "../../own.ts";
import { currentFrame, type FrameCapture } from "../context.ts";
import { hostFor, pokeHosts, recordSync } from "./host.ts";
import { type TextEffect, transactionEffect } from "./text-kind.ts";

const PATCHED = Symbol.for("upkeep.capture.sqlite");

type Fn = (this: any, ...args: any[]) => any;
type Patchable = Record<PropertyKey, any>;

/** What the prepare of a statement told: its database (node:sqlite statements do not name it), its text and what
 *  the text does (read, write, transaction control), so that a call reads none of them again. */
interface Prepared {
  /** null when the statement was prepared before the patch, by a node:sqlite database it does not name. */
  readonly database: object | null;
  readonly sql: string;
  readonly effect: TextEffect;
}
const prepared = new WeakMap<object, Prepared>();
const effects = new Map<string, TextEffect>();

function remember(stmt: object, database: object | null, sql: unknown): Prepared | undefined {
  if (typeof sql !== "string") return undefined;
  let effect = effects.get(sql);
  if (effect === undefined) {
    effect = transactionEffect(sql);
    if (effects.size >= 2000) effects.clear();
    effects.set(sql, effect);
  }
  const p = { database, sql, effect };
  prepared.set(stmt, p);
  return p;
}

/**
 * What a statement is, also when it was prepared before the driver was captured (an app that prepares its statements
 * at start-up): read from the statement itself then — its text, and for better-sqlite3 its database.
 */
function preparedOf(stmt: Patchable): Prepared | undefined {
  const known = prepared.get(stmt);
  if (known) return known;
  const sql = typeof stmt.sourceSQL === "string" ? stmt.sourceSQL : stmt.source;
  const database = typeof stmt.database === "object" && stmt.database !== null ? (stmt.database as object) : null;
  return remember(stmt, database, sql);
}
/** better-sqlite3 parameters bound once with stmt.bind(…). */
const bound = new WeakMap<object, unknown[]>();
/** Databases with a write inside a transaction that has not been seen to end. */
const pending = new WeakSet<object>();

interface Flavour {
  inTransaction(database: Patchable): boolean;
  columns(statement: Patchable): string[];
  params(statement: Patchable, args: unknown[]): { positional: unknown[]; named: Record<string, unknown> | null };
}

const nodeSqlite: Flavour = {
  inTransaction: (db) => db.isTransaction === true,
  columns: (s) => (s.columns() as { name: string }[]).map((c) => c.name),
  params(_s, args) {
    if (args.length > 0 && isPlainObject(args[0])) {
      return { positional: args.slice(1), named: args[0] as Record<string, unknown> };
    }
    return { positional: args, named: null };
  },
};

const betterSqlite: Flavour = {
  inTransaction: (db) => db.inTransaction === true,
  columns: (s) => (s.columns() as { name: string }[]).map((c) => c.name),
  params(s, args) {
    const all = args.length === 0 ? (bound.get(s) ?? []) : args;
    const positional: unknown[] = [];
    let named: Record<string, unknown> | null = null;
    for (const a of all) {
      if (Array.isArray(a)) positional.push(...a);
      else if (isPlainObject(a)) named = a as Record<string, unknown>;
      else positional.push(a);
    }
    return { positional, named };
  },
};

function isPlainObject(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Patches node:sqlite (the module) or better-sqlite3 (its Database class), once each. */
export function patchSqlite(driver: unknown): void {
  const module = driver as Patchable;
  if (module && typeof module.DatabaseSync === "function") {
    patchNodeSqlite(module.DatabaseSync.prototype, module.StatementSync?.prototype);
    return;
  }
  const Database = (module?.default ?? module) as Patchable;
  if (typeof Database === "function" && typeof Database.prototype?.prepare === "function") {
    patchBetterSqlite(Database.prototype);
    // better-sqlite3 does not export its Statement class: reach its prototype through a statement of a database of
    // our own, so that statements the app prepared before this call are captured too.
    const probe = new (Database as unknown as new (path: string) => Patchable)(":memory:");
    try {
      probe.prepare("select 1");
    } finally {
      probe.close();
    }
    return;
  }
  throw new ConfigError(
    "capture() was given something that is neither node:sqlite nor better-sqlite3's Database.",
    'pass the module: import * as sqlite from "node:sqlite"; upkeep.capture(sqlite) — or import Database from "better-sqlite3"; upkeep.capture(Database)',
  );
}

function patchNodeSqlite(database: Patchable, statement: Patchable | undefined): void {
  if (database[PATCHED]) return;
  database[PATCHED] = true;
  const prepare = database.prepare as Fn;
  database.prepare = function (this: object, ...args: unknown[]) {
    const stmt = prepare.apply(this, args);
    if (isOwn(this)) markOwn(stmt);
    else remember(stmt, this, args[0]);
    return stmt;
  };
  database.exec = execPatch(database.exec as Fn, nodeSqlite);
  if (statement) patchStatement(statement, nodeSqlite);
}

function patchBetterSqlite(database: Patchable): void {
  if (database[PATCHED]) return;
  database[PATCHED] = true;
  const prepare = database.prepare as Fn;
  database.prepare = function (this: object, ...args: unknown[]) {
    const stmt = prepare.apply(this, args);
    const proto = Object.getPrototypeOf(stmt) as Patchable;
    if (!proto[PATCHED]) {
      // The first statement prepared after the patch (capture prepares one itself): patch its class.
      patchStatement(proto, betterSqlite);
      const bind = proto.bind as Fn;
      proto.bind = function (this: object, ...values: unknown[]) {
        bound.set(this, values);
        return bind.apply(this, values);
      };
    }
    remember(stmt, this, args[0]);
    return stmt;
  };
  database.exec = execPatch(database.exec as Fn, betterSqlite);
  const transaction = database.transaction as Fn;
  database.transaction = function (this: Patchable, ...args: unknown[]) {
    const run = transaction.apply(this, args) as Patchable;
    const db = this;
    const wrap = (fn: Fn): Fn =>
      function (this: unknown, ...inner: unknown[]) {
        const result = fn.apply(this, inner);
        if (pending.has(db) && !db.inTransaction) {
          pending.delete(db);
          pokeHosts("sqlite");
        }
        return result;
      };
    const wrapped = wrap(run as unknown as Fn) as unknown as Patchable;
    for (const variant of ["deferred", "immediate", "exclusive", "default"]) {
      if (typeof run[variant] === "function") wrapped[variant] = wrap(run[variant]);
    }
    return wrapped;
  };
}

function execPatch(exec: Fn, flavour: Flavour): Fn {
  return function (this: Patchable, sql: string, ...rest: unknown[]) {
    if (isOwn(this)) return exec.call(this, sql, ...rest);
    const frame = currentFrame();
    if (frame) refuseWrites(frame, sql);
    const result = exec.call(this, sql, ...rest);
    if (transactionEffect(sql) !== "read") wake(this, flavour);
    return result;
  };
}

/** exec() returns no rows: a read through it shows nothing; a write through it during a render is refused. */
function refuseWrites(frame: FrameCapture, sql: string): void {
  const host = hostFor("sqlite");
  if (host && transactionEffect(sql) !== "read") recordSync(frame, host, { sql, params: [], rows: [] });
}

function wake(db: Patchable, flavour: Flavour): void {
  if (!flavour.inTransaction(db)) {
    pending.delete(db);
    pokeHosts("sqlite");
    return;
  }
  if (pending.has(db)) return;
  pending.add(db);
  setImmediate(() => {
    if (pending.has(db) && !flavour.inTransaction(db)) {
      pending.delete(db);
      pokeHosts("sqlite");
    }
  });
}

function patchStatement(proto: Patchable, flavour: Flavour): void {
  if (proto[PATCHED]) return;
  proto[PATCHED] = true;
  for (const method of ["all", "get", "run", "iterate"] as const) {
    const original = proto[method] as Fn;
    if (typeof original !== "function") continue;
    proto[method] = function (this: Patchable, ...args: unknown[]) {
      if (isOwn(this)) return original.apply(this, args);
      const frame = currentFrame();
      const p = preparedOf(this);
      if (p?.database && isOwn(p.database)) return original.apply(this, args);
      if (!frame) {
        const result = original.apply(this, args);
        afterOutside(this, flavour);
        return result;
      }
      const result = original.apply(this, args);
      if (method === "iterate") return recordIterator(frame, this, flavour, args, result);
      const rows =
        method === "all" ? (result as unknown[]) : method === "get" ? (result === undefined ? [] : [result]) : [];
      record(frame, this, flavour, args, rows);
      afterOutside(this, flavour);
      return result;
    };
  }
}

function afterOutside(stmt: Patchable, flavour: Flavour): void {
  const p = prepared.get(stmt);
  if (!p || p.effect === "read") return;
  // A statement prepared before the capture by a database it does not name: wake (a wake too many costs a poll).
  if (p.database === null) pokeHosts("sqlite");
  else wake(p.database as Patchable, flavour);
}

function record(frame: FrameCapture, stmt: Patchable, flavour: Flavour, args: unknown[], rows: unknown[]): void {
  const host = hostFor("sqlite");
  const sql = prepared.get(stmt)?.sql;
  if (!host || sql === undefined) return;
  const { positional, named } = flavour.params(stmt, args);
  let objects = rows as Record<string, unknown>[];
  if (rows.length > 0 && (Array.isArray(rows[0]) || typeof rows[0] !== "object" || rows[0] === null)) {
    // Rows as arrays (setReturnArrays, raw()) or single values (pluck()): keyed by the statement's column names.
    const names = flavour.columns(stmt);
    objects = rows.map((r) => {
      const values = Array.isArray(r) ? r : [r];
      const row: Record<string, unknown> = {};
      names.forEach((name, i) => {
        if (i < values.length && !Object.hasOwn(row, name)) row[name] = values[i];
      });
      return row;
    });
  }
  recordSync(frame, host, { sql, params: positional, named, rows: objects });
}

/** A read through iterate(): the page read the rows it consumed, recorded when it stops (done, break or throw). */
function recordIterator(
  frame: FrameCapture,
  stmt: Patchable,
  flavour: Flavour,
  args: unknown[],
  iterator: IterableIterator<unknown>,
): IterableIterator<unknown> {
  const rows: unknown[] = [];
  let recorded = false;
  const finish = () => {
    if (recorded) return;
    recorded = true;
    record(frame, stmt, flavour, args, rows);
  };
  const wrapped: IterableIterator<unknown> = {
    next(...a: [] | [undefined]) {
      const step = iterator.next(...a);
      if (step.done) finish();
      else rows.push(step.value);
      return step;
    },
    return(value?: unknown) {
      finish();
      return iterator.return ? iterator.return(value) : { done: true, value };
    },
    throw(error?: unknown) {
      finish();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
    [Symbol.iterator]() {
      return wrapped;
    },
  };
  return wrapped;
}
