// Column changes of captured tables on PostgreSQL, made into facts.
//
// Neither capture mode sees a column change as a change of rows, yet it is one: `ALTER TABLE … ADD COLUMN …
// DEFAULT` gives every row a new value without a write (no trigger fires, no row reaches the WAL), a dropped or
// retyped column changes what `select *` returns, and a table dropped and created again under its name starts
// empty. Writes after the change are captured whole (trigger capture images the row as it is; logical capture
// decodes each change against the Relation message the stream sends after a definition change), so only the
// change itself is missing. The ledger keeps each captured table's column list in its meta table
// (`columns:<table>`); when the catalog says otherwise, one table-wide fact is appended for the table, in the same
// transaction that records the new list, so however many processes notice it the fact is written once.
//
// Why that fact is enough: it is appended under the head row's lock after the change committed (the catalog
// showed it). A page whose render offset is below the fact's is planned against it, and a table-wide fact affects
// every frame that reads the table, which is rendered again from the rows as they are now. A page rendered at or
// above it read the table after the change. Facts of writes committed before the check but appended after it
// (logical capture's stream may lag) are planned as usual, with complete images.
import type pg from "pg";
import { LEDGER } from "../../constants.ts";
import type { FaultLog, Waker } from "../core.ts";
import type { Names, Queryable } from "./schema.ts";
import { isMissingLedger } from "./sequencer.ts";

const PREFIX = "columns:";

/** The reason a column change's fact carries (a table name, never row data). */
export function columnChangeReason(table: string): string {
  return `the columns or capture of ${table} changed: every row may have changed`;
}

interface Difference {
  tbl: string;
  /** The column list now (null: the table is no longer captured). */
  now: string | null;
  /** The column list recorded (null: not recorded yet). */
  was: string | null;
}

/** Captured tables whose columns differ from the list recorded in the meta table. */
async function differences(db: Queryable, n: Names, captured: readonly string[]): Promise<Difference[]> {
  const { rows } = await db.query<Difference>(
    `WITH cols AS (
       SELECT c.relname::text AS tbl,
              string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) AS sig
         FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE ns.nspname = $1 AND c.relname = ANY($2::text[])
        GROUP BY c.relname),
     known AS (SELECT substr(key, $3::int + 1) AS tbl, value AS sig FROM ${n.meta} WHERE left(key, $3::int) = $4)
     SELECT coalesce(c.tbl, k.tbl) AS tbl, c.sig AS now, k.sig AS was
       FROM cols c FULL JOIN known k ON k.tbl = c.tbl
      WHERE c.sig IS DISTINCT FROM k.sig`,
    [n.schema, [...captured], PREFIX.length, PREFIX],
  );
  return rows;
}

/**
 * Records the column lists of the captured tables and appends one table-wide fact for each table whose list
 * changed or that is no longer captured (a table seen for the first time gets none: no page could have read it
 * live). Returns the tables that got a fact. Costs one catalog query when nothing changed.
 */
export async function recordColumnChanges(pool: pg.Pool, n: Names, captured: readonly string[]): Promise<string[]> {
  if ((await differences(pool, n, captured)).length === 0) return [];
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    try {
      // The head row's lock orders this append with the sequencer's and the logical consumer's, and with other
      // processes doing the same: the differences read after it are those nobody has recorded yet.
      const { rows: locked } = await client.query<{ value: string }>(
        `SELECT value FROM ${n.meta} WHERE key = 'head' FOR UPDATE`,
      );
      const head = Number(locked[0]?.value ?? 0);
      const found = await differences(client, n, captured);
      const changed = found.filter((d) => d.was !== null).map((d) => d.tbl);
      for (const d of found) {
        if (d.now === null) await client.query(`DELETE FROM ${n.meta} WHERE key = $1`, [PREFIX + d.tbl]);
        else {
          await client.query(
            `INSERT INTO ${n.meta} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
            [PREFIX + d.tbl, d.now],
          );
        }
      }
      if (changed.length > 0) {
        await client.query(
          `INSERT INTO ${n.facts} (ledger_offset, tbl, op, key_columns, old, new, txid, committed_at)
           SELECT $1::bigint + s.ord, s.tbl, 'update', NULL, NULL, json_build_object('$unavailable', s.why),
                  pg_current_xact_id()::text, now()
             FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS s(tbl, why, ord)`,
          [head, changed, changed.map(columnChangeReason)],
        );
        await client.query(`UPDATE ${n.meta} SET value = $1 WHERE key = 'head'`, [String(head + changed.length)]);
        await client.query("SELECT pg_notify($1, $2)", [LEDGER.pgNotifyChannel, String(head + changed.length)]);
      }
      await client.query("COMMIT");
      return changed;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
  } finally {
    client.release();
  }
}

/** recordColumnChanges for a running ledger: wakes its followers and logs what changed; a failure is logged once
 *  and retried at the next check. */
export async function checkColumns(
  pool: pg.Pool,
  n: Names,
  captured: ReadonlySet<string>,
  faults: FaultLog,
  waker: Waker,
): Promise<void> {
  try {
    const changed = await recordColumnChanges(pool, n, [...captured]);
    if (changed.length === 0) return;
    waker.bump();
    faults.log(
      "warn",
      `Upkeep noticed a schema change of ${changed.join(", ")}: every live page that reads ${changed.length > 1 ? "them" : "it"} is replayed`,
    );
  } catch (error) {
    if (isMissingLedger(error)) return; // the ledger's tables are gone: readers say so (LedgerMissingError)
    const message = (error as Error).message;
    faults.once("error", `column_check:${message}`, `Upkeep's column check failed: ${message}`);
  }
}
