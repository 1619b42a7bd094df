// SQLite statements parsed with sql-parser-cst (its sqlite dialect), their parameters numbered as SQLite numbers them,
// and what kind of statement each is. sqlite.ts lowers reads.
import { createRequire } from "node:module";

export type Cst = Record<string, any>;

const OPTIONS = {
  dialect: "sqlite",
  paramTypes: ["?", "?nr", ":name", "@name", "$name"],
  includeRange: true,
} as const;

/** Parameter numbers of a parsed statement, by parameter node. */
export const numbering = new WeakMap<object, Map<Cst, { index: number; name: string | null }>>();

type Parse = (sql: string, options: unknown) => unknown;
let parse: Parse | null = null;

/** Parses a text into its statements (throws on a syntax error). The grammar (7 MB) loads at the first parse. */
export function parseSqlite(sql: string): Cst[] {
  parse ??= (createRequire(import.meta.url)("sql-parser-cst") as { parse: Parse }).parse;
  const program = parse(sql, OPTIONS) as Cst;
  const statements = (program.statements as Cst[]).filter((s) => s.type !== "empty");
  for (const s of statements) numbering.set(s, numberParameters(s));
  return statements;
}

export function numberParameters(stmt: Cst): Map<Cst, { index: number; name: string | null }> {
  const found: Cst[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) for (const x of node) visit(x);
    else if (node && typeof node === "object") {
      if ((node as Cst).type === "parameter") found.push(node as Cst);
      else for (const v of Object.values(node)) if (v && typeof v === "object") visit(v);
    }
  };
  visit(stmt);
  found.sort((a, b) => (a.range?.[0] ?? 0) - (b.range?.[0] ?? 0));
  const out = new Map<Cst, { index: number; name: string | null }>();
  const names = new Map<string, number>();
  let max = 0;
  for (const p of found) {
    const text = p.text as string;
    if (text === "?") out.set(p, { index: ++max, name: null });
    else if (/^\?\d+$/.test(text)) {
      const index = Number(text.slice(1));
      max = Math.max(max, index);
      out.set(p, { index, name: null });
    } else {
      let index = names.get(text);
      if (index === undefined) {
        index = ++max;
        names.set(text, index);
      }
      out.set(p, { index, name: text });
    }
  }
  return out;
}

export function sqliteStatementKind(stmt: Cst): "read" | "write" | "control" | "explain" {
  switch (stmt.type) {
    case "select_stmt":
    case "compound_select_stmt":
      return "read";
    case "insert_stmt":
    case "update_stmt":
    case "delete_stmt":
      return "write";
    case "explain_stmt":
      return "explain";
    default:
      return "control";
  }
}
