// Logical capture and TRUNCATE of a partition. Upkeep's publication publishes partitioned tables through their
// root (publish_via_partition_root), and pgoutput then sends a TRUNCATE only when it names the root: a
// `TRUNCATE events_eu` of one partition is left out of the stream, and pages reading `events` would stay stale.
// So every partition of a captured partitioned table (at every level) gets a statement trigger that fires only on
// TRUNCATE and emits a transactional logical decoding message naming the root; the consumer, which asks pgoutput
// for messages (`messages 'true'`, PostgreSQL 14 and later), turns it into the root's table-wide truncate fact, in
// the transaction's order. No trigger sits in any other write's path. A TRUNCATE of the root fires the
// partitions' triggers too: the consumer drops a truncate fact that repeats the one just before it.
import { LEDGER } from "../../constants.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";
import type { Names, Queryable } from "./schema.ts";

export const PARTITION_TRUNCATE_TRIGGER = `${LEDGER.triggerPrefix}partition_truncate`;
/** The prefix of the logical decoding messages the triggers emit. */
export const TRUNCATE_MESSAGE_PREFIX = "upkeep_truncate";

export function partitionFunction(n: Names): string {
  return `${quoteIdent(n.schema)}.${quoteIdent("upkeep_truncate_partition")}`;
}

/**
 * SECURITY DEFINER: the installing role may replicate, the role truncating need not. No EXCEPTION block: a
 * message emitted inside a subtransaction is decoded after the transaction's other changes (checked on
 * PostgreSQL 15), which would put the truncate fact after writes that followed it; emitting a message needs no
 * privilege and no table, so it does not fail where the TRUNCATE itself succeeds.
 */
export function partitionFunctionSql(n: Names): string {
  return `CREATE OR REPLACE FUNCTION ${partitionFunction(n)}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_logical_emit_message(true, ${quoteLiteral(TRUNCATE_MESSAGE_PREFIX)},
    json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_ARGV[0])::text);
  RETURN NULL;
END
$fn$`;
}

/** Every partition (at every level) of the captured partitioned tables, with its root, and whether it has the
 *  trigger already. */
async function partitions(
  db: Queryable,
  schema: string,
  roots: string[],
): Promise<{ partition: string; schema: string; root: string; present: boolean }[]> {
  const { rows } = await db.query<{ partition: string; schema: string; root: string; present: boolean }>(
    `SELECT c.relname AS partition, ns.nspname AS schema, t.name AS root,
            EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = $3
                      AND pg_catalog.encode(tg.tgargs, 'escape') = t.name || '\\000') AS present
       FROM unnest($2::text[]) AS t(name)
       JOIN pg_class r ON r.relname = t.name AND r.relkind = 'p'
        AND r.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
       CROSS JOIN LATERAL pg_partition_tree(r.oid) AS tree
       JOIN pg_class c ON c.oid = tree.relid JOIN pg_namespace ns ON ns.oid = c.relnamespace
      WHERE tree.level > 0 ORDER BY 1`,
    [schema, roots, PARTITION_TRUNCATE_TRIGGER],
  );
  return rows;
}

/** Gives every partition of the captured partitioned tables its trigger (logical capture). */
export async function syncPartitionTriggers(db: Queryable, n: Names, tables: string[]): Promise<void> {
  await db.query(partitionFunctionSql(n));
  for (const p of await partitions(db, n.schema, tables)) {
    if (p.present) continue;
    const t = `${quoteIdent(p.schema)}.${quoteIdent(p.partition)}`;
    await db.query(`DROP TRIGGER IF EXISTS ${PARTITION_TRUNCATE_TRIGGER} ON ${t}`);
    await db.query(
      `CREATE TRIGGER ${PARTITION_TRUNCATE_TRIGGER} AFTER TRUNCATE ON ${t}
       FOR EACH STATEMENT EXECUTE FUNCTION ${partitionFunction(n)}(${quoteLiteral(p.root)})`,
    );
  }
}

/** Removes the function and, with it, every partition's trigger (uninstall, or a switch to trigger capture). */
export async function dropPartitionTriggers(db: Queryable, n: Names): Promise<void> {
  await db.query(`DROP FUNCTION IF EXISTS ${partitionFunction(n)}() CASCADE`);
}

/** Partitions of captured tables without their trigger (attached after install). */
export async function partitionDrift(db: Queryable, schema: string, tables: string[]) {
  const missing = (await partitions(db, schema, tables)).filter((p) => !p.present);
  return missing.map((p) => ({
    table: p.root,
    detail: `${p.partition} (a partition of ${p.root}) has no TRUNCATE trigger (attached after install)`,
  }));
}
