// The documentation's samples, executed: every TypeScript block of docs/guide/ is an excerpt of a file in
// docs/samples/ (imports written as the package's names), and each of those files is run here — the getting-started
// apps on Hono, Express, Fastify and Node's own http, every refusal and its rewrite, two production processes on one PostgreSQL
// database, and the testing sample.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { Hono } from "hono";
import { createApp as expressApp } from "../../docs/samples/express.ts";
import { createApp as fastifyApp } from "../../docs/samples/fastify.ts";
import { createApp as honoApp, startUpkeep } from "../../docs/samples/hono.ts";
import { createListener as nodeListener } from "../../docs/samples/node.ts";
import { startProcess } from "../../docs/samples/production.ts";
import { REFUSALS } from "../../docs/samples/refusals.ts";
import { createTodos, type Database } from "../../docs/samples/schema.ts";
import { theTodoListStaysLive } from "../../docs/samples/testing.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, RefusedBoundaryError, type Upkeep } from "../../src/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { fetchAppOf } from "../../src/web/inject.ts";
import { SECRET } from "../live/fixture.ts";
import { createTestDatabase, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";

const root = new URL("../../docs/", import.meta.url).pathname;

/** A sample's text as the docs show it: imports of the source written as the package's subpaths. */
function asDocumented(text: string): string {
  return text
    .replace(/"\.\.\/\.\.\/src\/index\.ts"/g, '"upkeep"')
    .replace(/"\.\.\/\.\.\/src\/([a-z]+)\/index\.ts"/g, (_, sub) => `"upkeep/${sub}"`);
}

test("every TypeScript block in docs/guide is an excerpt of a sample file", () => {
  const samples = readdirSync(join(root, "samples"))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => asDocumented(readFileSync(join(root, "samples", f), "utf8")));
  let blocks = 0;
  for (const file of readdirSync(join(root, "guide")).filter((f) => f.endsWith(".md"))) {
    const text = readFileSync(join(root, "guide", file), "utf8");
    for (const match of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
      blocks++;
      const block = (match[1] as string).replace(/\n$/, "");
      assert.ok(
        samples.some((sample) => sample.includes(block)),
        `docs/guide/${file}: this block is not in any docs/samples file (update the sample, then copy it):\n${block}`,
      );
    }
  }
  assert.ok(blocks >= 8, `only ${blocks} blocks found`);
});

async function sqliteDatabase(): Promise<string> {
  const database = `file:${join(mkdtempSync(join(tmpdir(), "upkeep-docs-")), "app.sqlite")}`;
  await createTodos(database);
  return database;
}

describe("getting started", () => {
  /** Raw SQL through a second connection, as a shell or another service would write. */
  const write = (upkeep: Upkeep) => async (statement: string) => {
    const db = new DatabaseSync(upkeep.database.replace(/^file:/, ""));
    db.exec("pragma busy_timeout = 5000");
    db.exec(statement);
    db.close();
  };
  const check = async (upkeep: Upkeep, app: FetchApp) => {
    const page = await openLivePage(upkeep, app, "/lists/groceries", { headers: { cookie: "name=ada" } });
    const before = await upkeep.stats();
    await upkeep
      .db<Database>()
      .insertInto("todos")
      .values({ id: 1, list: "groceries", title: "bread", done: 0 })
      .execute();
    await upkeep.settle();
    assert.match(page.body(), /<li id="todo_1">bread<\/li>/);
    assert.match(page.body(), /Hello, ada/);
    assert.equal(page.body(), await freshBody(app, "/lists/groceries", { cookie: "name=ada" }));
    // The todo went into the collection (a frame render), not through a replay of the whole page.
    const now = await upkeep.stats();
    assert.equal(now.renders, before.renders);
    assert.ok(now.frameRenders > before.frameRenders);
    page.close();
  };

  test("on Hono", async () => {
    const upkeep = await startUpkeep(await sqliteDatabase());
    try {
      await check(upkeep, honoApp(upkeep));
      await theTodoListStaysLive(upkeep, honoApp(upkeep), write(upkeep));
    } finally {
      await upkeep.close();
    }
  });

  test("on Express", async () => {
    const upkeep = await createUpkeep({
      database: await sqliteDatabase(),
      secret: SECRET,
      install: true,
      mode: "test",
    });
    try {
      await check(upkeep, fetchAppOf(expressApp(upkeep)));
    } finally {
      await upkeep.close();
    }
  });

  test("on Fastify", async () => {
    const upkeep = await createUpkeep({
      database: await sqliteDatabase(),
      secret: SECRET,
      install: true,
      mode: "test",
    });
    const app = await fastifyApp(upkeep);
    await app.ready();
    try {
      await check(upkeep, upkeep.hub.app as FetchApp);
    } finally {
      await app.close();
      await upkeep.close();
    }
  });

  test("on Node's own http", async () => {
    const upkeep = await createUpkeep({
      database: await sqliteDatabase(),
      secret: SECRET,
      install: true,
      mode: "test",
    });
    try {
      await check(upkeep, fetchAppOf(nodeListener(upkeep)));
    } finally {
      await upkeep.close();
    }
  });
});

describe("refusals and rewrites", () => {
  let upkeep: Upkeep;
  let app: Hono;
  let thrown: unknown = null;
  before(async () => {
    upkeep = await createUpkeep({ database: await sqliteDatabase(), secret: SECRET, install: true, mode: "test" });
    app = new Hono();
    app.use(upkeepMiddleware(upkeep));
    app.onError((error, c) => {
      thrown = error;
      return c.text("refused", 500);
    });
    for (const [i, example] of REFUSALS.entries()) {
      for (const which of ["refused", "rewrite"] as const) {
        app.get(`/${i}/${which}`, async (c) => {
          const out = await example[which](upkeep.db<Database>());
          return c.html(`<html><body>${typeof out === "string" ? out : "<p id='ok'>read</p>"}</body></html>`);
        });
      }
    }
  });
  after(() => upkeep?.close());

  for (const [i, example] of REFUSALS.entries()) {
    test(`${example.code}: refused, and its rewrite is live`, async () => {
      thrown = null;
      const refused = await app.fetch(
        new Request(`http://localhost/${i}/refused`, { headers: { accept: "text/html" } }),
      );
      assert.equal(refused.status, 500);
      assert.ok(thrown instanceof RefusedBoundaryError, String(thrown));
      assert.equal((thrown as RefusedBoundaryError).code, example.code);
      thrown = null;
      const rewrite = await app.fetch(
        new Request(`http://localhost/${i}/rewrite`, { headers: { accept: "text/html" } }),
      );
      assert.equal(rewrite.status, 200, String(thrown));
      assert.match(await rewrite.text(), /upkeep-stream-source/);
    });
  }
});

describe("production: two processes on one PostgreSQL database", {
  skip: postgresUrl() ? false : POSTGRES_SKIP_MESSAGE,
}, () => {
  test("a write through one process reaches a page subscribed on the other", async () => {
    const created = await createTestDatabase("upkeep_docs");
    if (!created.url) throw new Error(created.reason);
    await createTodos(created.url);
    await (await createUpkeep({ database: created.url, secret: SECRET, install: true })).close();
    const a = await startProcess(created.url, SECRET);
    const b = await startProcess(created.url, SECRET);
    try {
      const app = honoApp(a);
      const page = await openLivePage(a, app, "/lists/shared", { headers: { origin: "https://app.example" } });
      await b
        .db<Database>()
        .insertInto("todos")
        .values({ list: "shared", title: "from process b", done: 0 } as never)
        .execute();
      await a.settle();
      assert.match(page.body(), /from process b/);
      assert.equal(page.body(), await freshBody(app, "/lists/shared", { origin: "https://app.example" }));
      page.close();
    } finally {
      await a.close();
      await b.close();
      await created.drop();
    }
  });
});
