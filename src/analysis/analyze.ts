// Query analysis: a compiled Kysely query's OperationNode tree → the QueryDependency of the read, or a refusal.
//
// Soundness rules (each one is argued where it is applied):
// - Every base table the query reads, at any depth (joins, subqueries, CTEs, unions), appears in `reads`.
// - A TableRead's filter only contains conjuncts that every row of that table must satisfy (TRUE) to influence
//   the result. Dropping a conjunct is always sound (it only widens the filter), so anything doubtful is dropped.
// - A TableRead's columns contain every column of that table the query mentions anywhere. A reference we cannot
//   place exactly is recorded on every table it could belong to.
// - A `sql` fragment hides what it reads (it may even contain a subquery on another table): it is refused, except
//   where a fragment without a subquery can be covered by treating every column of the tables in scope as read.

import type {
  AliasNode,
  CommonTableExpressionNode,
  JoinNode,
  OperationNode,
  OrderByItemNode,
  RawNode,
  ReferenceNode,
  RootOperationNode,
  SelectQueryNode,
  TableNode,
  ValueNode,
} from "kysely";
import { RefusedBoundaryError } from "../errors.ts";
import { returnsNoRows } from "../statements.ts";
import { type Analyser, walkExpression } from "./expressions.ts";
import { toPredicate } from "./predicates.ts";
import { containsAggregate, directionOf, isDirection, rawText, unwrapRaw } from "./raw.ts";
import { type Context, checkModifier, RAW_CODE, RAW_WHERE, Refusal, refusalFor, SELECT_PARTS } from "./refusals.ts";
import { keepsRows, rowKeysOf } from "./row-keys.ts";
import {
  conjunctsOf,
  type ExprInfo,
  identifierName,
  isCte,
  type MutableRead,
  type Output,
  qualifiedSource,
  type Resolved,
  resolveColumn,
  resolveReference,
  type Scope,
  type SelectInfo,
  type Source,
  tableName,
} from "./scope.ts";
import type { OrderTerm, QueryDependency, TableRead } from "./types.ts";

export type { PrimaryKeys } from "./types.ts";

import type { PrimaryKeys } from "./types.ts";

interface Compiled {
  sql: string;
  parameters: readonly unknown[];
}

/**
 * Analyses one compiled query together with the rows it returned.
 * Returns the dependency of a read, a RefusedBoundaryError for a read that cannot be analysed soundly, or null
 * for a statement that is not a read.
 */
export function analyzeQuery(
  node: RootOperationNode,
  compiled: Compiled,
  rows: readonly Record<string, unknown>[],
  primaryKeys: PrimaryKeys,
): QueryDependency | RefusedBoundaryError | null {
  const sql = compiled.sql;
  try {
    switch (node.kind) {
      case "SelectQueryNode":
        if ((node as SelectQueryNode).explain) return null;
        return new Analyzer(sql).analyzeRoot(node as SelectQueryNode, rows, primaryKeys);
      case "RawNode":
        return returnsNoRows({ query: node, sql })
          ? null
          : refusalFor("raw_query", sql, "the whole query is a sql`…` template");
      default:
        // insert, update, delete, merge and schema statements write; they are not reads of the page.
        return null;
    }
  } catch (error) {
    if (error instanceof Refusal) return refusalFor(error.code, sql, error.detail, error.rewrite);
    return new RefusedBoundaryError(
      "unsupported_query",
      sql,
      `analysis failed: ${(error as Error).message}`,
      "rewrite the query with plain Kysely builders, or report the query shape to Upkeep",
    );
  }
}

class Analyzer implements Analyser {
  readonly sql: string;
  readonly reads: MutableRead[] = [];
  constructor(sql: string) {
    this.sql = sql;
  }

  analyzeRoot(
    node: SelectQueryNode,
    rows: readonly Record<string, unknown>[],
    primaryKeys: PrimaryKeys,
  ): QueryDependency {
    const top = this.select(node, null);
    const reads: TableRead[] = this.reads.map((r) => ({
      table: r.table,
      aliases: r.aliases,
      columns: r.columns,
      filter:
        r.conjuncts.length === 0
          ? { kind: "true" }
          : r.conjuncts.length === 1
            ? r.conjuncts[0]
            : { kind: "and", items: r.conjuncts },
    }));
    const dep: QueryDependency = {
      sql: this.sql,
      reads,
      order: top.order,
      limit: top.limit,
      offset: top.offset,
      aggregate: top.aggregate,
      rowKeys: rowKeysOf(node, top, rows, primaryKeys),
    };
    if (top.orderIncomplete) dep.orderIncomplete = true;
    return dep;
  }

  // ── select ──────────────────────────────────────────────────────────────────────────────────────────────

  select(node: SelectQueryNode, parent: Scope | null): SelectInfo {
    for (const part of Object.keys(node)) {
      if (part !== "kind" && !(part in SELECT_PARTS)) {
        throw new Refusal("unsupported_query", `a select with a part Upkeep does not know (${part})`);
      }
    }
    for (const modifier of [...(node.frontModifiers ?? []), ...(node.endModifiers ?? [])]) checkModifier(modifier);
    const cteScope: Scope = { sources: [], parent, ctes: new Set() };
    if (node.with) this.withClause(node.with.expressions, node.with.recursive === true, cteScope);
    const scope: Scope = { sources: [], parent: cteScope, ctes: new Set() };

    // FROM: a comma list is a cross join; no source is nullable.
    for (const from of node.from?.froms ?? []) scope.sources.push(this.source(from, scope));

    // JOINs, in order. A conjunct applied at a join filters a source only when rows of that source failing it
    // cannot influence the join's output: true for the matched side(s), false for the preserved side of an
    // outer join (its rows appear null-extended anyway). Nullability after the join does not undo this: later
    // steps are functions of the join's output.
    for (const join of node.joins ?? []) this.join(join, scope);

    // WHERE is applied after every join: it filters a source only when that source is not null-extended,
    // since a null-extended row is not the image of any real row (think `where b.id is null` anti-joins).
    if (node.where)
      this.applyConjuncts(
        node.where.where,
        scope,
        scope.sources.filter((s) => !s.nullable),
        "predicate",
      );

    const outputs: Output[] = [];
    let aggregate = node.groupBy !== undefined || node.having !== undefined;
    for (const selection of node.selections ?? []) {
      const found = this.selection(selection.selection, scope, outputs);
      aggregate ||= found;
    }
    for (const distinct of node.distinctOn ?? []) this.expr(distinct, scope, "selection");
    for (const item of node.groupBy?.items ?? []) this.expr(item.groupBy, scope, "group", outputs);
    // HAVING is evaluated on groups, not rows: it filters nothing, but its columns are read.
    if (node.having) this.expr(node.having.having, scope, "predicate", outputs);

    const order: OrderTerm[] = [];
    let orderIncomplete = false;
    for (const item of node.orderBy?.items ?? []) {
      const term = this.orderItem(item, scope, outputs);
      if (term && !orderIncomplete) order.push(term);
      else orderIncomplete = true;
    }

    for (const op of node.setOperations ?? []) {
      // Every branch of a union/intersect/except reads its own tables; each branch's filters are sound for
      // its own sources because the compound's result is a function of each branch's result.
      const expr = op.expression;
      if (expr.kind !== "SelectQueryNode") throw new Refusal("unsupported_query", `set operation over ${expr.kind}`);
      const branch = this.select(expr as SelectQueryNode, cteScope);
      aggregate ||= branch.aggregate;
    }
    if (node.setOperations?.length && order.length > 0) orderIncomplete = true;

    let limit = node.limit ? this.count(node.limit.limit, "limit") : null;
    if (node.fetch) limit = this.count(node.fetch.rowCount, "limit");
    if (node.top) limit = Number(node.top.expression);
    const offset = node.offset ? this.count(node.offset.offset, "offset") : null;

    return {
      scope,
      outputs,
      order,
      orderIncomplete,
      limit,
      offset,
      aggregate,
      // A left join to a source that yields at most one row per row (an aggregate without GROUP BY: the related
      // rows of an ORM's relational query, as JSON) keeps the rows of the FROM table one for one.
      joins: (node.joins ?? []).some((j) => !keepsRows(j)) || (node.from?.froms.length ?? 0) !== 1,
      setOperations: (node.setOperations?.length ?? 0) > 0,
    };
  }

  withClause(expressions: readonly CommonTableExpressionNode[], recursive: boolean, scope: Scope): void {
    for (const cte of expressions) {
      const name = cte.name.table.table.identifier.name;
      // A CTE is a derived table: its reads are recorded once, with filters sound for its own sources. A
      // recursive CTE sees itself as a derived source; each iteration is a select whose base-table conjuncts
      // still filter the base table's rows.
      if (recursive) scope.ctes.add(name);
      const expr = cte.expression;
      if (expr.kind !== "SelectQueryNode") {
        throw new Refusal(
          "unsupported_query",
          `a \`with\` expression "${name}" that is a ${expr.kind} (writes in CTEs are not reads Upkeep can follow)`,
          "run writes outside the page's reads; keep CTEs as selects",
        );
      }
      this.select(expr as SelectQueryNode, scope);
      scope.ctes.add(name);
    }
  }

  source(node: OperationNode, scope: Scope): Source {
    let alias: string | null = null;
    let inner = node;
    if (inner.kind === "AliasNode") {
      alias = identifierName((inner as AliasNode).alias);
      inner = (inner as AliasNode).node;
    }
    inner = unwrapRaw(inner);
    if (inner.kind === "TableNode") {
      const table = tableName(inner as TableNode);
      if (isCte(scope, table)) return { name: alias ?? table, read: null, nullable: false };
      const read: MutableRead = { table, aliases: [alias ?? table], columns: new Set(), conjuncts: [] };
      this.reads.push(read);
      return { name: alias ?? table, read, nullable: false };
    }
    if (inner.kind === "SelectQueryNode") {
      // A derived table: analysed in the enclosing scope (lateral subqueries may see earlier sources).
      this.select(inner as SelectQueryNode, scope);
      return { name: alias ?? "", read: null, nullable: false };
    }
    if (inner.kind === "RawNode") {
      throw new Refusal("opaque_source", `the source ${rawText(inner as RawNode)} is a sql\`…\` fragment`);
    }
    throw new Refusal("opaque_source", `a ${inner.kind} source`);
  }

  join(join: JoinNode, scope: Scope): void {
    const before = scope.sources.slice();
    const added = this.source(join.table, scope);
    scope.sources.push(added);
    const on = join.on?.on;
    let filtered: Source[];
    switch (join.joinType) {
      case "InnerJoin":
      case "CrossJoin":
      case "LateralInnerJoin":
      case "LateralCrossJoin":
      case "CrossApply":
        filtered = scope.sources.filter((s) => !s.nullable);
        break;
      case "LeftJoin":
      case "LateralLeftJoin":
      case "OuterApply":
        filtered = [added];
        added.nullable = true;
        break;
      case "RightJoin":
        filtered = before.filter((s) => !s.nullable);
        for (const s of before) s.nullable = true;
        break;
      case "FullJoin":
        filtered = [];
        for (const s of scope.sources) s.nullable = true;
        break;
      default:
        throw new Refusal("unsupported_query", `a ${join.joinType} join`);
    }
    if (on) this.applyConjuncts(on, scope, filtered, "join");
  }

  /** Splits a condition into conjuncts, records their columns, and adds each to the filters it soundly belongs to. */
  applyConjuncts(node: OperationNode, scope: Scope, filtered: Source[], context: Context): void {
    for (const conjunct of conjunctsOf(node)) {
      const info = this.expr(conjunct, scope, context);
      if (info.nonLocal) continue;
      for (const source of filtered) {
        if (!source.read) continue;
        // Every reference must be able to be this source's column. A reference that may belong to another
        // source of the same scope is evaluated on this source's image only when the image has that column,
        // and then it is this source's column (SQL refuses ambiguous unqualified names within one scope);
        // otherwise evaluation yields "unknown" (see plan/match.ts).
        if (!info.refs.every((r) => r.candidates.includes(source))) continue;
        source.read.conjuncts.push(toPredicate(conjunct, source.read.table));
      }
    }
  }

  // ── expressions ────────────────────────────────────────────────────────────────────────────────────────

  /** Records the columns an expression reads (on every table they could belong to) and analyses its subqueries. */
  expr(node: OperationNode, scope: Scope, context: Context, outputs?: Output[]): ExprInfo {
    const info: ExprInfo = { refs: [], nonLocal: false };
    walkExpression(node, { analyser: this, scope, context, info, outputs });
    return info;
  }

  /** A sql`…` fragment. Selections and group-by terms without a subquery are covered by treating every column
   *  of every table in scope as read (the fragment can only mention those); everything else is refused. */
  raw(raw: RawNode, scope: Scope, context: Context): void {
    const text = rawText(raw);
    if ((context === "selection" || context === "group") && !/\bselect\b/i.test(text)) {
      for (let s: Scope | null = scope; s; s = s.parent)
        for (const source of s.sources) if (source.read) source.read.columns = "*";
      for (const p of raw.parameters) this.expr(p, scope, context);
      return;
    }
    throw new Refusal(RAW_CODE[context], `${RAW_WHERE[context]} is the sql\`…\` fragment ${text}`);
  }

  /** A selection; returns true when it aggregates (aggregate or window function, or a covered raw fragment). */
  selection(node: OperationNode, scope: Scope, outputs: Output[]): boolean {
    let name: string | null = null;
    let inner = node;
    if (inner.kind === "AliasNode") {
      name = identifierName((inner as AliasNode).alias);
      inner = (inner as AliasNode).node;
    }
    inner = unwrapRaw(inner);
    if (inner.kind === "SelectAllNode") {
      for (const s of scope.sources) if (s.read) s.read.columns = "*";
      outputs.push({ name: "*", source: null, column: null, all: true });
      return false;
    }
    if (inner.kind === "ReferenceNode" && (inner as ReferenceNode).column.kind === "SelectAllNode") {
      const source = this.qualified((inner as ReferenceNode).table as TableNode, scope);
      if (source.read) source.read.columns = "*";
      outputs.push({ name: "*", source, column: null, all: true });
      return false;
    }
    const info = this.expr(inner, scope, "selection");
    if (inner.kind === "ReferenceNode") {
      const r = info.refs[0];
      const column = r?.column ?? null;
      const source = r && r.candidates.length === 1 && r.candidates[0].read ? r.candidates[0] : null;
      outputs.push({ name: name ?? column ?? "", source, column: source ? column : null, all: false });
      return false;
    }
    outputs.push({ name: name ?? "", source: null, column: null, all: false });
    return containsAggregate(inner);
  }

  orderItem(item: OrderByItemNode, scope: Scope, outputs: Output[]): OrderTerm | null {
    if (item.direction && !isDirection(item.direction)) {
      throw new Refusal(
        "opaque_order",
        `the order direction ${rawText(item.direction as RawNode)} is a sql\`…\` fragment`,
      );
    }
    const direction = item.direction ? directionOf(item.direction as RawNode) : { direction: "asc" as const };
    const info = this.expr(item.orderBy, scope, "order", outputs);
    const target = unwrapRaw(item.orderBy);
    if (target.kind !== "ReferenceNode" || info.nonLocal || info.refs.length !== 1) return null;
    const r = info.refs[0];
    if (r.candidates.length !== 1 || !r.candidates[0].read) return null;
    const term: OrderTerm = {
      column: { kind: "column", table: r.candidates[0].read.table, column: r.column },
      direction: direction.direction,
    };
    const nulls = item.nulls ?? direction.nulls;
    if (nulls) term.nulls = nulls;
    return term;
  }

  count(node: OperationNode, what: string): number {
    const inner = unwrapRaw(node);
    if (inner.kind === "ValueNode") {
      const v = (inner as ValueNode).value;
      if (typeof v === "number" || typeof v === "bigint") return Number(v);
    }
    if (inner.kind === "RawNode") {
      const text = rawText(inner as RawNode);
      if (/^\s*\d+\s*$/.test(text)) return Number(text);
    }
    throw new Refusal("unsupported_query", `the ${what} is not a number value`, `pass a number: .${what}(10)`);
  }

  // ── references (scope.ts resolves them) ───────────────────────────────────────────────────────────────

  qualified(table: TableNode, scope: Scope): Source {
    return qualifiedSource(table, scope);
  }

  resolve(ref: ReferenceNode, scope: Scope): Resolved {
    return resolveReference(ref, scope);
  }

  resolveColumn(column: string, scope: Scope): Resolved {
    return resolveColumn(column, scope);
  }
}
