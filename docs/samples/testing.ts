// Testing your app with upkeep/testing: render a page as a live subscriber, write, settle, and compare the patched
// page with a fresh GET by the same viewer. Use it in your own test runner.
import assert from "node:assert/strict";
import type { Upkeep } from "../../src/index.ts";
import { explain, freshBody, openLivePage } from "../../src/testing/index.ts";

/** A Hono app, or fetchAppOf(app) from upkeep/node for an Express app or a node:http listener. */
type App = { fetch(request: Request): Response | Promise<Response> };

export async function theTodoListStaysLive(upkeep: Upkeep, app: App, write: (sql: string) => Promise<void>) {
  const page = await openLivePage(upkeep, app, "/lists/home", { headers: { cookie: "name=ada" } });
  await write("insert into todos (list, title) values ('home', 'water the plants')");
  await upkeep.settle(); // every fact committed so far planned, every render sent
  assert.match(page.body(), /water the plants/);
  assert.equal(page.body(), await freshBody(app, "/lists/home", { cookie: "name=ada" }));

  // Why a write did or did not reach a page: the frames it matched, and the reason for every miss.
  const report = explain(upkeep, { table: "todos", op: "insert", old: null, new: { id: 99, list: "work", title: "x", done: 0 } });
  assert.equal(report.matched.length, 0);
  assert.ok(report.misses.every((miss) => miss.reason === "predicate_did_not_match"));
  page.close();
}
