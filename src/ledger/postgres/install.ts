// Installing the PostgreSQL ledger: its tables, the one generic capture function and its triggers, and the
// checks that the triggers still match the schema.
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
import { randomBytes } from "node:crypto";
import pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";
import type { InstallReport } from "../types.ts";

export const INSERT_TRIGGER = `${LEDGER.triggerPrefix}insert`;
export const UPDATE_TRIGGER = `${LEDGER.triggerPrefix}update`;
export const DELETE_TRIGGER = `${LEDGER.triggerPrefix}delete`;
export const TRUNCATE_TRIGGER = `${LEDGER.triggerPrefix}truncate`;
export const CAPTURE_TRIGGERS = [INSERT_TRIGGER, UPDATE_TRIGGER, DELETE_TRIGGER, TRUNCATE_TRIGGER];
const GUARD_FUNCTION = "upkeep_guard_facts";
/** Serializes concurrent installs and uninstalls. */
const INSTALL_LOCK_KEY = LEDGER.pgSequencerLockKey + 1;

export interface Names {
  schema: string;
  facts: string;
  meta: string;
  holds: string;
  lease: string;
  capture: string;
  guard: string;
}

export function names(schema: string): Names {
  const s = quoteIdent(schema);
  return {
    schema,
    facts: `${s}.${quoteIdent(LEDGER.factsTable)}`,
    meta: `${s}.${quoteIdent(LEDGER.metaTable)}`,
    holds: `${s}.${quoteIdent(LEDGER.holdsTable)}`,
    lease: `${s}.${quoteIdent(LEDGER.pgLeaseTable)}`,
    capture: `${s}.${quoteIdent(LEDGER.pgFunction)}`,
    guard: `${s}.${quoteIdent(GUARD_FUNCTION)}`,
  };
}

export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export async function currentSchema(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ schema: string }>("SELECT current_schema() AS schema");
  return rows[0]?.schema as string;
}

interface TableInfo {
  name: string;
  key: string[];
}

const OWN_TABLES = [LEDGER.factsTable, LEDGER.metaTable, LEDGER.holdsTable, LEDGER.pgLeaseTable];

async function applicationTables(db: Queryable, schema: string): Promise<TableInfo[]> {
  const { rows } = await db.query<{ name: string; key: string[] | null }>(
    `SELECT c.relname AS name,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS key
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition AND NOT (c.relname = ANY($2))
     ORDER BY c.relname`,
    [schema, OWN_TABLES],
  );
  return rows.map((r) => ({ name: r.name, key: r.key ?? [] }));
}

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

function captureFunctionSql(n: Names): string {
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

function guardFunctionSql(n: Names): string {
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

export async function withClient<T>(url: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function inTransaction<T>(client: pg.Client, body: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await body();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

async function exists(db: Queryable, schema: string, table: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    `${quoteIdent(schema)}.${quoteIdent(table)}`,
  ]);
  return rows[0]?.ok === true;
}

export async function isInstalled(db: Queryable, schema: string): Promise<boolean> {
  return (await exists(db, schema, LEDGER.metaTable)) && (await exists(db, schema, LEDGER.factsTable));
}

/** How long install waits for a table lock before it gives up and retries: below PostgreSQL's deadlock_timeout
 *  (1 s by default), so that in a lock cycle with a user's transaction it is install that yields, never the
 *  user's write. */
const INSTALL_LOCK_TIMEOUT_MS = 300;
const INSTALL_ATTEMPTS = 20;

/**
 * Creates the ledger's tables and (re)creates the capture triggers. Idempotent. Installing while the app writes
 * never fails a user's write: when the triggers already match the schema (every restart) it takes no table lock
 * at all, and otherwise it takes application tables' locks before the facts table's (the order writers take
 * them in, through their triggers), with a lock timeout below the deadlock timeout, retrying until it gets them.
 */
export async function installPostgres(url: string, exclude: string[] = []): Promise<InstallReport> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await installOnce(url, exclude);
    } catch (error) {
      const code = (error as { code?: string }).code;
      // 55P03 lock_not_available (our lock timeout), 40P01 deadlock_detected (install chosen as the victim).
      if ((code !== "55P03" && code !== "40P01") || attempt >= INSTALL_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 2000) * Math.random()));
    }
  }
}

async function installOnce(url: string, exclude: string[]): Promise<InstallReport> {
  return withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      await client.query(`SET LOCAL lock_timeout = ${INSTALL_LOCK_TIMEOUT_MS}`);
      const schema = await currentSchema(client);
      const n = names(schema);
      const created = !(await isInstalled(client, schema));
      // Facts that are gone (a dropped facts table, a first install) start a new incarnation: offsets restart at
      // 1, and an offset of the old log must never name a new fact.
      const freshLog = !(await exists(client, schema, LEDGER.factsTable));
      await client.query(`CREATE TABLE IF NOT EXISTS ${n.meta} (key text PRIMARY KEY, value text NOT NULL)`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${n.facts} (
        staging_id bigserial PRIMARY KEY,
        ledger_offset bigint,
        tbl text NOT NULL,
        op text NOT NULL,
        key_columns text[],
        old json,
        new json,
        txid text,
        committed_at timestamptz)`);
      // Installs from before images were json: jsonb re-parses, which fails on \u0000 and lone surrogates.
      const { rows: types } = await client.query<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'new'`,
        [n.facts],
      );
      if (types[0]?.type === "jsonb") {
        await client.query(`ALTER TABLE ${n.facts} ALTER COLUMN old TYPE json, ALTER COLUMN new TYPE json`);
      }
      // Existing indexes are left alone: even CREATE INDEX IF NOT EXISTS locks the facts table.
      if (!(await exists(client, schema, "upkeep_facts_offset"))) {
        await client.query(
          `CREATE UNIQUE INDEX upkeep_facts_offset ON ${n.facts} (ledger_offset) WHERE ledger_offset IS NOT NULL`,
        );
      }
      // The sequencer's poll reads this partial index: it holds only the few facts waiting for an offset.
      if (!(await exists(client, schema, "upkeep_facts_unsequenced"))) {
        await client.query(
          `CREATE INDEX upkeep_facts_unsequenced ON ${n.facts} (staging_id) WHERE ledger_offset IS NULL`,
        );
      }
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${n.holds} (id text PRIMARY KEY, position bigint NOT NULL, expires timestamptz NOT NULL)`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${n.lease} (id boolean PRIMARY KEY DEFAULT true CHECK (id), holder text NOT NULL, until timestamptz NOT NULL)`,
      );
      await client.query(`INSERT INTO ${n.lease} (holder, until) VALUES ('', '-infinity') ON CONFLICT DO NOTHING`);
      await client.query(
        `INSERT INTO ${n.meta} (key, value) VALUES ('incarnation', $1), ('head', '0'), ('horizon', '0')
         ON CONFLICT (key) DO NOTHING`,
        [randomBytes(16).toString("hex")],
      );
      if (freshLog) {
        await client.query(
          `UPDATE ${n.meta} SET value = CASE key WHEN 'incarnation' THEN $1 ELSE '0' END WHERE key IN ('incarnation', 'head', 'horizon')`,
          [randomBytes(16).toString("hex")],
        );
        await client.query(`DELETE FROM ${n.holds}`);
      }
      await client.query(
        `INSERT INTO ${n.meta} (key, value) VALUES ('exclude', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [JSON.stringify([...exclude].sort())],
      );
      await client.query(guardFunctionSql(n));
      await client.query(captureFunctionSql(n));
      // Only tables whose triggers differ from what they should be are touched (DDL on a table locks it).
      const present = await captureTriggers(client, schema);
      const tables = await applicationTables(client, schema);
      const captured = tables.filter((t) => !exclude.includes(t.name));
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
        for (const name of CAPTURE_TRIGGERS) await client.query(`DROP TRIGGER IF EXISTS ${name} ON ${t}`);
      }
      for (const table of captured) {
        if (upToDate(table.name)) continue;
        const t = `${quoteIdent(schema)}.${quoteIdent(table.name)}`;
        const args = table.key.map(quoteLiteral).join(", ");
        await client.query(
          `CREATE TRIGGER ${INSERT_TRIGGER} AFTER INSERT ON ${t} REFERENCING NEW TABLE AS upkeep_new
           FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
        );
        await client.query(
          `CREATE TRIGGER ${DELETE_TRIGGER} AFTER DELETE ON ${t} REFERENCING OLD TABLE AS upkeep_old
           FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
        );
        // *<> compares the rows' binary images: works for every column type (json has no equality operator)
        // and skips no-op updates.
        await client.query(
          `CREATE TRIGGER ${UPDATE_TRIGGER} AFTER UPDATE ON ${t} FOR EACH ROW WHEN (OLD.* *<> NEW.*)
           EXECUTE FUNCTION ${n.capture}(${args})`,
        );
        // TRUNCATE fires no delete trigger: one table-wide fact says every row may have changed.
        await client.query(
          `CREATE TRIGGER ${TRUNCATE_TRIGGER} AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
        );
      }
      // The facts table's own guard triggers last: writers lock their table, then the facts table.
      const { rows: guards } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname IN ('upkeep_guard_delete', 'upkeep_guard_truncate')`,
        [n.facts],
      );
      if (guards[0]?.n !== 2) {
        await client.query(`DROP TRIGGER IF EXISTS upkeep_guard_delete ON ${n.facts}`);
        await client.query(`DROP TRIGGER IF EXISTS upkeep_guard_truncate ON ${n.facts}`);
        await client.query(
          `CREATE TRIGGER upkeep_guard_delete AFTER DELETE ON ${n.facts} FOR EACH STATEMENT EXECUTE FUNCTION ${n.guard}()`,
        );
        await client.query(
          `CREATE TRIGGER upkeep_guard_truncate AFTER TRUNCATE ON ${n.facts} FOR EACH STATEMENT EXECUTE FUNCTION ${n.guard}()`,
        );
      }
      const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'incarnation'`);
      return {
        kind: "postgres" as const,
        tables: captured.map((t) => t.name),
        keyless: captured.filter((t) => t.key.length === 0).map((t) => t.name),
        excluded: tables.filter((t) => exclude.includes(t.name)).map((t) => t.name),
        incarnation: rows[0]?.value as string,
        created,
      };
    }),
  );
}

export async function uninstallPostgres(url: string): Promise<void> {
  await withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      const n = names(await currentSchema(client));
      // CASCADE drops exactly the capture triggers, which depend on the function.
      await client.query(`DROP FUNCTION IF EXISTS ${n.capture}() CASCADE`);
      await client.query(`DROP TABLE IF EXISTS ${n.facts}`);
      await client.query(`DROP TABLE IF EXISTS ${n.meta}`);
      await client.query(`DROP TABLE IF EXISTS ${n.holds}`);
      await client.query(`DROP TABLE IF EXISTS ${n.lease}`);
      await client.query(`DROP FUNCTION IF EXISTS ${n.guard}()`);
    }),
  );
}

export async function excludedTables(db: Queryable, n: Names): Promise<string[]> {
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'exclude'`);
  return JSON.parse(rows[0]?.value ?? "[]") as string[];
}

export async function drift(db: Queryable, schema: string, n: Names): Promise<{ tables: string[]; detail: string[] }> {
  const exclude = await excludedTables(db, n);
  const triggers = await captureTriggers(db, schema);
  const tables: string[] = [];
  const detail: string[] = [];
  for (const table of await applicationTables(db, schema)) {
    if (exclude.includes(table.name)) continue;
    const present = triggers.get(table.name);
    if (!CAPTURE_TRIGGERS.every((name) => present?.has(name))) {
      tables.push(table.name);
      detail.push(`${table.name} has no capture triggers (added after install, or installed by an older Upkeep)`);
    } else if ([...(present?.values() ?? [])].some((args) => args.join("\0") !== table.key.join("\0"))) {
      tables.push(table.name);
      detail.push(`${table.name}'s primary key changed after install`);
    }
  }
  return { tables, detail };
}

/** Names of the tables that have capture triggers now. */
export async function capturedNow(db: Queryable, schema: string): Promise<Set<string>> {
  const triggers = await captureTriggers(db, schema);
  return new Set([...triggers.keys()]);
}
