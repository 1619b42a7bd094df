// Convergence oracle in `npm test`: ≥ 200 random write sequences per dialect (see harness.ts). The base seed is
// random per run and printed; set UPKEEP_CONVERGENCE_SEED to repeat a run, or replay one failing sequence with
// the command printed in the failure.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createTestDatabase, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { type Dialect, describeFailure, openHarness, runConvergence } from "./harness.ts";

const RUNS = Number(process.env.UPKEEP_CONVERGENCE_RUNS ?? 200);
const SEED = Number(process.env.UPKEEP_CONVERGENCE_SEED ?? Math.floor(Math.random() * 2 ** 31));

async function check(dialect: Dialect, url: string | undefined, diagnostic: (message: string) => void) {
  diagnostic(`${dialect}: ${RUNS} sequences from seed ${SEED} (UPKEEP_CONVERGENCE_SEED=${SEED} repeats this run)`);
  const harness = await openHarness(dialect, url);
  try {
    const failures = await runConvergence({ harness, runs: RUNS, seed: SEED });
    assert.equal(failures.length, 0, failures.map(describeFailure).join("\n\n"));
  } finally {
    await harness.close();
  }
}

describe("convergence: every live page equals a fresh GET after settling", { timeout: 900_000 }, () => {
  test("sqlite", async (t) => {
    await check("sqlite", undefined, (m) => t.diagnostic(m));
  });

  test("postgres", { skip: postgresUrl() ? false : POSTGRES_SKIP_MESSAGE }, async (t) => {
    // The demo's tables get a database of their own, so they never meet other suites' tables.
    const database = await createTestDatabase("upkeep_convergence");
    if (!database.url) throw new Error(database.reason);
    try {
      await check("postgres", database.url, (m) => t.diagnostic(m));
    } finally {
      await database.drop();
    }
  });
});
