// Presence on both dialects: a page that shows who views it updates when a viewer joins or leaves, a reconnect within
// the grace period changes nothing, a crashed process's viewers are swept, and every page equals a fresh GET.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { Hono } from "hono";
import { cookie, upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, PRESENCE_TABLE, presence, type Upkeep } from "../../src/index.ts";
import { freshBody, type LivePage, openLivePage } from "../../src/testing/index.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

const GRACE_MS = 150;

for (const dialect of DIALECTS) {
  describe(`presence (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let app: Hono;

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      upkeep = await createUpkeep({
        database: fixture.database,
        secret: SECRET,
        mode: "test",
        install: true,
        presence: { label: (headers) => /user=(\w+)/.exec(headers.cookie ?? "")?.[1], graceMs: GRACE_MS },
      });
      const db = upkeep.db();
      app = new Hono();
      app.use(upkeepMiddleware(upkeep));
      app.get("/room/:name", async (c) => {
        const me = cookie(c, "user") ?? "guest";
        const here = await presence(db);
        return c.html(
          `<html><body><p id="me">${me}</p><ul id="here">${here.map((who) => `<li id="here_${who}">${who}</li>`).join("")}</ul></body></html>`,
        );
      });
      upkeep.use(app);
    });
    after(async () => {
      await upkeep?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);
    const settle = async () => {
      await upkeep.presence?.idle();
      await upkeep.settle();
    };
    const open = async (user: string, room = "r1") => {
      const page = await openLivePage(upkeep, app, `/room/${room}`, { headers: { cookie: `user=${user}` } });
      await settle();
      return page;
    };
    const here = (page: LivePage) => [...page.body().matchAll(/<li id="here_(\w+)">/g)].map((m) => m[1]);
    const converged = async (page: LivePage, user: string) =>
      assert.equal(page.body(), await freshBody(app, page.url, { cookie: `user=${user}` }));

    it("a page showing its viewers updates when one joins and, after the grace period, when one leaves", async () => {
      const alice = await open("alice");
      assert.deepEqual(here(alice), ["alice"]);
      const bob = await open("bob");
      assert.deepEqual(here(alice), ["alice", "bob"]);
      assert.deepEqual(here(bob), ["alice", "bob"]);
      const elsewhere = await open("carol", "r2");
      assert.deepEqual(here(alice), ["alice", "bob"], "a viewer of another page is not here");
      bob.close();
      await upkeep.presence?.drain();
      await settle();
      assert.deepEqual(here(alice), ["alice"]);
      await converged(alice, "alice");
      await converged(elsewhere, "carol");
      alice.close();
      elsewhere.close();
    });

    it("a reconnect within the grace period writes nothing", async () => {
      await upkeep.presence?.drain(); // the earlier test's viewers have left
      await settle();
      const dave = await open("dave", "r3");
      const watcher = await open("erin", "r3");
      const from = watcher.messages.length;
      const facts = upkeep.hub.stats.factsPlanned;
      dave.close();
      const again = await open("dave", "r3");
      await upkeep.presence?.drain();
      await settle();
      assert.equal(upkeep.hub.stats.factsPlanned, facts, "the reconnect wrote presence facts");
      assert.equal(watcher.messages.length, from);
      assert.deepEqual(here(watcher), ["dave", "erin"]);
      again.close();
      watcher.close();
    });

    it("the viewers of a process that died are swept", async () => {
      const frank = await open("frank", "r4");
      await upkeep
        .db<any>()
        .insertInto(PRESENCE_TABLE)
        .values({ id: "ghost:/room/r4:ghost", page: "/room/r4", label: "ghost", process: "a-process-that-died" })
        .execute();
      await settle();
      assert.deepEqual(here(frank), ["frank", "ghost"]);
      await upkeep.presence?.sweep();
      await settle();
      assert.deepEqual(here(frank), ["frank"]);
      await converged(frank, "frank");
      frank.close();
    });
  });
}
