// sql`…` fragments: the wrappers Kysely itself produces (which are structural), their text, order directions.
import type { OperationNode, RawNode } from "kysely";

export function isWrapper(raw: RawNode): boolean {
  return raw.parameters.length === 1 && raw.sqlFragments.every((f) => f.trim() === "");
}

export function unwrapRaw(node: OperationNode): OperationNode {
  let n = node;
  while (n.kind === "RawNode" && isWrapper(n as RawNode)) n = (n as RawNode).parameters[0];
  return n;
}

export function rawText(raw: RawNode): string {
  return `sql\`${raw.sqlFragments.map((f, i) => (i < raw.parameters.length ? `${f}\${…}` : f)).join("")}\``;
}

export const DIRECTION = /^\s*(asc|desc)\s*(?:nulls\s+(first|last))?\s*$/i;

export function isDirection(node: OperationNode): boolean {
  return (
    node.kind === "RawNode" &&
    (node as RawNode).parameters.length === 0 &&
    DIRECTION.test((node as RawNode).sqlFragments.join(""))
  );
}

export function directionOf(node: RawNode): { direction: "asc" | "desc"; nulls?: "first" | "last" } {
  const m = DIRECTION.exec(node.sqlFragments.join("")) as RegExpExecArray;
  const out: { direction: "asc" | "desc"; nulls?: "first" | "last" } = {
    direction: m[1].toLowerCase() as "asc" | "desc",
  };
  if (m[2]) out.nulls = m[2].toLowerCase() as "first" | "last";
  return out;
}

/** Values a predicate can compare; anything else (Date, arrays, JSON objects) makes the conjunct unknown. */

export function containsAggregate(node: OperationNode): boolean {
  if (node.kind === "AggregateFunctionNode") return true;
  if (node.kind === "SelectQueryNode") return false;
  if (node.kind === "RawNode" && !isWrapper(node as RawNode)) return true; // covered raw selection: assume it may
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const v of value) if (isNode(v) && containsAggregate(v)) return true;
    } else if (isNode(value) && containsAggregate(value)) return true;
  }
  return false;
}

export function isNode(v: unknown): v is OperationNode {
  return typeof v === "object" && v !== null && typeof (v as { kind?: unknown }).kind === "string";
}
