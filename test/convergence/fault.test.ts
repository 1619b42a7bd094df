// The oracle's own check: a deliberately broken replay path in the app under test must make it report failures.
// The faults live in the harness's app only (app/faults.ts), selected by CONVERGENCE_FAULT: a replay that reaches the
// app without the header naming it, and the loopback server of Node listeners made inside the first replay's async
// context (the bug fixed in Upkeep's node and Express adapters). With frames off every affecting write replays a page.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FAULTS } from "./app/faults.ts";
import { runCell } from "./oracle.ts";
import type { Adapter } from "./stack.ts";

describe("the convergence oracle fails when a replay path is broken", { timeout: 300_000 }, () => {
  for (const [fault, adapters] of Object.entries(FAULTS)) {
    for (const adapter of adapters) {
      test(`${adapter} with ${fault}`, async () => {
        const run = await runCell(
          { adapter: adapter as Adapter, capture: "sqlite", rendering: "page" },
          { runs: 4, seed: 1, fault, maxFailures: 1 },
        );
        assert.ok(run.failures.length > 0, `no failure reported in ${run.sequences} sequences`);
        // The broken replay is seen as what it does to a browser: a page told to reload (not_live), or left stale.
        const failure = run.failures[0]!;
        assert.ok(
          failure.events.some((e) => e.kind === "reload") || failure.expected !== failure.actual,
          JSON.stringify(failure.events),
        );
      });
    }
  }
});
