// The browser client during outages, on a virtual clock: the backoff grows while connections keep failing (an
// event stream "opens" at once, so opening must not reset it), terminal close codes stop reconnecting, and a
// client that fell back to SSE returns to WebSocket once WebSocket works again.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConnectionManager, type Subscription } from "../../src/client/connection.ts";
import { WIRE } from "../../src/constants.ts";

/** Timers on a virtual clock, run in due order. */
function scheduler() {
  let now = 0;
  let next = 1;
  const timers = new Map<number, { due: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = next++;
      timers.set(id, { due: now + ms, fn });
      return id;
    },
    clearTimeout: (id: number) => {
      timers.delete(id);
    },
    /** Runs timers (and the microtasks they queue) until `until` on the virtual clock. */
    async runUntil(until: number) {
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        let first: [number, { due: number; fn: () => void }] | undefined;
        for (const entry of timers) if (!first || entry[1].due < first[1].due) first = entry;
        if (!first || first[1].due > until) break;
        timers.delete(first[0]);
        now = Math.max(now, first[1].due);
        first[1].fn();
      }
      now = until;
    },
  };
}

const subscription = (): Subscription => ({
  id: "p",
  token: "tok",
  incarnation: "inc",
  offset: 1,
  deliver() {},
});

describe("client during outages", () => {
  test("a 5 s outage of the event stream costs a handful of requests, not one per 100 ms", async () => {
    const clock = scheduler();
    let requests = 0;
    class DownEventSource {
      #listeners = new Map<string, (event: unknown) => void>();
      constructor() {
        requests++;
        // The server is down: the stream fails right after it was created.
        queueMicrotask(() => this.#listeners.get("error")?.({ type: "error" }));
      }
      addEventListener(type: string, fn: (event: unknown) => void) {
        this.#listeners.set(type, fn);
      }
      close() {}
    }
    class DownWebSocket {
      onclose: ((event: { code: number; reason: string }) => void) | null = null;
      readyState = 0;
      constructor() {
        requests++;
        queueMicrotask(() => this.onclose?.({ code: 1006, reason: "" }));
      }
      close() {}
      send() {}
    }
    const manager = new ConnectionManager({
      baseUrl: "http://app.example/",
      EventSource: DownEventSource as unknown as typeof EventSource,
      WebSocket: DownWebSocket as unknown as typeof WebSocket,
      now: clock.now,
      random: () => 1 - Number.EPSILON, // the longest delay full jitter allows: the ceiling
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      warn: () => {},
    });
    manager.add({ ...subscription(), transport: "sse" });
    await clock.runUntil(5_000);
    // Ceilings 100, 200, 400, … ms: about seven attempts fit in five seconds (each an SSE stream or a WebSocket
    // probe). Before the backoff grew only with failures after a proven-healthy connection, this was 73.
    assert.ok(requests <= 10, `${requests} requests in 5 s`);
    assert.ok(manager.state.attempt >= 5, `attempt ${manager.state.attempt}`);
    manager.close();
  });

  test("a socket closed with a terminal code (4001–4003) is not reopened; 4004 and 4005 reconnect", async () => {
    for (const [code, reconnects] of [
      [WIRE.close.tooManySubscriptions, false],
      [WIRE.close.messageTooLarge, false],
      [WIRE.close.malformed, false],
      [WIRE.close.slowConsumer, true],
      [WIRE.close.tooManySubscribes, true],
    ] as const) {
      const clock = scheduler();
      const sockets: ClosingSocket[] = [];
      class ClosingSocket {
        onopen: ((event: unknown) => void) | null = null;
        onclose: ((event: { code: number; reason: string }) => void) | null = null;
        onmessage: ((event: unknown) => void) | null = null;
        readyState = 0;
        constructor() {
          sockets.push(this);
          queueMicrotask(() => {
            this.readyState = 1;
            this.onopen?.({});
            this.readyState = 3;
            this.onclose?.({ code, reason: "closed by the server" });
          });
        }
        close() {}
        send() {}
      }
      const manager = new ConnectionManager({
        baseUrl: "http://app.example/",
        WebSocket: ClosingSocket as unknown as typeof WebSocket,
        now: clock.now,
        random: () => 0.5,
        setTimeout: clock.setTimeout,
        clearTimeout: clock.clearTimeout,
        warn: () => {},
      });
      manager.add(subscription());
      await clock.runUntil(10_000);
      if (reconnects) {
        assert.ok(sockets.length > 1, `${code}: reconnected`);
        // The socket opened every time, yet the backoff grew: it never stayed open long enough to be healthy.
        assert.ok(sockets.length <= 12, `${code}: ${sockets.length} sockets in 10 s`);
      } else {
        assert.equal(sockets.length, 1, `${code}: terminal`);
        assert.equal(manager.state.status, "closed");
        assert.equal(manager.state.closedBy, code);
      }
      manager.close();
    }
  });

  test("after an outage on SSE, the client returns to WebSocket when WebSocket works again", async () => {
    const clock = scheduler();
    let webSocketUp = false;
    const opened: string[] = [];
    class FlakySocket {
      onopen: ((event: unknown) => void) | null = null;
      onclose: ((event: { code: number; reason: string }) => void) | null = null;
      onmessage: ((event: unknown) => void) | null = null;
      readyState = 0;
      constructor() {
        const up = webSocketUp;
        queueMicrotask(() => {
          if (up) {
            this.readyState = 1;
            opened.push("websocket");
            this.onopen?.({});
          } else {
            this.onclose?.({ code: 1006, reason: "" });
          }
        });
      }
      close() {}
      send() {}
    }
    const streams: { fail: () => void }[] = [];
    class Stream {
      #error: ((event: unknown) => void) | null = null;
      constructor() {
        opened.push("sse");
        streams.push({ fail: () => this.#error?.({ type: "error" }) });
      }
      addEventListener(type: string, fn: (event: unknown) => void) {
        if (type === "error") this.#error = fn;
      }
      close() {}
    }
    const manager = new ConnectionManager({
      baseUrl: "http://app.example/",
      WebSocket: FlakySocket as unknown as typeof WebSocket,
      EventSource: Stream as unknown as typeof EventSource,
      now: clock.now,
      random: () => 0.5,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      warn: () => {},
    });
    manager.add(subscription());
    await clock.runUntil(3_000);
    assert.equal(manager.state.transport, "sse", "fell back while WebSocket failed");
    assert.equal(manager.state.status, "open");
    // The server restarts with WebSocket working: the event stream breaks, the next attempt is a WebSocket.
    webSocketUp = true;
    streams.at(-1)?.fail();
    await clock.runUntil(6_000);
    assert.equal(manager.state.transport, "websocket");
    assert.equal(manager.state.status, "open");
    assert.equal(opened.at(-1), "websocket");
    manager.close();
  });
});
