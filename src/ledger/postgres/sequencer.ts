// The PostgreSQL sequencer: the one process that makes facts readable — with trigger capture it gives staged
// facts their offsets (StagedSequencing, below); with logical capture it appends the facts it decodes from the
// replication slot (LogicalConsumer, consumer.ts). Either way leadership is the lease described here.
//
// Trigger capture:
// Ordering argument. Writers insert facts with a staging id from a sequence and a NULL offset; sequence ids are
// not commit order (a transaction can take a lower id and commit later). One sequencer at a time (the holder of
// the lease, and in any case serialized by the row lock on the meta `head` row) repeatedly takes the
// *visible* unsequenced facts in staging-id order and numbers them head+1, head+2, … in one transaction, which
// also advances head. Visible means committed, so a fact gets an offset only if its write committed, and
// readers see an offset only once the numbering transaction committed: offsets are gapless and never change.
// A transaction still open when a batch is taken is simply numbered in a later batch, so an idle transaction
// stalls nobody. Per-row order: a later writer of a row blocks on the row lock until the earlier writer commits,
// so its trigger (and its staging id) comes after that commit; any snapshot that sees the later fact's commit
// also sees the earlier commit. Hence the earlier fact is numbered in an earlier batch or earlier in the same
// batch (lower staging id): for one row, offsets follow write order.
//
// Leadership is a lease, not a lock held by a session: a sequencer that is paused (SIGSTOP, a long GC pause, a
// network stall) stops renewing, and another process takes the lease once it has expired by the database's
// clock (LEDGER_TUNING.leaseMs). Two processes that both believe they lead cannot number a fact twice: every
// batch is one statement list that first locks the head row and then, in a snapshot taken after that lock,
// numbers only facts that still have no offset, and only while the lease row names this process. A paused
// leader holds no lock while paused (a batch is a single round trip, which the server completes on its own), and
// when it resumes its next batch finds another holder in the lease row and numbers nothing.

import pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { markOwn } from "../../own.ts";
import type { Waker } from "../core.ts";
import { quoteLiteral } from "../core.ts";
import type { Names } from "./schema.ts";

/** The leader's work: one batch at a time, on the leader's own connection. */
export interface CaptureWork {
  /** Prepares a newly opened leader connection. */
  prepare?(client: pg.Client): Promise<void>;
  /** One batch: how many facts it made readable, and whether more may be waiting. `check` first asks cheaply
   *  whether there is anything to do. */
  batch(client: pg.Client, check: boolean, leaseId: string): Promise<{ count: number; more: boolean }>;
  /** Leadership ended: let go of what only the leader may hold. */
  release?(): Promise<void>;
}

/** A PostgreSQL error that says the ledger's own tables are gone (undefined_table). */
export function isMissingLedger(error: unknown): boolean {
  return (error as { code?: string })?.code === "42P01";
}

export class Sequencer {
  /** True while this process holds the lease. */
  isLeader = false;
  readonly #url: string;
  readonly #n: Names;
  /** Names this process in the lease row. */
  readonly #id: string;
  readonly #waker: Waker;
  readonly #work: CaptureWork;
  #client: pg.Client | undefined;
  #renewedAt = 0;
  #sequencing: Promise<void> | undefined;
  #sequenceAgain = false;
  #stopped = false;
  /** The leader's connection runs one thing at a time: a batch or a lease renewal (a renewal between the
   *  statements of an open append joins that append's transaction, see consumer.ts). */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(url: string, n: Names, id: string, waker: Waker, work?: CaptureWork) {
    this.#url = url;
    this.#n = n;
    this.#id = id;
    this.#waker = waker;
    this.#work = work ?? new StagedSequencing(n);
  }

  /** The leader's periodic work: renew the lease when due, then number what is waiting. */
  async tick(): Promise<void> {
    if (this.isLeader && Date.now() - this.#renewedAt >= LEDGER_TUNING.leaseRenewMs) await this.renew();
    if (this.isLeader) await this.sequence();
  }

  /** Takes the lease when it is free or expired (by the database's clock), then sequences. */
  async tryLead(): Promise<void> {
    if (this.#stopped || this.isLeader) return;
    try {
      if (!this.#client) {
        const client = markOwn(new pg.Client({ connectionString: this.#url }));
        client.on("error", () => {
          if (this.#client === client) {
            this.#client = undefined;
            this.isLeader = false;
            this.#work.release?.().catch(() => {});
          }
          client.end().catch(() => {});
        });
        await client.connect();
        await this.#work.prepare?.(client);
        this.#client = client;
      }
      const { rowCount } = await this.#client.query(
        `UPDATE ${this.#n.lease} SET holder = $1, until = now() + make_interval(secs => $2::float8 / 1000)
          WHERE holder = $1 OR until < now()`,
        [this.#id, LEDGER_TUNING.leaseMs],
      );
      this.isLeader = rowCount === 1;
      this.#renewedAt = Date.now();
      if (this.isLeader) await this.sequence();
    } catch (error) {
      this.isLeader = false;
      await this.#work.release?.().catch(() => {});
      if (isMissingLedger(error)) return;
      const client = this.#client;
      this.#client = undefined;
      await client?.end().catch(() => {});
    }
  }

  /** Runs `body` on the leader's connection after whatever runs on it now. */
  #exclusive<T>(body: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(body, body);
    this.#turn = run.catch(() => {});
    return run;
  }

  /** Extends the lease; a lease taken over by another process ends this one's leadership. */
  renew(): Promise<void> {
    return this.#exclusive(async () => {
      const leader = this.#client;
      if (!leader) {
        this.isLeader = false;
        return;
      }
      let rowCount: number | null = 0;
      try {
        ({ rowCount } = await leader.query(
          `UPDATE ${this.#n.lease} SET until = now() + make_interval(secs => $2::float8 / 1000) WHERE holder = $1`,
          [this.#id, LEDGER_TUNING.leaseMs],
        ));
      } catch (error) {
        // The lease cannot be renewed (its table is gone, the connection failed): not the leader any more.
        this.isLeader = false;
        await this.#work.release?.().catch(() => {});
        throw error;
      }
      this.#renewedAt = Date.now();
      const was = this.isLeader;
      this.isLeader = rowCount === 1;
      if (was && !this.isLeader) await this.#work.release?.().catch(() => {});
    });
  }

  /** Runs sequencing rounds until nothing visible is waiting; concurrent calls join the running one. */
  sequence(check = true): Promise<void> {
    if (this.#sequencing) {
      this.#sequenceAgain = true;
      return this.#sequencing;
    }
    this.#sequencing = (async () => {
      try {
        do {
          this.#sequenceAgain = false;
          while (this.isLeader && this.#client && !this.#stopped) {
            // A long run of batches (a large transaction) keeps the lease.
            if (Date.now() - this.#renewedAt >= LEDGER_TUNING.leaseRenewMs) {
              await this.renew();
              continue;
            }
            const client = this.#client;
            const { count, more } = await this.#exclusive(() => this.#work.batch(client, check, this.#id));
            if (count > 0) this.#waker.bump();
            // Nothing made readable although asked: is the lease still ours?
            if (count === 0 && !check) await this.renew();
            check = true;
            if (!more) break;
          }
        } while (this.#sequenceAgain && !this.#stopped);
      } finally {
        this.#sequencing = undefined;
      }
    })();
    return this.#sequencing;
  }

  /** Stops sequencing and hands the lease back, so another process takes over at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#sequencing?.catch(() => {});
    const client = this.#client;
    if (this.isLeader) {
      await client
        ?.query(`UPDATE ${this.#n.lease} SET until = '-infinity' WHERE holder = $1`, [this.#id])
        .catch(() => {});
    }
    this.#client = undefined;
    this.isLeader = false;
    await this.#work.release?.().catch(() => {});
    await client?.end().catch(() => {});
  }
}

/** Trigger capture's batch: numbers the staged facts of committed transactions (see the top of this file). */
class StagedSequencing implements CaptureWork {
  readonly #n: Names;

  constructor(n: Names) {
    this.#n = n;
  }

  async batch(client: pg.Client, check: boolean, leaseId: string): Promise<{ count: number; more: boolean }> {
    const n = this.#n;
    if (check) {
      // The cheap poll: the partial index holds only facts waiting for an offset.
      const pending = await client.query(`SELECT 1 FROM ${n.facts} WHERE ledger_offset IS NULL LIMIT 1`);
      if (pending.rowCount === 0) return { count: 0, more: false };
    }
    // One round trip, one transaction (a multi-statement simple query is one implicit transaction). The first
    // statement takes the head row lock; the second starts after it, so its snapshot sees the latest head, and it
    // decides the batch: only facts of committed transactions are visible to it. Head and the NOTIFY to followers
    // in other processes are updated in the same transaction.
    const results = (await client.query(
      `SELECT value FROM ${n.meta} WHERE key = 'head' FOR UPDATE;
       WITH h AS (SELECT value::bigint AS head FROM ${n.meta} WHERE key = 'head'),
            b AS (SELECT staging_id, row_number() OVER (ORDER BY staging_id) AS n
                    FROM (SELECT staging_id FROM ${n.facts} WHERE ledger_offset IS NULL
                           ORDER BY staging_id LIMIT ${LEDGER_TUNING.sequenceBatch}) s),
            l AS (SELECT 1 FROM ${n.lease} WHERE holder = ${quoteLiteral(leaseId)}),
            u AS (UPDATE ${n.facts} f SET ledger_offset = h.head + b.n, committed_at = now()
                    FROM b, h WHERE f.staging_id = b.staging_id AND EXISTS (SELECT 1 FROM l) RETURNING f.ledger_offset)
       UPDATE ${n.meta} SET value = (SELECT max(ledger_offset) FROM u)::text
        WHERE key = 'head' AND EXISTS (SELECT 1 FROM u)
        RETURNING value, (SELECT count(*) FROM u) AS count, pg_notify(${quoteLiteral(LEDGER.pgNotifyChannel)}, value)`,
    )) as unknown as pg.QueryResult<{ count: string }>[];
    const count = Number(results[1]?.rows[0]?.count ?? 0);
    return { count, more: count >= LEDGER_TUNING.sequenceBatch };
  }
}
