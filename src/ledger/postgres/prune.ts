// Pruning the PostgreSQL ledger by retention policy (ledger/retention.ts), in one transaction: the facts removed and
// the horizons that say so commit together. Concurrent passes queue on the head and floor rows of the meta table.
import type pg from "pg";
import { FLOOR_KEY, horizonOf, parseHorizons, TABLE_HORIZON_PREFIX } from "../core.ts";
import { coversEveryTable, cutOf, type PruneStep, prunePolicies, pruneSteps, windowsOf } from "../retention.ts";
import type { Horizons, PruneOptions } from "../types.ts";
import type { Names, Queryable } from "./schema.ts";

/** The meta rows that hold horizons (the floor and each table's own), as a SQL condition on `key`. */
export const HORIZON_KEYS = `(key = '${FLOOR_KEY}' OR left(key, ${TABLE_HORIZON_PREFIX.length}) = '${TABLE_HORIZON_PREFIX}')`;

/** The floor and per-table horizons stored in the meta table. */
export async function readHorizons(db: Queryable, n: Names): Promise<Horizons> {
  const { rows } = await db.query<{ key: string; value: string }>(
    `SELECT key, value FROM ${n.meta} WHERE ${HORIZON_KEYS}`,
  );
  return parseHorizons(rows);
}

export async function prunePostgres(
  pool: pg.Pool,
  n: Names,
  options: PruneOptions,
): Promise<{ pruned: number; horizon: number }> {
  const retention = prunePolicies(options);
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    try {
      await client.query("SELECT set_config('upkeep.pruning', 'on', true)");
      const { rows } = await client.query<{ key: string; value: string }>(
        `SELECT key, value FROM ${n.meta} WHERE key IN ('head', '${FLOOR_KEY}') FOR UPDATE`,
      );
      const head = Number(rows.find((r) => r.key === "head")?.value ?? 0);
      // A live hold: some process still needs every fact after its position.
      const held = await client.query<{ p: string | null }>(
        `SELECT min(position) AS p FROM ${n.holds} WHERE expires > now()`,
      );
      const hold = held.rows[0]?.p == null ? head : Number(held.rows[0].p);
      const limit = Math.min(head, options.atOrBelow ?? head, hold);
      const firstRecent = new Map<number, number | undefined>();
      for (const windowMs of windowsOf(retention)) {
        const recent = await client.query<{ offset: string }>(
          `SELECT ledger_offset AS offset FROM ${n.facts}
              WHERE ledger_offset IS NOT NULL AND committed_at >= now() - make_interval(secs => $1::float8 / 1000)
              ORDER BY ledger_offset LIMIT 1`,
          [windowMs],
        );
        firstRecent.set(windowMs, recent.rows[0] ? Number(recent.rows[0].offset) : undefined);
      }
      let pruned = 0;
      for (const step of pruneSteps(retention, (policy) => cutOf(policy, limit, firstRecent))) {
        pruned += coversEveryTable(step) ? await prunePrefix(client, n, step.cut) : await pruneTables(client, n, step);
      }
      const horizon = horizonOf(await readHorizons(client, n)).horizon;
      await client.query("COMMIT");
      return { pruned, horizon };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
  } finally {
    client.release();
  }
}

/** Every table's facts at or below `cut`: the floor rises to it. */
async function prunePrefix(client: pg.PoolClient, n: Names, cut: number): Promise<number> {
  const deleted = await client.query(`DELETE FROM ${n.facts} WHERE ledger_offset <= $1`, [cut]);
  await client.query(
    `UPDATE ${n.meta} SET value = greatest(value::bigint, $1::bigint)::text WHERE key = '${FLOOR_KEY}'`,
    [cut],
  );
  return deleted.rowCount ?? 0;
}

/** Some tables' facts at or below the step's cut, in one statement: each table that lost facts gets its horizon
 *  raised to the highest offset removed (above it, its facts are complete). */
async function pruneTables(client: pg.PoolClient, n: Names, step: PruneStep): Promise<number> {
  const only = "only" in step;
  const { rows } = await client.query<{ tbl: string; last: string; removed: string }>(
    `WITH gone AS (
       DELETE FROM ${n.facts} WHERE ledger_offset <= $1 AND ${only ? "" : "NOT "}(tbl = ANY($2::text[]))
       RETURNING tbl, ledger_offset)
     SELECT tbl, max(ledger_offset)::text AS last, count(*)::text AS removed FROM gone GROUP BY tbl`,
    [step.cut, only ? step.only : step.except],
  );
  if (rows.length === 0) return 0;
  await client.query(
    `INSERT INTO ${n.meta} (key, value)
       SELECT $1 || t.tbl, t.last FROM unnest($2::text[], $3::text[]) AS t(tbl, last)
     ON CONFLICT (key) DO UPDATE SET value = greatest(${n.meta}.value::bigint, excluded.value::bigint)::text`,
    [TABLE_HORIZON_PREFIX, rows.map((r) => r.tbl), rows.map((r) => r.last)],
  );
  return rows.reduce((sum, r) => sum + Number(r.removed), 0);
}
