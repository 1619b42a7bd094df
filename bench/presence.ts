// `npm run bench -- presence [--joins 30] [--watchers 20]`: how long after a viewer subscribes the pages that show the
// room's viewers have the new name (join), and how long after the grace period a departure shows (leave). In-process
// on SQLite (upkeep/testing subscribers; no network), so the figure is Upkeep's own: the presence write, the ledger,
// planning, the replay and the patch.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { html } from "hono/html";
import { cookie, upkeepMiddleware } from "../src/hono/index.ts";
import { createUpkeep, partial, presence } from "../src/index.ts";
import { openLivePage } from "../src/testing/index.ts";
import { percentile, round } from "./support/stats.ts";

const { values } = parseArgs({
  options: { joins: { type: "string", default: "30" }, watchers: { type: "string", default: "20" } },
});
const joins = Number(values.joins);
const watchers = Number(values.watchers);
const GRACE_MS = 50;
const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-presence-"));
const path = join(dir, "room.sqlite");
new DatabaseSync(path).close();
const upkeep = await createUpkeep({
  database: `file:${path}`,
  secret: "upkeep-bench-secret-at-least-32-characters-long",
  mode: "production",
  install: true,
  presence: { label: (headers) => /user=(\w+)/.exec(headers.cookie ?? "")?.[1], graceMs: GRACE_MS },
});
const db = upkeep.db();
const app = new Hono();
app.use(upkeepMiddleware(upkeep));
app.get("/room", async (c) => {
  const me = cookie(c, "user");
  const here = await presence(db);
  return c.html(
    `<html><body><p id="me">${me}</p><ul id="here">${here.map((w) => `<li id="here_${w}">${w}</li>`).join("")}</ul></body></html>`,
  );
});
upkeep.use(app);
const pages: Awaited<ReturnType<typeof openLivePage>>[] = [];
for (let i = 0; i < watchers; i++)
  pages.push(await openLivePage(upkeep, app, "/room", { headers: { cookie: `user=w${i}` } }));
await upkeep.presence?.idle();
await upkeep.settle();

/** Resolves when every watcher's page does (or does not) list `name`. */
async function seen(name: string, present: boolean): Promise<number> {
  for (;;) {
    if (pages.every((p) => p.body().includes(`id="here_${name}"`) === present)) return performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
const joined: number[] = [];
const left: number[] = [];
for (let i = 0; i < joins; i++) {
  const started = performance.now();
  const newcomer = await openLivePage(upkeep, app, "/room", { headers: { cookie: `user=n${i}` } });
  joined.push((await seen(`n${i}`, true)) - started);
  const leaving = performance.now();
  newcomer.close();
  left.push((await seen(`n${i}`, false)) - leaving - GRACE_MS);
}
const results = {
  watchers,
  joins,
  graceMs: GRACE_MS,
  join: { p50: round(percentile(joined, 50)), p95: round(percentile(joined, 95)) },
  leaveAfterGrace: { p50: round(percentile(left, 50)), p95: round(percentile(left, 95)) },
};
console.log(
  `presence bench: ${watchers} pages showing the room's viewers, ${joins} viewers joining then leaving (in-process, SQLite)`,
);
console.log(
  `  join → every page lists the newcomer: p50 ${results.join.p50} ms, p95 ${results.join.p95} ms (from the subscribe)`,
);
console.log(
  `  leave → every page drops them, after the ${GRACE_MS} ms grace: p50 ${results.leaveAfterGrace.p50} ms, p95 ${results.leaveAfterGrace.p95} ms`,
);
for (const p of pages) p.close();
await upkeep.close();
const standard = process.argv.slice(2).length === 0;
if (standard) {
  mkdirSync(new URL("./results/", import.meta.url).pathname, { recursive: true });
  writeFileSync(new URL("./results/presence.json", import.meta.url).pathname, `${JSON.stringify(results, null, 2)}\n`);
}
rmSync(dir, { recursive: true, force: true });
