// Logical capture's consumer: the leader (the lease holder, see sequencer.ts) decodes the replication slot and
// appends the facts to the ledger table, in commit order, in batches.
//
// Ordering and crash safety. pgoutput emits whole transactions in commit order (commit LSN order), each change in
// the order the transaction made it, so appending them in that order gives offsets in commit order, per row in
// write order, with no rolled-back change ever seen. One batch is:
//   1. peek (pg_logical_slot_peek_binary_changes: decodes without moving the slot) up to the flush position read
//      just before, at most LEDGER_TUNING.logicalBatch changes, never splitting a transaction;
//   2. one database transaction that locks the meta `head` and `lsn` rows, checks that the lease still names this
//      process, appends the facts of every transaction whose commit end LSN is above `lsn`, and sets `head` and
//      `lsn` (the end LSN of the last transaction appended) — facts and position commit together;
//   3. only then, pg_replication_slot_advance to what was decoded.
// A crash before 2 commits leaves nothing behind; a crash between 2 and 3 leaves the slot behind the facts, so the
// next peek decodes those transactions again and step 2 skips them by LSN. Nothing is lost, nothing duplicated.
// (pg_logical_slot_get_binary_changes would move the slot even when the transaction appending the facts rolls
// back: it is not transactional, so it is never used.) Two processes that both believe they lead serialize on
// the head row lock; the second sees the first's `lsn` and appends nothing twice.
import type pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { quoteIdent, quoteLiteral } from "../core.ts";
import { imageJson, type JsonKind, sameTuple, TypeKinds, unavailable } from "./images.ts";
import { type LogicalNames, slotMissingError } from "./logical.ts";
import { type DecodedTransaction, formatLsn, PgoutputDecoder, parseLsn } from "./pgoutput.ts";
import { applicationTables, type Names } from "./schema.ts";
import type { CaptureWork } from "./sequencer.ts";

interface FactColumns {
  tbl: string[];
  op: string[];
  keys: string[];
  old: (string | null)[];
  new: (string | null)[];
  txid: string[];
  at: string[];
}

const NOT_LOGGED = "the old row was not logged (the table's REPLICA IDENTITY is not FULL)";

export class LogicalConsumer implements CaptureWork {
  readonly #n: Names;
  readonly #logical: LogicalNames;
  readonly #database: string;
  readonly #types = new TypeKinds();
  #keys = new Map<string, string[]>();
  /** Decoded (and appended, or found appended) up to here by this process: the cheap check's position. */
  #decodedTo = 0n;
  #advancedAt = 0;

  constructor(database: string, n: Names, logical: LogicalNames) {
    this.#database = database;
    this.#n = n;
    this.#logical = logical;
  }

  /** Pins the settings column text depends on (images.ts): the consumer decodes in its own session. */
  async prepare(client: pg.Client): Promise<void> {
    await client.query(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET bytea_output = 'hex'; SET extra_float_digits = 1",
    );
  }

  async batch(client: pg.Client, check: boolean, leaseId: string): Promise<{ count: number; more: boolean }> {
    const slot = this.#logical.slot;
    const { rows: positions } = await client.query<{ flush: string; confirmed: string | null }>(
      `SELECT pg_current_wal_flush_lsn()::text AS flush,
              (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1) AS confirmed`,
      [slot],
    );
    const { flush, confirmed } = positions[0] as { flush: string; confirmed: string | null };
    if (confirmed === null) throw slotMissingError(this.#database, slot);
    const written = parseLsn(flush);
    if (check && (written <= this.#decodedTo || written <= parseLsn(confirmed))) {
      await this.#advance(client, parseLsn(confirmed), false);
      return { count: 0, more: false };
    }
    let peeked: pg.QueryResult<[Buffer, number]>;
    try {
      // A message larger than the image bound is fetched as its head only (its tag and table): its fact is
      // recorded as unavailable, so a huge row never stalls the consumer or exhausts its memory.
      peeked = await client.query<[Buffer, number]>({
        text: `SELECT CASE WHEN octet_length(data) <= $5 THEN data ELSE substring(data FROM 1 FOR 5) END,
                      octet_length(data)
                 FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, $3,
                        'proto_version', '1', 'publication_names', $4)`,
        values: [
          slot,
          flush,
          LEDGER_TUNING.logicalBatch,
          quoteIdent(this.#logical.publication),
          LEDGER_TUNING.maxImageValueBytes,
        ],
        rowMode: "array",
      });
    } catch (error) {
      // 55006 object_in_use: another process (a leader that lost its lease and does not know yet) is decoding.
      if ((error as { code?: string }).code === "55006") return { count: 0, more: false };
      throw error;
    }
    const decoder = new PgoutputDecoder();
    const transactions: DecodedTransaction[] = [];
    for (const [data, size] of peeked.rows) {
      const done = decoder.push(data, size);
      if (done) transactions.push(done);
    }
    const complete = peeked.rows.length < LEDGER_TUNING.logicalBatch;
    const lastEnd = transactions.at(-1)?.endLsn ?? 0n;
    // Everything committed before `flush` was decoded when the batch was not cut short.
    const target = complete && parseLsn(flush) > lastEnd ? parseLsn(flush) : lastEnd;
    // Transactions this process appended but has not confirmed yet are decoded again: skip them here (step 2
    // skips them again under the lock, which is what makes it safe).
    const fresh = transactions.filter((t) => t.endLsn > this.#decodedTo);
    const count = fresh.length > 0 ? await this.#append(client, fresh, decoder, leaseId) : 0;
    if (count < 0) return { count: 0, more: false }; // the lease is another process's now
    if (target > this.#decodedTo) this.#decodedTo = target;
    await this.#advance(client, parseLsn(confirmed), !complete);
    return { count, more: !complete };
  }

  /**
   * Confirms what was decoded and appended (step 3). Not after every batch: confirming decodes the same WAL once
   * more, so it is done at most every LEDGER_TUNING.logicalConfirmMs (and when a batch was cut short, so the next
   * peek starts past it). Until then a peek outputs those transactions again and they are skipped.
   */
  async #advance(client: pg.Client, confirmed: bigint, now: boolean): Promise<void> {
    if (this.#decodedTo <= confirmed) return;
    if (!now && Date.now() - this.#advancedAt < LEDGER_TUNING.logicalConfirmMs) return;
    this.#advancedAt = Date.now();
    await client.query("SELECT pg_replication_slot_advance($1, $2::pg_lsn)", [
      this.#logical.slot,
      formatLsn(this.#decodedTo),
    ]);
  }

  /** Appends the facts of the transactions not appended yet; the number appended, or -1 without the lease. */
  async #append(
    client: pg.Client,
    transactions: DecodedTransaction[],
    decoder: PgoutputDecoder,
    leaseId: string,
  ): Promise<number> {
    const n = this.#n;
    await this.#loadCatalog(client, decoder);
    // Three round trips: lock the position rows (and read the lease), append and move the position, commit.
    const [, locked] = (await client.query(
      `BEGIN; SELECT key, value, EXISTS (SELECT 1 FROM ${n.lease} WHERE holder = ${quoteLiteral(leaseId)}) AS leader
         FROM ${n.meta} WHERE key IN ('head', 'lsn') ORDER BY key FOR UPDATE`,
    )) as unknown as pg.QueryResult<{ key: string; value: string; leader: boolean }>[];
    try {
      const rows = locked?.rows ?? [];
      if (!rows[0]?.leader) {
        await client.query("ROLLBACK");
        return -1;
      }
      const meta = Object.fromEntries(rows.map((r) => [r.key, r.value]));
      const head = Number(meta.head ?? 0);
      const applied = parseLsn(meta.lsn ?? "0/0");
      const fresh = transactions.filter((t) => t.endLsn > applied);
      const last = fresh.at(-1);
      if (!last) {
        await client.query("COMMIT");
        return 0;
      }
      const facts = this.#facts(fresh);
      const newHead = head + facts.tbl.length;
      await client.query(
        `WITH appended AS (
           INSERT INTO ${n.facts} (ledger_offset, tbl, op, key_columns, old, new, txid, committed_at)
           SELECT $1::bigint + s.ord, s.tbl, s.op, ARRAY(SELECT json_array_elements_text(s.keys::json)),
                  s.old::json, s.new::json, s.txid, s.at::timestamptz
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                  WITH ORDINALITY AS s(tbl, op, keys, old, new, txid, at, ord)
           RETURNING 1)
         UPDATE ${n.meta} SET value = CASE key WHEN 'head' THEN $9::text ELSE $10::text END
          WHERE key IN ('head', 'lsn')
         RETURNING (SELECT count(*) FROM appended) AS count,
                   CASE WHEN key = 'head' AND $9::bigint > $1::bigint THEN pg_notify($11::text, $9::text) END`,
        [
          head,
          facts.tbl,
          facts.op,
          facts.keys,
          facts.old,
          facts.new,
          facts.txid,
          facts.at,
          String(newHead),
          formatLsn(last.endLsn),
          LEDGER.pgNotifyChannel,
        ],
      );
      await client.query("COMMIT");
      return facts.tbl.length;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
  }

  /** Key columns of tables seen for the first time, and the types of their columns. */
  async #loadCatalog(client: pg.Client, decoder: PgoutputDecoder): Promise<void> {
    const relations = [...decoder.relations.values()];
    if (relations.some((r) => !this.#keys.has(r.name))) {
      const tables = await applicationTables(client, this.#n.schema, "logical");
      this.#keys = new Map(tables.map((t) => [t.name, t.key]));
    }
    await this.#types.load(
      client,
      relations.flatMap((r) => r.columns.map((c) => c.type)),
    );
  }

  /** Forgets the key columns read so far (a schema change may have changed a primary key). */
  refresh(): void {
    this.#keys = new Map();
  }

  #facts(transactions: DecodedTransaction[]): FactColumns {
    const out: FactColumns = { tbl: [], op: [], keys: [], old: [], new: [], txid: [], at: [] };
    for (const t of transactions) {
      const at = t.commitTime.toISOString();
      const txid = String(t.xid);
      for (const change of t.changes) {
        const { relation, op } = change;
        if (relation.schema !== this.#n.schema) continue;
        const names = relation.columns.map((c) => c.name);
        const kinds: JsonKind[] = relation.columns.map((c) => this.#types.kind(c.type));
        const fullOld = change.old && !change.oldIsKeyOnly ? change.old : null;
        // A no-op UPDATE (every value as it was) is no change: the triggers skip it too.
        if (op === "update" && fullOld && change.new && sameTuple(fullOld, change.new)) continue;
        let old: string | null = null;
        let now: string | null = null;
        if (change.oversized !== undefined) {
          const why = unavailable(`a row of ${change.oversized} bytes is larger than the image bound`);
          if (op !== "insert") old = why;
          if (op !== "delete") now = why;
        } else if (op === "update" || op === "delete")
          old = fullOld ? imageJson(names, kinds, fullOld, null) : unavailable(NOT_LOGGED);
        if (change.new) now = imageJson(names, kinds, change.new, fullOld);
        out.tbl.push(relation.name);
        out.op.push(op);
        out.keys.push(JSON.stringify(this.#keys.get(relation.name) ?? []));
        out.old.push(old);
        out.new.push(now);
        out.txid.push(txid);
        out.at.push(at);
      }
    }
    return out;
  }
}
