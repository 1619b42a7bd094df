// The one test command (`npm test`): unit and integration tests on SQLite, the same behaviour suites on a fresh
// PostgreSQL database when a server is reachable, and the browser end-to-end tests when Chromium is installed.
//
// PostgreSQL: set UPKEEP_TEST_PG_ADMIN_URL (default postgres://root@127.0.0.1:5432/postgres). A database named
// upkeep_test_<time>_<pid> is created for the run and dropped afterwards. With CI=true a missing server or
// browser is a failure, not a skip.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createTestDatabase } from "../test/support/postgres.ts";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);

function findTests(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules" || name.startsWith(".")) continue;
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (/\.test\.tsx?$/.test(name)) out.push(path);
  }
  return out;
}

const filters = args.filter((a) => !a.startsWith("-"));
let files = [...findTests(join(root, "src")), ...findTests(join(root, "test"))].sort();
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));

const env = { ...process.env };
const pg = await createTestDatabase();
if (pg.url) {
  env.UPKEEP_TEST_DATABASE_URL = pg.url;
  console.log(`# PostgreSQL suites run against ${pg.url}`);
} else {
  console.log(`# PostgreSQL suites skipped: ${pg.reason}`);
  if (process.env.CI === "true") {
    console.error("CI=true requires PostgreSQL; start a server or set UPKEEP_TEST_PG_ADMIN_URL.");
    process.exit(1);
  }
}
if (!existsSync(process.env.UPKEEP_CHROMIUM ?? "/usr/bin/chromium")) {
  console.log("# Browser suites skipped: install Debian's chromium (apt-get install chromium) to run them.");
  if (process.env.CI === "true") {
    console.error("CI=true requires /usr/bin/chromium.");
    process.exit(1);
  }
}
if (!existsSync(process.env.UPKEEP_SQLITE3 ?? "/usr/bin/sqlite3")) {
  console.log("# sqlite3-shell tests skipped: install Debian's sqlite3 (apt-get install sqlite3) to run them.");
  if (process.env.CI === "true") {
    console.error("CI=true requires /usr/bin/sqlite3.");
    process.exit(1);
  }
}

const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { stdio: "inherit", env, cwd: root },
);
await pg.drop();
process.exit(result.status ?? 1);
