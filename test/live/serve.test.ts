// Over real HTTP and a real WebSocket: upkeep.serve, the live marker, subscription, header inputs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { WIRE } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import type { Served } from "../../src/upkeep.ts";
import { type Fixture, fixtureDatabase, start } from "./fixture.ts";

describe("served over HTTP and WebSocket (sqlite)", () => {
  let fixture: Fixture;
  let ctx: Awaited<ReturnType<typeof start>>;
  let served: Served;

  before(async () => {
    fixture = (await fixtureDatabase("sqlite"))!;
    await fixture.exec("insert into items (list, title, pos) values ('a', 'one', 1)");
    ctx = await start(fixture.database);
    served = await ctx.upkeep.serve(ctx.app, { port: 0 });
  });
  after(async () => {
    await ctx.upkeep.close();
  });

  async function get(path: string, headers: Record<string, string> = {}) {
    const response = await fetch(served.url + path, { headers: { accept: "text/html", ...headers } });
    const html = await response.text();
    const attr = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(html)?.[1];
    return {
      response,
      html,
      token: attr(WIRE.tokenAttr)!,
      offset: Number(attr(WIRE.offsetAttr)),
      incarnation: attr(WIRE.incarnationAttr)!,
    };
  }

  function connect(headers: Record<string, string> = {}) {
    const socket = new WebSocket(served.url.replace("http", "ws") + WIRE.socketPath, { headers });
    const messages: ServerMessage[] = [];
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    return { socket, messages, open: new Promise((resolve) => socket.once("open", resolve)) };
  }

  const until = async (check: () => boolean, what: string) => {
    for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(check(), `timed out waiting for ${what}`);
  };

  test("a live page carries the marker and the client script, and serves the client and Turbo", async () => {
    const page = await get("/lists/a");
    assert.equal(page.response.headers.get("cache-control"), "no-store");
    assert.match(page.html, new RegExp(`<${WIRE.streamSourceTag} id="upkeep_[^"]+" data-turbo-permanent`));
    assert.match(page.html, new RegExp(`src="${WIRE.clientPath}index.js"`));
    const client = await fetch(`${served.url}${WIRE.clientPath}index.js`);
    assert.equal(client.status, 200);
    assert.match(client.headers.get("content-type") ?? "", /javascript/);
    assert.equal((await fetch(`${served.url}${WIRE.clientPath}..%2Fupkeep.ts`)).status, 404);
    const turbo = await fetch(served.url + WIRE.turboScriptPath);
    assert.match(await turbo.text(), /connectStreamSource/);
  });

  test("a header the render read partitions the page; each viewer gets bytes rendered with its own header", async () => {
    const fr = await get("/lang", { "accept-language": "fr-FR" });
    const en = await get("/lang", { "accept-language": "en-GB" });
    assert.match(fr.html, /articles/);
    assert.match(en.html, /items/);
    const a = connect({ "accept-language": "fr-FR" });
    const b = connect({ "accept-language": "en-GB" });
    await Promise.all([a.open, b.open]);
    a.socket.send(
      JSON.stringify({ type: "subscribe", id: "1", token: fr.token, offset: fr.offset, incarnation: fr.incarnation }),
    );
    b.socket.send(
      JSON.stringify({ type: "subscribe", id: "1", token: en.token, offset: en.offset, incarnation: en.incarnation }),
    );
    await until(() => a.messages.length > 0 && b.messages.length > 0, "subscription acks");
    assert.equal(a.messages[0]!.type, "subscribed");
    await fixture.exec("insert into items (list, title, pos) values ('a', 'two', 2)");
    await ctx.upkeep.settle();
    await until(
      () => a.messages.some((m) => m.type === "patch") && b.messages.some((m) => m.type === "patch"),
      "patches",
    );
    const patchOf = (ms: ServerMessage[]) =>
      ms.find((m) => m.type === "patch") as Extract<ServerMessage, { type: "patch" }>;
    assert.match(patchOf(a.messages).html, /2 articles/);
    assert.match(patchOf(b.messages).html, /2 items/);
    assert.ok(patchOf(a.messages).offset > fr.offset);
    // A token rendered for the French viewer does not subscribe an English one.
    const c = connect({ "accept-language": "en-GB" });
    await c.open;
    c.socket.send(
      JSON.stringify({ type: "subscribe", id: "9", token: fr.token, offset: fr.offset, incarnation: fr.incarnation }),
    );
    await until(() => c.messages.length > 0, "refusal");
    assert.deepEqual(
      { type: c.messages[0]!.type, code: (c.messages[0] as { code?: string }).code },
      { type: "error", code: "token_identity_mismatch" },
    );
    for (const x of [a, b, c]) x.socket.close();
  });

  test("SSE: events carry offsets as ids, and Last-Event-ID resumes after them", async () => {
    const page = await get("/lists/a");
    const query = new URLSearchParams({
      token: page.token,
      offset: String(page.offset),
      incarnation: page.incarnation,
      id: "s",
    });
    const controller = new AbortController();
    const response = await fetch(`${served.url}${WIRE.eventsPath}?${query}`, { signal: controller.signal });
    assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = response.body!.getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      return pattern.exec(text);
    };
    await fixture.exec("insert into items (list, title, pos) values ('a', 'over-sse', 3)");
    await ctx.upkeep.settle();
    const event = await readUntil(/id: (\d+)\nevent: patch\ndata: (.*)\n/);
    assert.ok(event, text);
    const message = JSON.parse(event![2]!) as Extract<ServerMessage, { type: "patch" }>;
    assert.match(message.html, /over-sse/);
    assert.equal(Number(event![1]), message.offset);
    controller.abort();
    // Resuming with the last event id gets nothing it already has: a later write only.
    const resumed = new AbortController();
    const again = await fetch(`${served.url}${WIRE.eventsPath}?${query}`, {
      signal: resumed.signal,
      headers: { "last-event-id": String(message.offset) },
    });
    const reader2 = again.body!.getReader();
    text = "";
    await fixture.exec("insert into items (list, title, pos) values ('a', 'after-resume', 4)");
    await ctx.upkeep.settle();
    while (!/event: patch/.test(text)) {
      const { value, done } = await reader2.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const patches = [...text.matchAll(/event: patch\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!));
    assert.equal(patches.length, 1);
    assert.match(patches[0].html, /after-resume/);
    assert.ok(patches[0].offset > message.offset);
    resumed.abort();
  });
});
