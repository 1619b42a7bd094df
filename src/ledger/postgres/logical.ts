// Logical capture's server objects: the publication that names the captured tables, REPLICA IDENTITY FULL on
// them (so updates and deletes log the whole old row), and the replication slot Upkeep owns. Also the checks
// that decide whether the server can capture logically at all, shared by install (`--capture auto`) and doctor.
import { createHash } from "node:crypto";
import { LogicalCaptureError } from "../../errors.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";
import type { CaptureMode, Queryable } from "./schema.ts";

export type { CaptureMode };

export type CaptureChoice = CaptureMode | "auto";

/** The publication (per database and schema) and the slot (cluster-wide, so named after database and schema). */
export interface LogicalNames {
  publication: string;
  slot: string;
}

export async function logicalNames(db: Queryable, schema: string): Promise<LogicalNames> {
  const { rows } = await db.query<{ db: string }>("SELECT current_database() AS db");
  return logicalNamesFor(rows[0]?.db as string, schema);
}

export function logicalNamesFor(database: string, schema: string): LogicalNames {
  // Slot names allow [a-z0-9_] and 63 characters: a readable prefix plus a hash that keeps distinct pairs apart.
  const clean = (s: string, n: number) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, "_")
      .slice(0, n);
  const hash = createHash("sha256").update(`${database}\0${schema}`).digest("hex").slice(0, 8);
  return {
    publication: schema === "public" ? "upkeep_capture" : `upkeep_capture_${schema}`,
    slot: `upkeep_${clean(database, 30)}_${clean(schema, 12)}_${hash}`,
  };
}

export interface Readiness {
  walLevel: string;
  role: string;
  mayReplicate: boolean;
  maxSlots: number;
  usedSlots: number;
  version: number;
  slotExists: boolean;
}

export async function readiness(db: Queryable, slot: string): Promise<Readiness> {
  const { rows } = await db.query<Readiness>(
    `SELECT current_setting('wal_level') AS "walLevel", current_user AS role,
            (r.rolreplication OR r.rolsuper) AS "mayReplicate",
            current_setting('max_replication_slots')::int AS "maxSlots",
            (SELECT count(*)::int FROM pg_replication_slots) AS "usedSlots",
            current_setting('server_version_num')::int AS version,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS "slotExists"
       FROM pg_roles r WHERE r.rolname = current_user`,
    [slot],
  );
  return rows[0] as Readiness;
}

/** What keeps this server from logical capture, each as the error that names its fix (empty: ready). */
export function logicalProblems(r: Readiness): LogicalCaptureError[] {
  const problems: LogicalCaptureError[] = [];
  if (r.version < 130000) {
    problems.push(
      new LogicalCaptureError(
        "version",
        `PostgreSQL ${Math.floor(r.version / 10000)} cannot publish partitioned tables through their root.`,
        "upgrade to PostgreSQL 13 or later, or install with --capture triggers",
      ),
    );
  }
  if (r.walLevel !== "logical") {
    problems.push(
      new LogicalCaptureError(
        "wal_level",
        `The server's wal_level is ${r.walLevel}, not logical: it cannot decode its write-ahead log.`,
        "run `ALTER SYSTEM SET wal_level = logical` as a superuser and restart PostgreSQL (or install with --capture triggers)",
      ),
    );
  }
  if (!r.mayReplicate) {
    problems.push(
      new LogicalCaptureError(
        "privilege",
        `The role ${r.role} may not use replication (it has neither REPLICATION nor SUPERUSER).`,
        `run \`ALTER ROLE ${quoteIdent(r.role)} REPLICATION\` as a superuser (or install with --capture triggers)`,
      ),
    );
  }
  if (!r.slotExists && r.usedSlots >= r.maxSlots) {
    problems.push(
      new LogicalCaptureError(
        "slots",
        `All ${r.maxSlots} replication slots of the server are in use.`,
        "raise max_replication_slots (`ALTER SYSTEM SET max_replication_slots = …` and a restart), or drop an unused slot",
      ),
    );
  }
  return problems;
}

/** The capture mode install uses: `auto` picks logical when the server allows it, else triggers with a warning. */
export function chooseCapture(
  choice: CaptureChoice,
  r: Readiness,
): { mode: CaptureMode; reason: string; warning?: string } {
  if (choice === "triggers") return { mode: "triggers", reason: "chosen at install (--capture triggers)" };
  const problems = logicalProblems(r);
  if (choice === "logical") {
    if (problems.length > 0) throw problems[0];
    return { mode: "logical", reason: "chosen at install (--capture logical)" };
  }
  if (problems.length === 0) {
    return { mode: "logical", reason: "auto: wal_level is logical and the role may replicate" };
  }
  const why = problems.map((p) => p.message.split("\n")[0]).join(" ");
  const fixes = problems.map((p) => p.hint).join("; ");
  return {
    mode: "triggers",
    reason: `auto: ${why}`,
    warning: `Upkeep captures with triggers, which cost every write and cannot see partitioned tables: ${why} To capture from the write-ahead log instead: ${fixes}; then run \`upkeep install\` again.`,
  };
}

/** Puts exactly `tables` in the publication (creating it), touching it only where it differs. */
export async function syncPublication(db: Queryable, schema: string, publication: string, tables: string[]) {
  const qualified = (t: string) => `${quoteIdent(schema)}.${quoteIdent(t)}`;
  const { rows: found } = await db.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [publication]);
  if (found.length === 0) {
    await db.query(
      `CREATE PUBLICATION ${quoteIdent(publication)}
         WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)`,
    );
  }
  const present = new Set(await publicationTables(db, schema, publication));
  const wanted = new Set(tables);
  for (const t of present) {
    if (!wanted.has(t)) await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} DROP TABLE ${qualified(t)}`);
  }
  for (const t of wanted) {
    if (!present.has(t)) await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${qualified(t)}`);
  }
}

export async function publicationTables(db: Queryable, schema: string, publication: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
       JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE p.pubname = $1 AND n.nspname = $2 ORDER BY 1`,
    [publication, schema],
  );
  return rows.map((r) => r.name);
}

/** The captured tables and all their partitions whose REPLICA IDENTITY is not FULL, with what it is. */
export async function identityNotFull(
  db: Queryable,
  schema: string,
  tables: string[],
): Promise<{ name: string; identity: string; index: string | null }[]> {
  const { rows } = await db.query<{ name: string; identity: string; index: string | null }>(
    `SELECT c.relname AS name, c.relreplident AS identity,
            (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid AND i.indisreplident) AS index
       FROM unnest($2::text[]) AS t(name)
       CROSS JOIN LATERAL (SELECT format('%I.%I', $1::text, t.name)::regclass AS rel) AS r
       CROSS JOIN LATERAL (SELECT r.rel AS relid UNION SELECT relid FROM pg_partition_tree(r.rel)) AS tree
       JOIN pg_class c ON c.oid = tree.relid
      WHERE c.relreplident <> 'f' ORDER BY 1`,
    [schema, tables],
  );
  return rows;
}

/** SQL that puts a table's replica identity back as it was before install. */
export function restoreIdentitySql(table: string, identity: string, index: string | null): string {
  const how = identity === "n" ? "NOTHING" : identity === "i" && index ? `USING INDEX ${quoteIdent(index)}` : "DEFAULT";
  return `ALTER TABLE ${table} REPLICA IDENTITY ${how}`;
}

/**
 * Creates the slot when it is missing; true when created. Creating a slot waits for the transactions running
 * at that moment to end (its consistent point), and may not run in a transaction that wrote: it runs on its own
 * connection, after the publication committed (pgoutput looks the publication up as of each change).
 */
export async function ensureSlot(db: Queryable, slot: string): Promise<{ created: boolean; lsn: string }> {
  const { rows } = await db.query<{ lsn: string; status: string | null }>(
    "SELECT confirmed_flush_lsn::text AS lsn, wal_status AS status FROM pg_replication_slots WHERE slot_name = $1",
    [slot],
  );
  // A slot the server invalidated (it kept more WAL than max_slot_wal_keep_size) can never be read again.
  if (rows[0]?.status === "lost") await dropSlot(db, slot);
  else if (rows[0]) return { created: false, lsn: rows[0].lsn };
  try {
    const created = await db.query<{ lsn: string }>(
      "SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')",
      [slot],
    );
    return { created: true, lsn: created.rows[0]?.lsn as string };
  } catch (error) {
    // 42710 duplicate_object: a concurrent install created it first.
    if ((error as { code?: string }).code !== "42710") throw error;
    return ensureSlot(db, slot);
  }
}

/**
 * Drops the slot and the publication. A running leader streams the slot (its replication connection keeps it
 * active): that connection is ended first. Uninstall drops the lease table before, so the leader cannot start
 * streaming again (it checks the lease before it starts).
 */
export async function dropLogical(db: Queryable, names: LogicalNames): Promise<void> {
  await dropSlot(db, names.slot);
  await db.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(names.publication)}`);
}

/** Drops the slot, ending the connection that streams it first. */
async function dropSlot(db: Queryable, slot: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await db.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
        [slot],
      );
      await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [
        slot,
      ]);
      return;
    } catch (error) {
      // 55006 object_in_use: the ended connection has not exited yet.
      if ((error as { code?: string }).code !== "55006" || attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

export interface SlotState {
  exists: boolean;
  active: boolean;
  /** Bytes of WAL written since the slot's confirmed position (what the consumer has not confirmed yet). */
  lagBytes: number;
  /** Bytes of WAL the server keeps for the slot (from its restart position). */
  retainedBytes: number;
  walStatus: string | null;
}

export async function slotState(db: Queryable, slot: string): Promise<SlotState> {
  const { rows } = await db.query<{ active: boolean; lag: string; retained: string; status: string | null }>(
    `SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS retained, wal_status AS status
       FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}`,
  );
  const r = rows[0];
  if (!r) return { exists: false, active: false, lagBytes: 0, retainedBytes: 0, walStatus: null };
  return {
    exists: true,
    active: r.active,
    lagBytes: Number(r.lag ?? 0),
    retainedBytes: Number(r.retained ?? 0),
    walStatus: r.status,
  };
}

/** The warning for a slot past its lag bound: how far behind it is, what it keeps, and the fix. */
export function slotLagMessage(database: string, slot: string, state: SlotState): string {
  return `Upkeep's replication slot ${slot} is ${formatBytes(state.lagBytes)} behind and keeps ${formatBytes(state.retainedBytes)} of WAL on the server${state.active ? "" : " (no process is decoding it)"}: WAL is kept until Upkeep confirms it, and can fill the disk.\n  fix: keep one process with the ledger open (it consumes the slot), or run \`npx upkeep uninstall --database ${database}\` to drop the slot; \`npx upkeep doctor\` shows the details`;
}

export function slotMissingError(database: string, slot: string): LogicalCaptureError {
  return new LogicalCaptureError(
    "slot_missing",
    `Upkeep's replication slot ${slot} is missing from ${database} (dropped by hand, or invalidated after it retained too much WAL): changes are not being captured.`,
    `run \`npx upkeep install --database ${database}\` to recreate it (a new incarnation: open pages reload once)`,
  );
}

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
