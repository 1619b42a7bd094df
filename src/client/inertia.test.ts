import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import type { Subscription } from "./connection.ts";
import { type InertiaRouter, type LiveOptions, liveMarker, startLive } from "./inertia.ts";
import { resetReloadGuard } from "./shared.ts";

type Listener = (event: CustomEvent<any>) => unknown;

/** Inertia's router as live props see it: events, replace (props callback first, then the other params, as
 *  @inertiajs/core's performClientVisit does) and reload. */
class FakeRouter implements InertiaRouter {
  page: any;
  listeners = new Map<string, Set<Listener>>();
  replaces: any[] = [];
  reloads: any[] = [];
  constructor(page: any) {
    this.page = page;
  }
  on(type: string, callback: Listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(callback);
    return () => this.listeners.get(type)!.delete(callback);
  }
  emit(type: string, detail: unknown) {
    for (const listener of this.listeners.get(type) ?? []) listener(new CustomEvent(`inertia:${type}`, { detail }));
  }
  replace(params: any) {
    this.replaces.push(params);
    const props = params.props(this.page.props);
    const { props: _props, preserveScroll: _s, preserveState: _p, ...rest } = params;
    this.page = { ...this.page, ...rest, props };
  }
  reload(options?: any) {
    this.reloads.push(options ?? {});
  }
  /** A whole visit: start, the new page (navigate for another URL), success, finish. */
  visit(page: any, { id = `v${Math.random()}`, only = [] as string[], navigate = true } = {}) {
    this.emit("start", { visit: { id, only, except: [], reset: [] } });
    this.page = only.length > 0 ? { ...page, props: { ...this.page.props, ...page.props } } : page;
    if (navigate) this.emit("navigate", { page: this.page, visitId: id });
    this.emit("success", { page: this.page, visitId: id });
    this.emit("finish", { visit: { id, only } });
  }
}

class FakeSubscriptions {
  log: string[] = [];
  live = new Map<string, Subscription>();
  add(sub: Subscription) {
    this.log.push(`add ${sub.token}`);
    this.live.set(sub.id, sub);
  }
  remove(id: string) {
    const sub = this.live.get(id);
    this.log.push(`remove ${sub?.token}`);
    this.live.delete(id);
  }
  only(): Subscription {
    assert.equal(this.live.size, 1, `one subscription: ${this.log.join(", ")}`);
    return [...this.live.values()][0]!;
  }
}

class Timers {
  pending = new Map<number, () => void>();
  next = 1;
  setTimeout = (fn: () => void) => {
    const id = this.next++;
    this.pending.set(id, fn);
    return id;
  };
  clearTimeout = (id: number) => this.pending.delete(id);
  run() {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const fn of all) fn();
  }
}

const page = (token: string | null, props: Record<string, unknown> = {}, url = "/boards/1") => ({
  component: "Board",
  url,
  version: "1",
  props: { errors: {}, ...props },
  ...(token ? { upkeep: { token, offset: 10, incarnation: "inc" } } : {}),
});

function setup(initial: any, extra: Partial<LiveOptions> = {}, { started = true } = {}) {
  const router = new FakeRouter(initial);
  const subscriptions = new FakeSubscriptions();
  const timers = new Timers();
  const stop = startLive(router, {
    initialPage: initial,
    subscriptions,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    href: () => "http://localhost/boards/1",
    debug: false,
    ...extra,
  });
  // Inertia's first visit: the router is initialised and reports the page.
  if (started) router.emit("navigate", { page: initial, visitId: "initial" });
  return { router, subscriptions, timers, stop };
}

beforeEach(() => resetReloadGuard());

describe("following Inertia's pages", () => {
  test("the first page is subscribed with its token, incarnation and render offset", () => {
    const { subscriptions } = setup(page("t1"));
    const sub = subscriptions.only();
    assert.deepEqual([sub.token, sub.incarnation, sub.offset], ["t1", "inc", 10]);
    assert.match(sub.id, /^upkeep_inertia_\d+$/);
  });

  test("a navigation subscribes the new page before it leaves the old one", () => {
    const { router, subscriptions } = setup(page("t1"));
    router.visit(page("t2", {}, "/boards/2"));
    assert.deepEqual(subscriptions.log, ["add t1", "add t2", "remove t1"]);
    assert.equal(subscriptions.only().token, "t2");
  });

  test("the same token (the first navigate event, a success after navigate) keeps the subscription", () => {
    const { router, subscriptions } = setup(page("t1"));
    router.emit("navigate", { page: page("t1"), visitId: "initial" });
    router.visit(page("t2"));
    router.emit("success", { page: page("t2") });
    assert.deepEqual(subscriptions.log, ["add t1", "add t2", "remove t1"]);
  });

  test("a full visit of the same URL (no navigate event) moves to its new token", () => {
    const { router, subscriptions } = setup(page("t1"));
    router.visit(page("t2"), { navigate: false });
    assert.equal(subscriptions.only().token, "t2");
  });

  test("a partial reload's page has no marker and keeps the subscription; a full page without one leaves", () => {
    const { router, subscriptions } = setup(page("t1"));
    router.visit(page(null, { stats: 3 }), { only: ["stats"] });
    assert.equal(subscriptions.only().token, "t1");
    assert.deepEqual(router.page.upkeep, { token: "t1", offset: 10, incarnation: "inc" }, "the marker is written back");
    assert.equal(router.page.props.stats, 3);
    router.visit(page(null, {}, "/about"));
    assert.equal(subscriptions.live.size, 0);
    assert.deepEqual(subscriptions.log, ["add t1", "remove t1"]);
  });

  test("a non-live first page subscribes nothing; a later live page does", () => {
    const { router, subscriptions } = setup(page(null));
    assert.equal(subscriptions.live.size, 0);
    router.visit(page("t2", {}, "/boards/2"));
    assert.equal(subscriptions.only().token, "t2");
  });

  test("liveMarker refuses malformed markers", () => {
    assert.equal(liveMarker({ upkeep: { token: "", offset: 1, incarnation: "i" } }), null);
    assert.equal(liveMarker({ upkeep: { token: "t", offset: -1, incarnation: "i" } }), null);
    assert.equal(liveMarker({ upkeep: { token: "t", offset: 1 } }), null);
    assert.deepEqual(liveMarker({ upkeep: { token: "t", offset: 1, incarnation: "i" } }), {
      token: "t",
      offset: 1,
      incarnation: "i",
    });
  });

  test("starting again on the same router (a hot module reload) replaces the first start", () => {
    const { router, subscriptions } = setup(page("t1"));
    startLive(router, { initialPage: page("t1"), subscriptions, debug: false });
    assert.equal(subscriptions.live.size, 1);
    router.visit(page("t2", {}, "/boards/2"));
    assert.equal(subscriptions.only().token, "t2");
  });

  test("stop leaves the page and ignores later events", () => {
    const { router, subscriptions, stop } = setup(page("t1"));
    stop();
    router.visit(page("t2", {}, "/boards/2"));
    assert.deepEqual(subscriptions.log, ["add t1", "remove t1"]);
  });
});

describe("applying props messages", () => {
  test("new values and patches are applied in one replace, and the offset advances", () => {
    const { router, subscriptions } = setup(page("t1", { title: "a", cards: [{ id: 1 }], other: { x: 1 } }));
    const sub = subscriptions.only();
    const other = router.page.props.other;
    sub.deliver({
      type: "props",
      id: sub.id,
      offset: 12,
      props: { title: "b" },
      patches: { cards: [{ op: "add", path: "/1", value: { id: 2 } }] },
    });
    assert.equal(router.replaces.length, 1);
    assert.equal(router.replaces[0].preserveState, true);
    assert.equal(router.replaces[0].preserveScroll, true);
    assert.deepEqual(router.page.props.title, "b");
    assert.deepEqual(router.page.props.cards, [{ id: 1 }, { id: 2 }]);
    assert.equal(router.page.props.other, other, "an untouched prop keeps its identity");
    assert.equal(sub.offset, 12);
    assert.deepEqual(
      router.page.upkeep,
      { token: "t1", offset: 12, incarnation: "inc" },
      "the page records its offset",
    );
    assert.equal(router.reloads.length, 0);
  });

  test("a stale message (below the offset shown) is ignored", () => {
    const { router, subscriptions } = setup(page("t1", { title: "a" }));
    const sub = subscriptions.only();
    sub.deliver({ type: "props", id: sub.id, offset: 9, props: { title: "old" } });
    assert.equal(router.replaces.length, 0);
    assert.equal(sub.offset, 10);
  });

  test("props to reload are gathered into one partial reload", () => {
    const { router, subscriptions, timers } = setup(page("t1", { a: 1, b: 2, c: 3 }));
    const sub = subscriptions.only();
    sub.deliver({ type: "props", id: sub.id, offset: 11, reload: ["a"] });
    sub.deliver({ type: "props", id: sub.id, offset: 12, reload: ["b", "a"], props: { c: 4 } });
    assert.equal(router.reloads.length, 0, "debounced");
    timers.run();
    assert.deepEqual(router.reloads, [{ only: ["a", "b"] }]);
    assert.equal(sub.offset, 12);
    timers.run();
    assert.equal(router.reloads.length, 1);
  });

  test("deferred and optional props the server does not follow are reloaded when the page holds them", () => {
    const { router, subscriptions, timers } = setup(page("t1", { a: 1 }));
    const sub = subscriptions.only();
    // The page loads its deferred prop (a partial visit: the page then holds it).
    router.visit(page(null, { others: [1] }), { only: ["others"] });
    sub.deliver({ type: "props", id: sub.id, offset: 11, props: { a: 2 }, reloadIfHeld: ["others", "extra"] });
    timers.run();
    assert.deepEqual(router.reloads, [{ only: ["others"] }], "the optional prop it never loaded is not loaded");
    assert.equal(router.page.props.a, 2);
  });

  test("a patch that does not fit the prop reloads that prop; the others are applied", () => {
    const { router, subscriptions, timers } = setup(page("t1", { list: [1], title: "a" }));
    const sub = subscriptions.only();
    sub.deliver({
      type: "props",
      id: sub.id,
      offset: 11,
      props: { title: "b" },
      patches: { list: [{ op: "remove", path: "/5" }] },
    });
    assert.equal(router.page.props.title, "b");
    assert.deepEqual(router.page.props.list, [1]);
    timers.run();
    assert.deepEqual(router.reloads, [{ only: ["list"] }]);
  });

  test("a patch applies to the value the server last sent, even when the page reloaded the prop itself", () => {
    const { router, subscriptions } = setup(page("t1", { cards: [1] }));
    const sub = subscriptions.only();
    // The app's own partial reload brings cards to a later state than the server knows the page has.
    router.visit(page(null, { cards: [1, 2] }), { only: ["cards"] });
    sub.deliver({ type: "props", id: sub.id, offset: 11, patches: { cards: [{ op: "add", path: "/1", value: 2 }] } });
    assert.deepEqual(router.page.props.cards, [1, 2], "not [1, 2, 2]");
    sub.deliver({ type: "props", id: sub.id, offset: 12, patches: { cards: [{ op: "add", path: "/2", value: 3 }] } });
    assert.deepEqual(router.page.props.cards, [1, 2, 3]);
  });

  test("a prop the page was told to reload is reloaded again rather than patched", () => {
    const { router, subscriptions, timers } = setup(page("t1", { report: "a" }));
    const sub = subscriptions.only();
    sub.deliver({ type: "props", id: sub.id, offset: 11, reload: ["report"] });
    timers.run();
    router.visit(page(null, { report: "b" }), { only: ["report"] });
    sub.deliver({
      type: "props",
      id: sub.id,
      offset: 12,
      patches: { report: [{ op: "replace", path: "", value: "c" }] },
    });
    timers.run();
    assert.deepEqual(router.reloads, [{ only: ["report"] }, { only: ["report"] }]);
    assert.equal(router.page.props.report, "b");
    sub.deliver({ type: "props", id: sub.id, offset: 13, props: { report: "d" } });
    sub.deliver({
      type: "props",
      id: sub.id,
      offset: 14,
      patches: { report: [{ op: "replace", path: "", value: "e" }] },
    });
    assert.equal(router.page.props.report, "e", "a whole value makes it patchable again");
  });

  test("a pending partial reload is dropped when the page changes", () => {
    const { router, subscriptions, timers } = setup(page("t1", { a: 1 }));
    const sub = subscriptions.only();
    sub.deliver({ type: "props", id: sub.id, offset: 11, reload: ["a"] });
    router.visit(page("t2", {}, "/boards/2"));
    timers.run();
    assert.equal(router.reloads.length, 0);
  });

  test("props wait while a full visit is in flight: dropped when it brings a new page, applied when it does not", () => {
    const { router, subscriptions } = setup(page("t1", { title: "a" }));
    let sub = subscriptions.only();
    router.emit("start", { visit: { id: "nav", only: [], except: [], reset: [] } });
    sub.deliver({ type: "props", id: sub.id, offset: 11, props: { title: "for the old page" } });
    assert.equal(router.replaces.length, 0);
    router.page = page("t2", { title: "new page" }, "/boards/2");
    router.emit("navigate", { page: router.page, visitId: "nav" });
    router.emit("finish", { visit: { id: "nav" } });
    assert.equal(router.replaces.length, 0);
    assert.equal(router.page.props.title, "new page");

    sub = subscriptions.only();
    router.emit("start", { visit: { id: "cancelled", only: [], except: [], reset: [] } });
    sub.deliver({ type: "props", id: sub.id, offset: 11, props: { title: "still this page" } });
    router.emit("finish", { visit: { id: "cancelled" } });
    assert.equal(router.page.props.title, "still this page");
  });

  test("props wait until Inertia reports its first page (or the fallback timer fires)", () => {
    const { router, subscriptions } = setup(page("t1", { title: "a" }), {}, { started: false });
    const sub = subscriptions.only();
    sub.deliver({ type: "props", id: sub.id, offset: 11, props: { title: "b" } });
    assert.equal(router.replaces.length, 0, "not before the router is initialised");
    router.emit("navigate", { page: page("t1", { title: "a" }), visitId: "initial" });
    assert.equal(router.page.props.title, "b");

    const late = setup(page("t2", { title: "a" }), {}, { started: false });
    const other = late.subscriptions.only();
    other.deliver({ type: "props", id: other.id, offset: 11, props: { title: "c" } });
    late.timers.run();
    assert.equal(late.router.page.props.title, "c");
  });

  test("a message for a page already left is ignored", () => {
    const { router, subscriptions } = setup(page("t1", { title: "a" }));
    const old = subscriptions.only();
    router.visit(page("t2", { title: "b" }, "/boards/2"));
    old.deliver({ type: "props", id: old.id, offset: 20, props: { title: "late" } });
    assert.equal(router.page.props.title, "b");
  });
});

describe("reloading", () => {
  test("a reload message leaves and makes one full visit; the loop guard stops the fourth", () => {
    const { router, subscriptions } = setup(page("t1"));
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      for (let i = 0; i < 4; i++) {
        const sub = subscriptions.only();
        sub.deliver({ type: "reload", id: sub.id, reason: "offset_too_old" });
        assert.equal(subscriptions.live.size, 0);
        router.visit(page(`t${i + 2}`), { navigate: false });
      }
    } finally {
      console.error = original;
    }
    assert.equal(router.reloads.length, 3);
    assert.deepEqual(router.reloads[0], {}, "a full visit: no only");
    assert.equal(errors.length, 1);
  });

  test("token_identity_mismatch opens the connection again once (the viewer's cookies changed), then reloads", () => {
    const { router, subscriptions } = setup(page("t1"));
    let drops = 0;
    Object.assign(subscriptions, { drop: () => drops++ });
    const warn = console.warn;
    console.warn = () => {};
    try {
      const sub = subscriptions.only();
      sub.deliver({ type: "error", id: sub.id, code: "token_identity_mismatch", message: "" });
      assert.equal(drops, 1);
      assert.equal(subscriptions.only(), sub, "still subscribed: it subscribes again on the new connection");
      assert.equal(router.reloads.length, 0);
      sub.deliver({ type: "error", id: sub.id, code: "token_identity_mismatch", message: "" });
      assert.equal(drops, 1);
      assert.equal(subscriptions.live.size, 0);
      assert.equal(router.reloads.length, 1);
    } finally {
      console.warn = warn;
    }
  });

  test("a token error reloads; another error only leaves", () => {
    const { router, subscriptions } = setup(page("t1"));
    const warn = console.warn;
    console.warn = () => {};
    try {
      let sub = subscriptions.only();
      sub.deliver({ type: "error", id: sub.id, code: "token_expired", message: "expired" });
      assert.equal(router.reloads.length, 1);
      router.visit(page("t2"), { navigate: false });
      sub = subscriptions.only();
      sub.deliver({ type: "error", id: sub.id, code: "subscribe_failed", message: "no" });
      assert.equal(router.reloads.length, 1);
      assert.equal(subscriptions.live.size, 0);
    } finally {
      console.warn = warn;
    }
  });
});

describe("window.__upkeepInertia", () => {
  test("shows the HTML client's fields with the same meanings, and follows the page's offset", () => {
    const g = globalThis as { window?: { __upkeepInertia?: Record<string, unknown> } };
    const had = "window" in g;
    g.window ??= {};
    try {
      const { subscriptions } = setup(page("t1"), { debug: true });
      const debug = g.window.__upkeepInertia!;
      const sub = subscriptions.only();
      // Subscriptions of the caller's own: no window connection behind them.
      assert.deepEqual(
        {
          state: debug.state,
          transport: debug.transport,
          role: debug.role,
          subscriptions: debug.subscriptions,
          appliedOffsets: debug.appliedOffsets,
          offset: debug.offset,
          messagesReceived: debug.messagesReceived,
          reloads: debug.reloads,
          drop: typeof debug.drop,
        },
        {
          state: "idle",
          transport: null,
          role: "window",
          subscriptions: [sub.id],
          appliedOffsets: { [sub.id]: 10 },
          offset: 10,
          messagesReceived: 0,
          reloads: [],
          drop: "function",
        },
      );
      sub.deliver({ type: "subscribed", id: sub.id, offset: 10 });
      sub.deliver({ type: "props", id: sub.id, offset: 11, props: { title: "new" } });
      assert.deepEqual([debug.offset, debug.appliedOffsets, debug.messagesReceived], [11, { [sub.id]: 11 }, 2]);
    } finally {
      if (!had) delete g.window;
    }
  });
});
