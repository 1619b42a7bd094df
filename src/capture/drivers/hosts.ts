// The CaptureHost of an Upkeep instance: its ledger's captured tables and wake, primary keys from the schema, and
// (SQLite) SQLite's own reading of a statement through the authorizer, on a connection of Upkeep's own.
import type { DatabaseSync } from "node:sqlite";
import type { CompiledQuery, DatabaseConnection, Kysely } from "kysely";
import { loadSqlite, openSqlite } from "../../ledger/dialect.ts";
import type { Ledger } from "../../ledger/types.ts";
import { parseDatabaseUrl } from "../../ledger/url.ts";
import { runWithoutCapture } from "../context.ts";
import { primaryKeyCatalog } from "../dialect.ts";
import type { CaptureHost, SqliteReads } from "./host.ts";

export function createHost(database: string, ledger: Ledger, kysely: () => Kysely<any>): CaptureHost {
  const parsed = parseDatabaseUrl(database);
  if (parsed.kind === "sqlite") return sqliteHost(parsed.path, ledger);
  const catalog = primaryKeyCatalog("postgres");
  const connection = {
    executeQuery: (query: CompiledQuery) => kysely().executeQuery(query),
  } as unknown as DatabaseConnection;
  return {
    dialect: "postgres",
    primaryKeys: catalog.primaryKeys,
    loadPrimaryKeys: (tables) => runWithoutCapture(() => catalog.loadPrimaryKeys(connection, tables)),
    capturedTables: () => ledger.capturedTables(),
    poke: () => ledger.poke(),
  };
}

function sqliteHost(path: string, ledger: Ledger): CaptureHost {
  let db: DatabaseSync | null = null;
  const open = () => {
    db ??= openSqlite(path);
    return db;
  };
  const keys = new Map<string, string[] | null>();
  return {
    dialect: "sqlite",
    primaryKeys(table) {
      let found = keys.get(table);
      if (found === undefined) {
        const rows = open().prepare("select name from pragma_table_info(?) where pk > 0 order by pk").all(table) as {
          name: string;
        }[];
        found = rows.length > 0 ? rows.map((r) => r.name) : null;
        keys.set(table, found);
      }
      return found ?? undefined;
    },
    loadPrimaryKeys: async () => {},
    capturedTables: () => ledger.capturedTables(),
    poke: () => ledger.poke(),
    sqliteReads(sql) {
      if (path === ":memory:") return null;
      const connection = open();
      const { constants } = loadSqlite();
      const reads: SqliteReads = new Map();
      connection.setAuthorizer((action, table, column) => {
        if (action === constants.SQLITE_READ && typeof table === "string") {
          const columns = reads.get(table) ?? new Set<string>();
          reads.set(table, columns);
          columns.add(column ?? "");
        }
        return constants.SQLITE_OK;
      });
      try {
        connection.prepare(sql);
      } catch {
        return null;
      } finally {
        connection.setAuthorizer(null);
      }
      return reads;
    },
  };
}
