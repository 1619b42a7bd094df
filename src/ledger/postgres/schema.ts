// Names and catalog reads the PostgreSQL ledger's modules share: the ledger's own objects, and the application
// tables a capture mode can capture.
import type pg from "pg";
import { LEDGER } from "../../constants.ts";
import { quoteIdent } from "../core.ts";

/** How changes reach the ledger on PostgreSQL (install.ts chooses; logical.ts and triggers.ts implement). */
export type CaptureMode = "logical" | "triggers";

const GUARD_FUNCTION = "upkeep_guard_facts";
/** Serializes concurrent installs and uninstalls. */
export const INSTALL_LOCK_KEY = LEDGER.pgSequencerLockKey + 1;
/** Held by a session for a whole install or uninstall, the slot included (install.ts, installRunning). */
export const INSTALL_RUN_KEY = LEDGER.pgSequencerLockKey + 2;

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

export interface TableInfo {
  name: string;
  key: string[];
}

const OWN_TABLES = [LEDGER.factsTable, LEDGER.metaTable, LEDGER.holdsTable, LEDGER.pgLeaseTable];

/** The schema's tables Upkeep may capture. Logical capture publishes partitioned tables through their root;
 *  triggers see plain tables only. */
export async function applicationTables(db: Queryable, schema: string, mode: CaptureMode): Promise<TableInfo[]> {
  const { rows } = await db.query<{ name: string; key: string[] | null }>(
    `SELECT c.relname AS name,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS key
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind = ANY($3) AND NOT c.relispartition AND NOT (c.relname = ANY($2))
     ORDER BY c.relname`,
    [schema, OWN_TABLES, mode === "logical" ? ["r", "p"] : ["r"]],
  );
  return rows.map((r) => ({ name: r.name, key: r.key ?? [] }));
}
