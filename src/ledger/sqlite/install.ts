// Installing the SQLite ledger: its tables, the capture triggers (sqlite/triggers.ts), and the checks that the
// triggers still match the schema.
import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { LEDGER } from "../../constants.ts";
import { quoteIdent, TABLE_HORIZON_PREFIX } from "../core.ts";
import { UNAVAILABLE_MARKER } from "../decode.ts";
import { openSqlite } from "../dialect.ts";
import type { InstallReport } from "../types.ts";
import { applicationTables, captureTriggers, NOW, type TableInfo, type TriggerKind, triggerName } from "./triggers.ts";

const FACTS = LEDGER.factsTable;
const META = LEDGER.metaTable;
const HOLDS = LEDGER.holdsTable;
const PREFIX = LEDGER.triggerPrefix;
const GUARD = "upkeep_guard_facts";
const OWN = [FACTS, META, HOLDS];

export function all<T>(db: DatabaseSync, sql: string, ...params: (string | number)[]): T[] {
  return db.prepare(sql).all(...params) as T[];
}

export function get<T>(db: DatabaseSync, sql: string, ...params: (string | number)[]): T | undefined {
  return db.prepare(sql).get(...params) as T | undefined;
}

export function tableExists(db: DatabaseSync, name: string): boolean {
  return get(db, "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", name) !== undefined;
}

export function installed(db: DatabaseSync): boolean {
  return tableExists(db, META);
}

export function meta(db: DatabaseSync, key: string): string | undefined {
  return get<{ value: string }>(db, `SELECT value FROM ${META} WHERE key = ?`, key)?.value;
}

export function setMeta(db: DatabaseSync, key: string, value: string): void {
  db.prepare(`INSERT INTO ${META}(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(
    key,
    value,
  );
}

export function ourTriggers(db: DatabaseSync): { name: string; table: string; sql: string }[] {
  return all<{ name: string; table: string; sql: string }>(
    db,
    "SELECT name, tbl_name AS 'table', sql FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
    PREFIX.length,
    PREFIX,
  );
}

/** Names of the tables that have capture triggers now. */
export function capturedNow(db: DatabaseSync): Set<string> {
  return new Set(ourTriggers(db).map((t) => t.table));
}

/** Tables with a column named like the capture's whole-image marker (see decodeSqliteImage). */
export function markerColumnTables(db: DatabaseSync): Set<string> {
  const rows = all<{ name: string }>(
    db,
    "SELECT m.name AS name FROM sqlite_master m JOIN pragma_table_xinfo(m.name) c WHERE m.type = 'table' AND c.name = ?",
    UNAVAILABLE_MARKER,
  );
  return new Set(rows.map((r) => r.name));
}

export function excludedTables(db: DatabaseSync): string[] {
  return JSON.parse(meta(db, "exclude") ?? "[]") as string[];
}

export function withTransaction<T>(db: DatabaseSync, mode: "IMMEDIATE" | "DEFERRED", body: () => T): T {
  db.exec(`BEGIN ${mode}`);
  try {
    const result = body();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

export function tables(db: DatabaseSync): TableInfo[] {
  return applicationTables(db, OWN);
}

/**
 * Makes the capture triggers exactly those the schema needs, inside the caller's write transaction, and records one
 * table-wide fact (see schemaChangeFact) for every table whose triggers it changed, unless `facts` is false (a
 * fresh log, which nobody has read). Tables whose triggers are current are left alone.
 *
 * Why one table-wide fact per changed table makes a schema change safe for open pages. Between a DDL statement and
 * this refresh (up to LEDGER_TUNING.schemaCheckMs, or until `npx upkeep install`), writes to the table run the old
 * triggers: their images lack the new columns, an UPDATE of new columns only records no fact at all, and a column
 * added with a default changes every row without any write. So no fact of that window can be trusted to say what
 * changed. The fact written here commits in the same transaction as the new triggers; SQLite has one writer, so
 * every write of the window has a lower offset and every later write runs the new triggers. A page whose render
 * offset is below the fact's is planned against it, and a table-wide fact affects every frame that reads the
 * table: each is rendered again from the rows as they are, which include every write of the window. A page whose
 * render offset is at or above it read the table after the refresh. Either way no page keeps a value of the window.
 * A table that lost its triggers (dropped, excluded) gets the fact too: its pages replay and find it gone or no
 * longer captured (refused), instead of staying as they were.
 */
export function refreshTriggers(db: DatabaseSync, exclude: readonly string[], facts = true): TableInfo[] {
  const present = new Map<string, Map<string, string>>();
  for (const t of ourTriggers(db)) {
    if (!present.has(t.table)) present.set(t.table, new Map());
    present.get(t.table)?.set(t.name, t.sql);
  }
  const captured = tables(db).filter((t) => !exclude.includes(t.name));
  const before = new Set([...recordedCaptured(db), ...present.keys()]);
  const changed: string[] = [];
  for (const table of captured) {
    const expected = Object.entries(captureTriggers(table)).map(([kind, sql]) => [
      triggerName(table.name, kind as TriggerKind),
      sql,
    ]);
    const own = present.get(table.name) ?? new Map<string, string>();
    present.delete(table.name);
    if (own.size === expected.length && expected.every(([name, sql]) => own.get(name as string) === sql)) continue;
    for (const name of own.keys()) db.exec(`DROP TRIGGER ${quoteIdent(name)}`);
    for (const [, sql] of expected) db.exec(sql as string);
    if (before.has(table.name)) changed.push(table.name); // a table captured for the first time was read by no live page
  }
  // Tables captured until now and no longer (dropped, renamed or excluded): their triggers go, if any are left.
  for (const table of before) {
    if (captured.some((t) => t.name === table)) continue;
    for (const name of present.get(table)?.keys() ?? []) db.exec(`DROP TRIGGER ${quoteIdent(name)}`);
    changed.push(table);
  }
  setMeta(db, CAPTURED_KEY, JSON.stringify(captured.map((t) => t.name)));
  if (facts) for (const table of changed) schemaChangeFact(db, table);
  return captured;
}

/** The meta key naming the tables the last refresh captured (a dropped table leaves no trigger to say so). */
const CAPTURED_KEY = "captured";

function recordedCaptured(db: DatabaseSync): string[] {
  return JSON.parse(meta(db, CAPTURED_KEY) ?? "[]") as string[];
}

/** Tables the last refresh captured that are gone or excluded now (their pages must learn it: refreshTriggers). */
export function removedTables(db: DatabaseSync): string[] {
  const exclude = excludedTables(db);
  const existing = new Set(tables(db).map((t) => t.name));
  return recordedCaptured(db).filter((name) => !existing.has(name) || exclude.includes(name));
}

/** The reason a schema change's fact carries (a table name, never row data). */
export function schemaChangeReason(table: string): string {
  return `the columns or capture of ${table} changed: every row may have changed`;
}

/** A table-wide fact saying every row of `table` may have changed (key and images unavailable). */
export function schemaChangeFact(db: DatabaseSync, table: string): void {
  db.prepare(
    `INSERT INTO ${FACTS}(tbl, op, key, old, new, at) VALUES (?, 'update', NULL, NULL, json_object('$unavailable', ?), ${NOW})`,
  ).run(table, schemaChangeReason(table));
}

export function createHoldsTable(db: DatabaseSync): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${HOLDS} (id TEXT PRIMARY KEY, position INTEGER NOT NULL, expires REAL NOT NULL)`,
  );
}

export async function installSqlite(path: string, exclude: string[] = []): Promise<InstallReport> {
  return installSqliteNow(path, exclude);
}

/** installSqlite, synchronously (a running ledger reinstalls a dropped ledger table with it). */
export function installSqliteNow(path: string, exclude: string[] = []): InstallReport {
  const db = openSqlite(path);
  try {
    return withTransaction(db, "IMMEDIATE", () => {
      const created = !installed(db);
      // Facts that are gone (a dropped facts table, a first install) start a new incarnation: offsets restart at 1,
      // and an offset of the old log must never name a new fact.
      const freshLog = !tableExists(db, FACTS);
      db.exec(`CREATE TABLE IF NOT EXISTS ${META} (key TEXT PRIMARY KEY, value TEXT)`);
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${FACTS} (id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, op TEXT, key TEXT, old TEXT, new TEXT, at TEXT)`,
      );
      createHoldsTable(db);
      // Deleting facts other than through prune() (a truncated log) starts a new incarnation.
      db.exec(
        `CREATE TRIGGER IF NOT EXISTS ${GUARD} AFTER DELETE ON ${FACTS} WHEN (SELECT value FROM ${META} WHERE key = 'pruning') IS NOT '1' BEGIN UPDATE ${META} SET value = lower(hex(randomblob(16))) WHERE key = 'incarnation'; END`,
      );
      if (freshLog) {
        setMeta(db, "incarnation", randomBytes(16).toString("hex"));
        setMeta(db, "horizon", "0");
        // Tables' own horizons belong to the old log.
        db.prepare(`DELETE FROM ${META} WHERE substr(key, 1, ?) = ?`).run(
          TABLE_HORIZON_PREFIX.length,
          TABLE_HORIZON_PREFIX,
        );
        db.exec(`DELETE FROM ${HOLDS}`);
      }
      setMeta(db, "exclude", JSON.stringify([...exclude].sort()));
      const every = tables(db);
      const captured = refreshTriggers(db, exclude, !freshLog);
      return {
        kind: "sqlite" as const,
        capture: "triggers" as const,
        captureReason: "SQLite captures with triggers",
        tables: captured.map((t) => t.name),
        keyless: captured.filter((t) => t.key.length === 0).map((t) => t.name),
        excluded: every.filter((t) => exclude.includes(t.name)).map((t) => t.name),
        incarnation: meta(db, "incarnation") as string,
        created,
      };
    });
  } finally {
    db.close();
  }
}

export async function uninstallSqlite(path: string): Promise<void> {
  const db = openSqlite(path);
  try {
    withTransaction(db, "IMMEDIATE", () => {
      for (const trigger of ourTriggers(db)) db.exec(`DROP TRIGGER ${quoteIdent(trigger.name)}`);
      db.exec(`DROP TABLE IF EXISTS ${FACTS}`); // also removes its sqlite_sequence row and the guard trigger
      db.exec(`DROP TABLE IF EXISTS ${META}`);
      db.exec(`DROP TABLE IF EXISTS ${HOLDS}`);
    });
  } finally {
    db.close();
  }
}

/** Tables whose triggers do not match the current schema (missing, stale columns or key, or extra). */
export function drift(db: DatabaseSync): { tables: string[]; detail: string[] } {
  const exclude = excludedTables(db);
  const actual = new Map<string, string>();
  for (const t of ourTriggers(db)) actual.set(t.name, t.sql);
  const drifted: string[] = [];
  const detail: string[] = [];
  for (const table of tables(db)) {
    if (exclude.includes(table.name)) continue;
    const expected = captureTriggers(table);
    const kinds = Object.keys(expected) as TriggerKind[];
    const missing = kinds.filter((kind) => !actual.has(triggerName(table.name, kind)));
    if (missing.length === kinds.length) {
      drifted.push(table.name);
      detail.push(`${table.name} has no capture triggers (added after install?)`);
    } else if (kinds.some((kind) => actual.get(triggerName(table.name, kind)) !== expected[kind])) {
      drifted.push(table.name);
      detail.push(`${table.name} changed after install (columns, keys, unique indexes or an older Upkeep's triggers)`);
    }
  }
  return { tables: drifted, detail };
}
