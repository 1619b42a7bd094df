// `npm run convergence -- [--stack all|adapter/capture/rendering,…] [--runs 100] [--seed N] [--chromium 25]`: the
// convergence oracle's long runs, cell by cell (oracle.ts). Cells are adapter/capture/rendering (stack.ts); parts may
// be globs and trailing parts may be left out ("express", "*/postgres-logical/*"). PostgreSQL cells run in fresh
// databases created through UPKEEP_TEST_PG_ADMIN_URL (default postgres://root@127.0.0.1:5432/postgres) and dropped
// afterwards. Every --chromium'th sequence (0: none) also opens pages in Chromium. A failure prints the commands that
// replay it.
import { parseArgs } from "node:util";
import { describeFailure, runCell } from "./oracle.ts";
import { cellName, selectCells } from "./stack.ts";

const { values } = parseArgs({
  options: {
    stack: { type: "string", default: "all" },
    runs: { type: "string", default: "100" },
    seed: { type: "string" },
    chromium: { type: "string", default: "25" },
    "max-failures": { type: "string", default: "3" },
    fault: { type: "string" },
  },
});
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const every = Number(values.chromium);
let cells: ReturnType<typeof selectCells>;
try {
  cells = selectCells(values.stack);
} catch (error) {
  console.error((error as Error).message);
  process.exit(2);
}
console.log(`convergence: ${cells.length} cell(s) × ${runs} sequences from seed ${seed}`);
let failed = 0;
const summary: string[] = [];
for (const cell of cells) {
  const name = cellName(cell);
  const run = await runCell(cell, {
    runs,
    seed,
    chromium: every > 0 ? (index) => index % every === Math.min(every - 1, 3) : undefined,
    maxFailures: Number(values["max-failures"]),
    ...(values.fault ? { fault: values.fault } : {}),
    onSequence: (index) => {
      if ((index + 1) % 25 === 0) console.log(`  ${name}: ${index + 1}/${runs}`);
    },
  });
  for (const f of run.failures) console.error(`\n${describeFailure(f)}`);
  const line = `${name}: ${run.sequences} sequences, ${run.pages} pages (${run.applied} messages applied) + ${run.browserPages} in Chromium, ${run.restarts} restart(s), ${run.failures.length} failure(s), ${run.seconds.toFixed(1)} s`;
  summary.push(line);
  const total = (pick: (s: (typeof run.lives)[number]) => number) => run.lives.reduce((n, s) => n + pick(s), 0);
  const deopts: Record<string, number> = {};
  for (const life of run.lives)
    for (const [k, v] of Object.entries(life.deoptimizations)) if (v) deopts[k] = (deopts[k] ?? 0) + v;
  console.log(line);
  console.log(
    `  upkeep: ${total((s) => s.renders)} page replays, ${total((s) => s.frameRenders)} frame renders, ${total((s) => s.messages)} messages, ${total((s) => s.factsPlanned)} facts planned (${total((s) => s.factsTableWide)} table-wide); deoptimizations ${JSON.stringify(deopts)}`,
  );
  if (run.failures.length > 0) failed++;
}
console.log(`\n${summary.join("\n")}`);
console.log(failed === 0 ? `ok: every cell converged (seed ${seed})` : `${failed} cell(s) failed (seed ${seed})`);
process.exit(failed === 0 ? 0 : 1);
