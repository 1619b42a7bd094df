// Ledger.sync() on PostgreSQL: waiting until every change committed before the call is a fact with an offset —
// numbered by the sequencer (trigger capture) or appended from the replication slot (logical capture), by this
// process when it leads, else by the process that does.
import type pg from "pg";
import type { CaptureHealth } from "./health.ts";
import { parseLsn } from "./pgoutput.ts";
import type { Names } from "./schema.ts";
import type { Sequencer } from "./sequencer.ts";
import type { StreamingConsumer } from "./stream.ts";

export interface SyncHost {
  pool: pg.Pool;
  n: Names;
  sequencer: Sequencer;
  health: CaptureHealth;
  pollIntervalMs: number;
  closed(): boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Trigger capture: every fact visible now has an offset — numbered by this process, or by the leader (another
 *  process, or this one after finding its lease gone: sequence(false) renews it). */
export async function syncStaged(host: SyncHost): Promise<void> {
  const { pool, n, sequencer } = host;
  if (!sequencer.isLeader) await sequencer.tryLead();
  if (sequencer.isLeader) await sequencer.sequence();
  const { rows } = await pool.query<{ max: string | null }>(
    `SELECT max(staging_id) AS max FROM ${n.facts} WHERE ledger_offset IS NULL`,
  );
  const max = rows[0]?.max;
  for (let round = 0; max !== null && max !== undefined && !host.closed(); round++) {
    const left = await pool.query(`SELECT 1 FROM ${n.facts} WHERE ledger_offset IS NULL AND staging_id <= $1 LIMIT 1`, [
      max,
    ]);
    if (left.rowCount === 0) break;
    if (sequencer.isLeader) await sequencer.sequence(false);
    else if (round % 10 === 0) await sequencer.tryLead();
    await sleep(host.pollIntervalMs);
  }
}

/** Logical capture: everything flushed before the call was appended — by this process when it leads (the stream
 *  reached that position), else by the leader (it confirmed that position to the slot). */
export async function syncLogical(host: SyncHost, consumer: StreamingConsumer, slot: string): Promise<void> {
  const { pool, sequencer, health } = host;
  const { rows } = await pool.query<{ lsn: string }>("SELECT pg_current_wal_flush_lsn()::text AS lsn");
  const target = parseLsn(rows[0]?.lsn as string);
  for (let round = 0, failures = 0; !host.closed(); round++) {
    if (health.lost) throw health.lost;
    if (!sequencer.isLeader && round % 10 === 0) await sequencer.tryLead();
    if (sequencer.isLeader) {
      // A stream that failed once (ended by a takeover or an install) starts again; one that keeps failing is the
      // caller's error.
      const failed = await sequencer.sequence().then(
        () => undefined,
        (error: unknown) => error,
      );
      failures = failed ? failures + 1 : 0;
      if (failed && failures >= 3) throw failed;
      if (consumer.caughtUp(target)) return;
      consumer.askPosition();
      await sleep(1);
      continue;
    }
    const { rows: done } = await pool.query<{ ok: boolean | null }>(
      "SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1",
      [slot, rows[0]?.lsn],
    );
    if (done.length === 0) {
      await health.check(); // repaired (a new incarnation: nothing of the old one is to come), or lost
      if (health.lost) throw health.lost;
      return;
    }
    if (done[0]?.ok) return;
    await sleep(host.pollIntervalMs);
  }
}
