// Delivering a group's latest render: who is sent what.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PageText } from "../register/page-text.ts";
import { MemoryRegistry, type Subscriber } from "../register/registry.ts";
import { deliverLatest } from "./patch.ts";
import { createStats } from "./stats.ts";
import type { ServerMessage } from "./types.ts";

const body = (text: string) => `<html><head><title>t</title></head><body><p id="x">${text}</p></body></html>`;

test("a page at the group's offset, known to show an earlier version of it, is sent the latest", () => {
  // The group's page can change while its offset does not: a frame found dirty by a catch-up (facts planned while it
  // rendered) is rendered again at the position of the group's last render; in data mode, a prop a new visit carried
  // with its old value is evaluated again (test/live/inertia.test.ts).
  const registry = new MemoryRegistry();
  const group = registry.ensure("/p", "anonymous", "http://localhost");
  const shown = PageText.of(body("before"));
  group.renderOffset = 7;
  group.page = shown;
  const sent: ServerMessage[] = [];
  const subscriber: Subscriber = {
    id: "s",
    sink: { send: (m) => sent.push(m) > 0 },
    headers: {},
    offset: 7,
    surface: shown,
    group,
  };
  group.local.subscribers.add(subscriber);
  group.page = PageText.of(body("after"));
  deliverLatest(group, createStats());
  assert.equal(sent.length, 1);
  assert.ok(sent[0]?.type === "patch" && sent[0].html.includes("after"), JSON.stringify(sent));
  assert.equal(subscriber.surface, group.page);
  // Now up to date: nothing more is sent.
  deliverLatest(group, createStats());
  assert.equal(sent.length, 1);
});

test("a page at the group's offset whose HTML is not known is taken to show that offset: nothing is sent", () => {
  const registry = new MemoryRegistry();
  const group = registry.ensure("/q", "anonymous", "http://localhost");
  group.renderOffset = 7;
  group.page = PageText.of(body("now"));
  const sent: ServerMessage[] = [];
  group.local.subscribers.add({
    id: "s",
    sink: { send: (m) => sent.push(m) > 0 },
    headers: {},
    offset: 7,
    surface: null,
    group,
  });
  deliverLatest(group, createStats());
  assert.deepEqual(sent, []);
});
