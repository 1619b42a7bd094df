import assert from "node:assert/strict";
import type { Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { WIRE } from "../../src/constants.ts";
import { attachWebSocket, type WebSocketOptions, type WebSocketTransport } from "../../src/deliver/websocket.ts";
import { FakeHub } from "./fake-hub.ts";
import { listen, stop, TestClient } from "./support.ts";

async function setup(options?: WebSocketOptions) {
  const hub = new FakeHub();
  const { server, port } = await listen();
  const transport = attachWebSocket(server, hub, options);
  return { hub, server, port, transport };
}

describe("WebSocket transport", () => {
  let hub: FakeHub;
  let server: Server;
  let port: number;
  let transport: WebSocketTransport;
  before(async () => {
    ({ hub, server, port, transport } = await setup({
      maxSubscriptions: 3,
      maxMessageBytes: 1024,
      maxMalformedMessages: 2,
    }));
  });
  after(async () => {
    await transport.close();
    await stop(server);
  });

  test("subscribe → ack → patches in order → unsubscribe", async () => {
    const client = await TestClient.open(port, WIRE.socketPath, { cookie: "session=abc", "X-Custom": "1" });
    client.subscribe("a", "tok-a", 7, "inc-1");
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "a");
    const request = hub.requests.find((r) => r.id === "a")!;
    assert.equal(request.token, "tok-a");
    assert.equal(request.offset, 7);
    assert.equal(request.incarnation, "inc-1");
    assert.equal(request.headers.cookie, "session=abc");
    assert.equal(request.headers["x-custom"], "1");
    hub.send("a", { type: "patch", id: "a", offset: 8, html: "<turbo-stream></turbo-stream>" });
    hub.send("a", { type: "patch", id: "a", offset: 9, html: "<turbo-stream></turbo-stream>" });
    await client.next((m) => m.type === "patch" && m.offset === 9);
    assert.deepEqual(
      client.received.filter((m) => m.type === "patch").map((m) => (m as { offset: number }).offset),
      [8, 9],
    );
    client.send({ type: WIRE.msg.unsubscribe, id: "a" });
    await hub.until(() => hub.unsubscribed.includes("a"));
    assert.equal(hub.live.has("a"), false);
    client.close();
  });

  test("one socket multiplexes subscriptions; messages go to their own id", async () => {
    const client = await TestClient.open(port);
    client.subscribe("m1");
    client.subscribe("m2");
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "m2");
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "m1");
    hub.send("m2", { type: "patch", id: "m2", offset: 1, html: "two" });
    hub.send("m1", { type: "patch", id: "m1", offset: 1, html: "one" });
    const two = await client.next((m) => m.type === "patch" && m.id === "m2");
    const one = await client.next((m) => m.type === "patch" && m.id === "m1");
    assert.equal((two as { html: string }).html, "two");
    assert.equal((one as { html: string }).html, "one");
    client.close();
    await hub.until(() => hub.unsubscribed.includes("m1") && hub.unsubscribed.includes("m2"));
  });

  test("a duplicate id is refused for that id only", async () => {
    const client = await TestClient.open(port);
    client.subscribe("dup");
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "dup");
    client.subscribe("dup");
    const error = await client.next((m) => m.type === "error");
    assert.equal((error as { code: string }).code, "duplicate_subscription");
    assert.equal(client.closed, null);
    client.close();
  });

  test("a token refused by the hub becomes an error message with its code", async () => {
    hub.refuse.set("expired-token", "expired");
    hub.refuse.set("forged-token", "forged");
    const client = await TestClient.open(port);
    client.subscribe("e1", "expired-token");
    client.subscribe("e2", "forged-token");
    client.subscribe("e3", "explode");
    const e1 = await client.next((m) => m.type === "error" && m.id === "e1");
    const e2 = await client.next((m) => m.type === "error" && m.id === "e2");
    const e3 = await client.next((m) => m.type === "error" && m.id === "e3");
    assert.equal((e1 as { code: string }).code, "token_expired");
    assert.equal((e2 as { code: string }).code, "token_forged");
    assert.equal((e3 as { code: string }).code, "subscribe_failed");
    // The refused ids are free again, and the socket still works.
    client.subscribe("e1", "good");
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "e1");
    client.close();
  });

  test("malformed messages get error replies; too many close the socket with WIRE.close.malformed", async () => {
    const client = await TestClient.open(port);
    client.send("{not json");
    client.send({ type: "dance", id: "x" });
    const first = await client.next((m) => m.type === "error");
    assert.equal((first as { code: string }).code, "malformed_message");
    const second = await client.next((m) => m.type === "error" && m.id === "x");
    assert.match((second as { message: string }).message, /unknown message type/);
    client.send([1, 2, 3]);
    const closed = await client.untilClosed();
    assert.equal(closed.code, WIRE.close.malformed);
    assert.match(closed.reason, /malformed/);
  });

  test("bad field types are malformed, not a crash", async () => {
    const client = await TestClient.open(port);
    client.send({ type: "subscribe", id: "f", token: "t", offset: -1, incarnation: "i" });
    const error = await client.next((m) => m.type === "error" && m.id === "f");
    assert.match((error as { message: string }).message, /offset/);
    client.send({ type: "subscribe", id: "g", token: "t", offset: 0, incarnation: "i" });
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "g");
    client.close();
  });

  test("more subscriptions than allowed close with WIRE.close.tooManySubscriptions and unsubscribe all", async () => {
    const client = await TestClient.open(port);
    for (const id of ["l1", "l2", "l3"]) client.subscribe(id);
    await client.next((m) => m.type === WIRE.msg.ack && m.id === "l3");
    client.subscribe("l4");
    const closed = await client.untilClosed();
    assert.equal(closed.code, WIRE.close.tooManySubscriptions);
    assert.match(closed.reason, /more than 3 subscriptions/);
    await hub.until(() => ["l1", "l2", "l3"].every((id) => hub.unsubscribed.includes(id)));
    assert.equal(
      hub.requests.some((r) => r.id === "l4"),
      false,
    );
  });

  test("an oversized message closes with WIRE.close.messageTooLarge", async () => {
    const client = await TestClient.open(port);
    client.subscribe("big", "x".repeat(2000));
    const closed = await client.untilClosed();
    assert.equal(closed.code, WIRE.close.messageTooLarge);
    assert.match(closed.reason, /exceeds the 1024-byte limit/);
  });

  test("closing the socket runs the unsubscribe of a subscription the hub was still registering", async () => {
    let open!: () => void;
    hub.gate = new Promise((resolve) => {
      open = resolve;
    });
    const client = await TestClient.open(port);
    client.subscribe("slow");
    await hub.until(() => hub.requests.some((r) => r.id === "slow"));
    client.close();
    await client.untilClosed();
    hub.gate = null;
    open();
    await hub.until(() => hub.unsubscribed.includes("slow"));
    assert.equal(hub.live.has("slow"), false);
  });

  test("upgrades on other paths are refused; the counter tracks open sockets", async () => {
    const stray = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
    const status = await new Promise<number>((resolve) => {
      stray.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      stray.on("error", () => resolve(-1));
    });
    assert.equal(status, 404);
    const before = transport.clients;
    const client = await TestClient.open(port);
    assert.equal(transport.clients, before + 1);
    client.close();
    await client.untilClosed();
  });
});

describe("WebSocket transport options", () => {
  test("a custom path, origin policy and close() that unsubscribes everyone", async () => {
    const { hub, server, port, transport } = await setup({ path: "/live", allowedOrigins: ["https://app.example"] });
    const refused = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { origin: "https://evil.example" } });
    const status = await new Promise<number>((resolve) => {
      refused.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      refused.on("error", () => resolve(-1));
    });
    assert.equal(status, 403);
    const client = await TestClient.open(port, "/live", { origin: "https://app.example" });
    client.subscribe("c1");
    await client.next((m) => m.type === WIRE.msg.ack);
    await transport.close();
    const closed = await client.untilClosed();
    assert.equal(closed.code, 1001);
    assert.deepEqual(hub.unsubscribed, ["c1"]);
    await stop(server);
  });

  test("same-origin is the default origin policy", async () => {
    const { server, port, transport } = await setup();
    const cross = new WebSocket(`ws://127.0.0.1:${port}${WIRE.socketPath}`, { headers: { origin: "http://other:1" } });
    const status = await new Promise<number>((resolve) => {
      cross.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      cross.on("error", () => resolve(-1));
    });
    assert.equal(status, 403);
    const same = await TestClient.open(port, WIRE.socketPath, { origin: `http://127.0.0.1:${port}` });
    same.close();
    await same.untilClosed();
    await transport.close();
    await stop(server);
  });

  test("a peer that stops answering pings is terminated and unsubscribed", async () => {
    const { hub, server, port, transport } = await setup({ pingIntervalMs: 20 });
    const client = await TestClient.open(port);
    client.subscribe("quiet");
    await client.next((m) => m.type === WIRE.msg.ack);
    // Stop answering pings: ws answers automatically, so cut the reply path by pausing the socket.
    (client.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
    await hub.until(() => hub.unsubscribed.includes("quiet"));
    assert.equal(transport.clients, 0);
    await transport.close();
    await stop(server);
  });
});
