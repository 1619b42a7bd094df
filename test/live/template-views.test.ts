// Frames in views written as plain template strings, on the adapters whose apps have no JSX and no c.html(): Express,
// Fastify and Node's own http. A partial whose component returns a plain string is markup (the app escapes its own
// values); `${await Collection(…)}` and `${await Item(…)}` put a frame's markup into the page; a partial or collection
// interpolated without `await` is an error naming the fix, never "[object Promise]" in the page.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { html } from "hono/html";
import { upkeepExpress } from "../../src/express/index.ts";
import { upkeepFastify } from "../../src/fastify/index.ts";
import { Collection, createUpkeep, partial, type Upkeep } from "../../src/index.ts";
import { live } from "../../src/node/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import { escapeHtml } from "../../src/render/page.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { fetchAppOf } from "../../src/web/inject.ts";
import { type DB, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

type Row = { id: number; title: string };

// A plain string, escaping its one value itself: markup, as a template-string view is.
const Item = partial("item", ({ item }: { item: Row }) => `<li id="item_${item.id}">${escapeHtml(item.title)}</li>`);
// The same with html``, which escapes for the app.
const Heading = partial("heading", ({ list }: { list: string }) => html`<h1 id="heading">${list}</h1>`);

function views(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  return {
    async list(list: string): Promise<string> {
      const items = db.selectFrom("items").select(["id", "title"]).where("list", "=", list).orderBy("id");
      return `<!doctype html><html><body>${await Heading({ list })}${await Collection({ id: "items", tag: "ul", of: items, item: Item })}</body></html>`;
    },
    /** A partial interpolated without await. */
    async unawaited(): Promise<string> {
      return `<html><body>${Item({ item: { id: 1, title: "x" } })}</body></html>`;
    },
  };
}

interface Started {
  app: FetchApp;
  close(): Promise<void>;
}

const ADAPTERS: { name: string; start(upkeep: Upkeep): Promise<Started> }[] = [
  {
    name: "express",
    async start(upkeep) {
      const v = views(upkeep);
      const app = express();
      app.use(upkeepExpress(upkeep));
      app.get("/lists/:list", async (req, res) => {
        res.type("html").send(await v.list(req.params.list));
      });
      app.get("/unawaited", async (_req, res) => {
        res.type("html").send(await v.unawaited());
      });
      return { app: fetchAppOf(app), async close() {} };
    },
  },
  {
    name: "fastify",
    async start(upkeep) {
      const v = views(upkeep);
      const app: FastifyInstance = Fastify();
      await app.register(upkeepFastify, { upkeep });
      app.get<{ Params: { list: string } }>("/lists/:list", async (request, reply) =>
        reply.type("text/html").send(await v.list(request.params.list)),
      );
      app.get("/unawaited", async (_request, reply) => reply.type("text/html").send(await v.unawaited()));
      await app.ready();
      return { app: upkeep.hub.app as FetchApp, close: () => app.close() };
    },
  },
  {
    name: "node:http",
    async start(upkeep) {
      const v = views(upkeep);
      const listener = live(upkeep, (req: IncomingMessage, res: ServerResponse) => {
        const path = new URL(req.url ?? "/", "http://localhost").pathname;
        const list = /^\/lists\/([^/]+)$/.exec(path)?.[1];
        (list ? v.list(list) : v.unawaited()).then(
          (body) => {
            res.setHeader("content-type", "text/html; charset=utf-8");
            res.end(body);
          },
          (error: Error) => {
            res.statusCode = 500;
            res.end(error.message);
          },
        );
      });
      return { app: fetchAppOf(listener), async close() {} };
    },
  },
];

for (const adapter of ADAPTERS) {
  describe(`frames in template-string views on ${adapter.name}`, () => {
    let fixture: Fixture;
    let upkeep: Upkeep;
    let started: Started;
    before(async () => {
      fixture = (await fixtureDatabase("sqlite")) as Fixture;
      upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
      started = await adapter.start(upkeep);
    });
    after(async () => {
      await started?.close();
      await upkeep?.close();
    });

    test("a partial returning a plain string is markup, and a write renders its frame alone", async () => {
      const page = await openLivePage(upkeep, started.app, "/lists/a");
      assert.match(page.body(), /<h1 id="heading">a<\/h1><ul id="items"><\/ul>/);
      const before = await upkeep.stats();
      await fixture.exec("insert into items (list, title, pos) values ('a', '<b>bold</b> & co', 1)");
      await upkeep.settle();
      assert.match(page.body(), /<li id="item_\d+">&lt;b&gt;bold&lt;\/b&gt; &amp; co<\/li>/);
      assert.equal(page.body(), await freshBody(started.app, "/lists/a"));
      const now = await upkeep.stats();
      assert.equal(now.renders, before.renders, "the write replayed the page instead of rendering the collection");
      assert.ok(now.frameRenders > before.frameRenders);
      page.close();
    });

    test("a partial in a template string without await is an error naming the fix", async () => {
      const response = await started.app.fetch(
        new Request("http://localhost/unawaited", { headers: { accept: "text/html" } }),
      );
      const body = await response.text();
      assert.equal(response.status, 500, body);
      assert.doesNotMatch(body, /<body>\[object Promise\]/);
      // In the framework's own error page: HTML-escaped (Express), JSON (Fastify) or plain (node:http).
      assert.match(body, /partial (?:&quot;|\\?")item(?:&quot;|\\?") was put into a template string without await/);
    });
  });
}

test("a partial or collection turned into text before it is awaited throws; html`` and await are unaffected", async () => {
  assert.throws(() => `${Item({ item: { id: 1, title: "x" } })}`, /partial "item" .*\$\{await …\}/);
  assert.throws(() => `${Collection({ id: "c", of: [], item: Item })}`, /Collection "c" .*without await/);
  assert.equal(`${await Item({ item: { id: 1, title: "<x>" } })}`, '<li id="item_1">&lt;x&gt;</li>');
  assert.equal(
    String(await html`<ul>${[Item({ item: { id: 2, title: "y" } })]}</ul>${"<i>"}`),
    '<ul><li id="item_2">y</li></ul>&lt;i&gt;',
  );
});
