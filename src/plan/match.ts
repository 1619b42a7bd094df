// Fact matching: can this committed row change affect the result of this captured read?
//
// For every read of the fact's table, the read's filter is evaluated on the old and the new row image. A row
// image that makes the filter anything but TRUE is not in the read's result through that read (SQL keeps a row
// only when its condition is TRUE), so when neither image can make it TRUE the change is invisible to the read.
//
// Evaluation works on *sets of possible SQL truth values* (TRUE, FALSE, NULL): a comparison we can decide yields
// one value; one we cannot (types we cannot compare like the database would, a column the image lacks, an
// `unknown` predicate) yields all three. Connectives are applied to every combination, so the result always
// contains the database's actual truth value: "affected: false" is only said when TRUE is impossible.

import type {
  ColumnRef,
  MatchResult,
  Operand,
  Predicate,
  QueryDependency,
  TableRead,
  Value,
} from "../analysis/types.ts";
import { changedColumns, type Fact, type Row } from "../ledger/types.ts";

/** A set of possible SQL truth values, as bits. */
export type Truth = number;
export const T = 1;
export const F = 2;
export const N = 4;
export const ANY: Truth = T | F | N;

const AND3 = (a: number, b: number): number => (a === F || b === F ? F : a === N || b === N ? N : T);
const OR3 = (a: number, b: number): number => (a === T || b === T ? T : a === N || b === N ? N : F);
const NOT3 = (a: number): number => (a === T ? F : a === F ? T : N);

function lift2(a: Truth, b: Truth, op: (x: number, y: number) => number): Truth {
  let out = 0;
  for (const x of [T, F, N]) if (a & x) for (const y of [T, F, N]) if (b & y) out |= op(x, y);
  return out;
}

function not(a: Truth): Truth {
  let out = 0;
  for (const x of [T, F, N]) if (a & x) out |= NOT3(x);
  return out;
}

/**
 * True when the fact does not say which rows changed or how: a TRUNCATE (every row may have changed), or a fact
 * whose image the capture could not build or the reader could not decode. Such a fact affects every read of its
 * table — a replay, never a miss.
 */
export function isTableWide(fact: Pick<Fact, "op" | "unavailable">): boolean {
  return fact.op === "truncate" || fact.unavailable !== undefined;
}

export function matchFact(
  dep: QueryDependency,
  fact: Pick<Fact, "table" | "op" | "old" | "new" | "unavailable">,
): MatchResult {
  const reads = dep.reads.filter((r) => r.table === fact.table);
  if (reads.length === 0) return { affected: false, reason: "table_not_read" };
  if (isTableWide(fact)) {
    const what = fact.op === "truncate" ? "a TRUNCATE" : `a fact whose image is unavailable (${fact.unavailable})`;
    return {
      affected: true,
      why: `${what} may change any row of ${fact.table} that ${describe(reads[0] as TableRead)} reads`,
    };
  }
  const changed = fact.op === "update" && fact.old && fact.new ? changedColumns(fact) : null;
  let columnsMissed = 0;
  for (const read of reads) {
    // An update that changes none of the columns the read depends on leaves the row's membership (its filter
    // columns are read columns) and every value the read returns unchanged. Inserts and deletes always count.
    if (changed && read.columns !== "*" && !changed.some((c) => (read.columns as Set<string>).has(c))) {
      columnsMissed++;
      continue;
    }
    for (const [label, image] of [
      ["old", fact.old],
      ["new", fact.new],
    ] as const) {
      if (image && evaluate(read.filter, image) & T) {
        return { affected: true, why: `the ${label} image of ${fact.table} may pass the filter of ${describe(read)}` };
      }
    }
  }
  if (columnsMissed === reads.length) return { affected: false, reason: "columns_not_read" };
  return { affected: false, reason: "predicate_did_not_match" };
}

function describe(read: TableRead): string {
  return read.aliases.length > 0 && read.aliases[0] !== read.table
    ? `${read.table} as ${read.aliases.join(", ")}`
    : read.table;
}

/** Possible truth values of a predicate on one row image. */
export function evaluate(p: Predicate, row: Row): Truth {
  switch (p.kind) {
    case "true":
      return T;
    case "unknown":
      return ANY;
    case "and":
      return p.items.reduce<Truth>((acc, item) => (acc === F ? F : lift2(acc, evaluate(item, row), AND3)), T);
    case "or":
      return p.items.reduce<Truth>((acc, item) => (acc === T ? T : lift2(acc, evaluate(item, row), OR3)), F);
    case "not":
      return not(evaluate(p.item, row));
    case "compare": {
      const a = operand(p.left, row);
      const b = operand(p.right, row);
      if (a === MISSING || b === MISSING) return ANY;
      if (a === null || b === null) return N;
      return compare(p.op, a, b);
    }
    case "in": {
      const a = operand(p.left, row);
      if (a === MISSING) return ANY;
      // x IN (v1, …) ≡ x = v1 OR …; an empty list is FALSE.
      let acc: Truth = F;
      for (const v of p.values) {
        const b = operand(v, row);
        const eq: Truth = b === MISSING ? ANY : a === null || b === null ? N : compare("=", a, b);
        acc = lift2(acc, eq, OR3);
      }
      return p.negated ? not(acc) : acc;
    }
    case "null": {
      const a = operand(p.operand, row);
      if (a === MISSING) return T | F;
      const isNull = a === null;
      return isNull !== p.negated ? T : F;
    }
    case "like": {
      const a = operand(p.left, row);
      const b = operand(p.pattern, row);
      if (a === MISSING || b === MISSING) return ANY;
      if (a === null || b === null) return N;
      const r = like(a, b, p.caseInsensitive);
      return p.negated ? not(r) : r;
    }
  }
}

const MISSING = Symbol("missing");

function operand(o: Operand, row: Row): unknown {
  if (o.kind === "value") return o.value;
  const ref = o as ColumnRef;
  // A column the image does not have: the reference belongs to another table (see analysis): unknown.
  if (!Object.hasOwn(row, ref.column)) return MISSING;
  const v = row[ref.column];
  return v === undefined ? null : v;
}

// ── comparing like the databases do ───────────────────────────────────────────────────────────────────────
//
// Numbers, bigints and booleans (SQLite stores booleans as 0/1) compare numerically and exactly. Strings compare
// equal when identical; strings that differ only in ASCII case or trailing spaces may be equal under a column
// collation (SQLite NOCASE/RTRIM), so that is undecided. String ordering depends on the collation (PostgreSQL's
// default is linguistic): undecided unless equal. A number and a string are equal only if the string reads as
// that number (numeric affinity / PostgreSQL's coercion of untyped parameters) and then undecided, since a
// column without affinity compares them as different types. Anything else we cannot model is undecided.

type Cmp = "=" | "<>" | "<" | "<=" | ">" | ">=";

function compare(op: Cmp, a: unknown, b: unknown): Truth {
  const order = orderOf(a, b);
  if (order === undefined || order === "maybe") return T | F;
  if (order === "ne") return op === "=" ? F : op === "<>" ? T : T | F;
  const r =
    op === "="
      ? order === 0
      : op === "<>"
        ? order !== 0
        : op === "<"
          ? order < 0
          : op === "<="
            ? order <= 0
            : op === ">"
              ? order > 0
              : order >= 0;
  return r ? T : F;
}

/** -1/0/1 when decidable; "ne" when surely unequal but not ordered; "maybe" when possibly equal; undefined when
 *  nothing is known. */
function orderOf(a: unknown, b: unknown): number | "ne" | "maybe" | undefined {
  if (typeof a === "boolean" && typeof b === "string" && isBooleanWord(b)) return undefined;
  if (typeof b === "boolean" && typeof a === "string" && isBooleanWord(a)) return undefined;
  const x = numeric(a);
  const y = numeric(b);
  if (x !== undefined && y !== undefined) return compareNumeric(x, y);
  if (typeof a === "string" && typeof b === "string") {
    if (a === b) return 0;
    return foldString(a) === foldString(b) ? "maybe" : "ne";
  }
  if (typeof a === "string" && y !== undefined) return stringVsNumber(a, y);
  if (typeof b === "string" && x !== undefined) return stringVsNumber(b, x);
  if (a instanceof Uint8Array && b instanceof Uint8Array) return compareBytes(a, b);
  return undefined;
}

function stringVsNumber(s: string, n: number | bigint): "ne" | "maybe" {
  const parsed = parseNumeric(s);
  if (parsed === undefined) return "ne";
  return compareNumeric(parsed, n) === 0 ? "maybe" : "ne";
}

function numeric(v: unknown): number | bigint | undefined {
  if (typeof v === "number") return Number.isNaN(v) ? undefined : v;
  if (typeof v === "bigint") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  return undefined;
}

function compareNumeric(a: number | bigint, b: number | bigint): number {
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "bigint" && typeof b === "bigint") return a < b ? -1 : a > b ? 1 : 0;
  // Mixed: compare exactly (a bigint beyond 2^53 must not round into equality).
  const [big, num, flip] = typeof a === "bigint" ? [a, b as number, 1] : [b as bigint, a as number, -1];
  if (!Number.isFinite(num)) return (num > 0 ? -1 : 1) * flip;
  const floor = Math.floor(num);
  const fb = BigInt(floor);
  const c = big < fb ? -1 : big > fb ? 1 : num === floor ? 0 : -1;
  return c * flip;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length - b.length < 0 ? -1 : a.length > b.length ? 1 : 0;
}

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The number a string spells (SQLite's numeric affinity, PostgreSQL's numeric input), or undefined. */
export function parseNumeric(s: string): number | bigint | undefined {
  const t = s.trim();
  if (!NUMERIC.test(t)) return undefined;
  if (/^[+-]?\d+$/.test(t)) {
    const b = BigInt(t.replace(/^\+/, ""));
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  return Number(t);
}

const BOOLEAN_WORDS = new Set(["t", "f", "true", "false", "y", "n", "yes", "no", "on", "off"]);

/** PostgreSQL accepts these spellings for booleans (compared with a boolean, a string may be equal). */
export function isBooleanWord(s: string): boolean {
  return BOOLEAN_WORDS.has(s.trim().toLowerCase());
}

/** ASCII case folding and trailing-space trimming: strings that may be equal under some column collation. */
export function foldString(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/ +$/, "");
}

// ── LIKE ──────────────────────────────────────────────────────────────────────────────────────────────────
//
// SQLite's LIKE ignores ASCII case, PostgreSQL's does not; ILIKE ignores case. When the case-sensitive and the
// case-insensitive answers differ, the result depends on the database: undecided. A backslash may be an escape
// character (PostgreSQL's default) or a literal (SQLite's): undecided as well. Non-strings are undecided.

function like(value: unknown, pattern: unknown, caseInsensitive: boolean): Truth {
  if (typeof value !== "string" || typeof pattern !== "string") return T | F;
  if (pattern.includes("\\")) return T | F;
  const insensitive = likeMatch(foldCase(value), foldCase(pattern));
  if (caseInsensitive) {
    // PostgreSQL folds non-ASCII letters too: a non-ASCII mismatch is undecided.
    if (insensitive) return T;
    return /[^\p{ASCII}]/u.test(value + pattern) ? T | F : F;
  }
  const sensitive = likeMatch(value, pattern);
  if (sensitive === insensitive) return sensitive ? T : F;
  return T | F;
}

function foldCase(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function likeMatch(value: string, pattern: string): boolean {
  let source = "^";
  for (const ch of pattern) {
    if (ch === "%") source += "[\\s\\S]*";
    else if (ch === "_") source += "[\\s\\S]";
    else source += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`${source}$`, "u").test(value);
}

// ── values for indexing ───────────────────────────────────────────────────────────────────────────────────

/**
 * Keys under which a value is indexed for equality lookups. Two values whose `=` may be TRUE (by `compare`
 * above) always share at least one key; `undefined` means the value cannot be keyed (look up everything).
 */
export function equalityKeys(v: unknown): string[] | undefined {
  if (v === null) return [];
  if (typeof v === "boolean") return [`n:${v ? 1 : 0}`, `b:${v ? 1 : 0}`];
  if (typeof v === "number") return Number.isNaN(v) ? undefined : [`n:${canonicalNumber(v)}`];
  if (typeof v === "bigint") return [`n:${v.toString()}`];
  if (typeof v === "string") {
    const keys = [`s:${foldString(v)}`];
    const n = parseNumeric(v);
    if (n !== undefined) keys.push(`n:${typeof n === "bigint" ? n.toString() : canonicalNumber(n)}`);
    if (isBooleanWord(v)) keys.push("b:0", "b:1");
    return keys;
  }
  return undefined;
}

function canonicalNumber(n: number): string {
  if (Number.isInteger(n)) return BigInt(n).toString();
  return String(n);
}

export type { Value };
