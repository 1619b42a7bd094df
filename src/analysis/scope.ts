// Scopes and sources: what a query reads, where each reference may point, and what each select produces.
import {
  AndNode,
  ColumnNode,
  IdentifierNode,
  type OperationNode,
  ParensNode,
  type ReferenceNode,
  type TableNode,
} from "kysely";
import { Refusal } from "./refusals.ts";
import type { OrderTerm, Predicate } from "./types.ts";

export interface MutableRead {
  table: string;
  aliases: string[];
  columns: Set<string> | "*";
  conjuncts: Predicate[];
}

export interface Source {
  /** The name a qualified reference uses: the alias, or the table/CTE name. */
  name: string;
  /** The base-table read, or null for a derived table / CTE reference. */
  read: MutableRead | null;
  /** On the null-extended side of an outer join (at the current point of the FROM clause). */
  nullable: boolean;
}

export interface Scope {
  sources: Source[];
  parent: Scope | null;
  ctes: Set<string>;
}

export interface Resolved {
  column: string;
  /** Sources of the innermost scope the reference may belong to (qualified: exactly one). */
  candidates: Source[];
}

export interface ExprInfo {
  refs: Resolved[];
  /** Contains a subquery or something that depends on other rows: never a single-row filter. */
  nonLocal: boolean;
}

export interface Output {
  name: string;
  /** The base column this output is, when it is a plain column of one table source. */
  source: Source | null;
  column: string | null;
  /** `*` or `t.*`: every column of `source` (or of every source when null) under its own name. */
  all: boolean;
}

export interface SelectInfo {
  scope: Scope;
  outputs: Output[];
  order: OrderTerm[];
  orderIncomplete: boolean;
  limit: number | null;
  offset: number | null;
  aggregate: boolean;
  joins: boolean;
  setOperations: boolean;
}

export function conjunctsOf(node: OperationNode): OperationNode[] {
  if (AndNode.is(node)) return [...conjunctsOf(node.left), ...conjunctsOf(node.right)];
  if (ParensNode.is(node)) return conjunctsOf(node.node);
  return [node];
}

export function addColumn(source: Source, column: string): void {
  if (source.read && source.read.columns !== "*") source.read.columns.add(column);
}

export function isCte(scope: Scope, name: string): boolean {
  for (let s: Scope | null = scope; s; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

export function tableName(node: TableNode): string {
  const schema = node.table.schema?.name;
  const name = node.table.identifier.name;
  return schema && schema !== "public" && schema !== "main" ? `${schema}.${name}` : name;
}

export function identifierName(node: OperationNode): string {
  if (IdentifierNode.is(node)) return node.name;
  throw new Refusal("unsupported_query", `an alias that is a ${node.kind}`);
}

/** A raw node that only wraps Kysely nodes (sql.ref, sql.table, sql.val, sql.id, sql.lit): transparent. */

/** The source a qualified reference (`t.col`, `t.*`) names, in this scope or an enclosing one. */
export function qualifiedSource(table: TableNode, scope: Scope): Source {
  const name = tableName(table);
  const short = table.table.identifier.name;
  for (let s: Scope | null = scope; s; s = s.parent) {
    const found = s.sources.find((x) => x.name === name || x.name === short);
    if (found) return found;
  }
  throw new Refusal("unsupported_query", `cannot resolve the table reference "${name}"`);
}

export function resolveReference(ref: ReferenceNode, scope: Scope): Resolved {
  const column = ColumnNode.is(ref.column) ? ref.column.column.name : "*";
  if (ref.table) {
    const source = qualifiedSource(ref.table, scope);
    addColumn(source, column);
    return { column, candidates: [source] };
  }
  return resolveColumn(column, scope);
}

/** An unqualified column: it belongs to one source of the innermost scope that has it, or, when none has it, to
 *  an enclosing scope. Without the schema we record it on all of them (sound, slightly imprecise). */
export function resolveColumn(column: string, scope: Scope): Resolved {
  let innermost: Source[] | null = null;
  for (let s: Scope | null = scope; s; s = s.parent) {
    for (const source of s.sources) addColumn(source, column);
    if (!innermost && s.sources.length > 0) innermost = s.sources;
  }
  return { column, candidates: innermost ?? [] };
}
