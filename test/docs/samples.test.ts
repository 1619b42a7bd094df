// The documentation's samples, executed: every code block of docs/guide/ and of the data-mode walkthrough is a whole
// file of docs/samples/ (imports written as the package's names), every sample is shown whole on some page, and each is
// run here — the getting-started apps on Hono, Express, Fastify and Node's own http, every refusal and its rewrite,
// two production processes on one PostgreSQL database, the testing sample and explicit identifiers (the Inertia apps
// run in Chromium in data-mode.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { Hono } from "hono";
import { createApp as expressApp } from "../../docs/samples/express.ts";
import { createApp as fastifyApp } from "../../docs/samples/fastify.ts";
import { createApp as honoApp, startUpkeep } from "../../docs/samples/hono.ts";
import { forecastChanged, weather } from "../../docs/samples/inertia/identifiers.ts";
import { createListener as nodeListener } from "../../docs/samples/node.ts";
import { startProcess } from "../../docs/samples/production.ts";
import { REFUSALS } from "../../docs/samples/refusals.ts";
import { createTodos, type Database } from "../../docs/samples/schema.ts";
import { theTodoListStaysLive } from "../../docs/samples/testing.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, RefusedBoundaryError, type Upkeep } from "../../src/index.ts";
import { createInertia } from "../../src/inertia/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import { freshBody, openLivePage, openLiveProps } from "../../src/testing/index.ts";
import { fetchAppOf } from "../../src/web/inject.ts";
import { SECRET } from "../live/fixture.ts";
import { createTestDatabase, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { subpathExports } from "./exports.ts";

const root = new URL("../../", import.meta.url).pathname;
/** The pages whose code blocks are whole sample files. */
const PAGES = [
  ...readdirSync(join(root, "docs/guide"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/guide/${f}`),
  "docs/data-mode.md",
];
const CODE = /```(ts|tsx|vue|svelte)\n([\s\S]*?)```/g;

function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    return statSync(join(root, path)).isDirectory() ? filesUnder(path) : [path];
  });
}

const specifiers = new Map(subpathExports().map(({ source, specifier }) => [source, specifier]));
/** A sample's text as the docs show it: imports of the source written as the package's names. */
function asDocumented(path: string): string {
  return readFileSync(join(root, path), "utf8")
    .replace(/"(?:\.\.\/)+(src\/[^"]+)"/g, (whole, source: string) =>
      specifiers.has(source) ? `"${specifiers.get(source)}"` : whole,
    )
    .replace(/\n$/, "");
}

const samples = filesUnder("docs/samples").filter((path) => !path.endsWith(".d.ts"));

test("every sample imports only what the package exports", () => {
  for (const path of samples) {
    const source = /"(?:\.\.\/)+src\/[^"]+"/.exec(asDocumented(path));
    assert.equal(source, null, `${path} imports ${source?.[0]}, which is not a subpath export of the package`);
  }
});

test("every code block of the guide and of the data-mode walkthrough is a whole sample file, and every sample is shown", () => {
  const documented = new Map(samples.map((path) => [asDocumented(path), path]));
  const shown = new Set<string>();
  for (const page of PAGES) {
    for (const match of readFileSync(join(root, page), "utf8").matchAll(CODE)) {
      const block = (match[2] as string).replace(/\n$/, "");
      const sample = documented.get(block);
      assert.ok(
        sample,
        `${page}: this block is not a whole file of docs/samples (write the sample, then copy all of it):\n${block}`,
      );
      shown.add(sample);
    }
  }
  const hidden = samples.filter((path) => !shown.has(path));
  assert.deepEqual(
    hidden,
    [],
    `show each of these whole on one of ${PAGES.map((p) => relative(root, join(root, p))).join(", ")}`,
  );
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

test("explicit identifiers: a touch reaches the prop that declared it", async () => {
  const upkeep = await createUpkeep({
    database: await sqliteDatabase(),
    secret: SECRET,
    install: true,
    identifiers: true,
    mode: "test",
  });
  try {
    const db = upkeep.db();
    const inertia = createInertia({ version: "1", html: (page) => `<html><body>${page}</body></html>` });
    const app = new Hono();
    app.use(upkeepMiddleware(upkeep));
    app.get("/weather", (c) => inertia.render(c, "Weather", { paris: () => weather(db, "paris") }));
    const page = await openLiveProps(upkeep, app, "/weather");
    assert.equal(page.current().paris, "no forecast yet");
    await forecastChanged(db, "paris", "sunny");
    await upkeep.settle();
    await page.idle();
    assert.equal(page.current().paris, "sunny");
    page.close();
  } finally {
    await upkeep.close();
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
