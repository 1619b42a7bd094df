// The browser client's connection manager, run in Node against the real WebSocket transport (Node's built-in
// WebSocket is the browser API): multiplexing, resume with the last applied offset, linger across navigation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConnectionManager, type Subscription } from "../../src/client/connection.ts";
import type { ConnectionState } from "../../src/client/state.ts";
import { attachWebSocket } from "../../src/deliver/websocket.ts";
import { FakeHub } from "./fake-hub.ts";
import { listen, stop } from "./support.ts";

const FAST = { initialDelayMs: 5, maxDelayMs: 20, multiplier: 2 };
const LINGER = 54_321; // recognisable: linger timers are run by hand, backoff timers by the real clock

function harness(port: number) {
  const lingerTasks: Array<() => void> = [];
  const states: ConnectionState[] = [];
  const waiters: Array<() => void> = [];
  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };
  const manager = new ConnectionManager({
    baseUrl: `http://127.0.0.1:${port}/boards/1`,
    backoff: FAST,
    lingerMs: LINGER,
    setTimeout: (fn, ms) => {
      if (ms === LINGER) {
        lingerTasks.push(fn);
        return -1;
      }
      return setTimeout(fn, ms);
    },
    clearTimeout: (handle) => {
      if (handle !== -1) clearTimeout(handle);
    },
    onState: (s) => {
      states.push(s);
      notify();
    },
    onMessage: notify,
    warn: () => {},
  });
  const until = async (predicate: () => boolean) => {
    while (!predicate()) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { manager, lingerTasks, states, until };
}

/** Waits (without asserting on time) until a condition observed from outside holds. */
async function eventually(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 5));
}

function subscription(id: string, offset: number, received: unknown[]): Subscription {
  const sub: Subscription = {
    id,
    token: `tok-${id}`,
    incarnation: "inc",
    offset,
    deliver(message: any) {
      received.push(message);
      // What the element does after applying a patch.
      if (message.type === "patch") sub.offset = message.offset;
    },
  };
  return sub;
}

describe("client connection manager over a real WebSocket", () => {
  test("multiplexes, resumes each subscription at its last applied offset after the server restarts", async () => {
    const hub = new FakeHub();
    const { server, port } = await listen();
    let transport = attachWebSocket(server, hub);
    const { manager, states, until } = harness(port);
    const a: unknown[] = [];
    const b: unknown[] = [];
    manager.add(subscription("a", 10, a));
    manager.add(subscription("b", 20, b));
    await hub.until(() => hub.live.has("a") && hub.live.has("b"));
    assert.equal(transport.clients, 1, "one socket for both subscriptions");
    assert.deepEqual(
      hub.requests.map((r) => [r.id, r.offset]),
      [
        ["a", 10],
        ["b", 20],
      ],
    );
    hub.send("a", { type: "patch", id: "a", offset: 11, html: "<turbo-stream></turbo-stream>" });
    await until(() => a.some((m: any) => m.type === "patch"));

    // Server restart: every socket closed, a new transport on the same port.
    await transport.close();
    transport = attachWebSocket(server, hub);
    await until(() => states.some((s) => s.status === "backoff"));
    await hub.until(() => hub.requests.length === 4 && hub.live.has("a") && hub.live.has("b"));
    assert.deepEqual(
      hub.requests
        .slice(2)
        .map((r) => [r.id, r.offset])
        .sort(),
      [
        ["a", 11],
        ["b", 20],
      ],
      "resubscribed with the last applied offsets",
    );
    assert.equal(manager.state.status, "open");
    assert.ok(manager.state.epoch >= 2);
    manager.close();
    await hub.until(() => hub.live.size === 0);
    await transport.close();
    await stop(server);
  });

  test("a navigation's new subscription reuses the socket; it closes only after the linger with none left", async () => {
    const hub = new FakeHub();
    const { server, port } = await listen();
    const transport = attachWebSocket(server, hub);
    const { manager, lingerTasks, until } = harness(port);
    manager.add(subscription("old-page", 1, []));
    await hub.until(() => hub.live.has("old-page"));
    // Turbo Drive swaps the body: the old element leaves, then the new one arrives.
    manager.remove("old-page");
    assert.equal(lingerTasks.length, 1);
    manager.add(subscription("new-page", 2, []));
    await hub.until(() => hub.live.has("new-page") && hub.unsubscribed.includes("old-page"));
    lingerTasks.shift()!(); // the linger timer fires (cancelled in the real manager; harmless if it runs)
    assert.equal(manager.state.status, "open");
    assert.equal(transport.clients, 1);
    assert.equal(manager.state.epoch, 1, "the same connection throughout");
    // Leaving the last page: the socket stays until the linger ends.
    manager.remove("new-page");
    await hub.until(() => hub.unsubscribed.includes("new-page"));
    assert.equal(manager.state.status, "open");
    lingerTasks.shift()!();
    await until(() => manager.state.status === "closed");
    await eventually(() => transport.clients === 0);
    await transport.close();
    await stop(server);
  });

  test("drop() reconnects with a new epoch and subscribes again", async () => {
    const hub = new FakeHub();
    const { server, port } = await listen();
    const transport = attachWebSocket(server, hub);
    const { manager, until } = harness(port);
    const got: unknown[] = [];
    manager.add(subscription("x", 0, got));
    await hub.until(() => hub.live.has("x"));
    await until(() => got.length === 1); // the ack
    manager.drop();
    assert.equal(manager.state.status, "backoff");
    await until(() => manager.state.status === "open");
    assert.equal(manager.state.epoch, 2);
    await hub.until(() => hub.requests.filter((r) => r.id === "x").length === 2);
    manager.close();
    await transport.close();
    await stop(server);
  });
});

/** A scripted WebSocket: the test decides when it opens, what it delivers and when it closes. */
class ScriptedSocket {
  static all: ScriptedSocket[] = [];
  readyState = 0;
  sent: any[] = [];
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
    ScriptedSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
}

describe("client connection manager epoch guard", () => {
  test("a superseded socket can neither deliver messages nor fail its successor", () => {
    ScriptedSocket.all = [];
    const tasks: Array<() => void> = [];
    let now = 0;
    const manager = new ConnectionManager({
      baseUrl: "https://app.example/boards/1",
      WebSocket: ScriptedSocket as unknown as typeof WebSocket,
      now: () => now,
      random: () => 0,
      setTimeout: (fn) => tasks.push(fn),
      clearTimeout: () => {},
      warn: () => {},
    });
    const got: any[] = [];
    manager.add(subscription("p", 3, got));
    const first = ScriptedSocket.all[0]!;
    assert.equal(first.url, "wss://app.example/upkeep/socket");
    // Keep the handlers as a browser event already queued on the old socket would.
    first.readyState = 1;
    first.onopen!({});
    assert.deepEqual(first.sent, [{ type: "subscribe", id: "p", token: "tok-p", offset: 3, incarnation: "inc" }]);
    const staleMessage = first.onmessage!;
    const staleClose = first.onclose!;
    manager.drop();
    assert.equal(first.readyState, 3, "the manager closed the superseded socket");
    now = 1;
    tasks.pop()!(); // the backoff timer, the latest (random 0 → retry now); the first open's health timer is stale
    const second = ScriptedSocket.all[1]!;
    second.readyState = 1;
    second.onopen!({});
    assert.equal(manager.state.status, "open");
    staleMessage({ data: JSON.stringify({ type: "patch", id: "p", offset: 4, html: "old" }) });
    staleClose({ code: 1006, reason: "" });
    assert.equal(got.length, 0, "nothing from the superseded socket");
    assert.equal(manager.state.status, "open", "its late close did not tear down the new socket");
    second.onmessage!({ data: JSON.stringify({ type: "patch", id: "p", offset: 4, html: "new" }) });
    assert.deepEqual(
      got.map((m) => m.html),
      ["new"],
    );
    // A message for an id that is no longer subscribed is dropped.
    second.onmessage!({ data: JSON.stringify({ type: "patch", id: "gone", offset: 5, html: "x" }) });
    second.onmessage!({ data: "not json" });
    assert.equal(got.length, 1);
    manager.close();
  });

  test("repeated WebSocket failures fall back to SSE", () => {
    ScriptedSocket.all = [];
    const streams: string[] = [];
    class FakeEventSource {
      constructor(url: string) {
        streams.push(url);
      }
      addEventListener() {}
      close() {}
    }
    const tasks: Array<() => void> = [];
    const manager = new ConnectionManager({
      baseUrl: "http://app.example/",
      WebSocket: ScriptedSocket as unknown as typeof WebSocket,
      EventSource: FakeEventSource as unknown as typeof EventSource,
      random: () => 0,
      setTimeout: (fn) => tasks.push(fn),
      clearTimeout: () => {},
      webSocketFailuresBeforeSse: 2,
      warn: () => {},
    });
    manager.add(subscription("s", 9, []));
    for (let i = 0; i < 2; i++) {
      ScriptedSocket.all[i]!.onclose!({ code: 1006, reason: "" });
      tasks.shift()!();
    }
    assert.equal(manager.state.transport, "sse");
    assert.equal(ScriptedSocket.all.length, 2, "no third WebSocket");
    return new Promise<void>((resolve) =>
      queueMicrotask(() => {
        assert.equal(manager.state.status, "open");
        const url = new URL(streams[0]!);
        assert.equal(url.pathname, "/upkeep/events");
        assert.deepEqual(Object.fromEntries(url.searchParams), {
          id: "s",
          token: "tok-s",
          offset: "9",
          incarnation: "inc",
        });
        manager.close();
        resolve();
      }),
    );
  });
});
