// PostgreSQL's parse tree (libpg-query's JSON) read plainly: a node's kind and fields, names, constants, and what kind
// of statement a tree is. postgres.ts lowers reads with these.
import { Refusal } from "../refusals.ts";
import { REWRITE_TEXT } from "./shared.ts";

/** A node of libpg-query's JSON tree: `{ NodeType: { …fields } }`. */
export type PgNode = Record<string, any>;

export const unsupported = (what: string, rewrite = REWRITE_TEXT.unsupported_query): Refusal =>
  new Refusal("unsupported_query", what, rewrite);

/** The one key of a tree node and its fields. */
export function unpack(node: PgNode): [string, PgNode] {
  const keys = Object.keys(node);
  if (keys.length !== 1) throw unsupported(`a parse node with ${keys.length} kinds`);
  return [keys[0], node[keys[0]]];
}

export function sval(node: PgNode): string {
  const [kind, fields] = unpack(node);
  if (kind === "String") return fields.sval ?? "";
  if (kind === "A_Star") return "*";
  throw unsupported(`a name that is a ${kind}`);
}

export type PgStatementKind = "read" | "write" | "control" | "explain";

/** What a statement of the parse tree is, for capture (a write in a render is refused) and the wake after commits. */
export function pgStatementKind(stmt: PgNode): PgStatementKind {
  const [kind, fields] = unpack(stmt);
  switch (kind) {
    case "SelectStmt":
      return fields.intoClause || writesInWith(fields) ? "write" : "read";
    case "InsertStmt":
    case "UpdateStmt":
    case "DeleteStmt":
    case "MergeStmt":
      return "write";
    case "ExplainStmt":
      return "explain";
    default:
      return "control";
  }
}

function writesInWith(select: PgNode): boolean {
  for (const c of select.withClause?.ctes ?? []) {
    const query = c.CommonTableExpr?.ctequery;
    if (query && pgStatementKind(query) !== "read") return true;
  }
  if (select.larg && writesInWith(select.larg)) return true;
  if (select.rarg && writesInWith(select.rarg)) return true;
  return false;
}

/** The value of an A_Const (protobuf leaves zero, false and empty fields out). */
export function constant(f: PgNode): unknown {
  if (f.isnull) return null;
  if ("ival" in f) return f.ival.ival ?? 0;
  if ("boolval" in f) return f.boolval.boolval === true;
  if ("sval" in f) return f.sval.sval ?? "";
  if ("fval" in f) {
    const text = f.fval.fval as string;
    if (/^-?\d+$/.test(text)) {
      const big = BigInt(text);
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    // A decimal literal is numeric in PostgreSQL: exact; a JS number may round it, so the predicate is unknown.
    return { numeric: text };
  }
  if ("bsval" in f) return { bits: f.bsval.bsval };
  throw unsupported("a constant of an unknown kind");
}
