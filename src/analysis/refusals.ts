// Refusals: the reasons a read cannot be analysed soundly, their rewrites, and the checks that raise them.
import type { SelectModifierNode, SelectQueryNode } from "kysely";
import { type RefusalCode, RefusedBoundaryError } from "../errors.ts";

export const REWRITES: Record<RefusalCode, string> = {
  raw_query:
    "build the read with db.selectFrom(…) so Upkeep can see its tables and predicates (keep sql`…` for writes)",
  opaque_predicate:
    "use structural conditions: .where('col', '=', value), eb('col', 'in', [...]), eb.and/eb.or/eb.not, eb.exists(subquery) instead of sql`col = …`",
  opaque_source:
    "select from a table or a Kysely subquery: .selectFrom('table') or .selectFrom(db.selectFrom(…).as('t'))",
  opaque_join:
    "join with structural conditions: .innerJoin('t', 't.a', 'u.b') or join.onRef(…)/join.on('col', '=', value)",
  opaque_order: "order by columns: .orderBy('col', 'desc') instead of .orderBy(sql`…`)",
  opaque_selection:
    "select columns or eb.fn(…) expressions; a sql`…` selection must not contain a subquery (use a Kysely subquery instead)",
  unsupported_query: "rewrite the query with plain Kysely builders (select, where, join, orderBy, limit)",
  write_in_render: "do the write in a POST handler (or before the page is rendered, outside the live GET)",
  opaque_modifier:
    "drop the modifyFront/modifyEnd fragment (or the SKIP LOCKED) from the page's read: it can change which rows a query returns in ways Upkeep cannot see",
  uncaptured_source:
    "read captured tables: a table added after install is captured after `npx upkeep install` (or the running ledger's refresh); an excluded table must leave `exclude`; query the base tables instead of a view, a foreign table or a partitioned table",
  frame_props:
    "pass a partial plain data (rows, ids, strings, numbers, arrays and objects of those); compute functions, class instances and JSX inside it, or render it with a plain component instead of a partial",
  collection_key:
    "select the table's primary key in the collection's first read (e.g. select id, title from cards …; Prisma and Drizzle select it unless told not to), and return those rows from of()",
  frame_root:
    "make the partial render exactly one root element with a stable, unique id, every element inside it closed explicitly (e.g. <li id='card_42'>…</li> for the card with id 42)",
};

/**
 * Every part of a SelectQueryNode and what the analysis does with it. A part Kysely adds in a later version is a
 * compile error here (the Record must name every key), and at run time an unknown part is refused, never ignored.
 */
export const SELECT_PARTS: Record<Exclude<keyof SelectQueryNode, "kind">, "analysed" | "not a read"> = {
  from: "analysed",
  selections: "analysed",
  distinctOn: "analysed",
  joins: "analysed",
  groupBy: "analysed",
  orderBy: "analysed",
  where: "analysed",
  frontModifiers: "analysed",
  endModifiers: "analysed",
  limit: "analysed",
  offset: "analysed",
  with: "analysed",
  having: "analysed",
  explain: "not a read",
  setOperations: "analysed",
  fetch: "analysed",
  top: "analysed",
};

/** Row locks do not change which rows a query returns; SKIP LOCKED does (it drops rows other transactions lock),
 *  and a raw fragment may do anything (a LIMIT, a FOR … OF …, a window clause). */
export function checkModifier(modifier: SelectModifierNode): void {
  if (modifier.rawModifier) {
    throw new Refusal(
      "opaque_modifier",
      "the query has a modifyFront/modifyEnd sql`…` fragment, which may change its rows",
    );
  }
  if (modifier.modifier === "SkipLocked") {
    throw new Refusal(
      "opaque_modifier",
      "SKIP LOCKED returns a different set of rows whenever another transaction holds a lock",
    );
  }
}

export function refusalFor(code: RefusalCode, sql: string, detail: string, rewrite?: string): RefusedBoundaryError {
  return new RefusedBoundaryError(code, sql, detail, rewrite ?? REWRITES[code]);
}

export class Refusal extends Error {
  readonly code: RefusalCode;
  readonly detail: string;
  readonly rewrite: string | undefined;
  constructor(code: RefusalCode, detail: string, rewrite?: string) {
    super(detail);
    this.code = code;
    this.detail = detail;
    this.rewrite = rewrite;
  }
}

/** Where an expression appears: decides the refusal code of a raw fragment and whether it can be covered. */
export type Context = "predicate" | "join" | "selection" | "order" | "group" | "source" | "limit";

export const RAW_CODE: Record<Context, RefusalCode> = {
  predicate: "opaque_predicate",
  join: "opaque_join",
  selection: "opaque_selection",
  order: "opaque_order",
  group: "opaque_selection",
  source: "opaque_source",
  limit: "unsupported_query",
};

/** How a refusal names where a raw fragment stood. */
export const RAW_WHERE: Record<Context, string> = {
  predicate: "a condition",
  join: "a join condition",
  selection: "a selection containing a subquery",
  group: "a group by term containing a subquery",
  order: "an order by term",
  source: "a source",
  limit: "a limit",
};
