// upkeep doctor's general checks: the Node version, a running app's transports (client, SSE, WebSocket), and on
// SQLite the ledger's own state; the PostgreSQL checks are in test/ledger/postgres-logical.test.ts.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { doctor, nodeCheck, transportChecks } from "../../src/ledger/doctor.ts";
import { createApp, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

let fixture: Fixture;
let upkeep: Upkeep;
let url: string;
let close: () => Promise<void>;

before(async () => {
  fixture = (await fixtureDatabase("sqlite"))!;
  upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
  const served = await upkeep.serve(createApp(upkeep), { port: 0 });
  url = served.url;
  close = served.close;
});
after(async () => {
  await close?.();
  await upkeep?.close();
});

test("the Node version: older than 22.18 is an error with its fix; 22 is accepted with advice; 24 is fine", () => {
  assert.equal(nodeCheck("20.20.2").status, "error");
  assert.match(nodeCheck("20.20.2").fix ?? "", /Node 24/);
  assert.match(
    nodeCheck("20.20.2").fix ?? "",
    /npm install --save-dev node@24`/,
    "the target line, not the newest node",
  );
  assert.equal(nodeCheck("22.18.0").status, "info");
  assert.equal(nodeCheck("24.21.0").status, "ok");
});

test("a running app's transports: the client, the event stream and the WebSocket endpoint", async () => {
  const findings = await transportChecks(url);
  assert.deepEqual(
    findings.map((f) => f.status),
    ["ok", "ok", "ok"],
    JSON.stringify(findings),
  );
  // An app without the middleware serves none of them: each is named with its fix.
  const plain = new Hono().get("/", (c) => c.text("hi"));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: plain.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  try {
    const port = (server.address() as { port: number }).port;
    const broken = await transportChecks(`http://127.0.0.1:${port}`);
    assert.equal(broken[0]?.status, "error");
    assert.match(broken[0]?.fix ?? "", /middleware/);
    assert.ok(
      broken.slice(1).every((f) => f.status !== "ok"),
      JSON.stringify(broken),
    );
  } finally {
    server.close();
  }
});

test("doctor on SQLite: Node, the transports when asked, and the ledger", async () => {
  const findings = await doctor({ database: fixture.database, url });
  assert.ok(
    findings.every((f) => f.status === "ok" || f.status === "info"),
    JSON.stringify(findings),
  );
  assert.ok(findings.some((f) => /capture: triggers \(SQLite\)/.test(f.message)));
  const missing = await doctor({ database: `${fixture.database}.missing` });
  assert.ok(
    missing.some((f) => f.status === "error" && f.fix),
    JSON.stringify(missing),
  );
});
