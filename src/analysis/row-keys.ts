// Row keys: which rows of one table a plain row read returned, by primary key.
import type { AliasNode, JoinNode, OperationNode, SelectQueryNode } from "kysely";
import type { Row } from "../ledger/types.ts";
import type { SelectInfo } from "./scope.ts";
import type { PrimaryKeys } from "./types.ts";

/** For a dependency's row keys: the key columns and the result columns that hold them, so that row keys of the same
 *  read over other rows can be taken without analysing it again (capture/drivers/host.ts caches dependencies). */
export const rowKeyColumns = new WeakMap<object, { columns: string[]; names: string[] }>();

/** Primary keys of the returned rows, for a plain row read of one table whose key columns are selected. */
export function rowKeysOf(
  node: SelectQueryNode,
  top: SelectInfo,
  rows: readonly Record<string, unknown>[],
  primaryKeys: PrimaryKeys,
): { table: string; keys: Row[] } | null {
  if (top.aggregate || top.joins || top.setOperations || node.with) return null;
  const source = top.scope.sources[0];
  if (!source?.read) return null;
  const pk = primaryKeys(source.read.table);
  if (!pk || pk.length === 0) return null;
  const names: string[] = [];
  for (const column of pk) {
    const out = top.outputs.find(
      (o) => (o.all && (o.source === null || o.source === source)) || (o.source === source && o.column === column),
    );
    if (!out) return null;
    names.push(out.all ? column : out.name);
  }
  const keys = rows.map((row) => {
    const key: Row = {};
    pk.forEach((column, i) => {
      key[column] = row[names[i]];
    });
    return key;
  });
  const out = { table: source.read.table, keys };
  rowKeyColumns.set(out, { columns: pk, names });
  return out;
}

/**
 * A join that keeps the rows before it one for one: a left join (lateral or not) to a subquery that yields at most one
 * row — one that aggregates without GROUP BY, windows or set operations (HAVING, LIMIT and OFFSET only drop that row,
 * and a left join keeps the row before it then). Drizzle's relational queries and Prisma's relation joins on
 * PostgreSQL read related rows so.
 */
export function keepsRows(join: JoinNode): boolean {
  if (join.joinType !== "LeftJoin" && join.joinType !== "LateralLeftJoin") return false;
  let source: OperationNode = join.table;
  if (source.kind === "AliasNode") source = (source as AliasNode).node;
  if (source.kind !== "SelectQueryNode") return false;
  const s = source as SelectQueryNode;
  if (s.groupBy || s.setOperations?.length || !s.selections?.length) return false;
  let aggregate = false;
  for (const selection of s.selections) {
    const found = aggregates(selection.selection);
    if (found === "window") return false;
    aggregate ||= found === "aggregate";
  }
  return aggregate;
}

/** Whether an expression holds an aggregate (outside subqueries), a window function, or neither. */
function aggregates(node: OperationNode): "aggregate" | "window" | null {
  if (node.kind === "SelectQueryNode") return null;
  if (node.kind === "AggregateFunctionNode") return (node as { over?: unknown }).over ? "window" : "aggregate";
  let found: "aggregate" | null = null;
  for (const value of Object.values(node)) {
    for (const child of Array.isArray(value) ? value : [value]) {
      if (typeof child !== "object" || child === null || typeof (child as OperationNode).kind !== "string") continue;
      const inner = aggregates(child as OperationNode);
      if (inner === "window") return "window";
      found ??= inner;
    }
  }
  return found;
}
