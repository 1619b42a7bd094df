// Logical capture's appender: turns decoded transactions into facts and appends them to the ledger table in
// commit order, idempotently. The leader (the lease holder, sequencer.ts) feeds it from the replication stream
// (stream.ts), a few segments at a time (pending.ts).
//
// Ordering and crash safety. pgoutput emits whole committed transactions in commit order (commit LSN order),
// each change in the order the transaction made it, and never a rolled-back change; appending them in that order
// gives offsets in commit order and, for one row, in write order. An append is one database transaction that
// locks the meta `head` and `lsn` rows, checks that the lease still names this process, appends the facts of
// every transaction not appended yet (its commit LSN, from its Begin, is at or above `lsn`), and sets `head` and
// `lsn` (the end of the last transaction appended): facts and position commit together. A transaction larger than
// a batch is appended in several INSERTs inside that one database transaction, which commits only at a
// transaction boundary of the stream — so readers, whose reads are snapshots, see all of a transaction's facts or
// none, and the leader holds at most LEDGER_TUNING.logicalHeldChanges changes whatever the transaction's size.
// Only after the commit does the leader tell the server the position is flushed (the slot's confirmed position).
// A crash before the commit leaves nothing (the open database transaction rolls back with its session); a crash
// between the commit and the report makes the server send those transactions again, and the next append skips
// them by LSN. Two processes that both believe they lead serialize on the head row lock; the second sees the
// first's `lsn` and appends nothing twice, and a leader that lost its lease appends nothing at all. A leader
// paused while its database transaction is open cannot hold the lock for ever: its session's
// idle_in_transaction_session_timeout (LEDGER_TUNING.leaderIdleMs) ends it.
import type pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { quoteLiteral } from "../core.ts";
import { GeneratedColumns } from "./generated.ts";
import { imageJson, type JsonKind, sameTuple, TypeKinds, unavailable } from "./images.ts";
import type { Segment } from "./pending.ts";
import { type Change, formatLsn, parseLsn, type Relation, type TupleValue } from "./pgoutput.ts";
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

interface OpenAppend {
  client: pg.Client;
  /** The head when the append began: the facts get head + 1, head + 2, … */
  head: number;
  /** `lsn` when the append began: transactions whose commit is below it were appended before. */
  applied: bigint;
  inserted: number;
  /** The end of the last transaction this append completed (appended or skipped). */
  lsn: bigint;
}

export class FactAppender {
  readonly #n: Names;
  readonly #types = new TypeKinds();
  readonly #generated: GeneratedColumns;
  readonly #fault: (key: string, message: string) => void;
  #keys = new Map<string, string[]>();
  #open: OpenAppend | undefined;

  /** `fault` logs a problem once per key. */
  constructor(n: Names, fault: (key: string, message: string) => void) {
    this.#n = n;
    this.#fault = fault;
    this.#generated = new GeneratedColumns(n.schema);
  }

  /** True while an append's database transaction is open. */
  get open(): boolean {
    return this.#open !== undefined;
  }

  /** Starts an append: locks the position rows and checks the lease. False (nothing started) without the lease. */
  async begin(client: pg.Client, leaseId: string): Promise<boolean> {
    if (this.#open) throw new Error("an append is already open");
    const n = this.#n;
    let results: pg.QueryResult<{ key: string; value: string; leader: boolean }>[];
    try {
      results = (await client.query(
        `BEGIN; SELECT key, value, EXISTS (SELECT 1 FROM ${n.lease} WHERE holder = ${quoteLiteral(leaseId)}) AS leader
           FROM ${n.meta} WHERE key IN ('head', 'lsn') ORDER BY key FOR UPDATE`,
      )) as unknown as pg.QueryResult<{ key: string; value: string; leader: boolean }>[];
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
    const locked = results[1];
    const rows = locked?.rows ?? [];
    if (!rows[0]?.leader) {
      await client.query("ROLLBACK");
      return false;
    }
    const meta = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    const applied = parseLsn(meta.lsn ?? "0/0");
    this.#open = { client, head: Number(meta.head ?? 0), applied, inserted: 0, lsn: applied };
    return true;
  }

  /** Appends the facts of `segments` (those of transactions not appended before) inside the open append. */
  async insert(segments: Segment[]): Promise<void> {
    const open = this.#open;
    if (!open) throw new Error("no append is open");
    const fresh = segments.filter((s) => s.head.commitLsn >= open.applied);
    for (const s of segments) if (s.endLsn !== undefined && s.endLsn > open.lsn) open.lsn = s.endLsn;
    if (fresh.length === 0) return;
    await this.#loadCatalog(open.client, fresh);
    const facts = this.#facts(fresh, await this.#computeGenerated(open.client, fresh));
    if (facts.tbl.length === 0) return;
    await open.client.query(
      `INSERT INTO ${this.#n.facts} (ledger_offset, tbl, op, key_columns, old, new, txid, committed_at)
       SELECT $1::bigint + s.ord, s.tbl, s.op, s.keys::text[], s.old::json, s.new::json, s.txid, s.at::timestamptz
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
              WITH ORDINALITY AS s(tbl, op, keys, old, new, txid, at, ord)`,
      [open.head + open.inserted, facts.tbl, facts.op, facts.keys, facts.old, facts.new, facts.txid, facts.at],
    );
    open.inserted += facts.tbl.length;
  }

  /** Commits the open append at a transaction boundary: its facts, head and lsn together (and wakes followers). */
  async commit(): Promise<{ count: number; lsn: bigint }> {
    const open = this.#open;
    if (!open) throw new Error("no append is open");
    this.#open = undefined;
    const head = open.head + open.inserted;
    try {
      // One round trip; the values are a number and an LSN, safe as literals.
      await open.client.query(
        `UPDATE ${this.#n.meta} SET value = CASE key WHEN 'head' THEN '${head}' ELSE '${formatLsn(open.lsn)}' END
          WHERE key IN ('head', 'lsn')
          RETURNING CASE WHEN key = 'head' AND ${open.inserted} > 0 THEN pg_notify(${quoteLiteral(LEDGER.pgNotifyChannel)}, value) END;
         COMMIT`,
      );
    } catch (error) {
      await open.client.query("ROLLBACK").catch(() => {});
      throw error;
    }
    return { count: open.inserted, lsn: open.lsn };
  }

  /** Abandons the open append (nothing of it becomes visible). */
  async rollback(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.client.query("ROLLBACK").catch(() => {});
  }

  /** Key columns of tables seen for the first time, and the types of their columns. */
  async #loadCatalog(client: pg.Client, segments: Segment[]): Promise<void> {
    const relations = new Set<Relation>();
    for (const s of segments) for (const c of s.changes) relations.add(c.relation);
    if ([...relations].some((r) => !this.#keys.has(r.name))) {
      const tables = await applicationTables(client, this.#n.schema, "logical");
      this.#keys = new Map(tables.map((t) => [t.name, t.key]));
    }
    await this.#types.load(
      client,
      [...relations].flatMap((r) => r.columns.map((c) => c.type)),
    );
    await this.#generated.load(client, relations);
  }

  /**
   * The generated columns the stream left out, per change (generated.ts): the `"name":json` parts of its old and
   * new images, or why they could not be computed.
   */
  async #computeGenerated(client: pg.Client, segments: Segment[]): Promise<Map<Change, GeneratedParts>> {
    const out = new Map<Change, GeneratedParts>();
    const byTable = new Map<Relation, { change: Change; old: TupleValue[] | null; new: TupleValue[] | null }[]>();
    for (const s of segments) {
      for (const change of s.changes) {
        if (change.oversized !== undefined || !this.#generated.has(change.relation)) continue;
        const fullOld = change.old && !change.oldIsKeyOnly ? change.old : null;
        // An unchanged TOASTed value left out of the new row is the old row's (as in its image).
        const now = change.new?.map((v, i) => (v === undefined ? fullOld?.[i] : v)) ?? null;
        const rows = byTable.get(change.relation) ?? [];
        rows.push({ change, old: fullOld, new: now });
        byTable.set(change.relation, rows);
      }
    }
    for (const [relation, rows] of byTable) {
      const tuples = rows.flatMap((r) => [r.old, r.new].filter((t): t is TupleValue[] => t !== null));
      let parts: (string | null)[];
      try {
        await client.query("SAVEPOINT upkeep_generated");
        parts = await this.#generated.compute(client, relation, tuples);
        await client.query("RELEASE SAVEPOINT upkeep_generated");
      } catch (error) {
        await client.query("ROLLBACK TO SAVEPOINT upkeep_generated");
        const why = `the generated columns of ${relation.name} could not be computed (${(error as Error).message})`;
        this.#fault(
          `generated:${relation.name}:${(error as Error).message}`,
          `Upkeep: ${why}; its facts are planned as table-wide`,
        );
        for (const r of rows) out.set(r.change, { failed: why });
        continue;
      }
      let next = 0;
      for (const r of rows) {
        out.set(r.change, {
          old: r.old ? (parts[next++] ?? null) : null,
          new: r.new ? (parts[next++] ?? null) : null,
        });
      }
    }
    return out;
  }

  /** Forgets the key columns read so far (a schema change may have changed a primary key). */
  refresh(): void {
    this.#keys = new Map();
    this.#generated.refresh();
  }

  #facts(segments: Segment[], generated: Map<Change, GeneratedParts>): FactColumns {
    const out: FactColumns = { tbl: [], op: [], keys: [], old: [], new: [], txid: [], at: [] };
    for (const s of segments) {
      const at = s.head.commitTime.toISOString();
      const txid = String(s.head.xid);
      for (const change of s.changes) {
        const { relation, op } = change;
        if (relation.schema !== this.#n.schema) continue;
        // A truncate right after the same table's truncate adds nothing (a root's TRUNCATE also fires its
        // partitions' triggers, partitions.ts).
        const last = out.tbl.length - 1;
        if (
          op === "truncate" &&
          out.op[last] === "truncate" &&
          out.tbl[last] === relation.name &&
          out.txid[last] === txid
        )
          continue;
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
        const parts = generated.get(change);
        if (parts) {
          old = withGenerated(old, parts.failed, parts.old);
          now = withGenerated(now, parts.failed, parts.new);
        }
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

/** What generated.ts computed for one change: its old and new images' parts, or why it could not. */
type GeneratedParts = { old?: string | null; new?: string | null; failed?: string };

/** An image with its generated columns added (an unavailable image stays so). */
function withGenerated(image: string | null, failed: string | undefined, parts: string | null | undefined) {
  if (image === null || image.startsWith('{"$unavailable"')) return image;
  if (failed !== undefined) return unavailable(failed);
  if (!parts) return image;
  const merged = `${image.slice(0, -1)}${image === "{}" ? "" : ","}${parts}}`;
  return merged.length > LEDGER_TUNING.maxImageValueBytes
    ? unavailable(`a row of more than ${LEDGER_TUNING.maxImageValueBytes} bytes is larger than the image bound`)
    : merged;
}

/** A text[] literal: `{"a","b"}`. */
function arrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, "\\$&")}"`).join(",")}}`;
}
