// The client's connection states as a transition table, driven by an injected clock and random source.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BACKOFF_DEFAULTS, TRANSPORT_TUNING } from "../constants.ts";
import { BACKOFF, backoffCeiling, backoffDelay } from "./backoff.ts";
import { CLIENT_TUNING } from "./constants.ts";
import { type ConnectionEvent, type ConnectionState, IDLE, transition } from "./state.ts";

/** A manual clock: tests advance it; nothing reads the real time. */
function clock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const half = () => 0.5;

function state(changes: Partial<ConnectionState>): ConnectionState {
  return Object.freeze({ ...IDLE, ...changes });
}

describe("connection state transitions", () => {
  const t = 5_000;
  // [name, from, event, expected changes (null: the event does not apply and the same state comes back)]
  const table: Array<[string, ConnectionState, ConnectionEvent, Partial<ConnectionState> | null]> = [
    [
      "idle + connect → connecting (new epoch)",
      IDLE,
      { type: "connect", now: t },
      { status: "connecting", epoch: 1, since: t },
    ],
    [
      "idle + connect(sse) → connecting over SSE",
      IDLE,
      { type: "connect", now: t, transport: "sse" },
      { status: "connecting", epoch: 1, transport: "sse", since: t },
    ],
    [
      "closed + connect → connecting (epoch keeps growing)",
      state({ status: "closed", epoch: 4 }),
      { type: "connect", now: t },
      { status: "connecting", epoch: 5, since: t },
    ],
    ["open + connect → unchanged", state({ status: "open", epoch: 2 }), { type: "connect", now: t }, null],
    [
      "connecting + opened(current) → open; WebSocket failures reset, the backoff only once healthy",
      state({ status: "connecting", epoch: 2, attempt: 3, webSocketFailures: 2 }),
      { type: "opened", epoch: 2, now: t },
      { status: "open", attempt: 3, webSocketFailures: 0, since: t },
    ],
    [
      "open + healthy(current) → the backoff starts over",
      state({ status: "open", epoch: 2, attempt: 3 }),
      { type: "healthy", epoch: 2, now: t },
      { attempt: 0 },
    ],
    [
      "open + healthy(stale epoch) → unchanged",
      state({ status: "open", epoch: 2, attempt: 3 }),
      { type: "healthy", epoch: 1, now: t },
      null,
    ],
    [
      "connecting over SSE + opened → open, the WebSocket failure count is kept",
      state({ status: "connecting", epoch: 2, attempt: 3, transport: "sse", webSocketFailures: 3 }),
      { type: "opened", epoch: 2, now: t },
      { status: "open", since: t },
    ],
    [
      "open + failed with 4001 (too many subscriptions) → closed for good, no retry",
      state({ status: "open", epoch: 2, attempt: 1 }),
      { type: "failed", epoch: 2, now: t, code: 4001 },
      { status: "closed", attempt: 0, since: t, retryAt: null, closedBy: 4001 },
    ],
    [
      "open + failed with 4003 (malformed) → closed for good",
      state({ status: "open", epoch: 2 }),
      { type: "failed", epoch: 2, now: t, code: 4003 },
      { status: "closed", since: t, retryAt: null, closedBy: 4003 },
    ],
    [
      "open + failed with 4004 (slow consumer) → backoff, it reconnects",
      state({ status: "open", epoch: 2 }),
      { type: "failed", epoch: 2, now: t, code: 4004 },
      { status: "backoff", attempt: 1, since: t, retryAt: t + 50 },
    ],
    [
      "open over SSE + failed → backoff, and the next attempt probes WebSocket once",
      state({ status: "open", epoch: 2, attempt: 2, transport: "sse", webSocketFailures: 3 }),
      { type: "failed", epoch: 2, now: t },
      {
        status: "backoff",
        attempt: 3,
        transport: "websocket",
        webSocketFailures: TRANSPORT_TUNING.clientWebSocketFailuresBeforeSse - 1,
        since: t,
        retryAt: t + 200,
      },
    ],
    [
      "connecting + opened(stale epoch) → unchanged",
      state({ status: "connecting", epoch: 2 }),
      { type: "opened", epoch: 1, now: t },
      null,
    ],
    [
      "backoff + opened → unchanged",
      state({ status: "backoff", epoch: 2, retryAt: t + 10 }),
      { type: "opened", epoch: 2, now: t },
      null,
    ],
    [
      "open + failed(current) → backoff, first delay within the initial ceiling",
      state({ status: "open", epoch: 2 }),
      { type: "failed", epoch: 2, now: t },
      { status: "backoff", attempt: 1, since: t, retryAt: t + 50 },
    ],
    [
      "open + failed(stale epoch) → unchanged (epoch guard)",
      state({ status: "open", epoch: 3 }),
      { type: "failed", epoch: 2, now: t },
      null,
    ],
    [
      "connecting + failed → backoff, delay grows with attempts, never-opened WebSocket failures counted",
      state({ status: "connecting", epoch: 3, attempt: 2, webSocketFailures: 1 }),
      { type: "failed", epoch: 3, now: t },
      { status: "backoff", attempt: 3, webSocketFailures: 2, since: t, retryAt: t + 200 },
    ],
    [
      "connecting + failed at the threshold → backoff and fall back to SSE",
      state({
        status: "connecting",
        epoch: 3,
        attempt: 2,
        webSocketFailures: TRANSPORT_TUNING.clientWebSocketFailuresBeforeSse - 1,
      }),
      { type: "failed", epoch: 3, now: t },
      {
        status: "backoff",
        attempt: 3,
        transport: "sse",
        webSocketFailures: TRANSPORT_TUNING.clientWebSocketFailuresBeforeSse,
        since: t,
        retryAt: t + 200,
      },
    ],
    [
      "open WebSocket + failed → failure counter reset (it worked once)",
      state({ status: "open", epoch: 3, webSocketFailures: 0 }),
      { type: "failed", epoch: 3, now: t },
      { status: "backoff", attempt: 1, webSocketFailures: 0, since: t, retryAt: t + 50 },
    ],
    [
      "backoff + retry before retryAt → unchanged",
      state({ status: "backoff", epoch: 3, attempt: 1, retryAt: t + 10 }),
      { type: "retry", now: t + 9 },
      null,
    ],
    [
      "backoff + retry at retryAt → connecting with a new epoch",
      state({ status: "backoff", epoch: 3, attempt: 1, retryAt: t + 10 }),
      { type: "retry", now: t + 10 },
      { status: "connecting", epoch: 4, since: t + 10, retryAt: null },
    ],
    [
      "backoff + wake → connecting at once",
      state({ status: "backoff", epoch: 3, attempt: 4, retryAt: t + 9_000 }),
      { type: "wake", now: t },
      { status: "connecting", epoch: 4, since: t, retryAt: null },
    ],
    ["open + wake → unchanged", state({ status: "open", epoch: 3 }), { type: "wake", now: t }, null],
    ["open + retry → unchanged", state({ status: "open", epoch: 3 }), { type: "retry", now: t }, null],
    [
      "open + stop → closed",
      state({ status: "open", epoch: 3, attempt: 0 }),
      { type: "stop", now: t },
      { status: "closed", since: t, retryAt: null },
    ],
    [
      "backoff + stop → closed",
      state({ status: "backoff", epoch: 3, attempt: 2, retryAt: t + 5 }),
      { type: "stop", now: t },
      { status: "closed", attempt: 0, since: t, retryAt: null },
    ],
    ["idle + stop → unchanged", IDLE, { type: "stop", now: t }, null],
    ["closed + failed → unchanged", state({ status: "closed", epoch: 3 }), { type: "failed", epoch: 3, now: t }, null],
  ];

  for (const [name, from, event, changes] of table) {
    test(name, () => {
      const to = transition(from, event, { random: half });
      if (changes === null) {
        assert.equal(to, from);
      } else {
        assert.deepEqual(to, { ...from, ...changes });
        assert.ok(Object.isFrozen(to));
        assert.notEqual(to, from);
      }
    });
  }

  test("a run through the lifecycle with an injected clock", () => {
    const c = clock();
    let s = IDLE;
    const step = (event: ConnectionEvent) => {
      s = transition(s, event, { random: () => 0.999 });
      return s;
    };
    step({ type: "connect", now: c.now() });
    step({ type: "opened", epoch: 1, now: c.advance(5) });
    assert.equal(s.status, "open");
    step({ type: "failed", epoch: 1, now: c.advance(1_000) });
    assert.equal(s.status, "backoff");
    const retryAt = s.retryAt!;
    assert.ok(retryAt - c.now() < BACKOFF.initialDelayMs);
    // The old socket's late close event is ignored once a new attempt runs.
    step({ type: "retry", now: c.advance(retryAt - c.now()) });
    assert.equal(s.epoch, 2);
    assert.equal(transition(s, { type: "failed", epoch: 1, now: c.now() }), s);
    assert.equal(transition(s, { type: "opened", epoch: 1, now: c.now() }), s);
    step({ type: "opened", epoch: 2, now: c.advance(1) });
    assert.equal(s.status, "open");
    step({ type: "stop", now: c.advance(1) });
    assert.equal(s.status, "closed");
  });
});

describe("backoff", () => {
  test("defaults match the server's BACKOFF_DEFAULTS, client tuning matches TRANSPORT_TUNING", () => {
    assert.deepEqual({ ...BACKOFF }, { ...BACKOFF_DEFAULTS });
    assert.equal(CLIENT_TUNING.lingerMs, TRANSPORT_TUNING.clientLingerMs);
    assert.equal(CLIENT_TUNING.webSocketFailuresBeforeSse, TRANSPORT_TUNING.clientWebSocketFailuresBeforeSse);
    assert.equal(CLIENT_TUNING.healthyAfterMs, TRANSPORT_TUNING.clientHealthyAfterMs);
  });

  test("ceilings grow exponentially up to the maximum", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 10, 50, 1e6].map((a) => backoffCeiling(a)),
      [100, 200, 400, 800, 10_000, 10_000, 10_000],
    );
  });

  test("full jitter: every delay lies in [0, ceiling) and the whole range is used", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = backoffCeiling(attempt);
      assert.equal(
        backoffDelay(attempt, BACKOFF, () => 0),
        0,
      );
      assert.ok(backoffDelay(attempt, BACKOFF, () => 0.999999) < ceiling);
      assert.ok(backoffDelay(attempt, BACKOFF, () => 0.999999) >= ceiling * 0.99);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt);
        assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d}`);
      }
    }
    // Out-of-range random sources are clamped.
    assert.ok(backoffDelay(3, BACKOFF, () => 7) <= backoffCeiling(3));
    assert.equal(
      backoffDelay(3, BACKOFF, () => -1),
      0,
    );
  });
});
