// Row history and as-of reads over the ledger: every fact of one row, and the row as it was at an offset, within
// retention. Both read the retained facts of the table in offset order and keep the row's own (the key is compared
// as decoded values), so their cost is the table's retained facts; the ledger has no index by row.
import { OffsetTooOldError } from "../errors.ts";
import type { Fact, Ledger, Row } from "./types.ts";

function sameKey(a: Row, b: Row): boolean {
  const keys = Object.keys(b);
  if (Object.keys(a).length !== keys.length) return false;
  return keys.every((k) => String(a[k]) === String(b[k]) && (a[k] === null) === (b[k] === null));
}

/** Every retained fact of the row of `table` with primary key `key`, oldest first (offsets and commit times). */
export async function history(
  ledger: Ledger,
  table: string,
  key: Row,
  options: { limit?: number } = {},
): Promise<Fact[]> {
  const out: Fact[] = [];
  let after = await ledger.horizon();
  const head = await ledger.head();
  const incarnation = ledger.incarnation;
  while (after < head) {
    const facts = await ledger.read(after, { incarnation, limit: 1000 });
    if (facts.length === 0) break;
    for (const fact of facts) {
      if (fact.offset > head) return out;
      if (fact.table === table && (fact.op === "truncate" || sameKey(fact.key, key))) out.push(fact);
      if (options.limit && out.length >= options.limit) return out;
    }
    after = (facts[facts.length - 1] as Fact).offset;
  }
  return out;
}

/** What `rowAt` knows: the row's image (null: it did not exist), or that no retained fact touched it. */
export type RowAt = { row: Row | null } | { untouched: true };

/**
 * The row of `table` with primary key `key` as of `offset` (after every fact up to and including it). A row no
 * retained fact touched is `{ untouched: true }`: it was then what it is now. Throws OffsetTooOldError below the
 * horizon. A TRUNCATE in between leaves the row absent.
 */
export async function rowAt(ledger: Ledger, table: string, key: Row, offset: number): Promise<RowAt> {
  const horizon = await ledger.horizon();
  if (offset < horizon) throw new OffsetTooOldError(offset, horizon + 1);
  const facts = await history(ledger, table, key);
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
