// The change ledger on SQLite. Capture triggers are generated per table from the schema; the facts table's
// INTEGER PRIMARY KEY AUTOINCREMENT is the offset.
//
// Why offsets are commit-ordered and gapless here: SQLite has one writer at a time, so facts are numbered in the
// order their transactions hold the write lock, and a transaction's facts are contiguous. AUTOINCREMENT hands out
// max(ever used) + 1 via sqlite_sequence, which is updated inside the writing transaction: a rollback (of a
// transaction or of one failed statement) rolls the counter back too, and pruning never lets an id be reused.
import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { LEDGER, LEDGER_TUNING } from "../constants.ts";
import { LedgerNotInstalledError, SchemaDriftError } from "../errors.ts";
import { checkPosition, followFacts, type Position, quoteIdent, quoteLiteral, readLimit, Waker } from "./core.ts";
import { decodeSqliteImage } from "./decode.ts";
import { openSqlite } from "./dialect.ts";
import type {
  Fact,
  FollowOptions,
  InstallReport,
  Ledger,
  LedgerOptions,
  Operation,
  PruneOptions,
  ReadOptions,
  Row,
} from "./types.ts";

const FACTS = LEDGER.factsTable;
const META = LEDGER.metaTable;
const PREFIX = LEDGER.triggerPrefix;
const GUARD = "upkeep_guard_facts";
/** json_object takes at most 127 arguments; wider rows are built in chunks with json_insert. */
const COLUMNS_PER_CALL = 60;
// Seconds since the epoch with millisecond precision; formatted to ISO-8601 when read (strftime in the trigger
// costs a quarter of the trigger's time on bulk statements).
const NOW = "unixepoch('subsec')";

interface TableInfo {
  name: string;
  columns: string[];
  key: string[];
}

function all<T>(db: DatabaseSync, sql: string, ...params: (string | number)[]): T[] {
  return db.prepare(sql).all(...params) as T[];
}

function get<T>(db: DatabaseSync, sql: string, ...params: (string | number)[]): T | undefined {
  return db.prepare(sql).get(...params) as T | undefined;
}

function applicationTables(db: DatabaseSync): TableInfo[] {
  const tables = all<{ name: string }>(
    db,
    "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
  ).filter((t) => t.name !== FACTS && t.name !== META);
  return tables.map(({ name }) => {
    const cols = all<{ name: string; pk: number }>(db, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", name);
    const key = cols
      .filter((c) => c.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((c) => c.name);
    return { name, columns: cols.map((c) => c.name), key };
  });
}

function encodeColumn(ref: "NEW" | "OLD", column: string): string {
  const c = `${ref}.${quoteIdent(column)}`;
  // json_object rejects blobs: they are tagged as {"$blob": hex}, the only object a column value can become.
  return `CASE typeof(${c}) WHEN 'blob' THEN json_object('$blob', hex(${c})) ELSE ${c} END`;
}

function image(ref: "NEW" | "OLD", columns: string[]): string {
  if (columns.length === 0) return "json_object()";
  let sql = "";
  for (let i = 0; i < columns.length; i += COLUMNS_PER_CALL) {
    const chunk = columns.slice(i, i + COLUMNS_PER_CALL);
    if (i === 0) {
      sql = `json_object(${chunk.map((c) => `${quoteLiteral(c)}, ${encodeColumn(ref, c)}`).join(", ")})`;
    } else {
      const paths = chunk.map((c) => `${quoteLiteral(`$."${c.replace(/"/g, '\\"')}"`)}, ${encodeColumn(ref, c)}`);
      sql = `json_insert(${sql}, ${paths.join(", ")})`;
    }
  }
  return sql;
}

function triggerName(table: string, op: Operation): string {
  return `${PREFIX}${table}_${op}`;
}

/** The exact CREATE TRIGGER statements for a table; drift detection compares them with sqlite_master. */
export function captureTriggers(table: TableInfo): Record<Operation, string> {
  const t = quoteIdent(table.name);
  const lit = quoteLiteral(table.name);
  const key = (ref: "NEW" | "OLD") => (table.key.length > 0 ? image(ref, table.key) : "NULL");
  const insert = (op: Operation, keyRef: "NEW" | "OLD", old: string, now: string) =>
    `INSERT INTO ${FACTS}(tbl, op, key, old, new, at) VALUES (${lit}, '${op}', ${key(keyRef)}, ${old}, ${now}, ${NOW})`;
  const changed = table.columns.map((c) => `OLD.${quoteIdent(c)} IS NOT NEW.${quoteIdent(c)}`).join(" OR ") || "0";
  return {
    insert: `CREATE TRIGGER ${quoteIdent(triggerName(table.name, "insert"))} AFTER INSERT ON ${t} BEGIN ${insert("insert", "NEW", "NULL", image("NEW", table.columns))}; END`,
    update: `CREATE TRIGGER ${quoteIdent(triggerName(table.name, "update"))} AFTER UPDATE ON ${t} WHEN ${changed} BEGIN ${insert("update", "NEW", image("OLD", table.columns), image("NEW", table.columns))}; END`,
    delete: `CREATE TRIGGER ${quoteIdent(triggerName(table.name, "delete"))} AFTER DELETE ON ${t} BEGIN ${insert("delete", "OLD", image("OLD", table.columns), "NULL")}; END`,
  };
}

function installed(db: DatabaseSync): boolean {
  return get(db, "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", META) !== undefined;
}

function meta(db: DatabaseSync, key: string): string | undefined {
  return get<{ value: string }>(db, `SELECT value FROM ${META} WHERE key = ?`, key)?.value;
}

function setMeta(db: DatabaseSync, key: string, value: string): void {
  db.prepare(`INSERT INTO ${META}(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(
    key,
    value,
  );
}

function ourTriggers(db: DatabaseSync): { name: string; table: string; sql: string }[] {
  return all<{ name: string; table: string; sql: string }>(
    db,
    "SELECT name, tbl_name AS 'table', sql FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
    PREFIX.length,
    PREFIX,
  );
}

function withTransaction<T>(db: DatabaseSync, mode: "IMMEDIATE" | "DEFERRED", body: () => T): T {
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

export async function installSqlite(path: string, exclude: string[] = []): Promise<InstallReport> {
  const db = openSqlite(path);
  try {
    return withTransaction(db, "IMMEDIATE", () => {
      const created = !installed(db);
      db.exec(`CREATE TABLE IF NOT EXISTS ${META} (key TEXT PRIMARY KEY, value TEXT)`);
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${FACTS} (id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, op TEXT, key TEXT, old TEXT, new TEXT, at TEXT)`,
      );
      // Deleting facts other than through prune() (a truncated log) starts a new incarnation.
      db.exec(
        `CREATE TRIGGER IF NOT EXISTS ${GUARD} AFTER DELETE ON ${FACTS} WHEN (SELECT value FROM ${META} WHERE key = 'pruning') IS NOT '1' BEGIN UPDATE ${META} SET value = lower(hex(randomblob(16))) WHERE key = 'incarnation'; END`,
      );
      db.prepare(`INSERT OR IGNORE INTO ${META}(key, value) VALUES ('incarnation', ?)`).run(
        randomBytes(16).toString("hex"),
      );
      db.exec(`INSERT OR IGNORE INTO ${META}(key, value) VALUES ('horizon', '0')`);
      setMeta(db, "exclude", JSON.stringify([...exclude].sort()));
      for (const trigger of ourTriggers(db)) db.exec(`DROP TRIGGER ${quoteIdent(trigger.name)}`);
      const tables = applicationTables(db);
      const captured = tables.filter((t) => !exclude.includes(t.name));
      for (const table of captured) {
        for (const sql of Object.values(captureTriggers(table))) db.exec(sql);
      }
      return {
        kind: "sqlite" as const,
        tables: captured.map((t) => t.name),
        keyless: captured.filter((t) => t.key.length === 0).map((t) => t.name),
        excluded: tables.filter((t) => exclude.includes(t.name)).map((t) => t.name),
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
    });
  } finally {
    db.close();
  }
}

/** Tables whose triggers do not match the current schema (missing, stale columns or key, or extra). */
function drift(db: DatabaseSync): { tables: string[]; detail: string[] } {
  const exclude = JSON.parse(meta(db, "exclude") ?? "[]") as string[];
  const actual = new Map<string, string>();
  for (const t of ourTriggers(db)) actual.set(t.name, t.sql);
  const tables: string[] = [];
  const detail: string[] = [];
  for (const table of applicationTables(db)) {
    if (exclude.includes(table.name)) continue;
    const expected = captureTriggers(table);
    const ops = Object.keys(expected) as Operation[];
    const missing = ops.filter((op) => !actual.has(triggerName(table.name, op)));
    if (missing.length === ops.length) {
      tables.push(table.name);
      detail.push(`${table.name} has no capture triggers (added after install?)`);
    } else if (ops.some((op) => actual.get(triggerName(table.name, op)) !== expected[op])) {
      tables.push(table.name);
      detail.push(`${table.name} changed after install (columns or primary key)`);
    }
  }
  return { tables, detail };
}

export async function openSqliteLedger(database: string, path: string, options: LedgerOptions): Promise<Ledger> {
  const db = openSqlite(path);
  try {
    if (!installed(db)) throw new LedgerNotInstalledError(database);
    const found = drift(db);
    if (found.tables.length > 0) throw new SchemaDriftError(database, found.tables, found.detail.join("; "));
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteLedger(database, db, meta(db, "incarnation") as string, options);
}

interface FactRow {
  id: number;
  tbl: string;
  op: Operation;
  key: string | null;
  old: string | null;
  new: string | null;
  at: number;
}

class SqliteLedger implements Ledger {
  readonly kind = "sqlite" as const;
  readonly database: string;
  readonly incarnation: string;
  readonly #db: DatabaseSync;
  readonly #waker = new Waker();
  readonly #timer: NodeJS.Timeout;
  #dataVersion: number;
  #closed = false;

  constructor(database: string, db: DatabaseSync, incarnation: string, options: LedgerOptions) {
    this.database = database;
    this.#db = db;
    this.incarnation = incarnation;
    this.#dataVersion = this.#readDataVersion();
    // PRAGMA data_version changes when another connection commits: a cheap check, made only while someone waits.
    this.#timer = setInterval(() => {
      if (!this.#waker.waiting || this.#closed) return;
      const version = this.#readDataVersion();
      if (version !== this.#dataVersion) {
        this.#dataVersion = version;
        this.#waker.bump();
      }
    }, options.pollIntervalMs ?? LEDGER_TUNING.pollIntervalMs);
    this.#timer.unref();
  }

  #readDataVersion(): number {
    return (get<{ data_version: number }>(this.#db, "PRAGMA data_version") as { data_version: number }).data_version;
  }

  #position(): Position {
    const rows = all<{ key: string; value: string }>(
      this.#db,
      `SELECT key, value FROM ${META} WHERE key IN ('incarnation', 'horizon')`,
    );
    const values = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    return {
      incarnation: values.incarnation as string,
      horizon: Number(values.horizon ?? 0),
      head: this.#head(),
    };
  }

  #head(): number {
    return Number(get<{ seq: number }>(this.#db, "SELECT seq FROM sqlite_sequence WHERE name = ?", FACTS)?.seq ?? 0);
  }

  async head(): Promise<number> {
    return this.#head();
  }

  async sync(): Promise<number> {
    return this.#head();
  }

  async horizon(): Promise<number> {
    return Number(meta(this.#db, "horizon") ?? 0);
  }

  async read(after: number, options?: ReadOptions): Promise<Fact[]> {
    // One read transaction: the position checks and the facts come from the same snapshot.
    const { position, rows } = withTransaction(this.#db, "DEFERRED", () => {
      const position = this.#position();
      checkPosition(after, position, this.incarnation, options);
      const rows = all<FactRow>(
        this.#db,
        `SELECT id, tbl, op, key, old, new, at FROM ${FACTS} WHERE id > ? ORDER BY id LIMIT ?`,
        after,
        readLimit(options),
      );
      return { position, rows };
    });
    return rows.map((r) => toFact(r, position.incarnation));
  }

  follow(after: number, options: FollowOptions = {}): AsyncIterable<Fact[]> {
    return followFacts(this, this.#waker, () => this.#closed, after, options);
  }

  poke(): void {
    this.#waker.bump();
  }

  async prune(options: PruneOptions): Promise<{ pruned: number; horizon: number }> {
    const cutoff = (Date.now() - options.olderThanMs) / 1000; // `at` is seconds since the epoch
    return withTransaction(this.#db, "IMMEDIATE", () => {
      const head = this.#head();
      const horizon = Number(meta(this.#db, "horizon") ?? 0);
      const firstRecent = get<{ id: number }>(
        this.#db,
        `SELECT id FROM ${FACTS} WHERE at >= ? ORDER BY id LIMIT 1`,
        cutoff,
      )?.id;
      // Pruning removes a prefix of offsets: everything up to the first fact that must be kept.
      let upTo = Math.min(head, options.atOrBelow ?? head, firstRecent === undefined ? head : firstRecent - 1);
      upTo = Math.max(upTo, horizon);
      setMeta(this.#db, "pruning", "1");
      const { changes } = this.#db.prepare(`DELETE FROM ${FACTS} WHERE id <= ?`).run(upTo);
      setMeta(this.#db, "pruning", "0");
      setMeta(this.#db, "horizon", String(upTo));
      return { pruned: Number(changes), horizon: upTo };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#waker.bump();
    this.#db.close();
  }
}

function toFact(r: FactRow, incarnation: string): Fact {
  const old = decodeSqliteImage(r.old);
  const now = decodeSqliteImage(r.new);
  const key = decodeSqliteImage(r.key);
  return {
    offset: Number(r.id),
    incarnation,
    table: r.tbl,
    op: r.op,
    key: key ?? ((now ?? old) as Row),
    keyless: key === null,
    old,
    new: now,
    // SQLite has no transaction id a trigger can read; 'now' is fixed for the duration of one statement, so
    // facts of one statement share this value (see docs/ledger.md).
    txid: String(r.at),
    committedAt: new Date(Number(r.at) * 1000).toISOString(),
  };
}
