// A fresh, empty database per test for the ledger's behaviour suite, with a raw connection that is not Upkeep's
// (writes through it are "external": another client, a shell).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import type { DatabaseKind, Fact, Ledger } from "../../src/ledger/index.ts";
import { dropSlotsOf, postgresUrl } from "../support/postgres.ts";

export interface TestDb {
  kind: DatabaseKind;
  /** The database's name (PostgreSQL). */
  name?: string;
  url: string;
  /** Runs SQL (several statements allowed) on a raw connection. */
  exec(sql: string): Promise<void>;
  /** Runs one parameterized statement on the raw connection and returns its rows. */
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** A new raw connection (PostgreSQL) for concurrent transactions. */
  connect(): Promise<pg.Client>;
  close(): Promise<void>;
}

export async function freshDb(kind: DatabaseKind): Promise<TestDb> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "upkeep-ledger-"));
    const path = join(dir, "app.sqlite");
    const db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 5000");
    return {
      kind,
      url: `file:${path}`,
      exec: async (sql) => db.exec(sql),
      query: async (sql, params = []) => db.prepare(sql).all(...(params as never[])) as Record<string, unknown>[],
      connect: () => Promise.reject(new Error("not used on SQLite")),
      close: async () => {
        db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const base = postgresUrl() as string;
  const name = `ledger_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  const raw = new pg.Client({ connectionString: url.toString() });
  await raw.connect();
  const clients: pg.Client[] = [];
  return {
    kind,
    name,
    url: url.toString(),
    exec: async (sql) => {
      await raw.query(sql);
    },
    query: async (sql, params = []) => (await raw.query(sql, params)).rows,
    connect: async () => {
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      clients.push(c);
      return c;
    },
    close: async () => {
      await Promise.all([raw, ...clients].map((c) => c.end().catch(() => {})));
      const a = new pg.Client({ connectionString: base });
      await a.connect();
      await dropSlotsOf(a, name);
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Everything after `after`, in batches, once every fact committed so far is readable. */
export async function readAll(ledger: Ledger, after = 0): Promise<Fact[]> {
  await ledger.sync();
  const out: Fact[] = [];
  let cursor = after;
  for (;;) {
    const batch = await ledger.read(cursor, { limit: 100 });
    if (batch.length === 0) return out;
    out.push(...batch);
    cursor = (batch[batch.length - 1] as Fact).offset;
  }
}

/** The schema objects a database holds (tables, triggers, functions), for install/uninstall comparisons. */
export async function schemaObjects(db: TestDb): Promise<string[]> {
  if (db.kind === "sqlite") {
    const rows = await db.query(
      "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS o FROM sqlite_master WHERE name <> 'sqlite_sequence' ORDER BY 1",
    );
    return rows.map((r) => r.o as string);
  }
  const rows = await db.query(
    `SELECT 'rel ' || relname || ' ' || relkind::text AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
     UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
     ORDER BY 1`,
  );
  return rows.map((r) => r.o as string);
}

export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
