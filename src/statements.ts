// What kind of statement a compiled query is: one classification for every stage that asks (the capture refuses
// writes during a render, the analysis does not treat writes as unreadable reads, the ledger's dialect wakes
// followers after statements that may write). Below the pipeline folders, like constants.ts.
import type { RootOperationNode } from "kysely";

/**
 * - `read`: a select (or a raw select, values, pragma or explain);
 * - `write`: changes rows (insert, update, delete, merge; raw `insert`, `update`, `delete`, `replace`, `merge`,
 *   `upsert`); with RETURNING it also returns rows;
 * - `control`: schema and session statements (create, drop, alter, begin, commit, set, vacuum, grant, …);
 * - `unknown`: a raw statement that is none of these (a `with`, which may hold a data-modifying CTE, a call); it
 *   may read and may write.
 */
export type StatementKind = "read" | "write" | "control" | "unknown";

const WRITE_NODES = new Set<string>(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode", "MergeQueryNode"]);
const RAW_READ = /^\s*(select|values|pragma|explain)\b/i;
const RAW_WRITE = /^\s*(insert|update|delete|replace|merge|upsert)\b/i;
const RAW_CONTROL =
  /^\s*(create|drop|alter|begin|start|commit|end|rollback|savepoint|release|set|reset|vacuum|analyze|reindex|truncate|lock|listen|unlisten|notify|grant|revoke|comment|attach|detach)\b/i;

export function statementKind(query: { query: RootOperationNode; sql: string }): StatementKind {
  const kind = query.query.kind;
  if (kind === "SelectQueryNode") return "read";
  if (WRITE_NODES.has(kind)) return "write";
  if (kind !== "RawNode") return "control";
  if (RAW_WRITE.test(query.sql)) return "write";
  if (RAW_CONTROL.test(query.sql)) return "control";
  if (RAW_READ.test(query.sql)) return "read";
  return "unknown";
}

/** A write or control statement that returns no rows: it cannot be part of what a page shows. */
export function returnsNoRows(query: { query: RootOperationNode; sql: string }): boolean {
  const kind = statementKind(query);
  return (kind === "write" || kind === "control") && !/\breturning\b/i.test(query.sql);
}
