// Kysely dialects with the ledger's connection settings. The driver signals commits (`onCommit`) so followers in
// this process wake at once instead of waiting for the next poll. A capture layer may wrap the returned dialect
// (createDriver / connections): it is a plain Kysely `Dialect`.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  PostgresDialect,
  type QueryResult,
  SqliteDialect,
} from "kysely";
import pg from "pg";
import { ConfigError } from "../errors.ts";
import { markOwn, ownPool } from "../own.ts";
import { statementKind } from "../statements.ts";
import { WrappingDriver } from "./driver.ts";
import { parseDatabaseUrl } from "./url.ts";

export interface DialectHooks {
  /** Called after a transaction commits and after an autocommitted statement that may have written. */
  onCommit?: () => void;
}

/** SQLite connection settings shared by the ledger and Upkeep's Kysely instances. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

let sqliteModule: typeof import("node:sqlite") | null = null;

/**
 * node:sqlite, loaded when a SQLite database is first opened (not when Upkeep is imported), so that an app on
 * PostgreSQL runs on a Node without it. `load` is for tests.
 */
export function loadSqlite(
  load: (id: string) => unknown = createRequire(import.meta.url),
): typeof import("node:sqlite") {
  if (sqliteModule) return sqliteModule;
  try {
    sqliteModule = load("node:sqlite") as typeof import("node:sqlite");
  } catch (error) {
    throw new ConfigError(
      `SQLite databases need Node's built-in node:sqlite, which this Node (${process.version}) does not have (${(error as Error).message}).`,
      "run Node 24 LTS (or 22.13 and later), or use a postgres:// database",
    );
  }
  return sqliteModule;
}

export function openSqlite(path: string): DatabaseSync {
  const { DatabaseSync } = loadSqlite();
  // `file:./data/app.sqlite` in a fresh checkout: SQLite creates the file, not its folder.
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = markOwn(new DatabaseSync(path));
  db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  if (path !== ":memory:") db.exec("PRAGMA journal_mode = WAL");
  return db;
}

export function createDialect(database: string, hooks: DialectHooks = {}): Dialect {
  const parsed = parseDatabaseUrl(database);
  const inner: Dialect =
    parsed.kind === "sqlite"
      ? new SqliteDialect({ database: async () => sqliteAdapter(openSqlite(parsed.path)) })
      : new PostgresDialect({ pool: ownPool(new pg.Pool({ connectionString: parsed.url })) });
  if (!hooks.onCommit) return inner;
  const onCommit = hooks.onCommit;
  return {
    createAdapter: () => inner.createAdapter(),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
    createDriver: () => new CommitSignallingDriver(inner.createDriver(), onCommit),
  };
}

/** Prepared statements kept per connection (SQL text → statement); the oldest is dropped beyond this. */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Adapts node:sqlite's DatabaseSync to the better-sqlite3-like interface Kysely's SqliteDialect expects.
 * Statements are prepared once per SQL text and reused: Kysely runs one query at a time per connection, and the
 * same page queries run on every GET and every replay.
 */
export function sqliteAdapter(db: DatabaseSync) {
  const cache = new Map<string, { statement: StatementSync; reader: boolean }>();
  const prepared = (sql: string) => {
    let entry = cache.get(sql);
    if (!entry) {
      // Upkeep's own, also when prepared before a capture of node:sqlite patched prepare (see own.ts).
      const statement = markOwn(db.prepare(sql));
      entry = { statement, reader: statement.columns().length > 0 };
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, entry);
    }
    return entry;
  };
  return {
    close: () => db.close(),
    prepare(sql: string) {
      const { statement, reader } = prepared(sql);
      return {
        reader,
        all: (parameters: ReadonlyArray<unknown>) => statement.all(...toSqliteParams(parameters)),
        run: (parameters: ReadonlyArray<unknown>) => statement.run(...toSqliteParams(parameters)),
        iterate: (parameters: ReadonlyArray<unknown>) =>
          statement.iterate(...toSqliteParams(parameters)) as IterableIterator<unknown>,
      };
    },
  };
}

type SqliteParam = null | number | bigint | string | NodeJS.ArrayBufferView;

/** node:sqlite binds null, numbers, bigints, strings and byte arrays; booleans and dates are stored as SQLite
 *  applications conventionally store them (0/1, ISO-8601 text). */
function toSqliteParams(parameters: ReadonlyArray<unknown>): SqliteParam[] {
  return parameters.map((p) => {
    if (p === undefined) return null;
    if (typeof p === "boolean") return p ? 1 : 0;
    if (p instanceof Date) return p.toISOString();
    return p as SqliteParam;
  });
}

/** Wraps a Kysely driver: calls `onCommit` after commits and after autocommitted writing statements. */
class CommitSignallingDriver extends WrappingDriver {
  readonly #onCommit: () => void;
  readonly #inTransaction = new WeakSet<DatabaseConnection>();

  constructor(inner: Driver, onCommit: () => void) {
    super(inner);
    this.#onCommit = onCommit;
  }

  protected wrap(connection: DatabaseConnection): DatabaseConnection {
    const wrapped: DatabaseConnection = {
      executeQuery: async <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
        const result = await connection.executeQuery<R>(query);
        if (!this.#inTransaction.has(wrapped) && mayWrite(query)) this.#signal();
        return result;
      },
      streamQuery: <R>(query: CompiledQuery, chunkSize?: number) => connection.streamQuery<R>(query, chunkSize),
    };
    return wrapped;
  }

  protected override began(connection: DatabaseConnection): void {
    this.#inTransaction.add(connection);
  }

  protected override ended(connection: DatabaseConnection): void {
    this.#inTransaction.delete(connection);
  }

  protected override committed(): void {
    this.#signal();
  }

  #signal(): void {
    try {
      this.#onCommit();
    } catch {
      // A waking hook must never turn a committed write into a failed one.
    }
  }
}

function mayWrite(query: CompiledQuery): boolean {
  return statementKind(query) !== "read";
}
