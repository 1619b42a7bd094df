// What both SQL-text lowerings share: aggregate names, LIMIT/OFFSET values, casts that change no value, and the
// rewrites a refusal of SQL text suggests (whatever data layer sent it).
import type { OperationNode, ValueNode } from "kysely";
import type { RefusalCode } from "../../errors.ts";
import * as n from "./nodes.ts";

/** Built-in aggregate functions of PostgreSQL and SQLite (a call with FILTER, ORDER BY, DISTINCT or * is one too). */
export const AGGREGATES = new Set([
  "count",
  "sum",
  "avg",
  "min",
  "max",
  "total",
  "json_agg",
  "jsonb_agg",
  "json_object_agg",
  "jsonb_object_agg",
  "array_agg",
  "string_agg",
  "bool_and",
  "bool_or",
  "every",
  "bit_and",
  "bit_or",
  "bit_xor",
  "xmlagg",
  "group_concat",
  "json_group_array",
  "json_group_object",
  "jsonb_group_array",
  "jsonb_group_object",
  "stddev",
  "stddev_pop",
  "stddev_samp",
  "variance",
  "var_pop",
  "var_samp",
  "median",
  "percentile_cont",
  "percentile_disc",
  "mode",
]);

/** Rewrites suggested for statements that arrive as SQL text (from any data layer). */
export const REWRITE_TEXT: Partial<Record<RefusalCode, string>> = {
  unsupported_query:
    "read with a plain select (tables, joins, subqueries, where, order by, limit); report the statement to Upkeep if your data layer emits it",
  opaque_source: "select from tables or subqueries",
};

/**
 * LIMIT and OFFSET values as numbers: data layers send them as parameters, some as strings ("10"), which
 * PostgreSQL and SQLite read as integers. NULL is no limit (LIMIT ALL) or no offset. An expression stays, and the
 * analysis refuses it (unsupported_query).
 */
export function bindLimit(node: OperationNode, what: "limit" | "offset"): OperationNode | null {
  if (node.kind !== "ValueNode") return node;
  const v = (node as ValueNode).value;
  if (v === null || v === undefined) return null;
  if (typeof v === "number" && Number.isInteger(v)) return node;
  if (typeof v === "bigint") return n.value(Number(v));
  if (typeof v === "string" && /^\s*[+-]?\d+\s*$/.test(v)) return n.value(Number(v));
  return n.fn(`${what} of ${typeof v}`, []);
}

const INTEGER_TYPES = new Set(["int", "int2", "int4", "int8", "integer", "smallint", "bigint"]);
const TEXT_TYPES = new Set(["text", "varchar", "character varying"]);
const BOOLEAN_TYPES = new Set(["bool", "boolean"]);

/** A cast of a value that yields the same value (`$1::int4` of 12 or "12", `$1::text` of a string), or null. */
export function transparentCast(arg: OperationNode, type: string): OperationNode | null {
  if (arg.kind !== "ValueNode") return null;
  const v = (arg as ValueNode).value;
  const t = type.toLowerCase();
  if (v === null) return INTEGER_TYPES.has(t) || TEXT_TYPES.has(t) || BOOLEAN_TYPES.has(t) ? arg : null;
  if (INTEGER_TYPES.has(t)) {
    if ((typeof v === "number" && Number.isSafeInteger(v)) || typeof v === "bigint") return arg;
    if (typeof v === "string" && /^[+-]?\d{1,15}$/.test(v.trim())) return n.value(Number(v));
    return null;
  }
  if (TEXT_TYPES.has(t) && typeof v === "string") return arg;
  if (BOOLEAN_TYPES.has(t) && typeof v === "boolean") return arg;
  return null;
}
