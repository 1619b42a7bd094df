// Installing the PostgreSQL ledger: its tables and, per capture mode, the capture triggers (triggers.ts) or the
// publication, replica identities and replication slot that logical capture reads (logical.ts). The mode is
// chosen at install (`auto` prefers logical) and recorded in the meta table; changing it starts a new
// incarnation, since facts of the two modes cannot be proven to join without a gap or an overlap.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { LEDGER } from "../../constants.ts";
import { markOwn } from "../../own.ts";
import { quoteIdent, TABLE_HORIZON_PREFIX } from "../core.ts";
import type { InstallReport } from "../types.ts";
import {
  type CaptureChoice,
  chooseCapture,
  dropLogical,
  ensureSlot,
  identityNotFull,
  logicalNames,
  publicationTables,
  readiness,
  restoreIdentitySql,
  syncPublication,
} from "./logical.ts";
import { dropPartitionTriggers, partitionDrift, syncPartitionTriggers } from "./partitions.ts";
import type { CaptureMode } from "./schema.ts";
import {
  applicationTables,
  currentSchema,
  INSTALL_LOCK_KEY,
  INSTALL_RUN_KEY,
  type Names,
  names,
  type Queryable,
  type TableInfo,
} from "./schema.ts";
import { captureFunctionSql, captureTriggers, guardFunctionSql, syncTriggers, triggerDrift } from "./triggers.ts";

export async function withClient<T>(url: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = markOwn(new pg.Client({ connectionString: url }));
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

export interface PostgresInstallOptions {
  exclude?: string[];
  capture?: CaptureChoice;
  /** Where install reports that `auto` fell back to triggers, with the fix. Default: console.warn. */
  warn?: (message: string) => void;
}

/**
 * Creates the ledger's tables and puts capture in place: idempotent. Installing while the app writes never fails
 * a user's write: when capture already matches the schema (every restart) it takes no table lock at all, and
 * otherwise it takes application tables' locks before the facts table's (the order writers take them in,
 * through their triggers), with a lock timeout below the deadlock timeout, retrying until it gets them.
 */
export function installPostgres(url: string, options: PostgresInstallOptions = {}): Promise<InstallReport> {
  return whileInstalling(url, () => installNow(url, options));
}

/**
 * Runs an install or uninstall holding a session advisory lock (INSTALL_RUN_KEY) from its first statement to the
 * slot created or dropped after it, so a running ledger can tell an install under way (its tables there, its slot
 * not yet) from a lost slot (installRunning).
 */
function whileInstalling<T>(url: string, body: () => Promise<T>): Promise<T> {
  return withClient(url, async (guard) => {
    await guard.query("SELECT pg_advisory_lock($1)", [INSTALL_RUN_KEY]);
    try {
      return await body();
    } finally {
      await guard.query("SELECT pg_advisory_unlock($1)", [INSTALL_RUN_KEY]).catch(() => {});
    }
  });
}

/** True while some process installs or uninstalls the ledger of this database. */
export async function installRunning(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ running: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1
                      AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
            AS running`,
    [INSTALL_RUN_KEY],
  );
  return rows[0]?.running === true;
}

async function installNow(url: string, options: PostgresInstallOptions): Promise<InstallReport> {
  const exclude = options.exclude ?? [];
  const decided = await withClient(url, async (client) => {
    const logical = await logicalNames(client, await currentSchema(client));
    return chooseCapture(options.capture ?? "auto", await readiness(client, logical.slot));
  });
  if (decided.warning) (options.warn ?? console.warn)(decided.warning);
  let report: InstallReport & { previous: CaptureMode | undefined };
  for (let attempt = 1; ; attempt++) {
    try {
      report = await installOnce(url, exclude, decided.mode, decided.reason);
      break;
    } catch (error) {
      const code = (error as { code?: string }).code;
      // 55P03 lock_not_available (our lock timeout), 40P01 deadlock_detected (install chosen as the victim).
      if ((code !== "55P03" && code !== "40P01") || attempt >= INSTALL_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 2000) * Math.random()));
    }
  }
  const { previous, ...result } = report;
  await withClient(url, async (client) => {
    const schema = await currentSchema(client);
    const n = names(schema);
    const logical = await logicalNames(client, schema);
    if (decided.mode === "triggers") {
      if (previous === "logical") await dropLogical(client, logical);
      return;
    }
    // The slot is created after the publication committed: pgoutput looks publications up as of each change.
    const slot = await ensureSlot(client, logical.slot);
    if (!slot.created) return;
    // A slot created now starts capture now. When facts of an earlier slot exist, what was committed between
    // that slot's loss and now was never captured: a new incarnation makes every open page reload.
    await client.query(`UPDATE ${n.meta} SET value = '0/0' WHERE key = 'lsn'`);
    if (!result.created && previous === "logical") {
      const incarnation = randomBytes(16).toString("hex");
      await client.query(`UPDATE ${n.meta} SET value = $1 WHERE key = 'incarnation'`, [incarnation]);
      await client.query("SELECT pg_notify($1, 'incarnation')", [LEDGER.pgNotifyChannel]);
      result.incarnation = incarnation;
    }
  });
  return result;
}

async function installOnce(
  url: string,
  exclude: string[],
  mode: CaptureMode,
  reason: string,
): Promise<InstallReport & { previous: CaptureMode | undefined }> {
  return withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      await client.query(`SET LOCAL lock_timeout = ${INSTALL_LOCK_TIMEOUT_MS}`);
      const schema = await currentSchema(client);
      const n = names(schema);
      const created = !(await isInstalled(client, schema));
      const previous = created ? undefined : await captureMode(client, n);
      // Facts that are gone (a dropped facts table, a first install) start a new incarnation: offsets restart at
      // 1, and an offset of the old log must never name a new fact. So does a change of capture mode.
      const freshLog =
        !(await exists(client, schema, LEDGER.factsTable)) || (previous !== undefined && previous !== mode);
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
        `INSERT INTO ${n.meta} (key, value) VALUES ('incarnation', $1), ('head', '0'), ('horizon', '0'), ('lsn', '0/0')
         ON CONFLICT (key) DO NOTHING`,
        [randomBytes(16).toString("hex")],
      );
      if (freshLog) {
        if (previous !== undefined && previous !== mode) {
          await client.query("SELECT set_config('upkeep.pruning', 'on', true)");
          await client.query(`DELETE FROM ${n.facts}`);
        }
        await client.query(
          `UPDATE ${n.meta} SET value = CASE key WHEN 'incarnation' THEN $1 ELSE '0' END WHERE key IN ('incarnation', 'head', 'horizon')`,
          [randomBytes(16).toString("hex")],
        );
        await client.query(`DELETE FROM ${n.holds}`);
        // Tables' own horizons belong to the old log.
        await client.query(`DELETE FROM ${n.meta} WHERE left(key, $1) = $2`, [
          TABLE_HORIZON_PREFIX.length,
          TABLE_HORIZON_PREFIX,
        ]);
        // The new incarnation starts now: a slot that survived (its facts table was dropped) does not carry
        // changes committed before it into the new log.
        await client.query(`UPDATE ${n.meta} SET value = pg_current_wal_flush_lsn()::text WHERE key = 'lsn'`);
        // Running processes read the new incarnation at once (on commit), not at their next fact.
        await client.query("SELECT pg_notify($1, 'incarnation')", [LEDGER.pgNotifyChannel]);
      }
      await client.query(
        `INSERT INTO ${n.meta} (key, value) VALUES ('exclude', $1), ('capture', $2), ('capture_reason', $3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [JSON.stringify([...exclude].sort()), mode, reason],
      );
      await client.query(guardFunctionSql(n));
      await client.query(captureFunctionSql(n));
      const tables = await applicationTables(client, schema, mode);
      const captured = tables.filter((t) => !exclude.includes(t.name));
      await syncTriggers(client, schema, n, mode === "triggers" ? captured : []);
      if (mode === "logical") await installLogical(client, n, captured);
      else if (previous === "logical") {
        await restoreIdentities(client, n);
        await dropPartitionTriggers(client, n);
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
        capture: mode,
        captureReason: reason,
        tables: captured.map((t) => t.name),
        keyless: captured.filter((t) => t.key.length === 0).map((t) => t.name),
        excluded: tables.filter((t) => exclude.includes(t.name)).map((t) => t.name),
        incarnation: rows[0]?.value as string,
        created,
        previous,
      };
    }),
  );
}

/** The publication names exactly the captured tables; they and their partitions log whole old rows. What each
 *  table's replica identity was before is kept in the meta table, for uninstall to put back. */
async function installLogical(client: pg.Client, n: Names, captured: TableInfo[]): Promise<void> {
  const tables = captured.map((t) => t.name);
  await syncPublication(client, n.schema, (await logicalNames(client, n.schema)).publication, tables);
  await syncPartitionTriggers(client, n, tables);
  const toChange = await identityNotFull(client, n.schema, tables);
  if (toChange.length === 0) return;
  const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'replica_identity'`);
  const before = JSON.parse(rows[0]?.value ?? "{}") as Record<string, [string, string | null]>;
  for (const t of toChange) {
    before[t.name] ??= [t.identity, t.index];
    await client.query(`ALTER TABLE ${quoteIdent(n.schema)}.${quoteIdent(t.name)} REPLICA IDENTITY FULL`);
  }
  await client.query(
    `INSERT INTO ${n.meta} (key, value) VALUES ('replica_identity', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    [JSON.stringify(before)],
  );
}

async function restoreIdentities(client: Queryable, n: Names): Promise<void> {
  const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'replica_identity'`);
  const before = JSON.parse(rows[0]?.value ?? "{}") as Record<string, [string, string | null]>;
  for (const [table, [identity, index]] of Object.entries(before)) {
    const t = `${quoteIdent(n.schema)}.${quoteIdent(table)}`;
    const { rows: present } = await client.query("SELECT to_regclass($1) AS r", [t]);
    if (present[0]?.r) await client.query(restoreIdentitySql(t, identity, index));
  }
  await client.query(`DELETE FROM ${n.meta} WHERE key = 'replica_identity'`);
}

/** Removes everything install added (tables, triggers, functions, publication, slot, replica identities). */
export function uninstallPostgres(url: string): Promise<void> {
  return whileInstalling(url, () => uninstallNow(url));
}

async function uninstallNow(url: string): Promise<void> {
  const logical = await withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      const schema = await currentSchema(client);
      const n = names(schema);
      if (await exists(client, schema, LEDGER.metaTable)) await restoreIdentities(client, n);
      // CASCADE drops exactly the capture triggers, which depend on the function.
      await client.query(`DROP FUNCTION IF EXISTS ${n.capture}() CASCADE`);
      await dropPartitionTriggers(client, n);
      await client.query(`DROP TABLE IF EXISTS ${n.facts}`);
      await client.query(`DROP TABLE IF EXISTS ${n.meta}`);
      await client.query(`DROP TABLE IF EXISTS ${n.holds}`);
      await client.query(`DROP TABLE IF EXISTS ${n.lease}`);
      await client.query(`DROP FUNCTION IF EXISTS ${n.guard}()`);
      return logicalNames(client, schema);
    }),
  );
  await withClient(url, (client) => dropLogical(client, logical));
}

/** The capture mode recorded at install (installs from before the choice existed used triggers). */
export async function captureMode(db: Queryable, n: Names): Promise<CaptureMode> {
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'capture'`);
  return rows[0]?.value === "logical" ? "logical" : "triggers";
}

export async function excludedTables(db: Queryable, n: Names): Promise<string[]> {
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'exclude'`);
  return JSON.parse(rows[0]?.value ?? "[]") as string[];
}

/** Captured tables whose capture is missing or out of date (a new table, a new partition, a changed key). */
export async function drift(db: Queryable, schema: string, n: Names): Promise<{ tables: string[]; detail: string[] }> {
  const exclude = await excludedTables(db, n);
  const mode = await captureMode(db, n);
  const tables = (await applicationTables(db, schema, mode)).filter((t) => !exclude.includes(t.name));
  if (mode === "triggers") return triggerDrift(db, schema, tables);
  const published = new Set(await publicationTables(db, schema, (await logicalNames(db, schema)).publication));
  const out: { tables: string[]; detail: string[] } = { tables: [], detail: [] };
  for (const t of tables) {
    if (published.has(t.name)) continue;
    out.tables.push(t.name);
    out.detail.push(`${t.name} is not in Upkeep's publication (added after install)`);
  }
  const names = tables.filter((t) => published.has(t.name)).map((t) => t.name);
  for (const t of await identityNotFull(db, schema, names)) {
    out.tables.push(t.name);
    out.detail.push(`${t.name}'s REPLICA IDENTITY is not FULL (a partition added after install?)`);
  }
  for (const p of await partitionDrift(db, schema, names)) {
    if (!out.tables.includes(p.table)) out.tables.push(p.table);
    out.detail.push(p.detail);
  }
  return out;
}

/** Names of the tables captured now (with triggers, or in the publication). */
export async function capturedNow(db: Queryable, schema: string): Promise<Set<string>> {
  const n = names(schema);
  if ((await captureMode(db, n)) === "logical") {
    return new Set(await publicationTables(db, schema, (await logicalNames(db, schema)).publication));
  }
  return new Set([...(await captureTriggers(db, schema)).keys()]);
}
