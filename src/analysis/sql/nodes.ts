// Kysely OperationNodes built by the SQL-text lowerings (postgres.ts, sqlite.ts): the parse trees of PostgreSQL's
// and SQLite's grammars are lowered into the node tree the analysis already reads, so one analysis (analyze.ts)
// serves Kysely queries and SQL sent by any data layer. Nodes are frozen plain objects of Kysely's shapes.
import type {
  AliasNode,
  BinaryOperationNode,
  ColumnNode,
  IdentifierNode,
  JoinNode,
  JoinType,
  OperationNode,
  OrderByItemNode,
  RawNode,
  ReferenceNode,
  SelectAllNode,
  SelectionNode,
  SelectQueryNode,
  TableNode,
  UnaryOperationNode,
  ValueNode,
} from "kysely";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export type SelectParts = Partial<Mutable<Omit<SelectQueryNode, "kind">>>;

const freeze = <T extends object>(node: T): T => Object.freeze(node);

export const identifier = (name: string): IdentifierNode => freeze({ kind: "IdentifierNode", name });

export function table(name: string, schema?: string): TableNode {
  return freeze({
    kind: "TableNode",
    table: freeze({
      kind: "SchemableIdentifierNode",
      identifier: identifier(name),
      ...(schema ? { schema: identifier(schema) } : {}),
    }),
  } as TableNode);
}

export const column = (name: string): ColumnNode => freeze({ kind: "ColumnNode", column: identifier(name) });

export const selectAll = (): SelectAllNode => freeze({ kind: "SelectAllNode" });

/** `t.col`, `s.t.col`, `col`, `t.*`. */
export function reference(col: string | "*", tableName?: string, schema?: string): ReferenceNode | SelectAllNode {
  if (col === "*" && tableName === undefined) return selectAll();
  const target = col === "*" ? selectAll() : column(col);
  if (tableName === undefined) return freeze({ kind: "ReferenceNode", column: target } as ReferenceNode);
  return freeze({ kind: "ReferenceNode", column: target, table: table(tableName, schema) } as ReferenceNode);
}

export const value = (v: unknown): ValueNode => freeze({ kind: "ValueNode", value: v });

export const alias = (node: OperationNode, name: string): AliasNode =>
  freeze({ kind: "AliasNode", node, alias: identifier(name) });

export const binary = (left: OperationNode, operator: string, right: OperationNode): BinaryOperationNode =>
  freeze({
    kind: "BinaryOperationNode",
    leftOperand: left,
    operator: freeze({ kind: "OperatorNode", operator }),
    rightOperand: right,
  } as BinaryOperationNode);

export const unary = (operator: string, operand: OperationNode): UnaryOperationNode =>
  freeze({
    kind: "UnaryOperationNode",
    operator: freeze({ kind: "OperatorNode", operator }),
    operand,
  } as UnaryOperationNode);

export function and(items: OperationNode[]): OperationNode {
  return items.reduce((left, right) => freeze({ kind: "AndNode", left, right }) as OperationNode);
}

export function or(items: OperationNode[]): OperationNode {
  return items.reduce((left, right) => freeze({ kind: "OrNode", left, right }) as OperationNode);
}

export const parens = (node: OperationNode): OperationNode => freeze({ kind: "ParensNode", node } as OperationNode);

export const fn = (name: string, args: OperationNode[]): OperationNode =>
  freeze({ kind: "FunctionNode", func: name, arguments: args } as OperationNode);

export function aggregate(
  name: string,
  args: OperationNode[],
  extra: { distinct?: boolean; orderBy?: OrderByItemNode[]; filter?: OperationNode; over?: OperationNode } = {},
): OperationNode {
  return freeze({
    kind: "AggregateFunctionNode",
    func: name,
    aggregated: args,
    ...(extra.distinct ? { distinct: true } : {}),
    ...(extra.orderBy?.length ? { orderBy: orderByNode(extra.orderBy) } : {}),
    ...(extra.filter ? { filter: freeze({ kind: "WhereNode", where: extra.filter }) } : {}),
    ...(extra.over ? { over: extra.over } : {}),
  } as OperationNode);
}

export function over(partitionBy: OperationNode[], orderBy: OrderByItemNode[]): OperationNode {
  return freeze({
    kind: "OverNode",
    ...(partitionBy.length
      ? {
          partitionBy: freeze({
            kind: "PartitionByNode",
            items: partitionBy.map((p) => freeze({ kind: "PartitionByItemNode", partitionBy: p })),
          }),
        }
      : {}),
    ...(orderBy.length ? { orderBy: orderByNode(orderBy) } : {}),
  } as OperationNode);
}

export const cast = (expression: OperationNode, type: string): OperationNode =>
  freeze({ kind: "CastNode", expression, dataType: freeze({ kind: "DataTypeNode", dataType: type }) } as OperationNode);

export function caseNode(
  valueNode: OperationNode | undefined,
  whens: { condition: OperationNode; result: OperationNode }[],
  elseNode: OperationNode | undefined,
): OperationNode {
  return freeze({
    kind: "CaseNode",
    ...(valueNode ? { value: valueNode } : {}),
    when: whens.map((w) => freeze({ kind: "WhenNode", condition: w.condition, result: w.result })),
    ...(elseNode ? { else: elseNode } : {}),
  } as OperationNode);
}

export const valueList = (values: OperationNode[]): OperationNode =>
  freeze({ kind: "ValueListNode", values } as OperationNode);

export const tuple = (values: OperationNode[]): OperationNode => freeze({ kind: "TupleNode", values } as OperationNode);

/** A direction as Kysely writes it (a raw `desc`), which the analysis reads back. */
const direction = (dir: "asc" | "desc"): RawNode =>
  freeze({ kind: "RawNode", sqlFragments: [dir], parameters: [] } as RawNode);

export function orderItem(orderBy: OperationNode, dir?: "asc" | "desc", nulls?: "first" | "last"): OrderByItemNode {
  return freeze({
    kind: "OrderByItemNode",
    orderBy,
    ...(dir ? { direction: direction(dir) } : {}),
    ...(nulls ? { nulls } : {}),
  } as OrderByItemNode);
}

const orderByNode = (items: OrderByItemNode[]) => freeze({ kind: "OrderByNode", items } as OperationNode);

export const selection = (node: OperationNode): SelectionNode =>
  freeze({ kind: "SelectionNode", selection: node } as SelectionNode);

export function join(joinType: JoinType, source: OperationNode, on?: OperationNode): JoinNode {
  return freeze({
    kind: "JoinNode",
    joinType,
    table: source,
    ...(on ? { on: freeze({ kind: "OnNode", on }) } : {}),
  } as JoinNode);
}

export function cte(name: string, expression: OperationNode): OperationNode {
  return freeze({
    kind: "CommonTableExpressionNode",
    name: freeze({ kind: "CommonTableExpressionNameNode", table: table(name) }),
    expression,
  } as OperationNode);
}

/** A select from its parts (the lowering fills what the statement has). */
export function select(parts: {
  from?: OperationNode[];
  selections?: OperationNode[];
  distinctOn?: OperationNode[];
  distinct?: boolean;
  joins?: JoinNode[];
  where?: OperationNode;
  groupBy?: OperationNode[];
  having?: OperationNode;
  orderBy?: OrderByItemNode[];
  limit?: OperationNode;
  offset?: OperationNode;
  with?: { expressions: OperationNode[]; recursive: boolean };
  setOperations?: { operator: "union" | "intersect" | "except"; expression: SelectQueryNode; all: boolean }[];
}): SelectQueryNode {
  const node: Mutable<SelectQueryNode> = { kind: "SelectQueryNode" };
  if (parts.from?.length) node.from = freeze({ kind: "FromNode", froms: parts.from } as SelectQueryNode["from"] & {});
  if (parts.selections?.length) node.selections = parts.selections.map(selection);
  if (parts.distinctOn?.length) node.distinctOn = parts.distinctOn;
  if (parts.distinct)
    node.frontModifiers = [freeze({ kind: "SelectModifierNode", modifier: "Distinct" } as OperationNode)] as never;
  if (parts.joins?.length) node.joins = parts.joins;
  if (parts.where) node.where = freeze({ kind: "WhereNode", where: parts.where }) as never;
  if (parts.groupBy?.length)
    node.groupBy = freeze({
      kind: "GroupByNode",
      items: parts.groupBy.map((g) => freeze({ kind: "GroupByItemNode", groupBy: g })),
    }) as never;
  if (parts.having) node.having = freeze({ kind: "HavingNode", having: parts.having }) as never;
  if (parts.orderBy?.length) node.orderBy = orderByNode(parts.orderBy) as never;
  if (parts.limit) node.limit = freeze({ kind: "LimitNode", limit: parts.limit }) as never;
  if (parts.offset) node.offset = freeze({ kind: "OffsetNode", offset: parts.offset }) as never;
  if (parts.with)
    node.with = freeze({
      kind: "WithNode",
      expressions: parts.with.expressions,
      ...(parts.with.recursive ? { recursive: true } : {}),
    }) as never;
  if (parts.setOperations?.length)
    node.setOperations = parts.setOperations.map((s) =>
      freeze({ kind: "SetOperationNode", operator: s.operator, expression: s.expression, all: s.all } as never),
    );
  return freeze(node as SelectQueryNode);
}

/** A statement that is not a read (insert, update, delete, schema, transaction control): a raw node with its text. */
export const statement = (sql: string): RawNode =>
  freeze({ kind: "RawNode", sqlFragments: [sql], parameters: [] } as RawNode);
