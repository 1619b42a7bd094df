// Builders for dependencies and facts in unit tests of matching and the reverse index.
import type { Predicate, QueryDependency, TableRead } from "../../src/analysis/types.ts";
import type { Fact, Row } from "../../src/ledger/types.ts";

export const col = (column: string, table = "cards") => ({ kind: "column" as const, table, column });
export const val = (value: string | number | bigint | boolean | null) => ({ kind: "value" as const, value });
export const eq = (column: string, value: string | number | null): Predicate => ({
  kind: "compare",
  op: "=",
  left: col(column),
  right: val(value),
});

/** A dependency reading the given tables (default: all columns of `cards`, no filter). */
export function dependency(reads: Partial<TableRead>[]): QueryDependency {
  return {
    sql: "select …",
    reads: reads.map((r) => ({
      table: "cards",
      aliases: [r.table ?? "cards"],
      columns: "*",
      filter: { kind: "true" },
      ...r,
    })),
    order: [],
    limit: null,
    offset: null,
    aggregate: false,
    rowKeys: null,
  };
}

/** A fact with the given images; its key is the image's `id`. */
export function fact(op: Fact["op"], old: Row | null, next: Row | null, table = "cards"): Fact {
  return {
    offset: 1,
    incarnation: "i",
    table,
    op,
    key: { id: (next ?? old)?.id },
    keyless: false,
    old,
    new: next,
    txid: "1",
    committedAt: new Date(0).toISOString(),
  };
}
