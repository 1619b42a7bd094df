// What the capture at the driver needs of an Upkeep instance (a CaptureHost), the hosts registered per dialect, and
// the recording of one statement a driver sent: parsed by text (analysis/sql), its primary keys loaded the first
// time a table is seen, a SQLite parse cross-checked against SQLite's authorizer once per text, then recorded on
// the frame like a Kysely query (record.ts).

import { rowKeyColumns } from "../../analysis/row-keys.ts";
import {
  analyzeSql,
  loadPostgresParser,
  parseSql,
  postgresParserLoaded,
  type SqlDialect,
} from "../../analysis/sql/text.ts";
import type { AnalysisResult, QueryDependency } from "../../analysis/types.ts";
import { valuesKey } from "../../analysis/values.ts";
import { RefusedBoundaryError } from "../../errors.ts";
import type { FrameCapture } from "../context.ts";
import { admitRead, refuseWrite } from "../record.ts";

/** The tables and columns SQLite itself reads for a statement (its authorizer's SQLITE_READ calls); "" is a read
 *  of the table without a column (count(*)). */
export type SqliteReads = Map<string, Set<string>>;

export interface CaptureHost {
  readonly dialect: SqlDialect;
  /** Primary-key columns of a table, in key order (undefined when unknown or keyless). */
  primaryKeys(table: string): string[] | undefined;
  /** Makes the keys of `tables` known to primaryKeys (SQLite loads them synchronously in primaryKeys itself). */
  loadPrimaryKeys(tables: string[]): Promise<void>;
  /** The tables whose writes become facts. */
  capturedTables(): ReadonlySet<string>;
  /** Wakes the ledger after a commit. */
  poke(): void;
  /** SQLite: what SQLite reads for a statement, by its own authorizer (null when it cannot prepare it). */
  sqliteReads?(sql: string): SqliteReads | null;
}

const hosts: CaptureHost[] = [];

/** Registers a host; returns its unregistration. */
export function registerHost(host: CaptureHost): () => void {
  if (!hosts.includes(host)) hosts.push(host);
  if (host.dialect === "postgres") loadPostgresParser().catch(() => {});
  return () => {
    const i = hosts.indexOf(host);
    if (i >= 0) hosts.splice(i, 1);
  };
}

/** The host reads of a dialect are analysed for: the one registered last (one Upkeep per process is the rule). */
export function hostFor(dialect: SqlDialect): CaptureHost | undefined {
  for (let i = hosts.length - 1; i >= 0; i--) if (hosts[i].dialect === dialect) return hosts[i];
  return undefined;
}

/** Wakes every host of a dialect (after a commit through a captured driver). */
export function pokeHosts(dialect: SqlDialect): void {
  for (const host of hosts) {
    if (host.dialect !== dialect) continue;
    try {
      host.poke();
    } catch {
      // A waking hook must never turn a committed write into a failed one.
    }
  }
}

/** A statement as a driver sent it. */
export interface SentStatement {
  sql: string;
  /** Positional parameters ($1 is [0]; SQLite's ?NNN is [NNN-1]). */
  params: readonly unknown[];
  /** SQLite's named parameters, as the driver was given them. */
  named?: Record<string, unknown> | null;
  /** The rows the statement returned, as objects keyed by column name. */
  rows: readonly Record<string, unknown>[];
}

/** True when a statement text is a write (refused during a render). The parser must be loaded (PostgreSQL). */
export function isWriteText(dialect: SqlDialect, sql: string): boolean {
  return parseSql(dialect, sql).kind === "write";
}

/**
 * Dependencies by statement text and parameters: a page's statements repeat with the same parameters on every GET
 * and replay, and what they read depends on nothing else (row keys, which depend on the rows, are taken again).
 */
const DEPENDENCY_CACHE_SIZE = 5000;
const dependencies = new Map<string, QueryDependency>();

function cached(key: string, rows: readonly Record<string, unknown>[]): QueryDependency | undefined {
  const template = dependencies.get(key);
  if (!template) return undefined;
  const found = template.rowKeys ? rowKeyColumns.get(template.rowKeys) : undefined;
  let rowKeys: QueryDependency["rowKeys"] = null;
  if (template.rowKeys && found) {
    const { columns, names } = found;
    const keys: Record<string, unknown>[] = new Array(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r] as Record<string, unknown>;
      const key: Record<string, unknown> = {};
      for (let i = 0; i < columns.length; i++) key[columns[i] as string] = row[names[i] as string];
      keys[r] = key;
    }
    rowKeys = { table: template.rowKeys.table, keys };
  }
  return { ...template, rowKeys };
}

function remember(key: string, result: AnalysisResult): void {
  if (!result || result instanceof RefusedBoundaryError) return;
  if (dependencies.size >= DEPENDENCY_CACHE_SIZE) dependencies.delete(dependencies.keys().next().value as string);
  dependencies.set(key, result);
}

function keyOf(s: SentStatement): string {
  return `sql ${s.sql}\u0000${valuesKey(s.named ? [s.params, s.named] : s.params)}`;
}

/** Records a statement on the frame that made it (SQLite: synchronously). */
export function recordSync(frame: FrameCapture, host: CaptureHost, s: SentStatement): void {
  const parsed = parseSql(host.dialect, s.sql);
  if (parsed.kind === "write") {
    refuseWrite(frame, s.sql);
    return;
  }
  if (parsed.kind !== "read") return;
  const key = keyOf(s);
  const hit = cached(key, s.rows);
  if (hit) {
    admit(frame, host, s, hit, key);
    return;
  }
  const params = s.named ? ({ positional: s.params, named: s.named } as never) : s.params;
  const result = crossCheck(
    host,
    s.sql,
    analyzeSql(host.dialect, s.sql, params, s.rows, (t) => host.primaryKeys(t)),
  );
  remember(key, result);
  admit(frame, host, s, result, key);
}

/**
 * Records a statement on the frame that made it: at once when its parse and dependency are known (the common case:
 * a page's reads on every GET and replay), else after loading PostgreSQL's parser and unseen tables' keys.
 */
export function record(frame: FrameCapture, host: CaptureHost, s: SentStatement): void | Promise<void> {
  if (host.dialect === "postgres" && !postgresParserLoaded()) return recordAsync(frame, host, s);
  const parsed = parseSql(host.dialect, s.sql);
  if (parsed.kind !== "read") return recordAsync(frame, host, s);
  const key = keyOf(s);
  const hit = cached(key, s.rows);
  if (!hit) return recordAsync(frame, host, s);
  admit(frame, host, s, hit, key);
}

/** Records a statement on the frame that made it, loading PostgreSQL's parser and unseen tables' keys first. */
export async function recordAsync(frame: FrameCapture, host: CaptureHost, s: SentStatement): Promise<void> {
  if (host.dialect === "postgres" && !postgresParserLoaded()) await loadPostgresParser();
  const parsed = parseSql(host.dialect, s.sql);
  if (parsed.kind === "write") {
    refuseWrite(frame, s.sql);
    return;
  }
  if (parsed.kind !== "read") return;
  const key = keyOf(s);
  const hit = cached(key, s.rows);
  if (hit) {
    admit(frame, host, s, hit, key);
    return;
  }
  const analyse = () => analyzeSql(host.dialect, s.sql, s.params, s.rows, (t) => host.primaryKeys(t));
  let result = analyse();
  if (result && !(result instanceof RefusedBoundaryError)) {
    const unseen = [...new Set(result.reads.map((r) => r.table))].filter((t) => host.primaryKeys(t) === undefined);
    if (unseen.length > 0 && result.rowKeys === null) {
      try {
        await host.loadPrimaryKeys(unseen);
        result = analyse();
      } catch {
        // Unknown primary keys only cost row keys, never soundness.
      }
    }
  }
  remember(key, result);
  admit(frame, host, s, result, key);
}

function admit(frame: FrameCapture, host: CaptureHost, s: SentStatement, result: AnalysisResult, key: string): void {
  if (result === null) return;
  if (result instanceof RefusedBoundaryError) {
    frame.page.refusals.push(result);
    return;
  }
  admitRead(frame, result, s.sql, null, host.capturedTables(), key);
}

/** Verdicts of the cross-check per statement text (tables and columns do not depend on parameters). */
const checked = new Map<string, string | null>();

/**
 * SQLite's parse is not SQLite's own: every table and column SQLite's authorizer says the statement reads must be
 * among the dependency's reads, or the statement is refused (a parse that missed a read would be silent staleness).
 */
function crossCheck(host: CaptureHost, sql: string, result: AnalysisResult): AnalysisResult {
  if (!host.sqliteReads || result === null || result instanceof RefusedBoundaryError) return result;
  let verdict = checked.get(sql);
  if (verdict === undefined) {
    verdict = disagreement(host.sqliteReads(sql), result);
    if (checked.size >= 2000) checked.clear();
    checked.set(sql, verdict);
  }
  if (verdict === null) return result;
  return new RefusedBoundaryError(
    "unsupported_query",
    sql,
    `the parse of this statement disagrees with SQLite's own reading of it: ${verdict}`,
    "write the read as a plain select (tables, joins, subqueries, where, order by, limit), and report the statement to Upkeep",
  );
}

function disagreement(reads: SqliteReads | null, dep: QueryDependency): string | null {
  if (reads === null) return "SQLite could not prepare it on Upkeep's connection";
  for (const [table, columns] of reads) {
    const ours = dep.reads.filter((r) => r.table === table);
    if (ours.length === 0) return `SQLite reads ${table}, which the parse does not`;
    for (const column of columns) {
      if (column === "") continue;
      if (!ours.some((r) => r.columns === "*" || r.columns.has(column))) {
        return `SQLite reads ${table}.${column}, which the parse does not`;
      }
    }
  }
  return null;
}
