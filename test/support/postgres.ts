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
      await dropSlotsOf(c, name);
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

/**
 * Drops the replication slots of a database (a test's logical capture). Slots are cluster-wide and outlive their
 * database's connections: a leaked one keeps WAL forever, and DROP DATABASE refuses a database that has one.
 */
export async function dropSlotsOf(admin: pg.Client, database: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { rows } = await admin.query<{ slot: string; pid: number | null }>(
      "SELECT slot_name AS slot, active_pid AS pid FROM pg_replication_slots WHERE database = $1",
      [database],
    );
    if (rows.length === 0) return;
    for (const r of rows) {
      if (r.pid !== null) await admin.query("SELECT pg_terminate_backend($1)", [r.pid]).catch(() => {});
      await admin.query("SELECT pg_drop_replication_slot($1)", [r.slot]).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Why the logical-capture suites cannot run on the test server (false: they can). With CI=true they must:
 * an unready server is an error, not a skip.
 */
export async function logicalSkipReason(): Promise<string | false> {
  const url = postgresUrl();
  if (!url) return POSTGRES_SKIP_MESSAGE;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ level: string; may: boolean }>(
      "SELECT current_setting('wal_level') AS level, (rolreplication OR rolsuper) AS may FROM pg_roles WHERE rolname = current_user",
    );
    const r = rows[0];
    let reason: string | false = false;
    if (r?.level !== "logical") {
      reason = `logical capture needs wal_level = logical (it is ${r?.level}): run \`ALTER SYSTEM SET wal_level = logical\` as a superuser and restart PostgreSQL (.ci/run does this)`;
    } else if (!r.may) {
      reason = "logical capture needs a role that may replicate: `ALTER ROLE … REPLICATION`";
    }
    if (reason && process.env.CI === "true") throw new Error(`CI=true requires logical capture: ${reason}`);
    return reason;
  } finally {
    await c.end();
  }
}
