// The capturing dialect: wraps any Kysely dialect so that, while a PageCapture is current, every compiled query
// is paired with its own result rows and analysed into the capture. Outside a capture the wrapper costs one
// AsyncLocalStorage lookup per query.

import {
  AliasNode,
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type QueryResult,
  SelectQueryNode,
  TableNode,
} from "kysely";
import { analyzeQuery } from "../analysis/analyze.ts";
import { tableName } from "../analysis/scope.ts";
import { RefusedBoundaryError } from "../errors.ts";
import { WrappingDriver } from "../ledger/driver.ts";
import { statementKind } from "../statements.ts";
import { currentFrame, type FrameCapture } from "./context.ts";
import { admitRead, refuseWrite } from "./record.ts";

export interface CaptureDialectOptions {
  /** Primary-key columns of a table, in key order (undefined when unknown or keyless). */
  primaryKeys(table: string): string[] | undefined;
  /** Makes the primary keys of `tables` known to `primaryKeys`, through the wrapped driver's connection.
   *  Called before a captured read is analysed (see primaryKeyCatalog). */
  loadPrimaryKeys?(connection: DatabaseConnection, tables: string[]): Promise<void>;
  /** The tables whose writes become facts (Ledger.capturedTables()). A read of anything else — an excluded or new
   *  table, a view, a foreign or partitioned table, another schema — is refused: no fact would ever say that it
   *  changed. Omitted: no check (analysis tests). */
  capturedTables?(): ReadonlySet<string>;
}

export function captureDialect(inner: Dialect, options: CaptureDialectOptions): Dialect {
  return {
    createDriver: () => new CaptureDriver(inner.createDriver(), options),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createAdapter: () => inner.createAdapter(),
    createIntrospector: (db) => inner.createIntrospector(db),
  };
}

class CaptureConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection;
  readonly options: CaptureDialectOptions;
  constructor(inner: DatabaseConnection, options: CaptureDialectOptions) {
    this.inner = inner;
    this.options = options;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const frame = currentFrame();
    if (!frame) return this.inner.executeQuery<R>(compiled);
    const result = await this.inner.executeQuery<R>(compiled);
    await this.record(frame, compiled, result.rows as Record<string, unknown>[]);
    return result;
  }

  async *streamQuery<R>(compiled: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    const frame = currentFrame();
    if (!frame) {
      yield* this.inner.streamQuery<R>(compiled, chunkSize);
      return;
    }
    // The page read the rows it consumed: analyse those, also when the consumer stops early.
    const rows: Record<string, unknown>[] = [];
    try {
      for await (const chunk of this.inner.streamQuery<R>(compiled, chunkSize)) {
        rows.push(...(chunk.rows as Record<string, unknown>[]));
        yield chunk;
      }
    } finally {
      await this.record(frame, compiled, rows);
    }
  }

  /** Analyses a read into the frame that made it (and the page's list of every read). */
  async record(frame: FrameCapture, compiled: CompiledQuery, rows: Record<string, unknown>[]): Promise<void> {
    const capture = frame.page;
    if (statementKind(compiled) === "write") {
      refuseWrite(frame, compiled.sql);
      return;
    }
    const table = rowReadTable(compiled.query);
    if (table && this.options.loadPrimaryKeys) {
      try {
        await this.options.loadPrimaryKeys(this.inner, [table]);
      } catch {
        // Unknown primary keys only cost row keys, never soundness.
      }
    }
    const result = analyzeQuery(compiled.query, compiled, rows, (t) => this.options.primaryKeys(t));
    if (result === null) return;
    if (result instanceof RefusedBoundaryError) {
      capture.refusals.push(result);
      return;
    }
    admitRead(frame, result, compiled.sql, compiled.parameters, this.options.capturedTables?.());
  }
}

/** The one table of a plain single-table select (the only shape whose row keys are recorded). */
function rowReadTable(node: CompiledQuery["query"]): string | null {
  if (!SelectQueryNode.is(node)) return null;
  const froms = node.from?.froms ?? [];
  if (froms.length !== 1 || node.joins?.length) return null;
  let from = froms[0];
  if (from && AliasNode.is(from)) from = from.node;
  if (!from || !TableNode.is(from)) return null;
  return tableName(from);
}

/** Hands out capturing connections, one per inner connection (reused across acquisitions). */
class CaptureDriver extends WrappingDriver {
  readonly #options: CaptureDialectOptions;
  readonly #wrapped = new WeakMap<DatabaseConnection, CaptureConnection>();

  constructor(inner: Driver, options: CaptureDialectOptions) {
    super(inner);
    this.#options = options;
  }

  protected wrap(connection: DatabaseConnection): DatabaseConnection {
    let wrapped = this.#wrapped.get(connection);
    if (!wrapped) {
      wrapped = new CaptureConnection(connection, this.#options);
      this.#wrapped.set(connection, wrapped);
    }
    return wrapped;
  }
}

// ── primary keys from the schema ──────────────────────────────────────────────────────────────────────────

export interface PrimaryKeyCatalog extends Required<Omit<CaptureDialectOptions, "capturedTables">> {
  /** Forgets cached keys (after a schema change). */
  clear(): void;
}

/**
 * Primary keys read from the database schema (SQLite: PRAGMA table_info; PostgreSQL: pg_index), cached per
 * table. Spread it into captureDialect's options: `captureDialect(inner, primaryKeyCatalog("sqlite"))`.
 */
export function primaryKeyCatalog(kind: "sqlite" | "postgres"): PrimaryKeyCatalog {
  const cache = new Map<string, string[] | null>();
  return {
    primaryKeys: (table) => cache.get(table) ?? undefined,
    async loadPrimaryKeys(connection, tables) {
      for (const table of tables) {
        if (cache.has(table)) continue;
        const query =
          kind === "sqlite"
            ? CompiledQuery.raw("select name from pragma_table_info(?) where pk > 0 order by pk", [table])
            : // to_regclass yields null for a missing table instead of failing (which would abort a transaction).
              CompiledQuery.raw(
                `select a.attname as name from pg_index i
                   join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                  where i.indrelid = to_regclass($1) and i.indisprimary
                  order by array_position(i.indkey::int2[], a.attnum)`,
                [
                  table
                    .split(".")
                    .map((part) => `"${part.replaceAll('"', '""')}"`)
                    .join("."),
                ],
              );
        const { rows } = await connection.executeQuery<{ name: string }>(query);
        cache.set(table, rows.length > 0 ? rows.map((r) => r.name) : null);
      }
    },
    clear: () => cache.clear(),
  };
}
