import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Subscription } from "./connection.ts";
import { followLiveResource, type LiveResourceSnapshot } from "./resource.ts";

class FakeSubscriptions {
  live = new Map<string, Subscription>();
  log: string[] = [];
  add(sub: Subscription) {
    this.log.push(`add ${sub.token}@${sub.offset}`);
    this.live.set(sub.id, sub);
  }
  remove(id: string) {
    this.log.push(`remove ${this.live.get(id)?.token}`);
    this.live.delete(id);
  }
  only(): Subscription {
    assert.equal(this.live.size, 1, this.log.join(", "));
    return [...this.live.values()][0]!;
  }
}

/** A server answering each fetch with the next of `bodies`, live with tokens t1, t2, … */
function server(bodies: unknown[], { live = true } = {}) {
  const requests: Request[] = [];
  let n = 0;
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    requests.push(new Request(String(new URL(String(input), "http://localhost/")), init));
    n += 1;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (live)
      Object.assign(headers, { "upkeep-token": `t${n}`, "upkeep-offset": String(n * 10), "upkeep-incarnation": "i" });
    return new Response(JSON.stringify(bodies[Math.min(n, bodies.length) - 1]), { headers });
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

function open<T>(fetch: typeof globalThis.fetch) {
  const subscriptions = new FakeSubscriptions();
  const snapshots: LiveResourceSnapshot<T>[] = [];
  let wake: (() => void) | null = null;
  const resource = followLiveResource<T>(
    "/api/cards",
    (s) => {
      snapshots.push(s);
      wake?.();
    },
    { fetch, subscriptions },
  );
  const next = (predicate: (s: LiveResourceSnapshot<T>) => boolean) =>
    new Promise<LiveResourceSnapshot<T>>((resolve) => {
      const check = () => {
        const last = snapshots.at(-1);
        if (last && predicate(last)) {
          wake = null;
          resolve(last);
        }
      };
      wake = check;
      check();
    });
  return { resource, subscriptions, snapshots, next };
}

describe("live JSON resources", () => {
  test("fetches with the live header and subscribes with the response's token, offset and incarnation", async () => {
    const { fetch, requests } = server([[1, 2]]);
    const { subscriptions, next, resource } = open<number[]>(fetch);
    const first = await next((s) => s.status === "live");
    assert.deepEqual(first.data, [1, 2]);
    assert.equal(requests[0]!.headers.get("upkeep-live"), "1");
    assert.equal(requests[0]!.headers.get("accept"), "application/json");
    const sub = subscriptions.only();
    assert.deepEqual([sub.token, sub.offset, sub.incarnation], ["t1", 10, "i"]);
    assert.match(sub.id, /^upkeep_resource_\d+$/);
    resource.close();
    assert.equal(subscriptions.live.size, 0);
  });

  test("applies new values and patches and advances the offset; stale messages are ignored", async () => {
    const { fetch } = server([{ cards: [1] }]);
    const { subscriptions, next } = open<{ cards: number[] }>(fetch);
    await next((s) => s.status === "live");
    const sub = subscriptions.only();
    sub.deliver({ type: "value", id: sub.id, offset: 11, patch: [{ op: "add", path: "/cards/1", value: 2 }] });
    assert.deepEqual((await next((s) => s.offset === 11)).data, { cards: [1, 2] });
    sub.deliver({ type: "value", id: sub.id, offset: 12, value: { cards: [] } });
    assert.deepEqual((await next((s) => s.offset === 12)).data, { cards: [] });
    sub.deliver({ type: "value", id: sub.id, offset: 5, value: { cards: [9] } });
    assert.deepEqual((await next(() => true)).data, { cards: [] });
    assert.equal(sub.offset, 12);
  });

  test("a patch that does not fit, a reload or a token error fetch and subscribe again", async () => {
    const { fetch, requests } = server([["a"], ["b"], ["c"], ["d"]]);
    const { subscriptions, next, resource } = open<string[]>(fetch);
    await next((s) => s.status === "live");
    let sub = subscriptions.only();
    sub.deliver({ type: "value", id: sub.id, offset: 11, patch: [{ op: "remove", path: "/7" }] });
    assert.deepEqual((await next((s) => s.offset === 20)).data, ["b"]);
    sub = subscriptions.only();
    assert.equal(sub.token, "t2");
    sub.deliver({ type: "reload", id: sub.id, reason: "offset_too_old" });
    assert.deepEqual((await next((s) => s.offset === 30)).data, ["c"]);
    sub = subscriptions.only();
    sub.deliver({ type: "error", id: sub.id, code: "token_expired", message: "" });
    assert.deepEqual((await next((s) => s.offset === 40)).data, ["d"]);
    assert.equal(requests.length, 4);
    // The fourth failure within the window stops refetching.
    sub = subscriptions.only();
    sub.deliver({ type: "reload", id: sub.id, reason: "render_failed" });
    const last = await next((s) => s.status === "error");
    assert.deepEqual(last.data, ["d"], "the last value stays");
    assert.equal(requests.length, 4);
    assert.equal(subscriptions.live.size, 0);
    resource.close();
  });

  test("a response without a subscription is static; a failed fetch is an error", async () => {
    const { fetch } = server([{ a: 1 }], { live: false });
    const { subscriptions, next } = open<{ a: number }>(fetch);
    const s = await next((x) => x.status !== "loading");
    assert.deepEqual([s.status, s.data], ["static", { a: 1 }]);
    assert.equal(subscriptions.live.size, 0);

    const failing = (async () => new Response("no", { status: 500 })) as typeof globalThis.fetch;
    const broken = open(failing);
    const e = await broken.next((x) => x.status !== "loading");
    assert.equal(e.status, "error");
    assert.match(String(e.error), /500/);
  });
});
