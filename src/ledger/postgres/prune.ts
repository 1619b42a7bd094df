// Pruning the PostgreSQL ledger: removing a prefix of offsets that no live follower needs.
import type pg from "pg";
import type { PruneOptions } from "../types.ts";
import type { Names } from "./schema.ts";

export async function prunePostgres(
  pool: pg.Pool,
  n: Names,
  options: PruneOptions,
): Promise<{ pruned: number; horizon: number }> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    try {
      await client.query("SELECT set_config('upkeep.pruning', 'on', true)");
      const { rows } = await client.query<{ key: string; value: string }>(
        `SELECT key, value FROM ${n.meta} WHERE key IN ('head', 'horizon') FOR UPDATE`,
      );
      const values = Object.fromEntries(rows.map((r) => [r.key, Number(r.value)]));
      const head = values.head ?? 0;
      const horizon = values.horizon ?? 0;
      const recent = await client.query<{ offset: string }>(
        `SELECT ledger_offset AS offset FROM ${n.facts}
            WHERE ledger_offset IS NOT NULL AND committed_at >= now() - make_interval(secs => $1::float8 / 1000)
            ORDER BY ledger_offset LIMIT 1`,
        [options.olderThanMs],
      );
      const firstRecent = recent.rows[0] ? Number(recent.rows[0].offset) : undefined;
      // Pruning removes a prefix of offsets: everything up to the first fact that must be kept.
      // A live hold: some process still needs every fact after its position.
      const held = await client.query<{ p: string | null }>(
        `SELECT min(position) AS p FROM ${n.holds} WHERE expires > now()`,
      );
      const hold = held.rows[0]?.p == null ? head : Number(held.rows[0].p);
      let upTo = Math.min(head, options.atOrBelow ?? head, firstRecent === undefined ? head : firstRecent - 1, hold);
      upTo = Math.max(upTo, horizon);
      const deleted = await client.query(`DELETE FROM ${n.facts} WHERE ledger_offset <= $1`, [upTo]);
      await client.query(`UPDATE ${n.meta} SET value = $1 WHERE key = 'horizon'`, [String(upTo)]);
      await client.query("COMMIT");
      return { pruned: deleted.rowCount ?? 0, horizon: upTo };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
  } finally {
    client.release();
  }
}
