// Each step of the hub's "no committed fact is missed" argument (src/deliver/hub.ts), tested against a fake ledger
// that the test feeds by hand: the test decides exactly when a fact becomes visible relative to a render, its
// registration and a subscription. The pages read a real SQLite database that the test changes directly.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import { Hub } from "../../src/deliver/hub.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { followFacts, Waker } from "../../src/ledger/core.ts";
import type { Fact, FollowOptions, Ledger, ReadOptions } from "../../src/ledger/types.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { Upkeep } from "../../src/upkeep.ts";

/** A ledger whose facts the test appends; everything else is inert. */
class FakeLedger implements Ledger {
  readonly kind = "sqlite" as const;
  readonly database: string;
  readonly incarnation = "fake";
  readonly facts: Fact[] = [];
  reads = 0;
  readonly #waker = new Waker();
  #closed = false;

  constructor(database: string) {
    this.database = database;
  }

  append(table: string, op: Fact["op"], old: Record<string, unknown> | null, next: Record<string, unknown> | null) {
    const offset = this.facts.length + 1;
    const image = (next ?? old) as Record<string, unknown>;
    this.facts.push({
      offset,
      incarnation: this.incarnation,
      table,
      op,
      key: { id: image.id },
      keyless: false,
      old,
      new: next,
      txid: String(offset),
      committedAt: new Date().toISOString(),
    });
    this.#waker.bump();
    return offset;
  }

  async head() {
    return this.facts.length;
  }
  async horizon() {
    return 0;
  }
  async horizons() {
    return { floor: 0, tables: {} };
  }
  async read(after: number, options?: ReadOptions) {
    this.reads++;
    return this.facts.slice(after, after + (options?.limit ?? 1000));
  }
  follow(after: number, options?: FollowOptions) {
    return followFacts(this, this.#waker, () => this.#closed, after, options);
  }
  async sync() {
    return this.facts.length;
  }
  poke() {}
  async prune() {
    return { pruned: 0, horizon: 0 };
  }
  async holdPosition() {}
  async releasePosition() {}
  async resync() {
    return { incarnation: this.incarnation, head: this.facts.length, horizon: 0 };
  }
  capturedTables() {
    return new Set(["items"]);
  }
  async close() {
    this.#closed = true;
    this.#waker.bump();
  }
}

async function setup() {
  const path = join(mkdtempSync(join(tmpdir(), "upkeep-hub-")), "app.sqlite");
  const raw = new DatabaseSync(path);
  raw.exec(
    "create table items (id integer primary key, list text, title text); insert into items values (1, 'a', 'one')",
  );
  const ledger = new FakeLedger(`file:${path}`);
  const hub = new Hub({ ledger, secret: "hub-argument-secret-0123456789abcdef", mode: "test", coalesceMs: 0 });
  const upkeep = new Upkeep({ database: ledger.database, mode: "test", refusals: "throw", ledger, hub });
  await hub.start();
  let gate: Promise<void> | null = null;
  let afterRead: (() => void) | null = null;
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/lists/:list", async (c) => {
    const rows = await upkeep
      .db<{ items: { id: number; list: string; title: string } }>()
      .selectFrom("items")
      .select(["id", "title"])
      .where("list", "=", c.req.param("list"))
      .orderBy("id")
      .execute();
    afterRead?.();
    if (gate) await gate;
    return c.html(
      html`<html><body><ul id="items">${rows.map((r) => html`<li id="i${r.id}">${r.title}</li>`)}</ul></body></html>`,
    );
  });
  upkeep.use(app);
  return {
    raw,
    ledger,
    hub,
    upkeep,
    app,
    /** Holds the next GET after its read until the returned function is called. */
    holdNextRender() {
      let release!: () => void;
      gate = new Promise((resolve) => {
        release = resolve;
      });
      const read = new Promise<void>((resolve) => {
        afterRead = resolve;
      });
      return {
        read,
        release: () => {
          gate = null;
          afterRead = null;
          release();
        },
      };
    },
    async close() {
      await upkeep.close();
      raw.close();
    },
  };
}

describe("the hub's argument, step by step, against a fake ledger", () => {
  test("1. a render's offset is a lower bound: a fact the render already shows only costs a redundant replay", async () => {
    const t = await setup();
    try {
      // The write lands before the GET reads, but its fact becomes visible to the planner only after the render
      // took its offset: the page shows it already, and the fact (above the render offset) replays it again.
      t.raw.exec("update items set title = 'two' where id = 1");
      const page = await openLivePage(t.upkeep, t.app, "/lists/a");
      assert.match(page.body(), /two/);
      t.ledger.append("items", "update", { id: 1, list: "a", title: "one" }, { id: 1, list: "a", title: "two" });
      await t.hub.settle();
      assert.equal(t.hub.stats.renders, 1, "one redundant replay, no missed fact");
      assert.equal(page.body(), await freshBody(t.app, "/lists/a"));
    } finally {
      await t.close();
    }
  });

  test("2. a fact planned between a render's start and its registration is caught up against the new reads", async () => {
    const t = await setup();
    try {
      const held = t.holdNextRender();
      const opening = openLivePage(t.upkeep, t.app, "/lists/a");
      await held.read; // the GET read its rows (with 'one') at render offset 0 and is not registered yet
      t.raw.exec("update items set title = 'caught' where id = 1");
      t.ledger.append("items", "update", { id: 1, list: "a", title: "one" }, { id: 1, list: "a", title: "caught" });
      // The planner plans the fact now, against reads that do not yet include this page's.
      while (t.hub.position < 1) await new Promise((r) => setTimeout(r, 2));
      held.release();
      const page = await opening;
      assert.match(page.body(), /one/, "the page was rendered before the write");
      await t.hub.settle();
      assert.match(page.body(), /caught/, "the catch-up found the fact and the replay delivered it");
      assert.equal(page.body(), await freshBody(t.app, "/lists/a"));
    } finally {
      await t.close();
    }
  });

  test("3. a matched fact makes the group dirty until a replay at or above it runs; an unmatched fact replays nothing", async () => {
    const t = await setup();
    try {
      const first = await openLivePage(t.upkeep, t.app, "/lists/a");
      t.raw.exec("update items set title = 'later' where id = 1");
      t.ledger.append("items", "update", { id: 1, list: "a", title: "one" }, { id: 1, list: "a", title: "later" });
      await t.hub.settle();
      assert.match(first.body(), /later/);
      // The replay at or above the fact cleaned the group; a page opened now joins it and shows the same.
      const group = [...t.hub.registry.groups()][0];
      assert.ok(group && group.renderOffset >= 1 && !group.dirty);
      const second = await openLivePage(t.upkeep, t.app, "/lists/a");
      assert.equal(second.body(), first.body());
      // A fact that does not match the page's reads (another list) leaves the group clean: no replay.
      const renders = t.hub.stats.renders;
      t.ledger.append("items", "insert", null, { id: 2, list: "b", title: "elsewhere" });
      await t.hub.settle();
      assert.equal(t.hub.stats.renders, renders);
    } finally {
      await t.close();
    }
  });
});
