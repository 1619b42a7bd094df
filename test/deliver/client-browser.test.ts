// The browser client in Chromium with the real @hotwired/turbo, against the real WebSocket and SSE transports and
// a scripted hub: patches reach the DOM through Turbo, offsets are recorded and resumed, reload instructions
// reload once, Turbo Drive navigation keeps one socket.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { WIRE } from "../../src/constants.ts";
import { handleEventStream } from "../../src/deliver/sse.ts";
import { attachWebSocket, type WebSocketTransport } from "../../src/deliver/websocket.ts";
import { clientModule } from "../../src/hono/index.ts";
import { FakeHub } from "./fake-hub.ts";
import { listen, stop } from "./support.ts";

const chromiumPath = process.env.UPKEEP_CHROMIUM ?? "/usr/bin/chromium";
const turboFile = new URL("../../node_modules/@hotwired/turbo/dist/turbo.es2017-esm.js", import.meta.url);

/** A page whose window keeps a connection of its own (connection="window"), so the scripted hub sees the page's own
 *  subscription ids; `/shared` leaves it out and subscribes through the browser's shared connection. */
function page(title: string, id: string, attrs = 'connection="window"', link = ""): string {
  return `<!doctype html><html><head><title>${title}</title></head><body>
<h1 id="title">${title}</h1><div id="target">initial</div>${link}
<${WIRE.streamSourceTag} ${WIRE.tokenAttr}="tok-${id}" ${WIRE.offsetAttr}="5" ${WIRE.incarnationAttr}="inc" id="${id}" data-turbo-permanent ${attrs}></${WIRE.streamSourceTag}>
<script type="module" src="${WIRE.clientPath}index.js"></script>
</body></html>`;
}

function replace(text: string): string {
  return `<turbo-stream action="update" target="target"><template>${text}</template></turbo-stream>`;
}

describe("browser client", { skip: existsSync(chromiumPath) ? false : `no Chromium at ${chromiumPath}` }, () => {
  const hub = new FakeHub();
  const gets: Record<string, number> = {};
  /** The subscription ids of the event streams requested. */
  const streams: string[] = [];
  let serverInfo: Awaited<ReturnType<typeof listen>>;
  let transport: WebSocketTransport;
  let browser: Browser;
  let base: string;

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === WIRE.eventsPath) {
      streams.push(url.searchParams.get("id") ?? "");
      return sendFetchResponse(req, res, hub);
    }
    if (url.pathname === WIRE.turboScriptPath) {
      return res.writeHead(200, { "content-type": "text/javascript" }).end(await readFile(turboFile));
    }
    if (url.pathname.startsWith(WIRE.clientPath)) {
      const name = /^([a-z0-9-]+)\.(js|ts)$/.exec(url.pathname.slice(WIRE.clientPath.length))?.[1];
      const source = name ? await clientModule(name) : null;
      if (source === null) return res.writeHead(404).end();
      return res.writeHead(200, { "content-type": "text/javascript" }).end(source);
    }
    gets[url.pathname] = (gets[url.pathname] ?? 0) + 1;
    const n = gets[url.pathname];
    const html =
      url.pathname === "/sse"
        ? page("sse", `upkeep_sse_${n}`, 'transport="sse" connection="window"')
        : url.pathname === "/two"
          ? page("two", `upkeep_two_${n}`)
          : url.pathname === "/reload"
            ? page("reload", `upkeep_reload_${n}`)
            : url.pathname === "/shared"
              ? page("shared", `upkeep_shared_${n}`, "")
              : url.pathname === "/shared-sse"
                ? page("shared sse", `upkeep_ssel_${n}`, 'transport="sse"')
                : page("one", `upkeep_one_${n}`, 'connection="window"', '<a id="nav" href="/two">two</a>');
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
  }

  before(async () => {
    serverInfo = await listen((req, res) => {
      handle(req, res).catch(() => res.writeHead(500).end());
    });
    transport = attachWebSocket(serverInfo.server, hub);
    base = `http://127.0.0.1:${serverInfo.port}`;
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  });

  after(async () => {
    await browser?.close();
    await transport?.close();
    if (serverInfo) await stop(serverInfo.server);
  });

  async function open(path: string): Promise<Page> {
    const p = await browser.newPage();
    p.on("pageerror", (error) => console.error("page error:", error));
    await p.goto(base + path);
    return p;
  }

  test("patches reach the DOM through Turbo; the offset is recorded and resumed after the server drops the socket", async () => {
    const p = await open("/");
    await hub.until(() => hub.live.has("upkeep_one_1"));
    assert.equal(hub.requests.find((r) => r.id === "upkeep_one_1")!.offset, 5);
    hub.send("upkeep_one_1", { type: "patch", id: "upkeep_one_1", offset: 6, html: replace("six") });
    await p.waitForFunction(() => document.getElementById("target")?.textContent === "six");
    await p.waitForFunction(() => (window as any).__upkeep.appliedOffsets.upkeep_one_1 === 6);
    assert.equal(await p.getAttribute("#upkeep_one_1", WIRE.offsetAttr), "6");
    // A stale patch (below the applied offset) is not applied.
    hub.send("upkeep_one_1", { type: "patch", id: "upkeep_one_1", offset: 4, html: replace("stale") });
    hub.send("upkeep_one_1", { type: "patch", id: "upkeep_one_1", offset: 7, html: replace("seven") });
    await p.waitForFunction(() => document.getElementById("target")?.textContent === "seven");
    assert.equal(await p.evaluate(() => (window as any).__upkeep.patchesApplied), 2);

    const before = hub.requests.length;
    await transport.close();
    transport = attachWebSocket(serverInfo.server, hub);
    await hub.until(() => hub.requests.length > before && hub.live.has("upkeep_one_1"));
    assert.equal(hub.requests.at(-1)!.offset, 7, "resumed after the last applied offset");
    await p.waitForFunction(() => (window as any).__upkeep.state === "open");
    await p.close();
  });

  test("Turbo Drive navigation subscribes the new page on the same socket and unsubscribes the old", async () => {
    const p = await open("/");
    const id = `upkeep_one_${gets["/"]}`;
    await hub.until(() => hub.live.has(id));
    const sockets = transport.clients;
    await p.click("#nav");
    await p.waitForFunction(() => document.getElementById("title")?.textContent === "two");
    const next = `upkeep_two_${gets["/two"]}`;
    await hub.until(() => hub.live.has(next) && hub.unsubscribed.includes(id));
    assert.equal(transport.clients, sockets, "no second socket");
    assert.equal(await p.evaluate(() => (window as any).__upkeep.state), "open");
    await p.close();
  });

  test("a reload instruction replaces the page once with a fresh GET", async () => {
    const p = await open("/reload");
    await hub.until(() => hub.live.has("upkeep_reload_1"));
    hub.send("upkeep_reload_1", { type: "reload", id: "upkeep_reload_1", reason: "incarnation_mismatch" });
    await hub.until(() => hub.live.has("upkeep_reload_2"));
    assert.equal(gets["/reload"], 2);
    await p.waitForFunction(() => document.getElementById("upkeep_reload_2") !== null);
    await p.close();
  });

  test("by default the page subscribes through its browser's shared connection, as <link>~<id>", async () => {
    const p = await open("/shared");
    const live = () => [...hub.live.keys()].find((id) => id.endsWith("~upkeep_shared_1"));
    await hub.until(() => live() !== undefined);
    assert.equal(await p.evaluate(() => (window as any).__upkeep.role), "leader");
    const id = live()!;
    assert.equal(hub.live.get(id)!.request.offset, 5);
    hub.send(id, { type: "patch", id, offset: 6, html: replace("shared six") });
    await p.waitForFunction(() => document.getElementById("target")?.textContent === "shared six");
    await p.waitForFunction(() => (window as any).__upkeep.appliedOffsets.upkeep_shared_1 === 6);
    await p.close();
    await hub.until(() => hub.unsubscribed.includes(id));
  });

  test('transport="sse" delivers patches over an event stream', async () => {
    const p = await open("/sse");
    await hub.until(() => hub.live.has("upkeep_sse_1"));
    hub.send("upkeep_sse_1", { type: "patch", id: "upkeep_sse_1", offset: 9, html: replace("nine") });
    await p.waitForFunction(() => document.getElementById("target")?.textContent === "nine");
    assert.equal(await p.evaluate(() => (window as any).__upkeep.transport), "sse");
    await p.close();
    await hub.until(() => hub.unsubscribed.includes("upkeep_sse_1"));
  });

  test("every tab's __upkeep.transport is the one carrying its page: SSE when the leader tab opened an event stream", async () => {
    // Two tabs of one browser: the first page asks for SSE and its tab leads; the second asks for nothing.
    const context = await browser.newContext();
    try {
      const tabs = [await context.newPage(), await context.newPage()];
      for (const tab of tabs) tab.on("pageerror", (error) => console.error("page error:", error));
      await tabs[0]!.goto(`${base}/shared-sse`);
      const leaderId = `upkeep_ssel_${gets["/shared-sse"]}`;
      await hub.until(() => [...hub.live.keys()].some((id) => id.endsWith(`~${leaderId}`)));
      await tabs[1]!.goto(`${base}/shared`);
      const followerId = `upkeep_shared_${gets["/shared"]}`;
      const wire = () => [...hub.live.keys()].find((id) => id.endsWith(`~${followerId}`));
      await hub.until(() => wire() !== undefined);
      assert.ok(streams.includes(wire()!), "the second tab's page is live over the leader's event streams");
      hub.send(wire()!, { type: "patch", id: wire()!, offset: 6, html: replace("over sse") });
      await tabs[1]!.waitForFunction(() => document.getElementById("target")?.textContent === "over sse");

      const view = (tab: Page) =>
        tab.evaluate(() => {
          const u = (window as any).__upkeep;
          const { state, transport, role, subscriptions, appliedOffsets, offset } = u;
          return { state, transport, role, subscriptions, appliedOffsets, offset, received: u.messagesReceived > 0 };
        });
      assert.deepEqual(await view(tabs[1]!), {
        state: "open",
        transport: "sse",
        role: "follower",
        subscriptions: [followerId],
        appliedOffsets: { [followerId]: 6 },
        offset: 6,
        received: true,
      });
      assert.deepEqual(await view(tabs[0]!), {
        state: "open",
        transport: "sse",
        role: "leader",
        subscriptions: [leaderId],
        appliedOffsets: { [leaderId]: 5 },
        offset: 5,
        received: true,
      });
    } finally {
      await context.close();
    }
  });
});

/** Serves the fetch-style SSE handler from node:http (what an adapter such as @hono/node-server does). */
async function sendFetchResponse(req: IncomingMessage, res: ServerResponse, hub: FakeHub): Promise<void> {
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
  const response = handleEventStream(new Request(`http://127.0.0.1${req.url}`, { headers, signal: abort.signal }), hub);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.flushHeaders();
  const reader = response.body!.getReader();
  abort.signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
  for (;;) {
    const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
    if (done) break;
    res.write(value);
  }
  res.end();
}
