// Trigger capture on PostgreSQL (the fallback when the server cannot decode its write-ahead log): the one generic
// capture function, its triggers, and the checks that the triggers still match the schema.
//
// The capture function never raises for a user's write:
// - Images are `json`, not `jsonb`: to_json renders a json column's text as it is, so a `\u0000` or a lone
//   surrogate inside it cannot fail (to_jsonb re-parses it and fails), and no value meets jsonb's 256 MB string
//   limit. The reader parses the text in JavaScript, which accepts both.
// - A row whose text would be larger than LEDGER_TUNING.maxImageValueBytes is not rendered: its image becomes
//   `{"$unavailable": …}` and the fact is planned as table-wide. A row stored in less than 64 kB cannot expand
//   past a few MB, so only larger rows pay for measuring their text.
// - When the facts table is missing (dropped under a running app), the function records nothing and the write
//   succeeds. Nothing is silently missed: every follower reads LedgerMissingError and says so loudly, and the
//   reinstall that brings the table back starts a new incarnation, so every open page reloads.
// No exception block: it would cost a subtransaction (and an xid) per row of a bulk UPDATE.
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";
import type { Names, Queryable, TableInfo } from "./schema.ts";

export const INSERT_TRIGGER = `${LEDGER.triggerPrefix}insert`;
export const UPDATE_TRIGGER = `${LEDGER.triggerPrefix}update`;
export const DELETE_TRIGGER = `${LEDGER.triggerPrefix}delete`;
export const TRUNCATE_TRIGGER = `${LEDGER.triggerPrefix}truncate`;
export const CAPTURE_TRIGGERS = [INSERT_TRIGGER, UPDATE_TRIGGER, DELETE_TRIGGER, TRUNCATE_TRIGGER];

/** Capture triggers present in the schema: table → trigger name → arguments (the key columns). */
export async function captureTriggers(db: Queryable, schema: string): Promise<Map<string, Map<string, string[]>>> {
  const { rows } = await db.query<{ table: string; name: string; args: Buffer }>(
    `SELECT c.relname AS table, t.tgname AS name, t.tgargs AS args
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND t.tgname = ANY($2) AND NOT t.tgisinternal`,
    [schema, CAPTURE_TRIGGERS],
  );
  const out = new Map<string, Map<string, string[]>>();
  for (const r of rows) {
    const args = r.args.toString("utf8").split("\0").slice(0, -1);
    if (!out.has(r.table)) out.set(r.table, new Map());
    out.get(r.table)?.set(r.name, args);
  }
  return out;
}

/** The image of a row as json, or an `$unavailable` marker when it is too large (see the top of this file). */
function image(row: string): string {
  const bound = LEDGER_TUNING.maxImageValueBytes;
  return `CASE WHEN pg_column_size(${row}) < 65536 OR octet_length((${row})::text) <= ${bound} THEN to_json(${row})
    ELSE json_build_object('$unavailable', 'a row of ' || pg_column_size(${row}) || ' bytes is larger than the image bound') END`;
}

export function captureFunctionSql(n: Names): string {
  // Inserts and deletes are captured per statement from transition tables (one INSERT … SELECT per statement);
  // updates per row, so the old and new images stay paired and no-op updates are skipped by the trigger's WHEN.
  // The key is not built here: the primary-key columns (trigger arguments) are stored and the key is taken from
  // the image when the fact is read, which keeps the per-row cost to the two images and one insert.
  // SECURITY DEFINER: any role that may write an application table may record its fact, so a missing grant on
  // the ledger's tables can never make a user's write fail.
  const facts = quoteLiteral(n.facts);
  return `CREATE OR REPLACE FUNCTION ${n.capture}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF to_regclass(${facts}) IS NULL THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO ${n.facts} (tbl, op, key_columns, txid) VALUES (TG_TABLE_NAME, 'truncate', TG_ARGV, pg_current_xact_id()::text);
  ELSIF TG_LEVEL = 'ROW' THEN
    INSERT INTO ${n.facts} (tbl, op, key_columns, old, new, txid)
    VALUES (TG_TABLE_NAME, 'update', TG_ARGV, ${image("OLD")}, ${image("NEW")}, pg_current_xact_id()::text);
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO ${n.facts} (tbl, op, key_columns, new, txid)
    SELECT TG_TABLE_NAME, 'insert', TG_ARGV, ${image("upkeep_new.*")}, pg_current_xact_id()::text FROM upkeep_new;
  ELSE
    INSERT INTO ${n.facts} (tbl, op, key_columns, old, txid)
    SELECT TG_TABLE_NAME, 'delete', TG_ARGV, ${image("upkeep_old.*")}, pg_current_xact_id()::text FROM upkeep_old;
  END IF;
  RETURN NULL;
END
$fn$`;
}

export function guardFunctionSql(n: Names): string {
  // Deleting or truncating facts other than through prune() (a truncated log) starts a new incarnation.
  return `CREATE OR REPLACE FUNCTION ${n.guard}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF coalesce(current_setting('upkeep.pruning', true), '') <> 'on' THEN
    UPDATE ${n.meta} SET value = md5(random()::text || clock_timestamp()::text) WHERE key = 'incarnation';
  END IF;
  RETURN NULL;
END
$fn$`;
}

/** Makes the capture triggers exactly those `captured` needs (none when `captured` is empty), touching only the
 *  tables whose triggers differ (DDL on a table locks it). */
export async function syncTriggers(db: Queryable, schema: string, n: Names, captured: TableInfo[]): Promise<void> {
  const present = await captureTriggers(db, schema);
  const wanted = new Map(captured.map((t) => [t.name, t]));
  const upToDate = (table: string) => {
    const triggers = present.get(table);
    const info = wanted.get(table);
    return (
      info !== undefined &&
      triggers !== undefined &&
      triggers.size === CAPTURE_TRIGGERS.length &&
      CAPTURE_TRIGGERS.every((name) => triggers.get(name)?.join("\0") === info.key.join("\0"))
    );
  };
  for (const [table] of present) {
    if (upToDate(table)) continue;
    const t = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    for (const name of CAPTURE_TRIGGERS) await db.query(`DROP TRIGGER IF EXISTS ${name} ON ${t}`);
  }
  for (const table of captured) {
    if (upToDate(table.name)) continue;
    const t = `${quoteIdent(schema)}.${quoteIdent(table.name)}`;
    const args = table.key.map(quoteLiteral).join(", ");
    await db.query(
      `CREATE TRIGGER ${INSERT_TRIGGER} AFTER INSERT ON ${t} REFERENCING NEW TABLE AS upkeep_new
       FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
    );
    await db.query(
      `CREATE TRIGGER ${DELETE_TRIGGER} AFTER DELETE ON ${t} REFERENCING OLD TABLE AS upkeep_old
       FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
    );
    // *<> compares the rows' binary images: works for every column type (json has no equality operator)
    // and skips no-op updates.
    await db.query(
      `CREATE TRIGGER ${UPDATE_TRIGGER} AFTER UPDATE ON ${t} FOR EACH ROW WHEN (OLD.* *<> NEW.*)
       EXECUTE FUNCTION ${n.capture}(${args})`,
    );
    // TRUNCATE fires no delete trigger: one table-wide fact says every row may have changed.
    await db.query(
      `CREATE TRIGGER ${TRUNCATE_TRIGGER} AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
    );
  }
}

/** Captured tables whose triggers are missing or out of date, with why. */
export async function triggerDrift(db: Queryable, schema: string, tables: TableInfo[]) {
  const triggers = await captureTriggers(db, schema);
  const out: { tables: string[]; detail: string[] } = { tables: [], detail: [] };
  for (const table of tables) {
    const present = triggers.get(table.name);
    if (!CAPTURE_TRIGGERS.every((name) => present?.has(name))) {
      out.tables.push(table.name);
      out.detail.push(`${table.name} has no capture triggers (added after install, or installed by an older Upkeep)`);
    } else if ([...(present?.values() ?? [])].some((args) => args.join("\0") !== table.key.join("\0"))) {
      out.tables.push(table.name);
      out.detail.push(`${table.name}'s primary key changed after install`);
    }
  }
  return out;
}
