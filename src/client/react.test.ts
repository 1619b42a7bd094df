// useLiveResource in React 19 (react-dom on a happy-dom document): loading, live data, following a new url without
// showing the old one's data, and leaving on unmount.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Window } from "happy-dom";
import { act, createElement, Suspense } from "react";
import { createRoot } from "react-dom/client";
import type { Subscription } from "./connection.ts";
import { type LiveResourceOptions, useLiveResource, useSuspenseLiveResource } from "./react.ts";

const window = new Window();
const globals = globalThis as any;

before(() => {
  globals.window = window;
  globals.document = window.document;
  globals.IS_REACT_ACT_ENVIRONMENT = true;
});
after(async () => {
  delete globals.document;
  delete globals.window;
  await window.happyDOM.close();
});

type Seen = { url: string; status: string; data: unknown };

function Probe({ url, options, seen }: { url: string; options: LiveResourceOptions; seen: Seen[] }) {
  const { data, status } = useLiveResource<{ url: string }>(url, options);
  seen.push({ url, status, data });
  return null;
}

test("useLiveResource follows its url and leaves on unmount", async () => {
  const live = new Map<string, Subscription>();
  const subscriptions = {
    add: (sub: Subscription) => void live.set(sub.id, sub),
    remove: (id: string) => void live.delete(id),
  };
  let n = 0;
  const fetch = (async (url: string) => {
    n += 1;
    return new Response(JSON.stringify({ url }), {
      headers: { "upkeep-token": `t${n}`, "upkeep-offset": "1", "upkeep-incarnation": "i" },
    });
  }) as unknown as typeof globalThis.fetch;

  const seen: Seen[] = [];
  const options = { fetch, subscriptions };

  const container = window.document.createElement("div");
  const root = createRoot(container as unknown as Element);
  const settle = () => act(async () => await new Promise((resolve) => setTimeout(resolve, 10)));

  await act(async () => root.render(createElement(Probe, { url: "/a", options, seen })));
  await settle();
  assert.deepEqual(seen[0], { url: "/a", status: "loading", data: undefined });
  assert.deepEqual(seen.at(-1), { url: "/a", status: "live", data: { url: "/a" } });
  assert.equal(live.size, 1);

  const [sub] = [...live.values()];
  await act(async () => sub!.deliver({ type: "value", id: sub!.id, offset: 2, value: { url: "/a", more: true } }));
  assert.deepEqual(seen.at(-1)?.data, { url: "/a", more: true });

  await act(async () => root.render(createElement(Probe, { url: "/b", options, seen })));
  await settle();
  assert.ok(
    seen.filter((s) => s.url === "/b").every((s) => s.data === undefined || (s.data as { url: string }).url === "/b"),
    "the new url never shows the old one's data",
  );
  assert.deepEqual(seen.at(-1), { url: "/b", status: "live", data: { url: "/b" } });
  assert.deepEqual(
    [...live.values()].map((s) => s.token),
    ["t2"],
  );

  await act(async () => root.unmount());
  assert.equal(live.size, 0, "unmounting leaves the subscription");
});

function Titles({ url, options }: { url: string; options: LiveResourceOptions }) {
  const { data } = useSuspenseLiveResource<string[]>(url, options);
  return createElement("p", null, data.join(", "));
}

test("useSuspenseLiveResource suspends until the first value, then follows it", async () => {
  const live = new Map<string, Subscription>();
  const subscriptions = {
    add: (sub: Subscription) => void live.set(sub.id, sub),
    remove: (id: string) => void live.delete(id),
  };
  let answer: (response: Response) => void = () => {};
  const fetch = (() => new Promise<Response>((resolve) => (answer = resolve))) as unknown as typeof globalThis.fetch;
  const options = { fetch, subscriptions };
  const container = window.document.createElement("div");
  const root = createRoot(container as unknown as Element);

  await act(async () =>
    root.render(createElement(Suspense, { fallback: "waiting" }, createElement(Titles, { url: "/titles", options }))),
  );
  assert.equal(container.textContent, "waiting");
  await act(async () =>
    answer(
      new Response(JSON.stringify(["a"]), {
        headers: { "upkeep-token": "t", "upkeep-offset": "1", "upkeep-incarnation": "i" },
      }),
    ),
  );
  await act(async () => await new Promise((resolve) => setTimeout(resolve, 10)));
  assert.equal(container.textContent, "a");
  const [sub] = [...live.values()];
  await act(async () =>
    sub!.deliver({ type: "value", id: sub!.id, offset: 2, patch: [{ op: "add", path: "/1", value: "b" }] }),
  );
  assert.equal(container.textContent, "a, b");
  await act(async () => root.unmount());
});
