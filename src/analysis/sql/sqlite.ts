// SQLite statements parsed with sql-parser-cst (its sqlite dialect) and lowered into Kysely's OperationNodes with
// the parameters bound, for the one analysis (analyze.ts). Parameters are numbered as SQLite numbers them (`?` is
// one more than the largest so far, `?NNN` is NNN, a repeated name is the same parameter). SQLite's own meanings are
// kept where they differ from PostgreSQL's: TRUE and FALSE are 1 and 0, `IS` compares any two values, a negative
// LIMIT is no limit, `min`/`max` of several arguments are scalar. The parse is cross-checked against SQLite's own
// authorizer by the capture (capture/drivers/host.ts); a node kind not lowered here is refused.

import type { JoinNode, JoinType, OperationNode, OrderByItemNode, SelectQueryNode } from "kysely";
import { Refusal } from "../refusals.ts";
import * as n from "./nodes.ts";
import { AGGREGATES, bindLimit, REWRITE_TEXT } from "./shared.ts";

import { type Cst, numbering, numberParameters } from "./sqlite-parse.ts";

export { parseSqlite, sqliteStatementKind } from "./sqlite-parse.ts";

const unsupported = (what: string, rewrite = REWRITE_TEXT.unsupported_query): Refusal =>
  new Refusal("unsupported_query", what, rewrite);

/** Values of a statement's parameters: positional (by SQLite's number) and, for named ones, by name. */
export interface SqliteParams {
  positional: readonly unknown[];
  /** Named values as the driver was given them (`{ id: 1 }` or `{ ":id": 1 }`). */
  named?: Record<string, unknown> | null;
}

export function lowerSqliteSelect(stmt: unknown, params: readonly unknown[] | SqliteParams): SelectQueryNode {
  const bound = Array.isArray(params) ? { positional: params } : (params as SqliteParams);
  const numbers = numbering.get(stmt as object) ?? numberParameters(stmt as Cst);
  return new Lowering(bound, numbers).statement(stmt as Cst);
}

const JOINS: Record<string, JoinType> = {
  ",": "CrossJoin",
  JOIN: "InnerJoin",
  "INNER JOIN": "InnerJoin",
  "CROSS JOIN": "CrossJoin",
  "LEFT JOIN": "LeftJoin",
  "LEFT OUTER JOIN": "LeftJoin",
  "RIGHT JOIN": "RightJoin",
  "RIGHT OUTER JOIN": "RightJoin",
  "FULL JOIN": "FullJoin",
  "FULL OUTER JOIN": "FullJoin",
};

const COMPARE = new Set(["=", "==", "!=", "<>", "<", "<=", ">", ">="]);

/** A keyword (or keywords) as one upper-case string; an operator string as it is. */
function word(k: unknown): string {
  if (typeof k === "string") return k;
  if (Array.isArray(k)) return k.map(word).join(" ");
  if (k && typeof k === "object" && (k as Cst).type === "keyword") return String((k as Cst).name).toUpperCase();
  return "";
}

class Lowering {
  readonly params: SqliteParams;
  readonly numbers: Map<Cst, { index: number; name: string | null }>;
  constructor(params: SqliteParams, numbers: Map<Cst, { index: number; name: string | null }>) {
    this.params = params;
    this.numbers = numbers;
  }

  statement(s: Cst): SelectQueryNode {
    if (s.type === "compound_select_stmt") return this.compound(s);
    if (s.type !== "select_stmt") throw unsupported(`a ${s.type} read`);
    return this.select(s);
  }

  select(s: Cst, outer?: { order?: Cst; limit?: Cst }): SelectQueryNode {
    const parts: Parameters<typeof n.select>[0] = {};
    const from: OperationNode[] = [];
    const joins: JoinNode[] = [];
    for (const clause of s.clauses as Cst[]) {
      switch (clause.type) {
        case "with_clause":
          parts.with = {
            recursive: clause.recursiveKw !== undefined,
            expressions: (clause.tables.items as Cst[]).map((t) => {
              if (t.type !== "common_table_expr") throw unsupported(`a ${t.type} in WITH`);
              const body = t.expr?.type === "paren_expr" ? t.expr.expr : t.expr;
              return n.cte(t.table.name, this.statement(body));
            }),
          };
          break;
        case "select_clause":
          for (const m of clause.modifiers ?? []) {
            if (m.type === "select_distinct") parts.distinct = true;
            else if (m.type !== "select_all") throw unsupported(`the select modifier ${m.type}`);
          }
          parts.selections = (clause.columns.items as Cst[]).map((c) => this.selection(c));
          break;
        case "from_clause":
          this.fromItem(clause.expr, from, joins);
          break;
        case "where_clause":
          parts.where = this.expr(clause.expr);
          break;
        case "group_by_clause":
          parts.groupBy = (clause.columns.items as Cst[]).map((c) => this.expr(c));
          break;
        case "having_clause":
          parts.having = this.expr(clause.expr);
          break;
        case "order_by_clause":
          if (outer) outer.order = clause;
          else parts.orderBy = this.orderBy(clause);
          break;
        case "limit_clause":
          if (outer) outer.limit = clause;
          else Object.assign(parts, this.limit(clause));
          break;
        case "window_clause":
          throw unsupported("a named WINDOW clause", "write the window inline: over (partition by … order by …)");
        case "values_clause":
          throw unsupported("a VALUES list as a query");
        default:
          throw unsupported(`a ${clause.type} clause`);
      }
    }
    parts.from = from;
    parts.joins = joins;
    return n.select(parts);
  }

  /** SQLite's compound: branches left to right; the ORDER BY and LIMIT of the last branch are the compound's. */
  compound(s: Cst): SelectQueryNode {
    const branches: { operator: string; node: Cst }[] = [];
    const flatten = (node: Cst, operator: string): void => {
      if (node.type === "compound_select_stmt") {
        flatten(node.left, operator);
        flatten(node.right, word(node.operator));
      } else branches.push({ operator, node });
    };
    flatten(s, "");
    const tail: { order?: Cst; limit?: Cst } = {};
    const last = branches.length - 1;
    const lowered = branches.map((b, i) => {
      const into: { order?: Cst; limit?: Cst } = {};
      const select = this.select(b.node, into);
      if (i !== last && (into.order || into.limit)) throw unsupported("ORDER BY or LIMIT inside a compound's branch");
      if (i === last) Object.assign(tail, into);
      return select;
    });
    const first = { ...lowered[0] } as Cst;
    first.setOperations = branches.slice(1).map((b, i) => {
      const op = b.operator.toLowerCase();
      const operator = op.startsWith("union") ? "union" : op.startsWith("intersect") ? "intersect" : "except";
      return Object.freeze({
        kind: "SetOperationNode",
        operator,
        all: op.endsWith(" all"),
        expression: lowered[i + 1],
      });
    });
    if (tail.order) first.orderBy = Object.freeze({ kind: "OrderByNode", items: this.orderBy(tail.order) });
    if (tail.limit) {
      const { limit, offset } = this.limit(tail.limit);
      if (limit) first.limit = Object.freeze({ kind: "LimitNode", limit });
      if (offset) first.offset = Object.freeze({ kind: "OffsetNode", offset });
    }
    return Object.freeze(first) as SelectQueryNode;
  }

  orderBy(clause: Cst): OrderByItemNode[] {
    return (clause.specifications.items as Cst[]).map((spec) => {
      if (spec.type !== "sort_specification") return n.orderItem(this.expr(spec));
      const dir =
        spec.direction?.type === "sort_direction_desc"
          ? "desc"
          : spec.direction?.type === "sort_direction_asc"
            ? "asc"
            : undefined;
      const nullsWord = word(spec.nullHandlingKw);
      const nulls = nullsWord.endsWith("FIRST") ? "first" : nullsWord.endsWith("LAST") ? "last" : undefined;
      return n.orderItem(this.expr(spec.expr), dir, nulls);
    });
  }

  limit(clause: Cst): { limit?: OperationNode; offset?: OperationNode } {
    const out: { limit?: OperationNode; offset?: OperationNode } = {};
    if (clause.count) {
      const limit = bindLimit(this.expr(clause.count), "limit");
      // A negative LIMIT is no limit in SQLite.
      const negative = limit?.kind === "ValueNode" && ((limit as Cst).value as number) < 0;
      if (limit && !negative) out.limit = limit;
    }
    if (clause.offset) {
      const offset = bindLimit(this.expr(clause.offset), "offset");
      if (offset) out.offset = offset;
    }
    return out;
  }

  fromItem(item: Cst, from: OperationNode[], joins: JoinNode[]): void {
    if (item.type !== "join_expr") {
      from.push(this.source(item));
      return;
    }
    this.fromItem(item.left, from, joins);
    const op = word(item.operator);
    if (op.startsWith("NATURAL")) throw unsupported("a NATURAL join", "join on the columns: join t on t.a = u.a");
    let joinType = JOINS[op];
    if (!joinType) throw unsupported(`a ${op} join`);
    if (item.right.type === "join_expr") throw unsupported("a parenthesised join on the right of a join");
    const spec = item.specification;
    let on: OperationNode | undefined;
    if (spec?.type === "join_on_specification") on = this.expr(spec.expr);
    else if (spec?.type === "join_using_specification") {
      const names = (spec.expr.expr.items as Cst[]).map((c) => n.column(c.name));
      on = n.fn("using", names);
    } else if (spec) throw unsupported(`a ${spec.type} join condition`);
    if (!on && joinType === "InnerJoin") joinType = "CrossJoin";
    const source = this.source(item.right);
    joins.push(n.join(joinType, source, on ?? (joinType === "CrossJoin" ? undefined : n.value(1))));
  }

  source(item: Cst): OperationNode {
    if (item.type === "alias") return n.alias(this.source(item.expr), item.alias.name);
    if (item.type === "identifier") return n.table(item.name);
    if (item.type === "member_expr" && item.object.type === "identifier" && item.property.type === "identifier") {
      return n.table(item.property.name, item.object.name);
    }
    if (item.type === "paren_expr") {
      const inner = item.expr;
      if (inner.type === "select_stmt" || inner.type === "compound_select_stmt") return this.statement(inner);
      throw unsupported("a parenthesised join", "write the joins one after another");
    }
    if (item.type === "indexed_table" || item.type === "not_indexed_table") return this.source(item.table);
    if (item.type === "func_call") {
      throw new Refusal(
        "opaque_source",
        "a table-valued function (json_each, pragma_…) as a source, whose rows Upkeep cannot follow",
        "select from tables or subqueries",
      );
    }
    throw new Refusal("opaque_source", `a ${item.type} source`, REWRITE_TEXT.opaque_source);
  }

  selection(c: Cst): OperationNode {
    if (c.type === "alias") return n.alias(this.expr(c.expr), c.alias.name);
    return this.expr(c);
  }

  // ── expressions ──────────────────────────────────────────────────────────────────────────────────────────

  expr(e: Cst): OperationNode {
    switch (e.type) {
      case "identifier":
        return n.reference(e.name);
      case "all_columns":
        return n.selectAll();
      case "member_expr":
        return this.member(e);
      case "parameter":
        return n.value(this.param(e));
      case "number_literal":
        return n.value(numberOf(e.text, e.value));
      case "string_literal":
        return n.value(e.value);
      case "null_literal":
        return n.value(null);
      case "boolean_literal":
        return n.value(e.value ? 1 : 0);
      case "blob_literal":
        return n.value(Uint8Array.from(e.value as number[]));
      case "paren_expr": {
        const inner = e.expr;
        if (inner.type === "select_stmt" || inner.type === "compound_select_stmt") return this.statement(inner);
        if (inner.type === "list_expr") return n.tuple((inner.items as Cst[]).map((x) => this.expr(x)));
        return n.parens(this.expr(inner));
      }
      case "binary_expr":
        return this.binary(e);
      case "prefix_op_expr": {
        const op = word(e.operator);
        if (op === "NOT") return n.unary("not", this.expr(e.expr));
        if (op === "EXISTS") return n.unary("exists", this.expr(e.expr));
        return n.unary(op.toLowerCase(), this.expr(e.expr));
      }
      case "postfix_op_expr": {
        const op = word(e.operator);
        if (op === "ISNULL") return n.binary(this.expr(e.expr), "is", n.value(null));
        if (op === "NOTNULL" || op === "NOT NULL") return n.binary(this.expr(e.expr), "is not", n.value(null));
        throw unsupported(`the operator ${op}`);
      }
      case "between_expr": {
        const op = word(e.betweenKw) === "NOT BETWEEN" ? "not between" : "between";
        return n.binary(this.expr(e.left), op, n.and([this.expr(e.begin), this.expr(e.end)]));
      }
      case "func_call":
        return this.call(e);
      case "case_expr": {
        const whens: { condition: OperationNode; result: OperationNode }[] = [];
        let otherwise: OperationNode | undefined;
        for (const c of e.clauses as Cst[]) {
          if (c.type === "case_when") whens.push({ condition: this.expr(c.condition), result: this.expr(c.result) });
          else if (c.type === "case_else") otherwise = this.expr(c.result);
          else throw unsupported(`a ${c.type} in CASE`);
        }
        return n.caseNode(e.expr ? this.expr(e.expr) : undefined, whens, otherwise);
      }
      case "cast_expr": {
        const arg = e.args.expr;
        return n.cast(this.expr(arg.expr), word(arg.dataType?.name) || "?");
      }
      default:
        throw unsupported(`a ${e.type} expression`);
    }
  }

  member(e: Cst): OperationNode {
    const names: string[] = [];
    let at: Cst = e;
    let star = false;
    while (at.type === "member_expr") {
      if (at.property.type === "all_columns") star = true;
      else if (at.property.type === "identifier") names.unshift(at.property.name);
      else throw unsupported(`a ${at.property.type} member`);
      at = at.object;
    }
    if (at.type !== "identifier") throw unsupported(`a member of a ${at.type}`);
    names.unshift(at.name);
    if (star) names.push("*");
    const col = names[names.length - 1];
    if (names.length === 2) return n.reference(col, names[0]);
    if (names.length === 3) return n.reference(col, names[1], names[0]);
    throw unsupported(`the reference ${names.join(".")}`);
  }

  param(p: Cst): unknown {
    const number = this.numbers.get(p);
    if (!number) throw unsupported(`the parameter ${p.text}`);
    const named = this.params.named;
    if (number.name !== null && named) {
      for (const key of [number.name, number.name.slice(1)]) if (Object.hasOwn(named, key)) return named[key];
    }
    if (number.index > this.params.positional.length) {
      throw unsupported(`the statement's parameter ${p.text} was sent no value`);
    }
    return this.params.positional[number.index - 1];
  }

  binary(e: Cst): OperationNode {
    const op = word(e.operator);
    const left = () => this.expr(e.left);
    switch (op) {
      case "AND":
        return n.and([this.expr(e.left), this.expr(e.right)]);
      case "OR":
        return n.parens(n.or([this.expr(e.left), this.expr(e.right)]));
      case "IS":
      case "IS NOT": {
        // `x IS NULL` is a null test; SQLite's IS with any other value is a comparison that never yields NULL,
        // and `IS TRUE` means "is not zero": both are left to evaluation as unknown.
        if (e.right.type === "null_literal") return n.binary(left(), op.toLowerCase(), n.value(null));
        return n.fn(`${op.toLowerCase()} (sqlite)`, [left(), this.expr(e.right)]);
      }
      case "IS DISTINCT FROM":
      case "IS NOT DISTINCT FROM":
        return n.binary(left(), op.toLowerCase(), this.expr(e.right));
      case "IN":
      case "NOT IN": {
        const right = e.right;
        let list: OperationNode;
        if (right.type === "paren_expr" && right.expr.type === "list_expr") {
          list = n.valueList((right.expr.items as Cst[]).map((x) => this.expr(x)));
        } else if (right.type === "paren_expr") {
          const inner = right.expr;
          list =
            inner.type === "select_stmt" || inner.type === "compound_select_stmt"
              ? this.statement(inner)
              : n.valueList([this.expr(inner)]);
        } else {
          throw unsupported(`${op} a table or function`, "write the list or a subquery: in (select col from t)");
        }
        return n.binary(left(), op.toLowerCase(), list);
      }
      case "LIKE":
      case "NOT LIKE":
        return n.binary(left(), op.toLowerCase(), this.expr(e.right));
      case "COLLATE":
        return n.fn("collate", [left()]);
      default:
        if (COMPARE.has(op)) return n.binary(left(), op === "==" ? "=" : op, this.expr(e.right));
        // ||, arithmetic, GLOB, MATCH, REGEXP, ->, ->>, ESCAPE: read their operands, evaluated as unknown.
        return n.binary(left(), op.toLowerCase(), this.expr(e.right));
    }
  }

  call(e: Cst): OperationNode {
    if (e.name.type !== "identifier") throw unsupported("a qualified function name");
    const name = String(e.name.name).toLowerCase();
    const argsNode = e.args?.expr;
    const distinct = argsNode?.distinctKw !== undefined;
    const items: Cst[] = argsNode?.args?.items ?? [];
    const args = items.map((a) => this.expr(a));
    const filter = e.filter ? this.expr(e.filter.where.expr.expr) : undefined;
    if (e.over) {
      const w = e.over.window;
      if (w.type !== "paren_expr") throw unsupported("a named window", "write the window inline");
      const def = w.expr;
      if (def.baseWindowName) throw unsupported("a window based on a named window");
      const partition = ((def.partitionBy?.specifications?.items ?? []) as Cst[]).map((x) => this.expr(x));
      const order = def.orderBy ? this.orderBy(def.orderBy) : [];
      return n.aggregate(name, args, { distinct, filter, over: n.over(partition, order) });
    }
    const scalarMinMax = (name === "min" || name === "max") && args.length > 1;
    if ((AGGREGATES.has(name) && !scalarMinMax) || distinct || filter) {
      return n.aggregate(name, args, { distinct, filter });
    }
    return n.fn(name, args);
  }
}

function numberOf(text: string, value: number): number | bigint {
  if (/^\d+$/.test(text) && !Number.isSafeInteger(value)) return BigInt(text);
  return value;
}
