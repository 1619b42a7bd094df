// Presence on both dialects: a page that shows who views it updates when a viewer joins or leaves, a reconnect within
// the grace period changes nothing, a crashed process's viewers are swept, and every page equals a fresh GET.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { Hono } from "hono";
import { PRESENCE_TUNING } from "../../src/constants.ts";
import { cookie, upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, PRESENCE_TABLE, presence, type Upkeep } from "../../src/index.ts";
import { freshBody, type LivePage, openLivePage } from "../../src/testing/index.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

const GRACE_MS = 150;
const CROWD = 100;

const label = (headers: Record<string, string>) => /user=(\w+)/.exec(headers.cookie ?? "")?.[1];

/** A page that shows who views it. */
function roomApp(upkeep: Upkeep): Hono {
  const db = upkeep.db();
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/room/:name", async (c) => {
    const me = (cookie(c, "user") ?? "guest").slice(0, 20);
    const here = await presence(db);
    return c.html(
      `<html><body><p id="me">${me}</p><ul id="here">${here.map((who) => `<li id="here_${who}">${who}</li>`).join("")}</ul></body></html>`,
    );
  });
  upkeep.use(app);
  return app;
}

for (const dialect of DIALECTS) {
  describe(`presence (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let app: Hono;
    const warnings: string[] = [];

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      upkeep = await createUpkeep({
        database: fixture.database,
        secret: SECRET,
        mode: "test",
        install: true,
        // Changes are written when a test asks (presence.idle()), never by the window's timer in between: the
        // number of writes, hence of renders and messages, does not depend on how fast this machine is.
        presence: { label, graceMs: GRACE_MS, flushMs: 60_000 },
        logger: { info() {}, warn: (_record, message) => warnings.push(message ?? ""), error() {} },
      });
      app = roomApp(upkeep);
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

    it("100 viewers joining one page cost messages linear in the viewers: joins are written together", async () => {
      await upkeep.presence?.drain();
      await settle();
      const before = upkeep.hub.stats.messages;
      const renders = upkeep.hub.stats.renders;
      const pages: LivePage[] = [];
      // One by one, the server idle in between (as joins over sockets arrive), all within one window.
      for (let i = 0; i < CROWD; i++) {
        pages.push(await openLivePage(upkeep, app, "/room/crowd", { headers: { cookie: `user=v${i}` } }));
        await upkeep.settle();
      }
      await settle();
      const sent = upkeep.hub.stats.messages - before;
      // Each viewer is its own page group (the page reads its cookie): a render per group and a message per
      // viewer for the joins written together, not one for every join.
      assert.ok(
        sent <= 3 * CROWD,
        `${sent} messages, ${upkeep.hub.stats.renders - renders} renders for ${CROWD} joins`,
      );
      assert.equal(here(pages[0] as LivePage).length, CROWD);
      for (const i of [0, CROWD - 1]) await converged(pages[i] as LivePage, `v${i}`);
      for (const page of pages) page.close();
      await upkeep.presence?.drain();
      await settle();
    });

    it("a sweep deletes the viewers of processes that died, never those of a live one", async () => {
      // Another live process, writing its changes by its own window's timer.
      const other = await createUpkeep({
        database: fixture!.database,
        secret: SECRET,
        mode: "test",
        presence: { label, graceMs: GRACE_MS, flushMs: 10 },
      });
      try {
        const gina = await openLivePage(other, roomApp(other), "/room/r5", { headers: { cookie: "user=gina" } });
        const rows = () =>
          upkeep.db<any>().selectFrom(PRESENCE_TABLE).select("label").where("page", "=", "/room/r5").execute();
        for (let waited = 0; (await rows()).length === 0; waited += 10) {
          assert.ok(waited < 5000, "the other process never wrote its viewer");
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await upkeep.presence?.sweep();
        assert.deepEqual(
          (await rows()).map((r) => r.label),
          ["gina"],
        );
        gina.close();
      } finally {
        await other.close();
      }
    });

    it("a label is cut to its bound, and the fault logged once", async () => {
      const long = "w".repeat(1_000_000);
      const pages = [
        await openLivePage(upkeep, app, "/room/r6", { headers: { cookie: `user=${long}` } }),
        await openLivePage(upkeep, app, "/room/r6", { headers: { cookie: `user=x${long}` } }),
      ];
      await settle();
      const rows = await upkeep
        .db<any>()
        .selectFrom(PRESENCE_TABLE)
        .select("label")
        .where("page", "=", "/room/r6")
        .execute();
      assert.deepEqual(
        rows.map((r) => String(r.label).length),
        [PRESENCE_TUNING.maxLabelLength, PRESENCE_TUNING.maxLabelLength],
      );
      assert.equal(warnings.filter((w) => w.includes("presence label()")).length, 1);
      for (const page of pages) page.close();
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
