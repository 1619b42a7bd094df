// The ledger as a changefeed from Node: `changes(ledger, { tables, after, signal })` yields every fact after an
// offset, in offset order, forever (until the signal aborts or the ledger closes), keeping only the tables asked for.
// A cursor is too old (OffsetTooOldError) only when it is below the horizon of one of those tables.
// Reading is pulled: the next batch is read when the consumer asks for it, so a slow consumer holds one batch.
import type { Fact, Ledger } from "./types.ts";

export interface ChangesOptions {
  /** Only facts of these tables (default: every captured table). */
  tables?: readonly string[];
  /** Facts after this offset (default: the head now, i.e. only what commits from here on). */
  after?: number;
  /** The incarnation `after` belongs to; another one throws IncarnationMismatchError. */
  incarnation?: string;
  signal?: AbortSignal;
  /** Facts read per batch. */
  limit?: number;
}

/** Every fact after `after`, one at a time, filtered by table. */
export async function* changes(ledger: Ledger, options: ChangesOptions = {}): AsyncGenerator<Fact> {
  const tables = options.tables ? new Set(options.tables) : null;
  const after = options.after ?? (await ledger.head());
  // Checked against the horizons of these tables only: another table's retention does not make the cursor too old.
  for await (const batch of ledger.follow(after, {
    ...(options.tables ? { tables: options.tables } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.incarnation ? { incarnation: options.incarnation } : {}),
    ...(options.limit ? { limit: options.limit } : {}),
  })) {
    for (const fact of batch) {
      if (options.signal?.aborted) return;
      if (!tables || tables.has(fact.table)) yield fact;
    }
  }
}
