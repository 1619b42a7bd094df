// One client cannot exhaust the server: a client that stops reading is cut off once its queue passes the bound
// (WebSocket and SSE), and a connection that subscribes in a loop is closed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WIRE } from "../../src/constants.ts";
import { handleEventStream } from "../../src/deliver/sse.ts";
import { attachWebSocket } from "../../src/deliver/websocket.ts";
import { FakeHub } from "./fake-hub.ts";
import { listen, stop, TestClient } from "./support.ts";

const BOUND = 256 * 1024;
const PATCH = "x".repeat(64 * 1024);

test("WebSocket: a client that stops reading is closed as a slow consumer, and the hub learns it was not delivered", async () => {
  const hub = new FakeHub();
  const { server, port } = await listen();
  const transport = attachWebSocket(server, hub, { maxBufferedBytes: BOUND });
  try {
    const client = await TestClient.open(port);
    client.subscribe("a");
    await client.next((m) => m.type === WIRE.msg.ack);
    (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const sink = hub.live.get("a")?.sink;
    assert.ok(sink);
    let accepted = 0;
    let refused = false;
    // Without a bound this loop would queue 1 GB in the server's memory.
    for (let i = 0; i < 16_000 && !refused; i++) {
      if (sink.send({ type: "patch", id: "a", offset: i + 1, html: PATCH })) accepted += PATCH.length;
      else refused = true;
      if (i % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(refused, "the server stopped queueing for the slow client");
    // What was accepted is the bound plus what the kernel's socket buffers took, far below the attempted 1 GB.
    assert.ok(accepted < 64 * 1024 * 1024, `${accepted} bytes accepted`);
    await hub.until(() => hub.unsubscribed.includes("a"));
    assert.equal(sink.send({ type: "patch", id: "a", offset: 0, html: "late" }), false);
    (client.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await client.untilClosed();
    assert.ok(closed.code === WIRE.close.slowConsumer || closed.code === 1006, `close code ${closed.code}`);
  } finally {
    await transport.close();
    await stop(server);
  }
});

test("WebSocket: subscribing faster than the allowed rate closes the connection with tooManySubscribes", async () => {
  const hub = new FakeHub();
  const { server, port } = await listen();
  const transport = attachWebSocket(server, hub, { subscribeBurst: 5, subscribesPerSecond: 1 });
  try {
    const client = await TestClient.open(port);
    for (let i = 0; i < 20 && !client.closed; i++) {
      client.subscribe(`s${i}`, "tok", 0);
      client.send({ type: WIRE.msg.unsubscribe, id: `s${i}` });
    }
    const closed = await client.untilClosed();
    assert.equal(closed.code, WIRE.close.tooManySubscribes);
    assert.ok(hub.requests.length <= 5, `${hub.requests.length} subscribes reached the hub`);
  } finally {
    await transport.close();
    await stop(server);
  }
});

test("SSE: a stream whose reader stops reading is ended once its queue passes the bound", async () => {
  const hub = new FakeHub();
  const request = new Request("http://localhost/upkeep/events?id=a&token=tok&offset=0&incarnation=inc");
  const response = handleEventStream(request, hub, { maxBufferedBytes: BOUND });
  await hub.until(() => hub.live.has("a"));
  const sink = hub.live.get("a")?.sink;
  assert.ok(sink);
  let accepted = 0;
  let refused = false;
  for (let i = 0; i < 16_000 && !refused; i++) {
    if (sink.send({ type: "patch", id: "a", offset: i + 1, html: PATCH })) accepted += PATCH.length;
    else refused = true;
  }
  assert.ok(refused, "the stream stopped queueing");
  assert.ok(accepted <= BOUND + 2 * PATCH.length, `${accepted} bytes queued`);
  await hub.until(() => hub.unsubscribed.includes("a"));
  await response.body?.cancel();
});
