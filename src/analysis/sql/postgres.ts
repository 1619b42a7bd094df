// PostgreSQL's own parse tree (libpg-query: the server's grammar compiled to WebAssembly) lowered into Kysely's
// OperationNodes, with the statement's parameters bound, for the one analysis (analyze.ts). Every node kind is either
// lowered to the node of the same meaning or refused with a stable code: nothing is skipped. Where PostgreSQL's
// tree says more than a predicate can use (a cast to an unknown type, an operator we cannot evaluate), the lowered
// node is one the analysis reads as an `unknown` predicate, which is sound.
import type { JoinNode, JoinType, OperationNode, OrderByItemNode, SelectQueryNode } from "kysely";
import { Refusal } from "../refusals.ts";
import * as n from "./nodes.ts";
import { constant, type PgNode, sval, unpack, unsupported } from "./postgres-tree.ts";
import { AGGREGATES, bindLimit, REWRITE_TEXT, transparentCast } from "./shared.ts";

export { type PgStatementKind, pgStatementKind } from "./postgres-tree.ts";

/** Lowers a read (a SelectStmt) with its parameters bound ($1 is params[0]). */
export function lowerPostgresSelect(stmt: PgNode, params: readonly unknown[]): SelectQueryNode {
  const [kind, fields] = unpack(stmt);
  if (kind !== "SelectStmt") throw unsupported(`a ${kind} read`);
  return new Lowering(params).select(fields);
}

const JOINS: Record<string, { plain: JoinType; lateral: JoinType }> = {
  JOIN_INNER: { plain: "InnerJoin", lateral: "LateralInnerJoin" },
  JOIN_LEFT: { plain: "LeftJoin", lateral: "LateralLeftJoin" },
  JOIN_RIGHT: { plain: "RightJoin", lateral: "RightJoin" },
  JOIN_FULL: { plain: "FullJoin", lateral: "FullJoin" },
};

const LIKE: Record<string, string> = { "~~": "like", "!~~": "not like", "~~*": "ilike", "!~~*": "not ilike" };

const BETWEEN: Record<string, string> = {
  AEXPR_BETWEEN: "between",
  AEXPR_NOT_BETWEEN: "not between",
  AEXPR_BETWEEN_SYM: "between symmetric",
  AEXPR_NOT_BETWEEN_SYM: "not between symmetric",
};

class Lowering {
  readonly params: readonly unknown[];
  constructor(params: readonly unknown[]) {
    this.params = params;
  }

  select(s: PgNode): SelectQueryNode {
    if (s.op && s.op !== "SETOP_NONE") return this.compound(s);
    if (s.valuesLists) throw unsupported("a VALUES list as a query");
    if (s.windowClause?.length)
      throw unsupported("a named WINDOW clause", "write the window inline: over (partition by … order by …)");
    for (const lock of s.lockingClause ?? []) {
      if (lock.LockingClause?.waitPolicy === "LockWaitSkip") {
        throw new Refusal(
          "opaque_modifier",
          "SKIP LOCKED returns a different set of rows whenever another transaction holds a lock",
          "drop SKIP LOCKED from the page's read",
        );
      }
    }
    const from: OperationNode[] = [];
    const joins: JoinNode[] = [];
    for (const item of s.fromClause ?? []) this.fromItem(item, from, joins);
    let distinct = false;
    let distinctOn: OperationNode[] | undefined;
    if (s.distinctClause) {
      const exprs = (s.distinctClause as PgNode[]).filter((d) => Object.keys(d).length > 0);
      if (exprs.length === 0) distinct = true;
      else distinctOn = exprs.map((d) => this.expr(d));
    }
    return n.select({
      with: s.withClause ? this.with(s.withClause) : undefined,
      from,
      joins,
      distinct,
      distinctOn,
      selections: (s.targetList ?? []).map((t: PgNode) => this.target(t)),
      where: s.whereClause ? this.expr(s.whereClause) : undefined,
      groupBy: (s.groupClause ?? []).map((g: PgNode) => this.groupItem(g)),
      having: s.havingClause ? this.expr(s.havingClause) : undefined,
      orderBy: (s.sortClause ?? []).map((o: PgNode) => this.sortBy(o)),
      ...this.limits(s),
    });
  }

  limits(s: PgNode): { limit?: OperationNode; offset?: OperationNode } {
    if (s.limitOption === "LIMIT_OPTION_WITH_TIES") throw unsupported("FETCH … WITH TIES", "use LIMIT without ties");
    const out: { limit?: OperationNode; offset?: OperationNode } = {};
    const limit = s.limitCount ? bindLimit(this.expr(s.limitCount), "limit") : null;
    if (limit) out.limit = limit;
    const offset = s.limitOffset ? bindLimit(this.expr(s.limitOffset), "offset") : null;
    if (offset) out.offset = offset;
    return out;
  }

  /** a UNION/INTERSECT/EXCEPT b …: the left-most branch carries the others, the order and the limit. */
  compound(s: PgNode): SelectQueryNode {
    const branches: { operator: "union" | "intersect" | "except"; all: boolean; node: PgNode }[] = [];
    let left = s;
    while (left.op && left.op !== "SETOP_NONE") {
      const operator = left.op === "SETOP_UNION" ? "union" : left.op === "SETOP_INTERSECT" ? "intersect" : "except";
      branches.unshift({ operator, all: left.all === true, node: left.rarg });
      if (left !== s && (left.sortClause || left.limitCount || left.limitOffset || left.withClause))
        throw unsupported("a parenthesised compound query with its own order, limit or WITH");
      left = left.larg;
    }
    if (left.sortClause || left.limitCount || left.limitOffset) {
      throw unsupported(
        "a branch of a compound query with its own ORDER BY or LIMIT",
        "move the branch into a subquery: select * from (select … limit n) t",
      );
    }
    const first = this.select(left);
    const lowered = {
      ...first,
      setOperations: branches.map((b) => ({
        kind: "SetOperationNode",
        operator: b.operator,
        all: b.all,
        expression: this.select(b.node),
      })),
    } as PgNode;
    if (s.withClause) lowered.with = (n.select({ with: this.with(s.withClause) }) as PgNode).with;
    const order = (s.sortClause ?? []).map((o: PgNode) => this.sortBy(o));
    if (order.length) lowered.orderBy = { kind: "OrderByNode", items: order };
    const { limit, offset } = this.limits(s);
    if (limit) lowered.limit = { kind: "LimitNode", limit };
    if (offset) lowered.offset = { kind: "OffsetNode", offset };
    return Object.freeze(lowered) as SelectQueryNode;
  }

  with(w: PgNode): { expressions: OperationNode[]; recursive: boolean } {
    return {
      recursive: w.recursive === true,
      expressions: (w.ctes ?? []).map((c: PgNode) => {
        const cte = c.CommonTableExpr;
        const [kind, fields] = unpack(cte.ctequery);
        // A data-modifying CTE stays a statement node: the analysis refuses it as a read.
        const expression = kind === "SelectStmt" ? this.select(fields) : n.statement(kind);
        return n.cte(cte.ctename, expression);
      }),
    };
  }

  fromItem(item: PgNode, from: OperationNode[], joins: JoinNode[]): void {
    const [kind, fields] = unpack(item);
    if (kind !== "JoinExpr") {
      from.push(this.source(kind, fields));
      return;
    }
    // A left-deep join tree is the FROM item followed by its joins, in order.
    if (fields.alias) throw unsupported("an aliased join", "join the tables directly, without (… join …) as alias");
    if (fields.isNatural) throw unsupported("a NATURAL join", "join on the columns: join t on t.a = u.a");
    this.fromItem(fields.larg, from, joins);
    const [rkind, right] = unpack(fields.rarg);
    if (rkind === "JoinExpr")
      throw unsupported("a parenthesised join on the right of a join", "write the joins one after another");
    const types = JOINS[fields.jointype];
    if (!types) throw unsupported(`a ${fields.jointype} join`);
    const lateral = rkind === "RangeSubselect" && right.lateral === true;
    let joinType = lateral ? types.lateral : types.plain;
    let on: OperationNode | undefined;
    if (fields.usingClause) {
      // USING (a, b): each name is a column of both sides; a condition the analysis cannot evaluate, whose columns
      // are read on every table of the scope that may have them.
      on = n.fn(
        "using",
        (fields.usingClause as PgNode[]).map((c) => n.column(sval(c))),
      );
    } else if (fields.quals) on = this.expr(fields.quals);
    else if (joinType === "InnerJoin") joinType = "CrossJoin";
    else if (joinType === "LateralInnerJoin") joinType = "LateralCrossJoin";
    joins.push(
      n.join(joinType, this.source(rkind, right), on ?? (joinType.includes("Cross") ? undefined : n.value(true))),
    );
  }

  source(kind: string, f: PgNode): OperationNode {
    if (kind === "RangeVar") {
      const t = n.table(f.relname, f.catalogname ? undefined : f.schemaname);
      if (f.catalogname) throw unsupported("a table named with its database (db.schema.table)");
      return f.alias ? n.alias(t, f.alias.aliasname) : t;
    }
    if (kind === "RangeSubselect") {
      const [skind, sub] = unpack(f.subquery);
      if (skind !== "SelectStmt") throw unsupported(`a ${skind} as a source`);
      const select = this.select(sub);
      return f.alias ? n.alias(select, f.alias.aliasname) : select;
    }
    if (kind === "RangeFunction") {
      throw new Refusal(
        "opaque_source",
        "a function as a source (generate_series, unnest, json_to_recordset …) whose rows Upkeep cannot follow",
        "select from tables or subqueries; pass lists as parameters of `= any($1)` or `in (…)`",
      );
    }
    throw new Refusal("opaque_source", `a ${kind} source`, REWRITE_TEXT.opaque_source);
  }

  target(t: PgNode): OperationNode {
    const res = t.ResTarget;
    if (!res) throw unsupported("a select list item that is not an expression");
    const value = this.expr(res.val);
    return res.name ? n.alias(value, res.name) : value;
  }

  groupItem(g: PgNode): OperationNode {
    const [kind] = unpack(g);
    if (kind === "GroupingSet") throw unsupported("GROUPING SETS, ROLLUP or CUBE");
    return this.expr(g);
  }

  sortBy(o: PgNode): OrderByItemNode {
    const s = o.SortBy;
    if (!s) throw unsupported("an ORDER BY item that is not an expression");
    if (s.sortby_dir === "SORTBY_USING")
      throw new Refusal("opaque_order", "ORDER BY … USING an operator", "order by columns with asc or desc");
    const dir = s.sortby_dir === "SORTBY_DESC" ? "desc" : s.sortby_dir === "SORTBY_ASC" ? "asc" : undefined;
    const nulls =
      s.sortby_nulls === "SORTBY_NULLS_FIRST" ? "first" : s.sortby_nulls === "SORTBY_NULLS_LAST" ? "last" : undefined;
    return n.orderItem(this.expr(s.node), dir, nulls);
  }

  // ── expressions ──────────────────────────────────────────────────────────────────────────────────────────

  exprs(list: PgNode[] | undefined): OperationNode[] {
    return (list ?? []).map((e) => this.expr(e));
  }

  expr(node: PgNode): OperationNode {
    const [kind, f] = unpack(node);
    switch (kind) {
      case "ColumnRef": {
        const parts = (f.fields as PgNode[]).map(sval);
        const col = parts[parts.length - 1];
        if (parts.length === 1) {
          return n.reference(col);
        }
        if (parts.length === 2) return n.reference(col, parts[0]);
        if (parts.length === 3) return n.reference(col, parts[1], parts[0]);
        throw unsupported(`the column reference ${parts.join(".")}`);
      }
      case "ParamRef":
        return n.value(this.param(f.number ?? 0));
      case "A_Const":
        return n.value(constant(f));
      case "TypeCast": {
        const arg = this.expr(f.arg);
        const type = (f.typeName?.names ?? [])
          .map(sval)
          .filter((p: string) => p !== "pg_catalog")
          .join(".");
        if (f.typeName?.arrayBounds) return n.cast(arg, `${type}[]`);
        return transparentCast(arg, type) ?? n.cast(arg, type);
      }
      case "A_Expr":
        return this.aExpr(f);
      case "BoolExpr": {
        const args = this.exprs(f.args);
        if (f.boolop === "AND_EXPR") return n.parens(n.and(args));
        if (f.boolop === "OR_EXPR") return n.parens(n.or(args));
        return n.unary("not", args[0]);
      }
      case "NullTest":
        return n.binary(this.expr(f.arg), f.nulltesttype === "IS_NOT_NULL" ? "is not" : "is", n.value(null));
      case "BooleanTest": {
        const t = f.booltesttype as string;
        const v = t.includes("TRUE") ? true : t.includes("FALSE") ? false : null;
        return n.binary(this.expr(f.arg), t.startsWith("IS_NOT") ? "is not" : "is", n.value(v));
      }
      case "SubLink":
        return this.subLink(f);
      case "FuncCall":
        return this.funcCall(f);
      case "CoalesceExpr":
        return n.fn("coalesce", this.exprs(f.args));
      case "MinMaxExpr":
        return n.fn(f.op === "IS_GREATEST" ? "greatest" : "least", this.exprs(f.args));
      case "NullIfExpr":
        return n.fn("nullif", this.exprs(f.args));
      case "CaseExpr":
        return n.caseNode(
          f.arg ? this.expr(f.arg) : undefined,
          (f.args as PgNode[]).map((w) => ({
            condition: this.expr(w.CaseWhen.expr),
            result: this.expr(w.CaseWhen.result),
          })),
          f.defresult ? this.expr(f.defresult) : undefined,
        );
      case "RowExpr":
        return n.tuple(this.exprs(f.args));
      case "A_ArrayExpr":
        return n.fn("array", this.exprs(f.elements));
      case "SQLValueFunction":
        return n.fn(
          String(f.op)
            .replace(/^SVFOP_/, "")
            .toLowerCase(),
          [],
        );
      case "CollateClause":
        return n.fn("collate", [this.expr(f.arg)]);
      case "NamedArgExpr":
        return this.expr(f.arg);
      case "A_Indirection": {
        const args = [this.expr(f.arg)];
        for (const i of f.indirection ?? []) {
          const [ikind, ind] = unpack(i);
          if (ikind === "A_Indices") {
            if (ind.lidx) args.push(this.expr(ind.lidx));
            if (ind.uidx) args.push(this.expr(ind.uidx));
          } else if (ikind === "A_Star") throw unsupported("(row).* in an expression");
        }
        return n.fn("indirection", args);
      }
      default:
        throw unsupported(`a ${kind} expression`);
    }
  }

  param(number: number): unknown {
    if (number < 1 || number > this.params.length) {
      throw unsupported(`the statement names $${number} but was sent ${this.params.length} parameter(s)`);
    }
    return this.params[number - 1];
  }

  aExpr(f: PgNode): OperationNode {
    const op = f.name ? sval(f.name[f.name.length - 1]) : "";
    const left = f.lexpr ? this.expr(f.lexpr) : undefined;
    const list = (): OperationNode[] => {
      const items = f.rexpr?.List?.items;
      if (!items) throw unsupported(`${op} without a list`);
      return this.exprs(items);
    };
    switch (f.kind) {
      case "AEXPR_OP": {
        const right = this.expr(f.rexpr);
        if (!left) return n.unary(op, right);
        return n.binary(left, op, right);
      }
      case "AEXPR_IN":
        return n.binary(left as OperationNode, op === "<>" ? "not in" : "in", n.valueList(list()));
      case "AEXPR_LIKE":
      case "AEXPR_ILIKE": {
        const like = LIKE[op];
        if (!like) throw unsupported(`the operator ${op}`);
        return n.binary(left as OperationNode, like, this.expr(f.rexpr));
      }
      case "AEXPR_BETWEEN":
      case "AEXPR_NOT_BETWEEN":
      case "AEXPR_BETWEEN_SYM":
      case "AEXPR_NOT_BETWEEN_SYM": {
        const [lo, hi] = list();
        return n.binary(left as OperationNode, BETWEEN[f.kind], n.and([lo, hi]));
      }
      case "AEXPR_OP_ANY":
      case "AEXPR_OP_ALL": {
        const any = f.kind === "AEXPR_OP_ANY";
        const values = this.arrayValues(f.rexpr);
        // x = any(array) is x in (…); x <> all(array) is x not in (…). Other forms are evaluated as unknown.
        if (values && any && op === "=") return n.binary(left as OperationNode, "in", n.valueList(values));
        if (values && !any && op === "<>") return n.binary(left as OperationNode, "not in", n.valueList(values));
        return n.binary(left as OperationNode, `${op} ${any ? "any" : "all"}`, n.fn("array", [this.expr(f.rexpr)]));
      }
      case "AEXPR_DISTINCT":
        return n.binary(left as OperationNode, "is distinct from", this.expr(f.rexpr));
      case "AEXPR_NOT_DISTINCT":
        return n.binary(left as OperationNode, "is not distinct from", this.expr(f.rexpr));
      case "AEXPR_NULLIF":
        return n.fn("nullif", [left as OperationNode, this.expr(f.rexpr)]);
      case "AEXPR_SIMILAR":
        return n.binary(left as OperationNode, op === "~" ? "similar to" : "not similar to", this.expr(f.rexpr));
      default:
        throw unsupported(`the expression kind ${f.kind}`);
    }
  }

  /** The elements of an array parameter or ARRAY[…] literal, when they are plain values. */
  arrayValues(node: PgNode): OperationNode[] | null {
    const [kind, f] = unpack(node);
    if (kind === "ParamRef") {
      const v = this.param(f.number ?? 0);
      if (!Array.isArray(v)) return null;
      return v.every((x) => x === null || ["string", "number", "bigint", "boolean"].includes(typeof x))
        ? v.map((x) => n.value(x))
        : null;
    }
    if (kind === "A_ArrayExpr") return this.exprs(f.elements);
    if (kind === "TypeCast") return this.arrayValues(f.arg);
    return null;
  }

  subLink(f: PgNode): OperationNode {
    const [kind, sub] = unpack(f.subselect);
    if (kind !== "SelectStmt") throw unsupported(`a ${kind} subquery`);
    const select = this.select(sub);
    const op = f.operName ? sval(f.operName[f.operName.length - 1]) : "=";
    switch (f.subLinkType) {
      case "EXISTS_SUBLINK":
        return n.unary("exists", select);
      case "EXPR_SUBLINK":
        return select;
      case "ARRAY_SUBLINK":
        return n.fn("array", [select]);
      case "ANY_SUBLINK":
        return op === "="
          ? n.binary(this.expr(f.testexpr), "in", select)
          : n.binary(this.expr(f.testexpr), `${op} any`, select);
      case "ALL_SUBLINK":
        return n.binary(this.expr(f.testexpr), `${op} all`, select);
      default:
        throw unsupported(`a ${f.subLinkType} subquery`);
    }
  }

  funcCall(f: PgNode): OperationNode {
    const name = (f.funcname as PgNode[])
      .map(sval)
      .filter((p) => p !== "pg_catalog")
      .join(".");
    const args = f.agg_star ? [n.selectAll()] : this.exprs(f.args);
    if (f.agg_within_group) throw unsupported(`${name}(…) WITHIN GROUP`);
    const orderBy = (f.agg_order ?? []).map((o: PgNode) => this.sortBy(o));
    const filter = f.agg_filter ? this.expr(f.agg_filter) : undefined;
    if (f.over) {
      const w = f.over.WindowDef ?? f.over;
      if (w.refname)
        throw unsupported(`a window named ${w.refname}`, "write the window inline: over (partition by … order by …)");
      const over = n.over(
        this.exprs(w.partitionClause),
        (w.orderClause ?? []).map((o: PgNode) => this.sortBy(o)),
      );
      return n.aggregate(name, args, { distinct: f.agg_distinct, orderBy, filter, over });
    }
    if (AGGREGATES.has(name) || f.agg_star || f.agg_distinct || orderBy.length || filter) {
      return n.aggregate(name, args, { distinct: f.agg_distinct, orderBy, filter });
    }
    return n.fn(name, args);
  }
}
