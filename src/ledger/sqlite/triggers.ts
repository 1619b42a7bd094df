// Capture triggers for SQLite, generated per table from its schema.
//
// What the triggers must hold whatever SQLite version the writer runs (≥ 3.35: Debian 12's `sqlite3` shell and
// Python ship 3.40, older than the SQLite inside Node):
// - They never make a write fail. A value too large for an image (LEDGER_TUNING.maxImageValueBytes) is replaced
//   by a `{"$unavailable": …}` marker, so no image can outgrow SQLite's string limit (a 270 MB blob's hex twice in
//   one row did: "string or blob too big"); the reader then flags the fact `unavailable`.
// - They produce valid JSON. ±Infinity is tagged (`{"$real": "Infinity"}`): before 3.42 json_object wrote a bare
//   `Inf`. Times come from julianday('now'), which every version has (unixepoch('subsec') is NULL before 3.42).
//   Rows wider than one json_object call (127 arguments) are an array of chunk objects, never json_insert paths
//   (older versions mis-parse a quoted name in a path and drop the column).
// - They see every column: generated columns (VIRTUAL and STORED) come from pragma_table_xinfo.
// - They see the rows a REPLACE deletes. INSERT OR REPLACE, REPLACE INTO, UPDATE OR REPLACE and ON CONFLICT
//   REPLACE constraints delete the conflicting rows without firing delete triggers (unless recursive_triggers is
//   on, which Upkeep cannot ask of every writer). A BEFORE trigger therefore records, as a delete fact, every row
//   the new row would conflict with through its rowid or a UNIQUE index. When the statement then does not delete
//   (OR IGNORE, DO NOTHING, DO UPDATE, or an ABORT that rolls the statement and its trigger writes back) the extra
//   fact costs a replay that renders the unchanged row again: a spurious fact is harmless, a missing one is not.
//   A unique index on an expression or on a generated column cannot be evaluated on NEW in a BEFORE trigger;
//   for those the trigger writes a table-wide fact (image unavailable) instead, which every read of the table
//   replays on.
import type { DatabaseSync } from "node:sqlite";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";

const FACTS = LEDGER.factsTable;
const PREFIX = LEDGER.triggerPrefix;
/** json_object takes at most 127 arguments: images are built in chunks of this many columns. */
const COLUMNS_PER_CALL = 60;
/** Seconds since the epoch, millisecond precision (formatted to ISO-8601 when read). */
export const NOW = "round((julianday('now') - 2440587.5) * 86400.0, 3)";

export interface TableInfo {
  name: string;
  /** Every column, generated ones included, in table order. */
  columns: string[];
  /** Primary-key columns in key order (empty: no primary key). */
  key: string[];
  /** False for WITHOUT ROWID tables. */
  rowid: boolean;
  /** UNIQUE indexes (the primary key of a WITHOUT ROWID table included) whose columns are all plain columns. */
  unique: string[][];
  /** Names of UNIQUE indexes that involve an expression or a generated column. */
  opaqueUnique: string[];
}

function all<T>(db: DatabaseSync, sql: string, ...params: (string | number)[]): T[] {
  return db.prepare(sql).all(...params) as T[];
}

/** Tables Upkeep may capture: ordinary tables of the main schema, except SQLite's and the ledger's own. */
export function applicationTables(db: DatabaseSync, own: readonly string[]): TableInfo[] {
  const tables = all<{ name: string; wr: number }>(
    db,
    "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
  ).filter((t) => !own.includes(t.name));
  return tables.map(({ name, wr }) => {
    // hidden: 0 ordinary, 1 hidden (virtual tables only), 2 VIRTUAL generated, 3 STORED generated.
    const cols = all<{ name: string; pk: number; hidden: number }>(
      db,
      "SELECT name, pk, hidden FROM pragma_table_xinfo(?) WHERE hidden <> 1 ORDER BY cid",
      name,
    );
    const generated = new Set(cols.filter((c) => c.hidden >= 2).map((c) => c.name));
    const key = cols
      .filter((c) => c.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((c) => c.name);
    const unique: string[][] = [];
    const opaqueUnique: string[] = [];
    for (const index of all<{ name: string; unique: number }>(
      db,
      'SELECT name, "unique" FROM pragma_index_list(?) ORDER BY name',
      name,
    )) {
      if (!index.unique) continue;
      const parts = all<{ cid: number; name: string | null }>(
        db,
        "SELECT cid, name FROM pragma_index_info(?) ORDER BY seqno",
        index.name,
      );
      if (parts.some((p) => p.cid < 0 || p.name === null || generated.has(p.name))) opaqueUnique.push(index.name);
      else unique.push(parts.map((p) => p.name as string));
    }
    return { name, columns: cols.map((c) => c.name), key, rowid: wr === 0, unique, opaqueUnique };
  });
}

function encodeColumn(ref: string, column: string): string {
  const c = `${ref}.${quoteIdent(column)}`;
  const bound = LEDGER_TUNING.maxImageValueBytes;
  // json_object rejects blobs: they are tagged {"$blob": hex}. Tags are the only objects a column value becomes.
  return (
    `CASE typeof(${c})` +
    ` WHEN 'blob' THEN CASE WHEN length(${c}) > ${bound} THEN json_object('$unavailable', 'blob of ' || length(${c}) || ' bytes') ELSE json_object('$blob', hex(${c})) END` +
    ` WHEN 'text' THEN CASE WHEN length(${c}) > ${bound} THEN json_object('$unavailable', 'text of ' || length(${c}) || ' characters') ELSE ${c} END` +
    ` WHEN 'real' THEN CASE WHEN abs(${c}) = 9e999 THEN json_object('$real', CASE WHEN ${c} > 0 THEN 'Infinity' ELSE '-Infinity' END) ELSE ${c} END` +
    ` ELSE ${c} END`
  );
}

/** A row image as JSON: one object, or for wide rows an array of objects to be merged (see decodeSqliteImage). */
export function image(ref: string, columns: string[]): string {
  if (columns.length === 0) return "json_object()";
  const chunks: string[] = [];
  for (let i = 0; i < columns.length; i += COLUMNS_PER_CALL) {
    const chunk = columns.slice(i, i + COLUMNS_PER_CALL);
    chunks.push(`json_object(${chunk.map((c) => `${quoteLiteral(c)}, ${encodeColumn(ref, c)}`).join(", ")})`);
  }
  return chunks.length === 1 ? (chunks[0] as string) : `json_array(${chunks.join(", ")})`;
}

export type TriggerKind = "insert" | "update" | "delete" | "replace_insert" | "replace_update";

export function triggerName(table: string, kind: TriggerKind): string {
  return `${PREFIX}${table}_${kind}`;
}

/** The rows of `table` (aliased `o`) that a row with the values `ref` would conflict with. */
function conflicts(table: TableInfo, ref: "NEW"): string[] {
  const out = table.unique.map((columns) =>
    columns.map((c) => `o.${quoteIdent(c)} = ${ref}.${quoteIdent(c)}`).join(" AND "),
  );
  if (table.rowid) out.unshift(`o.rowid = ${ref}.rowid`);
  return out.map((condition) => `(${condition})`);
}

/** The exact CREATE TRIGGER statements for a table; drift detection compares them with sqlite_master. */
export function captureTriggers(table: TableInfo): Record<TriggerKind, string> {
  const t = quoteIdent(table.name);
  const lit = quoteLiteral(table.name);
  const key = (ref: string) => (table.key.length > 0 ? image(ref, table.key) : "NULL");
  const fact = (op: string, keyRef: string, old: string, now: string) =>
    `INSERT INTO ${FACTS}(tbl, op, key, old, new, at) VALUES (${lit}, '${op}', ${key(keyRef)}, ${old}, ${now}, ${NOW})`;
  const changed = table.columns.map((c) => `OLD.${quoteIdent(c)} IS NOT NEW.${quoteIdent(c)}`).join(" OR ") || "0";
  const create = (kind: TriggerKind, timing: string, body: string[]) =>
    `CREATE TRIGGER ${quoteIdent(triggerName(table.name, kind))} ${timing} BEGIN ${body.map((s) => `${s};`).join(" ")} END`;

  // REPLACE's implicit deletes (see the top of this file).
  const replaced = (extra: string) => {
    const body: string[] = [];
    const where = conflicts(table, "NEW");
    if (where.length > 0) {
      body.push(
        `INSERT INTO ${FACTS}(tbl, op, key, old, new, at) SELECT ${lit}, 'delete', ${key("o")}, ${image("o", table.columns)}, NULL, ${NOW} FROM ${t} AS o WHERE (${where.join(" OR ")})${extra}`,
      );
    }
    if (table.opaqueUnique.length > 0) {
      const why = `a REPLACE may have deleted rows of ${table.name} through unique index ${table.opaqueUnique.join(", ")} (an expression or generated column)`;
      body.push(
        `INSERT INTO ${FACTS}(tbl, op, key, old, new, at) VALUES (${lit}, 'update', NULL, NULL, json_object('$unavailable', ${quoteLiteral(why)}), ${NOW})`,
      );
    }
    return body;
  };
  const self = table.rowid
    ? " AND o.rowid <> OLD.rowid"
    : ` AND NOT (${table.key.map((c) => `o.${quoteIdent(c)} IS OLD.${quoteIdent(c)}`).join(" AND ") || "0"})`;
  const uniqueColumns = [...new Set(table.unique.flat())];
  const uniqueChanged =
    [
      ...(table.rowid ? ["NEW.rowid IS NOT OLD.rowid"] : []),
      ...uniqueColumns.map((c) => `NEW.${quoteIdent(c)} IS NOT OLD.${quoteIdent(c)}`),
    ].join(" OR ") || "0";
  const replaceInsert = replaced("");
  const replaceUpdate = replaced(self);
  const noop = `SELECT 1 WHERE 0`; // a trigger needs a statement; tables with nothing to check get this one

  return {
    insert: create("insert", `AFTER INSERT ON ${t}`, [fact("insert", "NEW", "NULL", image("NEW", table.columns))]),
    update: create("update", `AFTER UPDATE ON ${t} WHEN ${changed}`, [
      fact("update", "NEW", image("OLD", table.columns), image("NEW", table.columns)),
    ]),
    delete: create("delete", `AFTER DELETE ON ${t}`, [fact("delete", "OLD", image("OLD", table.columns), "NULL")]),
    replace_insert: create(
      "replace_insert",
      `BEFORE INSERT ON ${t}`,
      replaceInsert.length > 0 ? replaceInsert : [noop],
    ),
    replace_update: create(
      "replace_update",
      `BEFORE UPDATE ON ${t} WHEN ${table.opaqueUnique.length > 0 ? "1" : uniqueChanged}`,
      replaceUpdate.length > 0 ? replaceUpdate : [noop],
    ),
  };
}
