// The live-page behaviour suite, once per web adapter — Hono, Express 5, Fastify 5 and Node's own http — on both
// dialects: the same small app written for each framework, the same expectations. In-process (upkeep/testing) for
// the page, the patch, isolation, refusals and a live JSON resource; over a real server and WebSocket for the
// endpoint, the client's files and a patch received on the socket.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe } from "node:test";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { Hono } from "hono";
import { sql } from "kysely";
import { WebSocket } from "ws";
import { WIRE } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { cookie as expressCookie, upkeepExpress } from "../../src/express/index.ts";
import { cookie as fastifyCookie, upkeepFastify } from "../../src/fastify/index.ts";
import { cookie as honoCookie, upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { live as liveNode, cookie as nodeCookie } from "../../src/node/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import { freshBody, freshJson, openLivePage, openLiveResource } from "../../src/testing/index.ts";
import { fetchAppOf } from "../../src/web/inject.ts";
import { type DB, DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

/** What every adapter's app renders: the same pages, whatever the framework. */
function views(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  return {
    async list(list: string) {
      const items = await db
        .selectFrom("items")
        .select(["id", "title"])
        .where("list", "=", list)
        .orderBy("pos")
        .orderBy("id")
        .execute();
      return `<!doctype html><html><head><title>${list}</title></head><body><ul id="items">${items
        .map((i) => `<li id="item_${i.id}">${i.title}</li>`)
        .join("")}</ul></body></html>`;
    },
    async me(owner: string) {
      const rows = await db
        .selectFrom("secrets")
        .select(["id", "body"])
        .where("owner", "=", owner)
        .orderBy("id")
        .execute();
      return `<html><body><h1>${owner}</h1>${rows.map((r) => `<p id="s_${r.id}">${r.body}</p>`).join("")}</body></html>`;
    },
    async raw() {
      await sql`select 1`.execute(db);
      return "<html><body>raw</body></html>";
    },
    async json(list: string) {
      return db.selectFrom("items").select(["id", "title"]).where("list", "=", list).orderBy("id").execute();
    },
  };
}

interface Adapter {
  name: string;
  /** Builds the app on `upkeep`, serves it on a loopback port with the WebSocket endpoint attached. */
  start(upkeep: Upkeep): Promise<{ fetchApp: FetchApp; url: string; close(): Promise<void> }>;
}

const listen = (server: Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });

const ADAPTERS: Adapter[] = [
  {
    name: "hono",
    async start(upkeep) {
      const v = views(upkeep);
      const app = new Hono();
      app.use(upkeepMiddleware(upkeep));
      app.get("/lists/:list", async (c) => c.html(await v.list(c.req.param("list"))));
      app.get("/me", async (c) => c.html(await v.me(honoCookie(c, "user") ?? "nobody")));
      app.get("/raw", async (c) => c.html(await v.raw()));
      app.get("/api/:list", async (c) => c.json(await v.json(c.req.param("list"))));
      const served = await upkeep.serve(app, { port: 0 });
      return { fetchApp: app, url: served.url, close: served.close };
    },
  },
  {
    name: "express",
    async start(upkeep) {
      const v = views(upkeep);
      const app = express();
      app.use(upkeepExpress(upkeep));
      app.get("/lists/:list", async (req, res) => {
        res.type("html").send(await v.list(req.params.list as string));
      });
      app.get("/me", async (req, res) => {
        res.type("html").send(await v.me(expressCookie(req, "user") ?? "nobody"));
      });
      app.get("/raw", async (_req, res) => {
        res.type("html").send(await v.raw());
      });
      app.get("/api/:list", async (req, res) => {
        res.json(await v.json(req.params.list as string));
      });
      const server = createServer(app);
      upkeep.attach(server, app);
      const url = await listen(server);
      return { fetchApp: fetchAppOf(app), url, close: () => closeServer(server) };
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
      app.get("/me", async (request, reply) =>
        reply.type("text/html").send(await v.me(fastifyCookie(request, "user") ?? "nobody")),
      );
      app.get("/raw", async (_request, reply) => reply.type("text/html").send(await v.raw()));
      app.get<{ Params: { list: string } }>("/api/:list", async (request) => v.json(request.params.list));
      const url = await app.listen({ port: 0, host: "127.0.0.1" });
      return { fetchApp: upkeep.hub.app as FetchApp, url, close: () => app.close() };
    },
  },
  {
    name: "node:http",
    async start(upkeep) {
      const v = views(upkeep);
      const listener = liveNode(upkeep, (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? "/", "http://localhost");
        const send = (type: string, body: string) => {
          res.setHeader("content-type", type);
          res.end(body);
        };
        const route = async () => {
          const list = /^\/lists\/([^/]+)$/.exec(url.pathname);
          const api = /^\/api\/([^/]+)$/.exec(url.pathname);
          if (list) return send("text/html; charset=utf-8", await v.list(list[1] as string));
          if (url.pathname === "/me")
            return send("text/html; charset=utf-8", await v.me(nodeCookie(req, "user") ?? "nobody"));
          if (url.pathname === "/raw") return send("text/html; charset=utf-8", await v.raw());
          if (api) return send("application/json", JSON.stringify(await v.json(api[1] as string)));
          res.statusCode = 404;
          res.end("not found");
        };
        route().catch((error) => {
          res.statusCode = 500;
          res.end(String(error));
        });
      });
      const server = createServer(listener);
      upkeep.attach(server, listener);
      const url = await listen(server);
      return { fetchApp: fetchAppOf(listener), url, close: () => closeServer(server) };
    },
  },
];

for (const dialect of DIALECTS) {
  for (const adapter of ADAPTERS) {
    describe(`live pages through ${adapter.name} (${dialect})`, () => {
      let fixture: Fixture | null = null;
      let upkeep: Upkeep;
      let app: FetchApp;
      let base: string;
      let close: () => Promise<void>;

      before(async () => {
        fixture = await fixtureDatabase(dialect);
        if (!fixture) return;
        upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
        const started = await adapter.start(upkeep);
        app = started.fetchApp;
        base = started.url;
        close = started.close;
      });
      after(async () => {
        await close?.();
        await upkeep?.close();
        await fixture?.drop();
      });
      const it = dialectTest(() => fixture);
      const exec = async (statement: string) => {
        await fixture!.exec(statement);
        await upkeep.settle();
      };

      it("a page is served with the live marker, and a write patches it to what a fresh GET shows", async () => {
        const page = await openLivePage(upkeep, app, "/lists/a");
        await exec("insert into items (list, title, pos) values ('a', 'first', 1)");
        assert.ok(page.messages.some((m) => m.type === "patch"));
        assert.equal(page.body(), await freshBody(app, "/lists/a"));
        assert.match(page.body(), /first/);
        const from = page.messages.length;
        await exec("insert into items (list, title, pos) values ('b', 'elsewhere', 1)");
        assert.equal(page.messages.length, from, "a write to another list reached the page");
        page.close();
      });

      it("a page that read one viewer's cookie is patched for that viewer only", async () => {
        const alice = await openLivePage(upkeep, app, "/me", { headers: { cookie: "user=alice; theme=dark" } });
        const bob = await openLivePage(upkeep, app, "/me", { headers: { cookie: "user=bob" } });
        const bobFrom = bob.messages.length;
        await exec("insert into secrets (owner, body) values ('alice', 'for alice')");
        assert.match(alice.body(), /for alice/);
        assert.equal(bob.messages.length, bobFrom);
        assert.equal(alice.body(), await freshBody(app, "/me", { cookie: "user=alice; theme=dark" }));
        alice.close();
        bob.close();
      });

      it("a refused page is an error in test mode, never a silently stale live page", async () => {
        const response = await app.fetch(new Request(`${base}/raw`, { headers: { accept: "text/html" } }));
        assert.equal(response.status, 500);
        assert.doesNotMatch(await response.text(), new RegExp(WIRE.streamSourceTag));
      });

      it("a JSON GET asked for live is a live resource", async () => {
        const resource = await openLiveResource<unknown[]>(upkeep, app, "/api/j");
        await exec("insert into items (list, title, pos) values ('j', 'json', 1)");
        assert.deepEqual(resource.current(), await freshJson(app, "/api/j"));
        assert.equal(resource.current().length, 1);
        resource.close();
      });

      it("over a real server: the client is served, and a WebSocket subscriber receives the patch", async () => {
        const client = await fetch(`${base}${WIRE.clientPath}index.js`);
        assert.equal(client.status, 200);
        assert.match(client.headers.get("content-type") ?? "", /javascript/);
        const page = await subscribeOverSocket(base, "/lists/w");
        await exec("insert into items (list, title, pos) values ('w', 'over the wire', 1)");
        const patch = await page.next((m) => m.type === "patch");
        assert.ok(patch.type === "patch" && patch.html.includes("over the wire"), JSON.stringify(page.messages));
        page.close();
      });

      it("over a real server: a browser closing its event stream ends the subscription", async () => {
        const stream = await subscribeOverEvents(base, "/lists/e");
        assert.equal((await upkeep.stats()).subscribers, 1);
        stream.close();
        // The server learns of the close asynchronously: wait for it (bounded), then check.
        for (let i = 0; i < 100 && (await upkeep.stats()).subscribers > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal((await upkeep.stats()).subscribers, 0, "the closed stream's subscription is still open");
      });

      it("over a real server: every later replay in the process is live too, as the first one was", async () => {
        // The process's first replay is the first one after a real GET (nothing ran through the app in-process
        // before it): whatever it sets up must not leak into the replays after it.
        const pages = [await subscribeOverSocket(base, "/lists/r1"), await subscribeOverSocket(base, "/lists/r2")];
        try {
          for (let round = 1; round <= 3; round++) {
            for (const [i, page] of pages.entries()) {
              await exec(`insert into items (list, title, pos) values ('r${i + 1}', 'round ${round}', ${round})`);
              const patch = await page.next((m) => m.type !== "subscribed");
              assert.equal(patch.type, "patch", JSON.stringify(page.messages));
              assert.ok(patch.type === "patch" && patch.html.includes(`round ${round}`), JSON.stringify(patch));
            }
          }
          for (const page of pages) {
            assert.ok(
              !page.messages.some((m) => m.type === "reload" || m.type === "error"),
              JSON.stringify(page.messages),
            );
          }
        } finally {
          for (const page of pages) page.close();
        }
      });
    });
  }
}

/**
 * A page fetched over HTTP from a real server and followed over a real event stream (SSE), as a browser does; resolves
 * once the subscription is acknowledged. `close()` ends the stream from the browser's side.
 */
async function subscribeOverEvents(base: string, path: string) {
  const html = await (await fetch(`${base}${path}`, { headers: { accept: "text/html" } })).text();
  const attribute = (name: string) =>
    (new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] ?? "").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  const query = new URLSearchParams({
    token: attribute(WIRE.tokenAttr),
    offset: attribute(WIRE.offsetAttr),
    incarnation: attribute(WIRE.incarnationAttr),
    id: "sse",
  });
  const stream = request(`${base}${WIRE.eventsPath}?${query}`, { agent: false });
  await new Promise<void>((resolve, reject) => {
    stream.once("error", reject);
    stream.once("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("event: subscribed")) resolve();
      });
      res.on("error", () => {});
    });
    stream.end();
  });
  return { close: () => stream.destroy() };
}

/** A page fetched over HTTP from a real server and subscribed over a real WebSocket, as a browser does. */
async function subscribeOverSocket(base: string, path: string) {
  const html = await (await fetch(`${base}${path}`, { headers: { accept: "text/html" } })).text();
  const attribute = (name: string) =>
    (new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] ?? "").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  const socket = new WebSocket(`${base.replace("http", "ws")}${WIRE.socketPath}`);
  const messages: ServerMessage[] = [];
  const seen = new Set<ServerMessage>();
  let wake = () => {};
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as ServerMessage;
      messages.push(message);
      wake();
      if (message.type === "subscribed") resolve();
    });
    socket.once("open", () =>
      socket.send(
        JSON.stringify({
          type: WIRE.msg.subscribe,
          id: "w",
          token: attribute(WIRE.tokenAttr),
          offset: Number(attribute(WIRE.offsetAttr)),
          incarnation: attribute(WIRE.incarnationAttr),
        }),
      ),
    );
  });
  for (const m of messages) seen.add(m);
  return {
    messages,
    /** The first message matching `test` (marked seen), waiting up to 5 s for it. */
    async next(test: (m: ServerMessage) => boolean): Promise<ServerMessage> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const found = messages.find((m) => !seen.has(m) && test(m));
        if (found) {
          for (const m of messages.slice(0, messages.indexOf(found) + 1)) seen.add(m);
          return found;
        }
        if (Date.now() > deadline) throw new Error(`no such message on ${path}: ${JSON.stringify(messages)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
    },
    close: () => socket.close(),
  };
}
