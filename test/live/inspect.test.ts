// The inspector: on in development, off elsewhere unless authorised; its snapshot shows each live page group with its
// subscribers, frames and reads, and the last facts with the frames they reached and why the others were missed; its
// stream sends a new snapshot when the state changes.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { openLivePage } from "../../src/testing/index.ts";
import { createApp, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

let fixture: Fixture;
let dev: Upkeep;
let prod: Upkeep;
let guarded: Upkeep;

before(async () => {
  fixture = (await fixtureDatabase("sqlite"))!;
  dev = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "development", install: true });
  prod = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "production" });
  guarded = await createUpkeep({
    database: fixture.database,
    secret: SECRET,
    mode: "production",
    inspect: { authorize: (request) => request.headers.get("authorization") === "Bearer ops" },
  });
});
after(async () => {
  for (const u of [dev, prod, guarded]) await u?.close();
});

test("on in development, off in production unless the app's authorize admits the request", async () => {
  const devApp = createApp(dev);
  const page = await devApp.fetch(new Request("http://localhost/upkeep/inspect"));
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Upkeep inspector/);
  assert.equal((await createApp(prod).fetch(new Request("http://localhost/upkeep/inspect"))).status, 404);
  const guardedApp = createApp(guarded);
  assert.equal((await guardedApp.fetch(new Request("http://localhost/upkeep/inspect"))).status, 404);
  const ops = await guardedApp.fetch(
    new Request("http://localhost/upkeep/inspect/snapshot", { headers: { authorization: "Bearer ops" } }),
  );
  assert.equal(ops.status, 200);
});

test("the snapshot shows page groups with their frames and reads, and each fact with the frames it reached", async () => {
  const app = createApp(dev);
  const live = await openLivePage(dev, app, "/lists/inspected");
  const other = await openLivePage(dev, app, "/count/elsewhere");
  await fixture.exec("insert into items (list, title, pos) values ('inspected', 'seen', 1)");
  await dev.settle();
  const snapshot = await (await app.fetch(new Request("http://localhost/upkeep/inspect/snapshot"))).json();
  assert.equal(snapshot.mode, "development");
  assert.equal(snapshot.ledger.lag, 0);
  const group = snapshot.groups.find((g: { url: string }) => g.url === "/lists/inspected");
  assert.equal(group.subscribers, 1);
  assert.match(group.frames[0].reads.join(" "), /items where .*list/);
  const fact = snapshot.facts.at(-1);
  assert.equal(fact.table, "items");
  assert.deepEqual(
    fact.matched.map((m: { url: string }) => m.url),
    ["/lists/inspected"],
  );
  assert.ok(
    fact.missed.some(
      (m: { url: string; reason: string }) => m.url === "/count/elsewhere" && m.reason === "predicate_did_not_match",
    ),
    JSON.stringify(fact.missed),
  );
  live.close();
  other.close();
});

test("the inspector page is live: its stream sends a snapshot at once and again when the state changes", async () => {
  const app = createApp(dev);
  const response = await app.fetch(new Request("http://localhost/upkeep/inspect/stream"));
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const snapshots: Array<{ groups: Array<{ url: string }> }> = [];
  let buffer = "";
  const next = async () => {
    for (;;) {
      const at = buffer.indexOf("\n\n");
      if (at >= 0) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (block.startsWith("data: ")) return JSON.parse(block.slice(6));
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += decoder.decode(value, { stream: true });
    }
  };
  snapshots.push(await next());
  const page = await openLivePage(dev, app, "/lists/streamed");
  snapshots.push(await next());
  assert.ok(!snapshots[0]?.groups.some((g) => g.url === "/lists/streamed"));
  assert.ok(snapshots[1]?.groups.some((g) => g.url === "/lists/streamed"));
  await reader.cancel();
  page.close();
});
