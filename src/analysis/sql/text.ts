// Analysis of SQL text, as a driver sends it: parsed with the database's own grammar (PostgreSQL's parser compiled to
// WebAssembly; SQLite: sql-parser-cst, cross-checked against SQLite's authorizer by the capture), parses cached by
// statement text (data layers reuse a text with new parameters), lowered with the parameters bound into Kysely's
// OperationNodes, and analysed by the same analyzeQuery as a Kysely query. A statement that cannot be parsed or
// lowered exactly is refused with its code and a rewrite.
import type { OperationNode } from "kysely";
import { RefusedBoundaryError } from "../../errors.ts";
import { analyzeQuery } from "../analyze.ts";
import { Refusal, refusalFor } from "../refusals.ts";
import type { AnalysisResult, PrimaryKeys } from "../types.ts";
import { lowerPostgresSelect, pgStatementKind } from "./postgres.ts";
import { REWRITE_TEXT } from "./shared.ts";
import { lowerSqliteSelect, parseSqlite, sqliteStatementKind } from "./sqlite.ts";

export type SqlDialect = "postgres" | "sqlite";

/** read: a select; write: changes rows (possibly returning some); control: schema, session and transaction
 *  statements; explain: EXPLAIN (no rows of the page). */
export type TextKind = "read" | "write" | "control" | "explain";

export interface ParsedText {
  readonly kind: TextKind;
  /** The statement's tree (one statement), or null when it did not parse or is not one statement. */
  readonly tree: unknown;
  /** Why the text cannot be analysed (unparseable, several statements with a read among them). */
  readonly refusal: Refusal | null;
}

/** Parsed statements kept per dialect (statement text → parse); the oldest is dropped beyond this. */
const PARSE_CACHE_SIZE = 2000;
const caches: Record<SqlDialect, Map<string, ParsedText>> = { postgres: new Map(), sqlite: new Map() };

type PgParser = { parseSync(sql: string): { stmts?: { stmt: Record<string, unknown> }[] } };
let pgParser: PgParser | null = null;
let pgLoading: Promise<void> | null = null;

/** Loads PostgreSQL's parser (WebAssembly, once per process). */
export function loadPostgresParser(): Promise<void> {
  if (pgParser) return Promise.resolve();
  pgLoading ??= (async () => {
    const module = await import("libpg-query");
    await module.loadModule();
    pgParser = module as unknown as PgParser;
  })();
  return pgLoading;
}

export function postgresParserLoaded(): boolean {
  return pgParser !== null;
}

/** The parse of a statement text (cached). PostgreSQL's parser must be loaded first (loadPostgresParser). */
export function parseSql(dialect: SqlDialect, sql: string): ParsedText {
  const cache = caches[dialect];
  let parsed = cache.get(sql);
  if (parsed === undefined) {
    parsed = dialect === "postgres" ? parsePostgres(sql) : parseSqliteText(sql);
    if (cache.size >= PARSE_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(sql, parsed);
  }
  return parsed;
}

function parsePostgres(sql: string): ParsedText {
  if (!pgParser) throw new Error("PostgreSQL's parser is not loaded: await loadPostgresParser() first");
  let stmts: { stmt: Record<string, unknown> }[];
  try {
    stmts = pgParser.parseSync(sql).stmts ?? [];
  } catch (error) {
    // PostgreSQL itself would reject it too; the statement fails when it runs.
    return unparsed(`PostgreSQL's parser rejects it (${(error as Error).message})`);
  }
  return several(stmts.map((s) => ({ kind: pgStatementKind(s.stmt), tree: s.stmt })));
}

function parseSqliteText(sql: string): ParsedText {
  let stmts: unknown[];
  try {
    stmts = parseSqlite(sql);
  } catch (error) {
    return unparsed(`Upkeep's SQLite grammar cannot parse it exactly (${(error as Error).message.split("\n")[0]})`);
  }
  return several(stmts.map((tree) => ({ kind: sqliteStatementKind(tree as never), tree })));
}

function unparsed(detail: string): ParsedText {
  return {
    kind: "read",
    tree: null,
    refusal: new Refusal("unsupported_query", detail, REWRITE_TEXT.unsupported_query),
  };
}

/** One statement is analysed; a text of several is a write if any writes, and refused as a read if any reads. */
function several(stmts: { kind: TextKind; tree: unknown }[]): ParsedText {
  if (stmts.length === 1) return { ...stmts[0], refusal: null };
  if (stmts.length === 0) return { kind: "control", tree: null, refusal: null };
  const kinds = new Set(stmts.map((s) => s.kind));
  if (kinds.has("write")) return { kind: "write", tree: null, refusal: null };
  if (kinds.has("read")) {
    return {
      kind: "read",
      tree: null,
      refusal: new Refusal("unsupported_query", `a text of ${stmts.length} statements`, "send one statement per query"),
    };
  }
  return { kind: "control", tree: null, refusal: null };
}

/**
 * Analyses one statement a driver sent, with its parameters and the rows it returned: a dependency, a refusal, or
 * null for statements that are not reads (writes are the capture's to refuse, see capture/record.ts).
 */
export function analyzeSql(
  dialect: SqlDialect,
  sql: string,
  params: readonly unknown[],
  rows: readonly Record<string, unknown>[],
  primaryKeys: PrimaryKeys,
): AnalysisResult {
  const parsed = parseSql(dialect, sql);
  if (parsed.refusal) return refusalFor(parsed.refusal.code, sql, parsed.refusal.detail, parsed.refusal.rewrite);
  if (parsed.kind !== "read") return null;
  let node: OperationNode;
  try {
    node =
      dialect === "postgres"
        ? lowerPostgresSelect(parsed.tree as Record<string, unknown>, params)
        : lowerSqliteSelect(parsed.tree, params);
  } catch (error) {
    if (error instanceof Refusal) return refusalFor(error.code, sql, error.detail, error.rewrite);
    return new RefusedBoundaryError(
      "unsupported_query",
      sql,
      `lowering the statement failed: ${(error as Error).message}`,
      REWRITE_TEXT.unsupported_query as string,
    );
  }
  const result = analyzeQuery(node as never, { sql, parameters: params }, rows, primaryKeys);
  if (result instanceof RefusedBoundaryError && result.hint.includes("Kysely")) {
    // The analysis speaks of Kysely builders; SQL text gets a rewrite in SQL.
    return new RefusedBoundaryError(result.reason, sql, detailOf(result), REWRITE_TEXT.unsupported_query as string);
  }
  return result;
}

function detailOf(error: RefusedBoundaryError): string {
  const m = /\): ([\s\S]*?)\n {2}sql:/.exec(error.message);
  return m ? m[1] : error.message;
}
