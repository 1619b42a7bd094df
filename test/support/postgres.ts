// Fresh PostgreSQL databases for test runs. Each suite that needs PostgreSQL calls `postgresUrlOrSkip()`; the
// test command creates one database per run (see scripts/test.ts), and suites create their own schemas or
// databases inside it when they need isolation.
import pg from "pg";

export const ADMIN_URL = process.env.UPKEEP_TEST_PG_ADMIN_URL ?? "postgres://root@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string | null;
  reason?: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = "upkeep_test"): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now()}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end().catch(() => {});
    return {
      url: null,
      reason: `cannot create a database via ${ADMIN_URL}: ${(error as Error).message}`,
      drop: async () => {},
    };
  }
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await c.end();
    },
  };
}

/** The run's PostgreSQL database, or null with a printed reason (suites then skip). */
export function postgresUrl(): string | null {
  return process.env.UPKEEP_TEST_DATABASE_URL ?? null;
}

export const POSTGRES_SKIP_MESSAGE =
  "PostgreSQL not configured: run through `npm test` with a server on 127.0.0.1:5432 (or set UPKEEP_TEST_DATABASE_URL)";
