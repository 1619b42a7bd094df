// Row keys: which rows of one table a plain row read returned, by primary key.
import type { SelectQueryNode } from "kysely";
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
