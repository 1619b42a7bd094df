// Logical capture's appender: turns decoded transactions into facts and appends them to the ledger table in
// commit order, idempotently. The leader (the lease holder, sequencer.ts) feeds it from the replication stream
// (stream.ts).
//
// Ordering and crash safety. pgoutput emits whole committed transactions in commit order (commit LSN order),
// each change in the order the transaction made it, and never a rolled-back change; appending them in that order
// gives offsets in commit order and, for one row, in write order. An append is one database transaction that
// locks the meta `head` and `lsn` rows, checks that the lease still names this process, appends the facts of
// every transaction whose commit end LSN is above `lsn`, and sets `head` and `lsn` (the end of the last
// transaction appended): facts and position commit together. Only after that commit does the leader tell the
// server the position is flushed (the slot's confirmed position). A crash before the commit leaves nothing; a
// crash between the commit and the report makes the server send those transactions again, and the next append
// skips them by LSN. Two processes that both believe they lead serialize on the head row lock; the second sees
// the first's `lsn` and appends nothing twice, and a leader that lost its lease appends nothing at all.
import type pg from "pg";
import { LEDGER } from "../../constants.ts";
import { quoteLiteral } from "../core.ts";
import { imageJson, type JsonKind, sameTuple, TypeKinds, unavailable } from "./images.ts";
import { type DecodedTransaction, formatLsn, type PgoutputDecoder, parseLsn } from "./pgoutput.ts";
import { applicationTables, type Names } from "./schema.ts";

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

export class FactAppender {
  readonly #n: Names;
  readonly #types = new TypeKinds();
  #keys = new Map<string, string[]>();
  constructor(n: Names) {
    this.#n = n;
  }

  /** Appends the facts of the transactions not appended yet; the number appended, or -1 without the lease. */
  async append(
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
           SELECT $1::bigint + s.ord, s.tbl, s.op, s.keys::text[],
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
        out.keys.push(arrayLiteral(this.#keys.get(relation.name) ?? []));
        out.old.push(old);
        out.new.push(now);
        out.txid.push(txid);
        out.at.push(at);
      }
    }
    return out;
  }
}

/** A text[] literal: `{"a","b"}`. */
function arrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, "\\$&")}"`).join(",")}}`;
}
