// The expression walk: what each kind of Kysely node read inside a query's expressions (selections, filters, join
// conditions, order and group terms). The table names every OperationNodeKind Kysely has, so a kind added in a
// later Kysely is a compile error here, and every kind either contributes to the dependency or refuses with a
// stable code: never a silent pass. Nodes are narrowed with Kysely's own `XNode.is()` guards.
import {
  AggregateFunctionNode,
  AliasNode,
  AndNode,
  BinaryOperationNode,
  CaseNode,
  CastNode,
  ColumnNode,
  FunctionNode,
  JSONReferenceNode,
  type OperationNode,
  type OperationNodeKind,
  OrNode,
  ParensNode,
  RawNode,
  ReferenceNode,
  SelectionNode,
  SelectQueryNode,
  type TableNode,
  TupleNode,
  UnaryOperationNode,
  ValueListNode,
} from "kysely";
import { isWrapper } from "./raw.ts";
import { type Context, Refusal } from "./refusals.ts";
import type { ExprInfo, Output, Resolved, Scope, Source } from "./scope.ts";

/** What the walk needs of the analyser that runs it. */
export interface Analyser {
  qualified(table: TableNode, scope: Scope): Source;
  resolve(ref: ReferenceNode, scope: Scope): Resolved;
  resolveColumn(column: string, scope: Scope): Resolved;
  select(node: SelectQueryNode, scope: Scope): unknown;
  raw(raw: RawNode, scope: Scope, context: Context): void;
}

/** One walk over one expression: where it is, and what it found so far. */
export interface Walk {
  readonly analyser: Analyser;
  readonly scope: Scope;
  readonly context: Context;
  readonly info: ExprInfo;
  readonly outputs: Output[] | undefined;
}

type Handler = (node: OperationNode, walk: Walk) => void;

export function walkExpression(node: OperationNode | undefined, walk: Walk): void {
  if (node) EXPRESSIONS[node.kind](node, walk);
}

/** Reads nothing: literals, operators, names, types. */
const leaf: Handler = () => {};

/** A node that is not an expression (a statement, a clause, a schema object): refused where an expression is. */
const notAnExpression: Handler = (node) => {
  throw new Refusal("unsupported_query", `a ${node.kind} expression`);
};

const reference: Handler = (node, walk) => {
  if (!ReferenceNode.is(node)) return notAnExpression(node, walk);
  const { analyser, scope, info, outputs } = walk;
  if (!ColumnNode.is(node.column)) {
    // `t.*`: every column of t.
    if (!node.table) throw new Refusal("unsupported_query", "an unqualified * inside an expression");
    const source = analyser.qualified(node.table, scope);
    if (source.read) source.read.columns = "*";
    info.nonLocal = true;
    return;
  }
  const column = node.column.column.name;
  if (!node.table && outputs) {
    // ORDER BY / GROUP BY / HAVING may name an output alias; its expression was recorded with the selection.
    const out = outputs.find((o) => o.name === column && !o.all);
    if (out && out.column !== column) {
      // PostgreSQL's GROUP BY prefers an input column of the same name: record that reading too.
      analyser.resolveColumn(column, scope);
      if (out.source && out.column) {
        info.refs.push({ column: out.column, candidates: [out.source] });
        return;
      }
      info.nonLocal = true;
      return;
    }
  }
  info.refs.push(analyser.resolve(node, scope));
};

const EXPRESSIONS: Record<OperationNodeKind, Handler> = {
  ReferenceNode: reference,
  ColumnNode: (node, walk) => {
    if (ColumnNode.is(node)) walk.info.refs.push(walk.analyser.resolveColumn(node.column.name, walk.scope));
  },
  // `*` inside count(*) and similar: reads no particular column.
  SelectAllNode: leaf,
  ValueNode: leaf,
  PrimitiveValueListNode: leaf,
  OperatorNode: leaf,
  IdentifierNode: leaf,
  DataTypeNode: leaf,
  CollateNode: leaf,
  DefaultValueNode: leaf,
  JSONPathNode: leaf,
  JSONPathLegNode: leaf,
  JSONOperatorChainNode: leaf,
  ValueListNode: (node, walk) => {
    if (ValueListNode.is(node)) for (const v of node.values) walkExpression(v, walk);
  },
  TupleNode: (node, walk) => {
    if (TupleNode.is(node)) for (const v of node.values) walkExpression(v, walk);
  },
  BinaryOperationNode: (node, walk) => {
    if (!BinaryOperationNode.is(node)) return;
    walkExpression(node.leftOperand, walk);
    walkExpression(node.rightOperand, walk);
  },
  UnaryOperationNode: (node, walk) => {
    if (UnaryOperationNode.is(node)) walkExpression(node.operand, walk);
  },
  AndNode: (node, walk) => {
    if (!AndNode.is(node)) return;
    walkExpression(node.left, walk);
    walkExpression(node.right, walk);
  },
  OrNode: (node, walk) => {
    if (!OrNode.is(node)) return;
    walkExpression(node.left, walk);
    walkExpression(node.right, walk);
  },
  ParensNode: (node, walk) => {
    if (ParensNode.is(node)) walkExpression(node.node, walk);
  },
  AliasNode: (node, walk) => {
    if (AliasNode.is(node)) walkExpression(node.node, walk);
  },
  SelectionNode: (node, walk) => {
    if (SelectionNode.is(node)) walkExpression(node.selection, walk);
  },
  CastNode: (node, walk) => {
    if (CastNode.is(node)) walkExpression(node.expression, walk);
  },
  FunctionNode: (node, walk) => {
    if (FunctionNode.is(node)) for (const arg of node.arguments) walkExpression(arg, walk);
  },
  AggregateFunctionNode: (node, walk) => {
    if (!AggregateFunctionNode.is(node)) return;
    // An aggregate depends on every row of its group: never a single-row filter.
    for (const arg of node.aggregated) walkExpression(arg, walk);
    if (node.filter) walkExpression(node.filter.where, walk);
    for (const item of node.orderBy?.items ?? []) walkExpression(item.orderBy, walk);
    for (const item of node.withinGroup?.items ?? []) walkExpression(item.orderBy, walk);
    for (const item of node.over?.partitionBy?.items ?? []) walkExpression(item.partitionBy, walk);
    for (const item of node.over?.orderBy?.items ?? []) walkExpression(item.orderBy, walk);
    walk.info.nonLocal = true;
  },
  CaseNode: (node, walk) => {
    if (!CaseNode.is(node)) return;
    walkExpression(node.value, walk);
    for (const when of node.when ?? []) {
      walkExpression(when.condition, walk);
      walkExpression(when.result, walk);
    }
    walkExpression(node.else, walk);
  },
  JSONReferenceNode: (node, walk) => {
    if (JSONReferenceNode.is(node)) walkExpression(node.reference, walk);
  },
  SelectQueryNode: (node, walk) => {
    if (!SelectQueryNode.is(node)) return;
    // A subquery (scalar, IN, EXISTS): its tables are read with their own filters. Relative to the enclosing
    // row it is not local (it depends on other rows, possibly correlated).
    walk.analyser.select(node, walk.scope);
    walk.info.nonLocal = true;
  },
  RawNode: (node, walk) => {
    if (!RawNode.is(node)) return;
    if (isWrapper(node)) {
      for (const p of node.parameters) walkExpression(p, walk);
      return;
    }
    walk.analyser.raw(node, walk.scope, walk.context);
    walk.info.nonLocal = true;
  },
  // Clauses, statements and schema objects: never inside an expression of a read Upkeep can follow.
  SchemableIdentifierNode: notAnExpression,
  TableNode: notAnExpression,
  FromNode: notAnExpression,
  JoinNode: notAnExpression,
  WhereNode: notAnExpression,
  InsertQueryNode: notAnExpression,
  DeleteQueryNode: notAnExpression,
  ReturningNode: notAnExpression,
  CreateTableNode: notAnExpression,
  ColumnDefinitionNode: notAnExpression,
  AddColumnNode: notAnExpression,
  DropTableNode: notAnExpression,
  OrderByNode: notAnExpression,
  OrderByItemNode: notAnExpression,
  GroupByNode: notAnExpression,
  GroupByItemNode: notAnExpression,
  UpdateQueryNode: notAnExpression,
  ColumnUpdateNode: notAnExpression,
  LimitNode: notAnExpression,
  OffsetNode: notAnExpression,
  OnConflictNode: notAnExpression,
  OnDuplicateKeyNode: notAnExpression,
  CreateIndexNode: notAnExpression,
  DropIndexNode: notAnExpression,
  ListNode: notAnExpression,
  ReferencesNode: notAnExpression,
  PrimaryKeyConstraintNode: notAnExpression,
  UniqueConstraintNode: notAnExpression,
  CheckConstraintNode: notAnExpression,
  ForeignKeyConstraintNode: notAnExpression,
  WithNode: notAnExpression,
  CommonTableExpressionNode: notAnExpression,
  HavingNode: notAnExpression,
  CreateSchemaNode: notAnExpression,
  DropSchemaNode: notAnExpression,
  AlterTableNode: notAnExpression,
  ModifyColumnNode: notAnExpression,
  DropColumnNode: notAnExpression,
  RenameColumnNode: notAnExpression,
  AlterColumnNode: notAnExpression,
  AddConstraintNode: notAnExpression,
  DropConstraintNode: notAnExpression,
  CreateViewNode: notAnExpression,
  RefreshMaterializedViewNode: notAnExpression,
  DropViewNode: notAnExpression,
  GeneratedNode: notAnExpression,
  OnNode: notAnExpression,
  ValuesNode: notAnExpression,
  CommonTableExpressionNameNode: notAnExpression,
  SelectModifierNode: notAnExpression,
  CreateTypeNode: notAnExpression,
  DropTypeNode: notAnExpression,
  ExplainNode: notAnExpression,
  DefaultInsertValueNode: notAnExpression,
  OverNode: notAnExpression,
  PartitionByNode: notAnExpression,
  PartitionByItemNode: notAnExpression,
  SetOperationNode: notAnExpression,
  UsingNode: notAnExpression,
  WhenNode: notAnExpression,
  MergeQueryNode: notAnExpression,
  MatchedNode: notAnExpression,
  AddIndexNode: notAnExpression,
  FetchNode: notAnExpression,
  TopNode: notAnExpression,
  OutputNode: notAnExpression,
  OrActionNode: notAnExpression,
  RenameConstraintNode: notAnExpression,
};
