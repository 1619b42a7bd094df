// Row history and as-of reads over the ledger: every fact of one row, and the row as it was at an offset, within
// the retention of its table. Both read the retained facts in offset order from the table's horizon and keep the
// row's own (the key is compared as decoded values), so their cost is the facts retained after that horizon; the
// ledger has no index by row.
import { OffsetTooOldError } from "../errors.ts";
import type { Fact, Ledger, Row } from "./types.ts";

function sameKey(a: Row, b: Row): boolean {
  const keys = Object.keys(b);
  if (Object.keys(a).length !== keys.length) return false;
  return keys.every((k) => String(a[k]) === String(b[k]) && (a[k] === null) === (b[k] === null));
}

/** What `history` returns: the row's retained facts, and the offset after which they are complete. */
export interface RowHistory {
  table: string;
  key: Row;
  /** The table's horizon: every fact of the row after this offset is in `facts`; facts at or below it may have
   *  been pruned by the table's retention (0: the whole history of the current incarnation). */
  horizon: number;
  /** Oldest first. */
  facts: Fact[];
}

/** How often a read restarts when pruning raised the table's horizon under it. */
const PRUNED_RETRIES = 3;

/** Every retained fact of the row of `table` with primary key `key`, oldest first (offsets and commit times). */
export async function history(
  ledger: Ledger,
  table: string,
  key: Row,
  options: { limit?: number } = {},
): Promise<RowHistory> {
  for (let attempt = 0; ; attempt++) {
    const horizon = await ledger.horizon([table]);
    try {
      return { table, key, horizon, facts: await rowFacts(ledger, table, key, horizon, options.limit) };
    } catch (error) {
      // Pruned between reading the horizon and the facts: start again from the new horizon.
      if (!(error instanceof OffsetTooOldError) || attempt >= PRUNED_RETRIES) throw error;
    }
  }
}

async function rowFacts(ledger: Ledger, table: string, key: Row, from: number, limit?: number): Promise<Fact[]> {
  const out: Fact[] = [];
  const head = await ledger.head();
  const incarnation = ledger.incarnation;
  let after = from;
  while (after < head) {
    const facts = await ledger.read(after, { incarnation, limit: 1000, tables: [table] });
    if (facts.length === 0) break;
    for (const fact of facts) {
      if (fact.offset > head) return out;
      if (fact.table === table && (fact.op === "truncate" || sameKey(fact.key, key))) out.push(fact);
      if (limit && out.length >= limit) return out;
    }
    after = (facts[facts.length - 1] as Fact).offset;
  }
  return out;
}

/** What `rowAt` knows: the row's image (null: it did not exist), or that no retained fact touched it. */
export type RowAt = { row: Row | null } | { untouched: true };

/**
 * The row of `table` with primary key `key` as of `offset` (after every fact up to and including it). A row no
 * retained fact touched is `{ untouched: true }`: it was then what it is now. Throws OffsetTooOldError (naming the
 * table) when `offset` is below the table's horizon. A TRUNCATE in between leaves the row absent.
 */
export async function rowAt(ledger: Ledger, table: string, key: Row, offset: number): Promise<RowAt> {
  const { horizon, facts } = await history(ledger, table, key);
  if (offset < horizon) throw new OffsetTooOldError(offset, horizon + 1, table);
  let last: Fact | undefined;
  for (const fact of facts) {
    if (fact.offset > offset) {
      // The row before its first later fact: that fact's old image (none for an insert).
      if (!last) return { row: fact.op === "insert" || fact.op === "truncate" ? null : fact.old };
      break;
    }
    last = fact;
  }
  if (!last) return { untouched: true };
  return { row: last.op === "delete" || last.op === "truncate" ? null : last.new };
}
