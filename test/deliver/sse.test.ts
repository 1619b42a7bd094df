import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WIRE } from "../../src/constants.ts";
import { formatEvent, handleEventStream } from "../../src/deliver/sse.ts";
import { FakeHub } from "./fake-hub.ts";

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}

/** Reads an event stream incrementally, parsing events as the browser does (comments skipped). */
class StreamReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  #buffer = "";
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();

  constructor(response: Response) {
    this.#reader = response.body!.getReader();
  }

  async next(predicate: (e: SseEvent) => boolean): Promise<SseEvent> {
    for (;;) {
      const found = this.events.find(predicate);
      if (found) return found;
      if (this.ended) throw new Error("stream ended before the event");
      await this.#pull();
    }
  }

  async untilComment(text: string): Promise<void> {
    while (!this.comments.includes(text)) {
      if (this.ended) throw new Error(`stream ended before the comment ${text}`);
      await this.#pull();
    }
  }

  async untilEnded(): Promise<void> {
    while (!this.ended) await this.#pull();
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }

  async #pull(): Promise<void> {
    const { done, value } = await this.#reader.read();
    if (done) {
      this.ended = true;
      return;
    }
    this.#buffer += this.#decoder.decode(value, { stream: true });
    let end = this.#buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      const event: SseEvent = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) this.comments.push(line.slice(1).trim());
        else {
          const colon = line.indexOf(":");
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, "");
          if (field === "id" || field === "event" || field === "data") event[field] = value;
        }
      }
      if (event.data !== undefined) this.events.push(event);
      end = this.#buffer.indexOf("\n\n");
    }
  }
}

function open(query: string, init?: RequestInit) {
  return new Request(`http://app.test${WIRE.eventsPath}?${query}`, init);
}

describe("SSE transport", () => {
  test("subscribes with the query, forwards patches with id = offset, unsubscribes on abort", async () => {
    const hub = new FakeHub();
    const abort = new AbortController();
    const response = handleEventStream(
      open("token=tok&offset=5&incarnation=inc&id=page1", { headers: { cookie: "s=1" }, signal: abort.signal }),
      hub,
    );
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /^text\/event-stream/);
    const stream = new StreamReader(response);
    const ack = await stream.next((e) => e.event === "subscribed");
    assert.deepEqual(JSON.parse(ack.data!), { type: "subscribed", id: "page1", offset: 5 });
    assert.equal(ack.id, undefined);
    const request = hub.requests[0]!;
    assert.deepEqual([request.id, request.token, request.offset, request.incarnation], ["page1", "tok", 5, "inc"]);
    assert.equal(request.headers.cookie, "s=1");
    hub.send("page1", {
      type: "patch",
      id: "page1",
      offset: 6,
      html: '<turbo-stream action="remove" target="x"></turbo-stream>\n<b>two lines</b>',
    });
    const patch = await stream.next((e) => e.event === "patch");
    assert.equal(patch.id, "6");
    assert.equal(JSON.parse(patch.data!).html.includes("\n"), true);
    abort.abort();
    await hub.until(() => hub.unsubscribed.includes("page1"));
    await stream.untilEnded();
  });

  test("Last-Event-ID overrides the offset query parameter on resume", async () => {
    const hub = new FakeHub();
    const response = handleEventStream(
      open("token=tok&offset=5&incarnation=inc&id=r", { headers: { "Last-Event-ID": "17" } }),
      hub,
    );
    const stream = new StreamReader(response);
    await stream.next((e) => e.event === "subscribed");
    assert.equal(hub.requests[0]!.offset, 17);
    await stream.cancel();
    await hub.until(() => hub.unsubscribed.includes("r"));
  });

  test("a refused token is an error event, then the stream ends", async () => {
    const hub = new FakeHub();
    hub.refuse.set("old", "expired");
    const stream = new StreamReader(handleEventStream(open("token=old&offset=1&incarnation=inc&id=x"), hub));
    const error = await stream.next((e) => e.event === "error");
    assert.equal(JSON.parse(error.data!).code, "token_expired");
    assert.equal(JSON.parse(error.data!).id, "x");
    await stream.untilEnded();
  });

  test("a reload ends the stream and the subscription", async () => {
    const hub = new FakeHub();
    const stream = new StreamReader(handleEventStream(open("token=t&offset=1&incarnation=inc&id=y"), hub));
    await stream.next((e) => e.event === "subscribed");
    hub.send("y", { type: "reload", id: "y", reason: "offset_too_old" });
    const reload = await stream.next((e) => e.event === "reload");
    assert.equal(JSON.parse(reload.data!).reason, "offset_too_old");
    await stream.untilEnded();
    assert.deepEqual(hub.unsubscribed, ["y"]);
  });

  test("missing or malformed parameters are explained in an error event, without calling the hub", async () => {
    const hub = new FakeHub();
    for (const [query, pattern] of [
      ["offset=1&incarnation=i", /token/],
      ["token=t&offset=1", /incarnation/],
      ["token=t&offset=-3&incarnation=i", /offset/],
      ["token=t&offset=abc&incarnation=i", /offset/],
    ] as const) {
      const stream = new StreamReader(handleEventStream(open(query), hub));
      const error = await stream.next((e) => e.event === "error");
      assert.match(JSON.parse(error.data!).message, pattern);
      await stream.untilEnded();
    }
    const garbageId = new StreamReader(
      handleEventStream(open("token=t&offset=1&incarnation=i", { headers: { "last-event-id": "x1" } }), hub),
    );
    assert.match(JSON.parse((await garbageId.next((e) => e.event === "error")).data!).message, /Last-Event-ID/);
    assert.equal(hub.requests.length, 0);
    assert.equal(handleEventStream(open("token=t", { method: "POST" }), hub).status, 405);
  });

  test("heartbeat comments keep the stream alive", async () => {
    const hub = new FakeHub();
    const stream = new StreamReader(
      handleEventStream(open("token=t&offset=0&incarnation=i&id=h"), hub, { heartbeatMs: 5 }),
    );
    await stream.next((e) => e.event === "subscribed");
    await stream.untilComment("heartbeat");
    await stream.cancel();
    await hub.until(() => hub.unsubscribed.includes("h"));
  });

  test("a client gone before the hub registered is unsubscribed once registration completes", async () => {
    const hub = new FakeHub();
    let release!: () => void;
    hub.gate = new Promise((resolve) => {
      release = resolve;
    });
    const abort = new AbortController();
    const stream = new StreamReader(
      handleEventStream(open("token=t&offset=0&incarnation=i&id=g", { signal: abort.signal }), hub),
    );
    await hub.until(() => hub.requests.length === 1);
    abort.abort();
    await stream.untilEnded();
    release();
    await hub.until(() => hub.unsubscribed.includes("g"));
    assert.equal(hub.live.size, 0);
  });

  test("formatEvent puts ids on patches only", () => {
    assert.equal(
      formatEvent({ type: "patch", id: "a", offset: 3, html: "x" }).startsWith("id: 3\nevent: patch\n"),
      true,
    );
    assert.equal(formatEvent({ type: "reload", id: "a", reason: "not_live" }).startsWith("event: reload\n"), true);
  });
});
