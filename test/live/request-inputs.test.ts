// `cookie(name)` and `header(name)` from "upkeep" read the request on every request an adapter serves, not only on
// the GETs it makes live: a view rendered by a POST handler (after its body is read, the body arriving in two parts)
// or by a GET that accepts JSON shows the requesting viewer's state. Recording the read as an input is what a live
// capture adds; the live GET still shows it too. Over a real server, for each adapter.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { WIRE } from "../../src/constants.ts";
import { upkeepExpress } from "../../src/express/index.ts";
import { upkeepFastify } from "../../src/fastify/index.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { cookie, createUpkeep, header, html, partial, type Upkeep } from "../../src/index.ts";
import { live } from "../../src/node/index.ts";
import { type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

const Viewer = partial(
  "viewer",
  (_: { at: string }) => html`<p id="viewer">${cookie("viewer") ?? "nobody"} of ${header("x-team") ?? "no team"}</p>`,
);
const page = async (at: string) => String(await html`<!doctype html><html><body>${Viewer({ at })}</body></html>`);
const json = async () => JSON.stringify({ viewer: String(await Viewer({ at: "api" })) });

const listen = (server: Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );

const ADAPTERS: { name: string; start(upkeep: Upkeep): Promise<{ url: string; close(): Promise<void> }> }[] = [
  {
    name: "hono",
    async start(upkeep) {
      const app = new Hono();
      app.use(upkeepMiddleware(upkeep));
      app.get("/page", async (c) => c.html(await page("get")));
      app.post("/page", async (c) => {
        await c.req.parseBody();
        return c.html(await page("post"));
      });
      app.get("/api", async (c) => c.body(await json(), 200, { "content-type": "application/json" }));
      const served = await upkeep.serve(app, { port: 0 });
      return { url: served.url, close: served.close };
    },
  },
  {
    name: "express",
    async start(upkeep) {
      const app = express();
      app.use(upkeepExpress(upkeep));
      app.use(express.urlencoded({ extended: false }));
      app.get("/page", async (_req, res) => {
        res.type("html").send(await page("get"));
      });
      app.post("/page", async (_req, res) => {
        res.type("html").send(await page("post"));
      });
      app.get("/api", async (_req, res) => {
        res.type("json").send(await json());
      });
      const server = createServer(app);
      upkeep.attach(server, app);
      const url = await listen(server);
      return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    },
  },
  {
    name: "fastify",
    async start(upkeep) {
      const app = Fastify();
      await app.register(upkeepFastify, { upkeep });
      app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) =>
        done(null, body),
      );
      app.get("/page", async (_request, reply) => reply.type("text/html").send(await page("get")));
      app.post("/page", async (_request, reply) => reply.type("text/html").send(await page("post")));
      app.get("/api", async (_request, reply) => reply.type("application/json").send(await json()));
      const url = await app.listen({ port: 0, host: "127.0.0.1" });
      return { url, close: () => app.close() };
    },
  },
  {
    name: "node:http",
    async start(upkeep) {
      const respond = async (req: IncomingMessage, res: ServerResponse) => {
        if (req.method === "POST") for await (const _ of req); // the body, read before rendering
        const api = req.url === "/api";
        const body = api ? await json() : await page(req.method === "POST" ? "post" : "get");
        res.setHeader("content-type", api ? "application/json" : "text/html; charset=utf-8");
        res.end(body);
      };
      const listener = live(upkeep, (req, res) => {
        respond(req, res).catch((error: Error) => {
          res.statusCode = 500;
          res.end(error.message);
        });
      });
      const server = createServer(listener);
      upkeep.attach(server, listener);
      const url = await listen(server);
      return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    },
  },
];

/** A request over a real connection; a body is sent in two parts, the second once the first was written. */
function send(base: string, method: string, path: string, headers: Record<string, string>, body?: [string, string]) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const length = body ? { "content-length": String(Buffer.byteLength(body.join(""))) } : {};
    const req = request(`${base}${path}`, { method, headers: { ...headers, ...length } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    if (!body) return req.end();
    req.flushHeaders();
    req.write(body[0], () => setImmediate(() => req.end(body[1])));
  });
}

const VIEWER = { cookie: "viewer=ada; theme=dark", "x-team": "blue" };

for (const adapter of ADAPTERS) {
  describe(`cookie() and header() on every request through ${adapter.name}`, () => {
    let fixture: Fixture;
    let upkeep: Upkeep;
    let base: string;
    let close: () => Promise<void>;
    before(async () => {
      fixture = (await fixtureDatabase("sqlite")) as Fixture;
      upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
      ({ url: base, close } = await adapter.start(upkeep));
    });
    after(async () => {
      await close?.();
      await upkeep?.close();
    });

    test("a view rendered by a POST handler shows the requesting viewer", async () => {
      const form = { "content-type": "application/x-www-form-urlencoded", accept: "text/html" };
      const response = await send(base, "POST", "/page", { ...VIEWER, ...form }, ["title=a", "&done=1"]);
      assert.equal(response.status, 200, response.text);
      assert.match(response.text, /<p id="viewer">ada of blue<\/p>/);
    });

    test("a view rendered for a GET that accepts JSON shows the requesting viewer", async () => {
      const response = await send(base, "GET", "/api", { ...VIEWER, accept: "application/json" });
      assert.equal(response.status, 200, response.text);
      assert.match(JSON.parse(response.text).viewer, /^<p id="viewer">ada of blue<\/p>$/);
    });

    test("the live GET reads the same, and another viewer's requests read their own", async () => {
      const live = await send(base, "GET", "/page", { ...VIEWER, accept: "text/html" });
      assert.match(live.text, /<p id="viewer">ada of blue<\/p>/);
      assert.match(live.text, new RegExp(WIRE.streamSourceTag));
      const other = await send(
        base,
        "POST",
        "/page",
        { cookie: "viewer=bob", "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
        ["a", "=1"],
      );
      assert.match(other.text, /<p id="viewer">bob of no team<\/p>/);
      const none = await send(base, "GET", "/api", { accept: "application/json" });
      assert.match(JSON.parse(none.text).viewer, /nobody of no team/);
    });
  });
}
