// Predicates: a local conjunct of a query's filter converted into a Predicate on one table's row image, which the
// planner evaluates on old and new row images (plan/match.ts).
import {
  AndNode,
  type BinaryOperationNode,
  type OperationNode,
  OperatorNode,
  OrNode,
  ParensNode,
  PrimitiveValueListNode,
  type ReferenceNode,
  TupleNode,
  UnaryOperationNode,
  ValueListNode,
  type ValueNode,
} from "kysely";
import { unwrapRaw } from "./raw.ts";
import type { ColumnRef, Operand, Predicate, Value } from "./types.ts";

export const OPERATORS_COMPARE: Record<string, "=" | "<>" | "<" | "<=" | ">" | ">="> = {
  "=": "=",
  "==": "=",
  "!=": "<>",
  "<>": "<>",
  "<": "<",
  "<=": "<=",
  ">": ">",
  ">=": ">=",
};

/** Converts a local conjunct (every reference may be `table`'s) into a Predicate on `table`'s row image. */
export function toPredicate(node: OperationNode, table: string): Predicate {
  const operand = (n: OperationNode): Operand | null => {
    const inner = unwrapRaw(n);
    if (inner.kind === "ReferenceNode") {
      const ref = inner as ReferenceNode;
      if (ref.column.kind !== "ColumnNode") return null;
      return { kind: "column", table, column: ref.column.column.name } satisfies ColumnRef;
    }
    if (inner.kind === "ValueNode") {
      const value = asValue((inner as ValueNode).value);
      return value === undefined ? null : { kind: "value", value };
    }
    return null;
  };
  const values = (n: OperationNode): Operand[] | null => {
    const inner = unwrapRaw(n);
    if (PrimitiveValueListNode.is(inner)) {
      const out: Operand[] = [];
      for (const v of inner.values) {
        const value = asValue(v);
        if (value === undefined) return null;
        out.push({ kind: "value", value });
      }
      return out;
    }
    if (ValueListNode.is(inner) || TupleNode.is(inner)) {
      const out: Operand[] = [];
      for (const v of inner.values) {
        const o = operand(v);
        if (!o) return null;
        out.push(o);
      }
      return out;
    }
    return null;
  };
  const unknown = (why: string): Predicate => ({ kind: "unknown", why });
  const convert = (n: OperationNode): Predicate => {
    const inner = unwrapRaw(n);
    if (ParensNode.is(inner)) return convert(inner.node);
    if (AndNode.is(inner)) return { kind: "and", items: [convert(inner.left), convert(inner.right)] };
    if (OrNode.is(inner)) return { kind: "or", items: [convert(inner.left), convert(inner.right)] };
    if (UnaryOperationNode.is(inner)) {
      const operator = OperatorNode.is(inner.operator) ? inner.operator.operator : inner.operator.kind;
      if (operator === "not") return { kind: "not", item: convert(inner.operand) };
      return unknown(`operator ${operator}`);
    }
    switch (inner.kind) {
      case "BinaryOperationNode": {
        const b = inner as BinaryOperationNode;
        const op: string = OperatorNode.is(b.operator) ? b.operator.operator : b.operator.kind;
        const left = operand(b.leftOperand);
        if (op in OPERATORS_COMPARE) {
          const right = operand(b.rightOperand);
          if (!left || !right) return unknown(`${op} on an expression`);
          return { kind: "compare", op: OPERATORS_COMPARE[op], left, right };
        }
        if (op === "in" || op === "not in") {
          const list = values(b.rightOperand);
          if (!left || !list) return unknown(`${op} on an expression`);
          return { kind: "in", negated: op === "not in", left, values: list };
        }
        if (op === "is" || op === "is not") {
          const right = operand(b.rightOperand);
          if (!left || !right || right.kind !== "value") return unknown(`${op} on an expression`);
          const negated = op === "is not";
          if (right.value === null) return { kind: "null", negated, operand: left };
          if (typeof right.value === "boolean") {
            // x IS TRUE ≡ x IS NOT NULL AND x = TRUE (never NULL itself); IS NOT negates that.
            const is: Predicate = {
              kind: "and",
              items: [
                { kind: "null", negated: true, operand: left },
                { kind: "compare", op: "=", left, right },
              ],
            };
            return negated ? { kind: "not", item: is } : is;
          }
          return unknown(`${op} ${String(right.value)}`);
        }
        if (op === "like" || op === "not like" || op === "ilike" || op === "not ilike") {
          const pattern = operand(b.rightOperand);
          if (!left || !pattern) return unknown(`${op} on an expression`);
          return {
            kind: "like",
            negated: op.startsWith("not "),
            left,
            pattern,
            caseInsensitive: op.endsWith("ilike"),
          };
        }
        if (op === "between" || op === "not between" || op === "between symmetric" || op === "not between symmetric") {
          const range = unwrapRaw(b.rightOperand);
          if (!left || !AndNode.is(range)) return unknown(`${op} on an expression`);
          const lo = operand(range.left);
          const hi = operand(range.right);
          if (!lo || !hi) return unknown(`${op} on an expression`);
          const within = (a: Operand, z: Operand): Predicate => ({
            kind: "and",
            items: [
              { kind: "compare", op: ">=", left, right: a },
              { kind: "compare", op: "<=", left, right: z },
            ],
          });
          const inRange: Predicate = op.includes("symmetric")
            ? { kind: "or", items: [within(lo, hi), within(hi, lo)] }
            : within(lo, hi);
          return op.startsWith("not ") ? { kind: "not", item: inRange } : inRange;
        }
        return unknown(`operator ${op}`);
      }
      default:
        return unknown(`a ${inner.kind} condition`);
    }
  };
  return convert(node);
}

export function asValue(v: unknown): Value | undefined {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean")
    return v;
  if (v instanceof Uint8Array) return v;
  return undefined;
}
