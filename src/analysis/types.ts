// What a captured read depends on, derived structurally from Kysely's OperationNode tree.
//
// A QueryDependency is a *sound over-approximation*: if a committed fact could change the query's result, then
// matching the fact against the dependency says "affected". The converse need not hold (a match may be a
// false positive); precision is improved over time, soundness never traded.

import type { RefusedBoundaryError } from "../errors.ts";
import type { Row } from "../ledger/types.ts";

/** A literal value or a parameter value as bound at capture time. */
export type Value = string | number | bigint | boolean | null | Uint8Array;

/** A column of a source table, resolved through aliases to the real table name. */
export interface ColumnRef {
  kind: "column";
  table: string;
  column: string;
}

/**
 * A structural predicate. `unknown` stands for anything we cannot evaluate on one table's row image (a
 * correlated subquery, a join condition across tables): evaluation treats it as possibly true (SQL UNKNOWN that
 * may be TRUE), which keeps matching sound.
 */
export type Predicate =
  | { kind: "true" }
  | { kind: "unknown"; why: string }
  | { kind: "and"; items: Predicate[] }
  | { kind: "or"; items: Predicate[] }
  | { kind: "not"; item: Predicate }
  | { kind: "compare"; op: "=" | "<>" | "<" | "<=" | ">" | ">="; left: Operand; right: Operand }
  | { kind: "in"; negated: boolean; left: Operand; values: Operand[] }
  | { kind: "null"; negated: boolean; operand: Operand }
  | { kind: "like"; negated: boolean; left: Operand; pattern: Operand; caseInsensitive: boolean };

export type Operand = ColumnRef | { kind: "value"; value: Value };

export interface OrderTerm {
  column: ColumnRef;
  direction: "asc" | "desc";
  nulls?: "first" | "last";
}

/** One table a query reads, with the columns it depends on. */
export interface TableRead {
  table: string;
  /** Aliases the table appears under in the query (for diagnostics). */
  aliases: string[];
  /** Columns whose values can influence the result; "*" when every column can (selectAll, count(*) on rows). */
  columns: Set<string> | "*";
  /** Conjuncts of the WHERE/ON/HAVING that mention only this table and values: a row image failing them cannot
   *  enter or leave the result through this table. `{ kind: "true" }` when there are none. */
  filter: Predicate;
}

export interface QueryDependency {
  /** The compiled SQL, for diagnostics and refusal messages. */
  sql: string;
  /** Every base table the query (including subqueries and joins) reads. */
  reads: TableRead[];
  /** ORDER BY of the outermost select (empty when none). */
  order: OrderTerm[];
  /** Set when the ORDER BY has terms that are not plain columns (expressions, aliases of aggregates, terms of a
   *  union): `order` then lists only the leading plain-column terms and must not be used to prove positions. */
  orderIncomplete?: true;
  limit: number | null;
  offset: number | null;
  /** True when the outermost select aggregates (count, sum, group by …). */
  aggregate: boolean;
  /** Primary keys of the rows returned, for row reads of a single table (null when not applicable). */
  rowKeys: { table: string; keys: Row[] } | null;
  /** The compiled SQL and its parameters as one string, when known (set by capture): two dependencies with the
   *  same key are the same read, so matching a fact against one decides it for the other (plan/planner.ts). */
  readsKey?: string;
}

/** What analysing one compiled query yields: a dependency, a refusal, or null for statements that are not reads
 *  (insert, update, delete, merge, schema changes, transaction control). */
export type AnalysisResult = QueryDependency | RefusedBoundaryError | null;

/** Why matching a fact against a dependency said "not affected" (stable names, used in match reports: explain() in
 *  upkeep/testing, the inspector). docs/codes.md explains each. */
export const MISS_REASONS = [
  "no_matching_subscriber",
  "table_not_read",
  "columns_not_read",
  "predicate_did_not_match",
] as const;

export type MissReason = (typeof MISS_REASONS)[number];

export type MatchResult = { affected: true; why: string } | { affected: false; reason: MissReason };

/** Primary-key columns of a table, in key order (undefined when unknown or keyless). */
export type PrimaryKeys = (table: string) => string[] | undefined;
