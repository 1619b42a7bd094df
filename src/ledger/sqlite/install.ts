// Installing the SQLite ledger: its tables, the capture triggers (sqlite/triggers.ts), and the checks that the
// triggers still match the schema.
import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { LEDGER } from "../../constants.ts";
import { quoteIdent, TABLE_HORIZON_PREFIX } from "../core.ts";
import { openSqlite } from "../dialect.ts";
import type { InstallReport } from "../types.ts";
import { applicationTables, captureTriggers, type TableInfo, type TriggerKind, triggerName } from "./triggers.ts";

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

/** (Re)creates the capture triggers of every captured table, inside the caller's transaction. */
export function refreshTriggers(db: DatabaseSync, exclude: readonly string[]): TableInfo[] {
  for (const trigger of ourTriggers(db)) db.exec(`DROP TRIGGER ${quoteIdent(trigger.name)}`);
  const captured = tables(db).filter((t) => !exclude.includes(t.name));
  for (const table of captured) for (const sql of Object.values(captureTriggers(table))) db.exec(sql);
  return captured;
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
      const captured = refreshTriggers(db, exclude);
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
