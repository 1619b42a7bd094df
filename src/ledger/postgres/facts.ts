// Facts as the PostgreSQL ledger stores them, decoded into Fact objects.
import type { FaultLog } from "../core.ts";
import { decodePgImage, type PgColumnCodec, pgCodecFor, undecodableReason } from "../decode.ts";
import type { Fact, Operation, Row } from "../types.ts";
import type { Queryable } from "./schema.ts";

export interface FactRow {
  incarnation: string;
  head: string;
  /** The meta table's horizon rows (key → value): the floor and each table's own. */
  horizons: Record<string, string> | null;
  ledger_offset: string | null;
  tbl: string;
  op: Operation;
  key_columns: string[] | null;
  old: string | null;
  new: string | null;
  txid: string;
  committed_at: Date;
}

/** A fact from its row. An image that cannot be decoded (a poison fact) never stops a reader: the fact is
 *  returned with `unavailable` set, and logged once with its offset. */
export function toFact(
  r: FactRow,
  incarnation: string,
  codecs: Map<string, PgColumnCodec> | undefined,
  faults: FaultLog,
): Fact {
  // Images are put back in column order (older installs stored jsonb, which orders keys by length).
  const unavailable: string[] = [];
  let old: Row | null = null;
  let now: Row | null = null;
  try {
    old = reorder(decodePgImage(r.old, codecs, unavailable), codecs?.keys());
    now = reorder(decodePgImage(r.new, codecs, unavailable), codecs?.keys());
  } catch (error) {
    old = now = null;
    const why = undecodableReason(error);
    unavailable.push(why);
    faults.once(
      "warn",
      `poison:${incarnation}:${r.ledger_offset}`,
      `Upkeep could not decode fact ${r.ledger_offset} of ${r.tbl} (${why}); pages that read ${r.tbl} are replayed instead`,
    );
  }
  const image = now ?? old;
  const keyColumns = r.key_columns ?? [];
  let key: Row | null = keyColumns.length > 0 && image ? {} : null;
  for (const column of keyColumns) {
    if (!image || !(column in image)) key = null;
    else if (key) key[column] = image[column];
  }
  const fact: Fact = {
    offset: Number(r.ledger_offset),
    incarnation,
    table: r.tbl,
    op: r.op,
    key: key ?? image ?? {},
    keyless: key === null,
    old,
    new: now,
    txid: r.txid,
    committedAt: r.committed_at.toISOString(),
  };
  if (unavailable.length > 0) fact.unavailable = unavailable.join("; ");
  return fact;
}

function reorder(row: Row | null, order: Iterable<string> | undefined): Row | null {
  if (!row || !order) return row;
  const out: Row = {};
  for (const column of order) if (column in row) out[column] = row[column];
  for (const column of Object.keys(row)) if (!(column in out)) out[column] = row[column];
  return out;
}

/** How to decode each column of each table of the schema, by its type (table → column → codec). */
export async function columnCodecs(db: Queryable, schema: string): Promise<Map<string, Map<string, PgColumnCodec>>> {
  const { rows } = await db.query<{ table: string; column: string; type: string }>(
    `SELECT c.relname AS table, a.attname AS column, t.typname AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace ns ON ns.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
      WHERE ns.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY c.relname, a.attnum`,
    [schema],
  );
  const codecs = new Map<string, Map<string, PgColumnCodec>>();
  for (const r of rows) {
    if (!codecs.has(r.table)) codecs.set(r.table, new Map());
    codecs.get(r.table)?.set(r.column, pgCodecFor(r.type));
  }
  return codecs;
}
