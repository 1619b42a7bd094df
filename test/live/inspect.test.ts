// The inspector: without `inspect.authorize` it answers only in development, and only over a connection from this
// machine (the socket's address, on every adapter, never a header) to localhost; with it, whom it admits. Its snapshot
// shows each live page group with its subscribers, frames and reads (query values left out), and the last facts
// with the frames they reached and why the others were missed; its stream sends a new snapshot when the state
// changes.
import assert from "node:assert/strict";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, test } from "node:test";
import { createAdaptorServer } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { upkeepExpress } from "../../src/express/index.ts";
import { upkeepFastify } from "../../src/fastify/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { live as liveNode } from "../../src/node/index.ts";
import { openLivePage } from "../../src/testing/index.ts";
import { createApp, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

let fixture: Fixture;
let dev: Upkeep;
let prod: Upkeep;
let guarded: Upkeep;
/** The development instance served by Hono on @hono/node-server, on every interface. */
let served: { port: number; close(): Promise<void> };

/** Each adapter serving `upkeep` (its own paths only) on every IPv4 interface, on a free port. */
const ADAPTERS: Record<string, (upkeep: Upkeep) => Promise<{ port: number; close(): Promise<void> }>> = {
  async hono(upkeep) {
    return listen(createAdaptorServer({ fetch: createApp(upkeep).fetch }) as Server);
  },
  async express(upkeep) {
    const app = express();
    app.use(upkeepExpress(upkeep));
    return listen(createServer(app));
  },
  async fastify(upkeep) {
    const app = Fastify();
    await app.register(upkeepFastify, { upkeep });
    await app.listen({ port: 0, host: "0.0.0.0" });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  },
  async "node:http"(upkeep) {
    return listen(
      createServer(
        liveNode(upkeep, (_req: IncomingMessage, res: ServerResponse) => {
          res.statusCode = 404;
          res.end();
        }),
      ),
    );
  },
};

function listen(server: Server): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve) =>
    server.listen(0, "0.0.0.0", () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      }),
    ),
  );
}

/** GET over a real connection to `address`, with the headers as given (Host included). */
function get(address: string, port: number, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: address, port, path, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** This machine's IPv4 addresses outside the loopback: a connection to one comes from a non-loopback address. */
const outside = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i && i.family === "IPv4" && !i.internal)
  .map((i) => i?.address as string);

/** Headers a client sets to claim it is this machine. */
const SPOOFED = { "x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1", forwarded: "for=127.0.0.1" };

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
  served = await ADAPTERS.hono!(dev);
});
after(async () => {
  await served?.close();
  for (const u of [dev, prod, guarded]) await u?.close();
});

for (const [name, start] of Object.entries(ADAPTERS)) {
  test(`${name}: without authorize, in development, only a connection from this machine to localhost sees it`, async () => {
    const server = await start(dev);
    try {
      const path = "/upkeep/inspect/snapshot";
      const local = { host: `localhost:${server.port}` };
      assert.equal((await get("127.0.0.1", server.port, path, local)).status, 200);
      // The socket decides, not a header: a loopback connection claiming another client is still this machine…
      assert.equal(
        (await get("127.0.0.1", server.port, path, { ...local, "x-forwarded-for": "203.0.113.7" })).status,
        200,
      );
      // …and a connection from another address claiming to be this machine is not.
      for (const address of outside) {
        const response = await get(address, server.port, path, { ...local, ...SPOOFED });
        assert.equal(response.status, 404, `over ${address}`);
        assert.match(response.body, /inspect: \{ authorize \}/);
      }
      // A page of another site whose name resolves to 127.0.0.1 sends its own name as Host.
      assert.equal((await get("127.0.0.1", server.port, path, { host: "rebound.example" })).status, 404);
      assert.equal((await get("127.0.0.1", server.port, "/upkeep/inspect", local)).status, 200);
    } finally {
      await server.close();
    }
  });
}

test("off in production without authorize, even from this machine; authorize decides in any mode", async () => {
  const server = await ADAPTERS.hono!(prod);
  try {
    const local = { host: `localhost:${server.port}` };
    assert.equal((await get("127.0.0.1", server.port, "/upkeep/inspect", local)).status, 404);
  } finally {
    await server.close();
  }
  // In-process (no socket): refused in development without authorize.
  assert.equal((await createApp(dev).fetch(new Request("http://localhost/upkeep/inspect"))).status, 404);
  const guardedApp = createApp(guarded);
  assert.equal((await guardedApp.fetch(new Request("http://localhost/upkeep/inspect"))).status, 404);
  const ops = await guardedApp.fetch(
    new Request("http://localhost/upkeep/inspect/snapshot", { headers: { authorization: "Bearer ops" } }),
  );
  assert.equal(ops.status, 200);
});

/** The development instance's snapshot, over the loopback. */
async function snapshotOf(): Promise<any> {
  const response = await get("127.0.0.1", served.port, "/upkeep/inspect/snapshot", { host: "localhost" });
  assert.equal(response.status, 200);
  return JSON.parse(response.body);
}

test("the snapshot shows page groups with their frames and reads, and each fact with the frames it reached", async () => {
  const app = createApp(dev);
  const live = await openLivePage(dev, app, "/lists/inspected");
  const other = await openLivePage(dev, app, "/count/elsewhere");
  await fixture.exec("insert into items (list, title, pos) values ('inspected', 'seen', 1)");
  await dev.settle();
  const snapshot = await snapshotOf();
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
  const response = await fetch(`http://127.0.0.1:${served.port}/upkeep/inspect/stream`);
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

test("page URLs are shown with their query values left out, whoever authorize admits", async () => {
  const app = createApp(guarded);
  const page = await openLivePage(guarded, app, "/lists/reset?token=s3cret-reset-token&step");
  await fixture.exec("insert into items (list, title, pos) values ('reset', 'seen', 1)");
  await guarded.settle();
  const response = await app.fetch(
    new Request("http://localhost/upkeep/inspect/snapshot", { headers: { authorization: "Bearer ops" } }),
  );
  const text = await response.text();
  assert.doesNotMatch(text, /s3cret/);
  const snapshot = JSON.parse(text);
  assert.ok(
    snapshot.groups.some((g: { url: string }) => g.url === "/lists/reset?token=…&step"),
    text,
  );
  assert.ok(
    snapshot.facts.some((f: { matched: { url: string }[] }) =>
      f.matched.some((m) => m.url === "/lists/reset?token=…&step"),
    ),
  );
  page.close();
});
