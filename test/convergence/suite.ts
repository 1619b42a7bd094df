// The convergence oracle in `npm test` (oracle.ts): every cell of one adapter, each a short run of sequences on a fresh
// database and app server, restarted once in the middle; its SQLite frames cell opens pages in Chromium too. The base
// seed is random per run and printed; UPKEEP_CONVERGENCE_SEED repeats a run, UPKEEP_CONVERGENCE_RUNS sets the
// sequences per cell (default 6). A failure prints the commands that replay it with `npm run convergence`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { browserSkip } from "../support/browser.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { describeFailure, runCell } from "./oracle.ts";
import { type Adapter, allCells, type Cell, cellName } from "./stack.ts";

export const RUNS = Number(process.env.UPKEEP_CONVERGENCE_RUNS ?? 6);
export const SEED = Number(process.env.UPKEEP_CONVERGENCE_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Why a cell cannot run here (false: it can). With CI=true PostgreSQL and logical decoding must be there. */
async function skipOf(cell: Cell): Promise<string | false> {
  if (cell.capture === "sqlite") return false;
  if (!postgresUrl()) {
    if (process.env.CI === "true") throw new Error(`CI=true requires PostgreSQL for ${cellName(cell)}`);
    return POSTGRES_SKIP_MESSAGE;
  }
  return cell.capture === "postgres-logical" ? logicalSkipReason() : false;
}

/** The tests of every cell of `adapter`. */
export function cellTests(adapter: Adapter): void {
  describe(`convergence on ${adapter}: every live page equals a fresh GET after settling`, { timeout: 600_000 }, () => {
    for (const cell of allCells().filter((c) => c.adapter === adapter)) {
      // One cell per adapter samples Chromium (the real client and Turbo) on its second sequence.
      const chromium = cell.capture === "sqlite" && cell.rendering === "frames" && browserSkip() === false;
      test(cellName(cell), async (t) => {
        const skip = await skipOf(cell);
        if (skip) return t.skip(skip);
        t.diagnostic(`${RUNS} sequences from seed ${SEED} (UPKEEP_CONVERGENCE_SEED=${SEED} repeats this run)`);
        const run = await runCell(cell, { runs: RUNS, seed: SEED, ...(chromium ? { chromium: (i) => i === 1 } : {}) });
        t.diagnostic(
          `${run.pages} pages (${run.applied} messages applied), ${run.browserPages} in Chromium, ${run.restarts} restart(s), ${run.seconds.toFixed(1)} s`,
        );
        assert.equal(run.failures.length, 0, run.failures.map(describeFailure).join("\n\n"));
        assert.equal(run.sequences, RUNS);
        assert.ok(run.restarts >= 1, "the app server was restarted during the run");
        if (chromium) assert.ok(run.browserPages > 0, "Chromium followed pages");
      });
    }
  });
}
