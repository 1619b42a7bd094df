// One connection per browser, run in Node: several "tabs" (a TabShare and a ConnectionManager each) in one process
// talk over Node's real BroadcastChannel and Web Locks, exactly the browser APIs, and the leader's relay holds one
// real WebSocket to a server with a recording hub. The Chromium suite (test/e2e/tabs.test.ts) does the same with
// real tabs and Turbo.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import { ConnectionManager, type Subscription } from "../../src/client/connection.ts";
import { TAB_WIRE, type TabEnvironment } from "../../src/client/tab-wire.ts";
import { TabShare } from "../../src/client/tabs.ts";
import { attachWebSocket } from "../../src/deliver/websocket.ts";
import { FakeHub } from "./fake-hub.ts";
import { listen, stop } from "./support.ts";

const FAST = { initialDelayMs: 5, maxDelayMs: 40, multiplier: 2 };

/** Waits (without asserting on time) until a condition observed from outside holds. */
async function eventually(predicate: () => boolean, what = "condition"): Promise<void> {
  const deadline = Date.now() + 20_000; // a bound on waiting, reported by name if it is ever reached
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Tab {
  name: string;
  share: TabShare;
  manager: ConnectionManager;
  received: Map<string, any[]>;
  subs: Map<string, Subscription>;
  subscribe(id: string, offset: number): Subscription;
  /** The tab closes: its page hides (links end, a leader says it is gone, locks are released). */
  close(): void;
}

function browser(port: number, extra: Partial<TabEnvironment> = {}) {
  const key = `test-${randomUUID()}`; // a browser of its own: no other test's tabs answer
  const tabs: Tab[] = [];
  const managerEnv = { baseUrl: `http://127.0.0.1:${port}/`, backoff: FAST, lingerMs: 200, warn: () => {} };
  function open(name: string): Tab {
    const share = new TabShare({
      key,
      tabId: `${name}-${randomUUID().slice(0, 8)}`,
      BroadcastChannel,
      locks: navigator.locks,
      manager: managerEnv,
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as any),
      setInterval: (fn, ms) => setInterval(fn, ms),
      clearInterval: (h) => clearInterval(h as any),
      sweepMs: 50,
      ...extra,
    });
    const manager = new ConnectionManager({ ...managerEnv, link: share });
    const received = new Map<string, any[]>();
    const subs = new Map<string, Subscription>();
    const tab: Tab = {
      name,
      share,
      manager,
      received,
      subs,
      subscribe(id, offset) {
        const log: any[] = [];
        received.set(id, log);
        const sub: Subscription = {
          id,
          token: `tok-${name}-${id}`,
          incarnation: "inc",
          offset,
          deliver(message) {
            log.push(message);
            if (message.type === "patch" && message.offset > sub.offset) sub.offset = message.offset; // applied
          },
        };
        subs.set(id, sub);
        manager.add(sub);
        return sub;
      },
      close() {
        share.stop();
        manager.close();
      },
    };
    tabs.push(tab);
    return tab;
  }
  return {
    key,
    open,
    tabs,
    closeAll: () => {
      for (const t of tabs) t.close();
    },
  };
}

/** The hub's live subscription for a tab's page (the relay's socket id ends with the page's own id). */
function liveFor(hub: FakeHub, tab: Tab, id: string): string | undefined {
  return [...hub.live.keys()].find((k) => k.endsWith(`~${id}`) && k.startsWith(tab.share.tabId));
}

describe("one connection per browser (tabs over BroadcastChannel and Web Locks)", async () => {
  const hub = new FakeHub();
  const { server, port } = await listen();
  let transport = attachWebSocket(server, hub);
  after(async () => {
    await transport.close();
    await stop(server);
  });

  test("five tabs share one socket; each receives its own pages' messages, under its own ids", async () => {
    const b = browser(port);
    const tabs = ["a", "b", "c", "d", "e"].map((n) => b.open(n));
    for (const [i, tab] of tabs.entries()) tab.subscribe("page", 10 + i);
    await eventually(() => tabs.every((t) => liveFor(hub, t, "page")), "five live pages");
    assert.equal(transport.clients, 1, "one server connection for five tabs");
    assert.equal(tabs.filter((t) => t.share.role === "leader").length, 1, "one leader");
    for (const [i, tab] of tabs.entries()) {
      const socketId = liveFor(hub, tab, "page")!;
      assert.equal(hub.live.get(socketId)!.request.offset, 10 + i, "subscribed with the tab's own offset");
      hub.send(socketId, { type: "patch", id: socketId, offset: 100 + i, html: `<p>${tab.name}</p>` });
    }
    await eventually(() => tabs.every((t) => t.received.get("page")!.some((m) => m.type === "patch")), "patches");
    for (const [i, tab] of tabs.entries()) {
      const patches = tab.received.get("page")!.filter((m) => m.type === "patch");
      assert.deepEqual(patches, [{ type: "patch", id: "page", offset: 100 + i, html: `<p>${tab.name}</p>` }]);
      assert.equal(tab.manager.state.status, "open");
    }
    b.closeAll();
    await eventually(() => transport.clients === 0, "the socket closing after the last tab");
  });

  test("the leader closes: another tab takes over, every page resumes from the offset it applied, nothing is lost", async () => {
    const b = browser(port);
    const tabs = ["a", "b", "c"].map((n) => b.open(n));
    for (const tab of tabs) tab.subscribe("page", 1);
    await eventually(() => tabs.every((t) => liveFor(hub, t, "page")), "three live pages");
    const leader = tabs.find((t) => t.share.role === "leader")!;
    const followers = tabs.filter((t) => t !== leader);
    // Each follower applies a different offset before the leader goes.
    for (const [i, tab] of followers.entries()) {
      const id = liveFor(hub, tab, "page")!;
      hub.send(id, { type: "patch", id, offset: 5 + i, html: "x" });
    }
    await eventually(() => followers.every((t, i) => t.subs.get("page")!.offset === 5 + i), "applied offsets");
    const before = hub.requests.length;
    leader.close();
    await eventually(
      () => followers.every((t) => hub.requests.slice(before).some((r) => r.id.startsWith(t.share.tabId))),
      "the followers subscribing again",
    );
    await eventually(() => followers.every((t) => liveFor(hub, t, "page")), "live again");
    for (const [i, tab] of followers.entries()) {
      const request = hub.requests.slice(before).find((r) => r.id.startsWith(tab.share.tabId))!;
      assert.equal(request.offset, 5 + i, `${tab.name} resumed from the offset it applied`);
    }
    assert.equal(followers.filter((t) => t.share.role === "leader").length, 1, "a new leader");
    await eventually(() => transport.clients === 1, "one socket again");
    // Messages flow through the new leader.
    for (const tab of followers) {
      const id = liveFor(hub, tab, "page")!;
      hub.send(id, { type: "patch", id, offset: 50, html: "after" });
    }
    await eventually(() => followers.every((t) => t.subs.get("page")!.offset === 50), "patches after the handover");
    b.closeAll();
    await eventually(() => transport.clients === 0, "closed");
  });

  test("the server drops the socket: every tab subscribes again with its own applied offset, not a stale one", async () => {
    const b = browser(port);
    const tabs = ["a", "b"].map((n) => b.open(n));
    for (const tab of tabs) tab.subscribe("page", 3);
    await eventually(() => tabs.every((t) => liveFor(hub, t, "page")), "live pages");
    const id = liveFor(hub, tabs[1]!, "page")!;
    hub.send(id, { type: "patch", id, offset: 9, html: "nine" });
    await eventually(() => tabs[1]!.subs.get("page")!.offset === 9, "applied");
    const before = hub.requests.length;
    await transport.close();
    transport = attachWebSocket(server, hub);
    await eventually(() => tabs.every((t) => liveFor(hub, t, "page")), "live again after the restart");
    const again = hub.requests.slice(before);
    assert.equal(again.find((r) => r.id.startsWith(tabs[0]!.share.tabId))!.offset, 3);
    assert.equal(again.find((r) => r.id.startsWith(tabs[1]!.share.tabId))!.offset, 9);
    assert.equal(transport.clients, 1);
    // drop() from a follower drops the shared socket (how a token rendered for new cookies reconnects).
    const follower = tabs.find((t) => t.share.role === "follower")!;
    const sockets = hub.requests.length;
    follower.manager.drop();
    await eventually(() => hub.requests.length >= sockets + 2 && tabs.every((t) => liveFor(hub, t, "page")), "drop");
    assert.equal(transport.clients, 1);
    b.closeAll();
    await eventually(() => transport.clients === 0, "closed");
  });

  test("a tab that closed without a word (crashed) loses its subscriptions at the leader's next sweep", async () => {
    const b = browser(port);
    const tab = b.open("a");
    tab.subscribe("page", 1);
    await eventually(() => liveFor(hub, tab, "page") !== undefined, "live");
    // A ghost tab: it subscribes through the control channel like a link, but holds no tab lock (it is gone).
    const control = new BroadcastChannel(TAB_WIRE.control(b.key));
    const leader = tab.share.tabId;
    control.postMessage({ t: "hello", tab: "ghost", link: "ghost.1" });
    control.postMessage({
      t: "sub",
      to: leader,
      tab: "ghost",
      link: "ghost.1",
      sub: { id: "page", token: "tok-ghost", incarnation: "inc", offset: 1 },
    });
    await eventually(() => hub.unsubscribed.includes("ghost.1~page"), "the ghost's subscription ending");
    assert.ok(liveFor(hub, tab, "page"), "the live tab's page is untouched");
    control.close();
    b.closeAll();
    await eventually(() => transport.clients === 0, "closed");
  });

  test("malformed messages on the tabs' channels are ignored: nothing fails, the pages stay live", async () => {
    const b = browser(port);
    const tab = b.open("a");
    const other = b.open("b");
    tab.subscribe("page", 1);
    other.subscribe("page", 1);
    await eventually(() => [tab, other].every((t) => liveFor(hub, t, "page")), "live");
    const leader = [tab, other].find((t) => t.share.role === "leader")!;
    const requests = hub.requests.length;
    const control = new BroadcastChannel(TAB_WIRE.control(b.key));
    for (const junk of [
      null,
      "hello",
      { t: "hello" },
      { t: "sub", to: leader.share.tabId, tab: "x", link: "x.1" },
      { t: "sub", to: leader.share.tabId, tab: "x", link: "x.1", sub: { id: "p", token: "t", offset: "1" } },
      { t: "unsub", to: leader.share.tabId },
      { t: "state", from: "nobody", status: "exploded", closedBy: null, transport: "websocket" },
      { t: "state", from: leader.share.tabId, status: "open" },
      { t: "gone" },
    ])
      control.postMessage(junk);
    const inbox = new BroadcastChannel(TAB_WIRE.inbox(b.key, other.share.tabId));
    for (const junk of [null, 7, { t: "msg" }, { t: "msg", link: 5, message: "x" }]) inbox.postMessage(junk);
    // A real message after the junk still arrives: the channels, the relay and the links are intact.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const id = liveFor(hub, other, "page")!;
    hub.send(id, { type: "patch", id, offset: 2, html: "after the junk" });
    await eventually(() => other.subs.get("page")!.offset === 2, "the patch after the junk");
    assert.equal(leader.share.relay!.subscriptions, 2, "no subscription was added or lost");
    assert.equal(hub.requests.length, requests, "no link failed: no tab subscribed again");
    assert.ok([tab, other].every((t) => t.manager.state.status === "open"));
    control.close();
    inbox.close();
    b.closeAll();
    await eventually(() => transport.clients === 0, "closed");
  });

  test("the server's own bound, named in its acknowledgements, is the one the shared socket keeps to", async () => {
    const smallHub = new FakeHub();
    const small = await listen();
    const smallTransport = attachWebSocket(small.server, smallHub, { maxSubscriptions: 2 });
    try {
      const b = browser(small.port);
      const tabs = ["a", "b", "c"].map((n) => b.open(n));
      for (const tab of tabs) {
        tab.subscribe("page", 1);
        await eventually(
          () =>
            [...smallHub.live.keys()].some((k) => k.endsWith("page") && k.includes(tab.share.tabId)) ||
            smallHub.live.has("page"),
          `${tab.name} live`,
        );
      }
      const leader = tabs.find((t) => t.share.role === "leader")!;
      assert.equal(leader.share.relay!.capacity, 2, "learned from the server's acknowledgements");
      assert.equal(smallTransport.clients, 2, "two tabs on the shared socket, the third on its own");
      assert.ok(
        tabs.every((t) => t.manager.state.status === "open"),
        "no socket was closed for too many subscriptions",
      );
      b.closeAll();
      await eventually(() => smallTransport.clients === 0, "closed");
    } finally {
      await smallTransport.close();
      await stop(small.server);
    }
  });

  test("beyond the shared socket's bound a tab opens its own; a leader that never answers does too", async () => {
    const full = browser(port, { maxSubscriptions: 2 });
    const tabs = ["a", "b", "c"].map((n) => full.open(n));
    for (const tab of tabs) {
      tab.subscribe("page", 1);
      await eventually(() => liveFor(hub, tab, "page") !== undefined || hub.live.has("page"), `${tab.name} live`);
    }
    assert.equal(transport.clients, 2, "two sharing one socket, the third on its own");
    assert.equal(tabs.filter((t) => t.share.role === "direct").length, 1);
    full.closeAll();
    await eventually(() => transport.clients === 0, "closed");

    // A tab holds the leader lock but never answers (a hung leader): a new tab waits answerMs, then goes direct.
    const hung = browser(port, { answerMs: 100 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await new Promise<void>((granted) => {
      void navigator.locks.request(TAB_WIRE.leaderLock(hung.key), () => {
        granted();
        return held;
      });
    });
    const lonely = hung.open("lonely");
    lonely.subscribe("alone", 1);
    await eventually(() => hub.live.has("alone"), "the tab's own socket");
    assert.equal(lonely.share.role, "direct");
    release();
    hung.closeAll();
    await eventually(() => transport.clients === 0, "closed");
  });
});
