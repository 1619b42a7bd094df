// `npm run convergence -- [--runs 10000] [--seed N] [--dialect sqlite|postgres]`: the convergence oracle for
// deliberate, longer checks. PostgreSQL runs in a fresh database created through UPKEEP_TEST_PG_ADMIN_URL
// (default postgres://root@127.0.0.1:5432/postgres) and dropped afterwards.
import { parseArgs } from "node:util";
import { createTestDatabase } from "../support/postgres.ts";
import { type Dialect, describeFailure, openHarness, runConvergence } from "./harness.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "1000" },
    seed: { type: "string" },
    dialect: { type: "string", default: "sqlite" },
    "max-failures": { type: "string", default: "3" },
  },
});
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const dialect = values.dialect as Dialect;
if (dialect !== "sqlite" && dialect !== "postgres") {
  console.error(`--dialect must be sqlite or postgres, got ${values.dialect}`);
  process.exit(2);
}

const database = dialect === "postgres" ? await createTestDatabase("upkeep_convergence") : null;
if (database && !database.url) {
  console.error(database.reason);
  process.exit(2);
}
console.log(`convergence: ${runs} sequences on ${dialect} from seed ${seed}`);
const started = Date.now();
const harness = await openHarness(dialect, database?.url ?? undefined);
let failures: Awaited<ReturnType<typeof runConvergence>> = [];
try {
  failures = await runConvergence({
    harness,
    runs,
    seed,
    maxFailures: Number(values["max-failures"]),
    onProgress: (done) => {
      if (done % 500 === 0) console.log(`  ${done}/${runs} sequences`);
    },
  });
} finally {
  await harness.close();
  await database?.drop();
}
for (const f of failures) console.error(`\n${describeFailure(f)}`);
console.log(
  failures.length === 0
    ? `ok: ${runs} sequences converged in ${((Date.now() - started) / 1000).toFixed(1)} s`
    : `${failures.length} failing page(s)`,
);
process.exit(failures.length === 0 ? 0 : 1);
