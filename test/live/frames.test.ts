// Frames end to end on both dialects: which frame reacts to a write, what it renders, which Turbo Stream action it
// sends, and who receives it. Every case also checks that the patched page equals a fresh GET.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import { sql } from "kysely";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { RefusedBoundaryError } from "../../src/errors.ts";
import { cookie as requestCookie, upkeepMiddleware } from "../../src/hono/index.ts";
import { Collection, cookie, createUpkeep, partial, type Upkeep } from "../../src/index.ts";
import { explain, freshBody, type LivePage, openLivePage } from "../../src/testing/index.ts";
import { type DB, DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

function framesApp(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  const Item = partial(
    "item",
    ({ item }: { item: { id: number; title: string } }) => html`<li id="item_${item.id}">${item.title}</li>`,
  );
  const Top = partial(
    "top",
    ({ top }: { top: { id: number; title: string } }) => html`<li id="top_${top.id}">${top.title}</li>`,
  );
  const Count = partial("count", async ({ list }: { list: string }) => {
    const { n } = await db
      .selectFrom("items")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("list", "=", list)
      .executeTakeFirstOrThrow();
    return html`<span id="count_${list}">${Number(n)}</span>`;
  });
  const Note = partial("note", async ({ owner }: { owner: string }) => {
    const rows = await db.selectFrom("secrets").select("body").where("owner", "=", owner).orderBy("id").execute();
    return html`<p id="note_${owner}">${rows.map((r) => r.body).join(",")}</p>`;
  });
  const Panel = partial("panel", async ({ list }: { list: string }) => {
    const first = await db
      .selectFrom("items")
      .select("title")
      .where("list", "=", list)
      .orderBy("pos")
      .orderBy("id")
      .limit(1)
      .executeTakeFirst();
    return html`<section id="panel_${list}"><h2>${first?.title ?? "-"}</h2>${Note({ owner: "shared" })}</section>`;
  });
  // Reads the viewer's cookie itself: a frame of one viewer, never shared.
  const Mine = partial("mine", async () => {
    const viewer = cookie("viewer") ?? "nobody";
    const rows = await db.selectFrom("secrets").select("body").where("owner", "=", viewer).orderBy("id").execute();
    return html`<div id="mine">${viewer}: ${rows.map((r) => r.body).join(",")}</div>`;
  });
  const Bad = partial("bad", ({ onClick }: { onClick: () => void }) => html`<b id="bad">${typeof onClick}</b>`);
  const TwoRoots = partial("tworoots", () => html`<b id="one">1</b><b id="two">2</b>`);

  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/f/:list", async (c) => {
    const list = c.req.param("list");
    const greeting = requestCookie(c, "viewer") ?? "guest";
    const items = db.selectFrom("items").select(["id", "title"]).where("list", "=", list).orderBy("pos").orderBy("id");
    return c.html(
      html`<!doctype html><html><head><title>${list}</title></head><body><p id="hello">Hello ${greeting}</p>${Count({ list })}${Collection(
        { id: "items", tag: "ul", class: "items", of: items, item: Item },
      )}${Collection({ id: "top", tag: "ol", of: items.limit(2), item: Top })}${Panel({ list })}${Mine({})}</body></html>`,
    );
  });
  // Two collections of one item partial: an item moving between lists leaves one and enters the other.
  app.get("/two", async (c) => {
    const list = (name: string) =>
      Collection({
        id: `list_${name}`,
        tag: "ul",
        of: db.selectFrom("items").select(["id", "title"]).where("list", "=", name).orderBy("pos").orderBy("id"),
        item: Item,
      });
    return c.html(html`<html><body>${list("x")}${list("y")}</body></html>`);
  });
  // Members whose ids come from their titles: two equal titles give two equal ids.
  const Dup = partial(
    "dup",
    ({ dup }: { dup: { title: string } }) => html`<li id="dup_${dup.title}">${dup.title}</li>`,
  );
  app.get("/dups", async (c) =>
    c.html(
      html`<html><body>${Collection({
        id: "dups",
        tag: "ul",
        of: db.selectFrom("items").select("title").where("list", "=", "d").orderBy("id"),
        item: Dup,
      })}</body></html>`,
    ),
  );
  // Reads the theme cookie only once list "c" has items: a frame whose inputs depend on the data.
  const Themed = partial("themed", async () => {
    const rows = await db.selectFrom("items").select("id").where("list", "=", "c").execute();
    const theme = rows.length > 0 ? (cookie("theme") ?? "plain") : "none";
    return html`<p id="themed">${theme} ${rows.length}</p>`;
  });
  // Reads through a raw fragment (refused) once list "r2" has an item titled "raw".
  const Fragile = partial("fragile", async () => {
    const rows = await db.selectFrom("items").select("title").where("list", "=", "r2").execute();
    if (rows.some((r) => r.title === "raw")) await sql`select 1`.execute(db);
    return html`<p id="fragile">${rows.length}</p>`;
  });
  app.get("/data-inputs", async (c) => c.html(html`<html><body>${Themed({})}${Fragile({})}</body></html>`));
  // A queue: a ticket's line looks its assignee's name up itself (in secrets, by the ticket's title), and one partial
  // renders two lists — the tickets "ann" holds, and the LIMIT window of the highest — so a ticket of ann's entering
  // the window is on the page twice, under one id.
  const Ticket = partial("ticket", async ({ ticket }: { ticket: { id: number; title: string } }) => {
    const who = await db.selectFrom("secrets").select("body").where("owner", "=", ticket.title).executeTakeFirst();
    return html`<li id="ticket_${ticket.id}">#${ticket.id} ${who?.body ?? "nobody"}</li>`;
  });
  app.get("/queue", async (c) => {
    const tickets = db.selectFrom("items").select(["id", "title"]).where("list", "=", "q");
    return c.html(
      html`<html><body>${Collection({
        id: "anns",
        tag: "ul",
        of: tickets.where("title", "=", "ann").orderBy("id"),
        item: Ticket,
      })}${Collection({ id: "window", tag: "ol", of: tickets.orderBy("pos", "desc").orderBy("id").limit(2), item: Ticket })}</body></html>`,
    );
  });
  app.get("/bad", async (c) => c.html(html`<html><body>${Bad({ onClick: () => {} })}</body></html>`));
  app.get("/tworoots", async (c) => c.html(html`<html><body>${TwoRoots({})}</body></html>`));
  return app;
}

const patches = (page: LivePage, from = 0) =>
  page.messages.slice(from).filter((m): m is Extract<ServerMessage, { type: "patch" }> => m.type === "patch");
/** The Turbo Stream actions of a patch, as "action target" strings. */
const actions = (patch: string) =>
  [...patch.matchAll(/<turbo-stream action="([a-z]+)"(?: method="morph")? target="([^"]*)"/g)].map(
    (m) => `${m[1]} ${m[2]}`,
  );

for (const dialect of DIALECTS) {
  describe(`frames (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let app: Hono;
    const viewer = (name: string) => ({ headers: { cookie: `viewer=${name}` } });

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
      app = framesApp(upkeep);
      upkeep.use(app);
    });
    after(async () => {
      await upkeep?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);
    const exec = async (statement: string) => {
      await fixture!.exec(statement);
      await upkeep.settle();
    };
    const idOf = async (title: string) =>
      Number(
        (await upkeep.db<DB>().selectFrom("items").select("id").where("title", "=", title).executeTakeFirstOrThrow())
          .id,
      );
    /** Runs a write and returns what it cost and what the page received. */
    const write = async (page: LivePage, statement: string) => {
      const before = { ...upkeep.hub.stats, deoptimizations: { ...upkeep.hub.stats.deoptimizations } };
      const from = page.messages.length;
      await exec(statement);
      const sent = patches(page, from);
      return {
        pageRenders: upkeep.hub.stats.renders - before.renders,
        frameRenders: upkeep.hub.stats.frameRenders - before.frameRenders,
        deoptimizations: Object.fromEntries(
          Object.entries(upkeep.hub.stats.deoptimizations)
            .map(([k, v]) => [k, v - before.deoptimizations[k as keyof typeof before.deoptimizations]])
            .filter(([, v]) => v !== 0),
        ),
        actions: sent.flatMap((p) => actions(p.html)),
        html: sent.map((p) => p.html).join(""),
      };
    };
    const converged = async (page: LivePage, name: string) =>
      assert.equal(page.body(), await freshBody(app, page.url, { cookie: `viewer=${name}` }));

    it("a rename re-renders the member alone and replaces it by id", async () => {
      await exec("insert into items (list, title, pos) values ('a', 'a1', 1), ('a', 'a2', 2), ('a', 'a3', 3)");
      const page = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const id = await idOf("a2");
      const cost = await write(page, `update items set title = 'a2-renamed' where id = ${id}`);
      assert.equal(cost.pageRenders, 0);
      // Both collections' queries run again and each renders its one changed member; the panel reads the first
      // item's title, so it is rendered too (its HTML did not change: no action). The count reads no title.
      assert.deepEqual(cost.actions, [`replace item_${id}`, `replace top_${id}`]);
      assert.equal(cost.frameRenders, 5);
      // The message carries the two members and nothing else.
      assert.equal(
        cost.html,
        `<turbo-stream action="replace" method="morph" target="item_${id}"><template><li id="item_${id}">a2-renamed</li></template></turbo-stream>` +
          `<turbo-stream action="replace" method="morph" target="top_${id}"><template><li id="top_${id}">a2-renamed</li></template></turbo-stream>`,
      );
      await converged(page, "alice");
      page.close();
    });

    it("inserts, deletes and moves become prepend, after and remove actions of single members", async () => {
      const page = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const last = await write(page, "insert into items (list, title, pos) values ('a', 'a4', 4)");
      const a4 = await idOf("a4");
      const a3 = await idOf("a3");
      assert.deepEqual(last.actions, ["replace count_a", `after item_${a3}`]);
      await converged(page, "alice");

      const first = await write(page, "insert into items (list, title, pos) values ('a', 'a0', 0)");
      const a0 = await idOf("a0");
      const a1 = await idOf("a1");
      const a2 = await idOf("a2-renamed");
      // The top-2 window: a0 enters first, a2 is pushed out; the panel shows the new first item.
      assert.deepEqual(
        first.actions.sort(),
        ["prepend items", "prepend top", "remove top_" + a2, "replace count_a", "replace panel_a"].sort(),
      );
      await converged(page, "alice");

      const moved = await write(page, `update items set pos = 10 where id = ${a1}`);
      // a1 moves to the end of the list, and leaves the top-2 window, which a2 enters after a0.
      // A page's removals go first, then replacements, then insertions (see FrameActions).
      assert.deepEqual(moved.actions, [`remove top_${a1}`, `after item_${a4}`, `after top_${a0}`]);
      assert.equal(moved.pageRenders, 0);
      await converged(page, "alice");

      const removed = await write(page, `delete from items where id = ${a0}`);
      assert.ok(removed.actions.includes(`remove item_${a0}`));
      assert.ok(removed.actions.includes(`remove top_${a0}`));
      assert.equal(removed.pageRenders, 0);
      await converged(page, "alice");
      page.close();
    });

    it("many members changing at once re-render the collection element, counted as a deoptimization", async () => {
      await exec(
        "insert into items (list, title, pos) values ('a', 'a5', 5), ('a', 'a6', 6), ('a', 'a7', 7), ('a', 'a8', 8)",
      );
      const page = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const cost = await write(page, "update items set pos = 100 - pos where list = 'a'");
      assert.ok(cost.actions.includes("update items"), cost.actions.join(" "));
      assert.equal(cost.deoptimizations.collection_multi_change, 1);
      assert.equal(cost.pageRenders, 0);
      await converged(page, "alice");
      page.close();
    });

    it("a member moving between two collections is removed from one before it is inserted into the other", async () => {
      await exec("insert into items (list, title, pos) values ('x', 'x1', 1), ('x', 'x2', 2), ('y', 'y1', 1)");
      const page = await openLivePage(upkeep, app, "/two", viewer("alice"));
      const [x2, y1] = [await idOf("x2"), await idOf("y1")];
      const cost = await write(page, `update items set list = 'y', pos = 2 where id = ${x2}`);
      assert.deepEqual(cost.actions, [`remove item_${x2}`, `after item_${y1}`]);
      assert.equal(cost.pageRenders, 0);
      await converged(page, "alice");
      page.close();
    });

    it("members with equal ids make the collection render whole, counted as a deoptimization", async () => {
      await exec("insert into items (list, title, pos) values ('d', 'same', 1)");
      const page = await openLivePage(upkeep, app, "/dups", viewer("alice"));
      const cost = await write(page, "insert into items (list, title, pos) values ('d', 'same', 2)");
      assert.deepEqual(cost.actions, ["update dups"]);
      assert.equal(cost.deoptimizations.collection_member_id_not_unique, 1);
      await converged(page, "alice");
      page.close();
    });

    it("a ticket that entered a LIMIT window, and so is on the page twice, shows its assignee's rename", async () => {
      await exec("insert into secrets (owner, body) values ('ann', 'Ann'), ('zed', 'Zed')");
      await exec("insert into items (list, title, pos) values ('q', 'zed', 9), ('q', 'zed', 8), ('q', 'ann', 1)");
      const page = await openLivePage(upkeep, app, "/queue", viewer("alice"));
      const ann = Number(
        (await upkeep.db<DB>().selectFrom("items").select("id").where("title", "=", "ann").executeTakeFirstOrThrow())
          .id,
      );
      // Ann's ticket enters the window: it is in both lists now, under one id.
      await write(page, `update items set pos = 10 where id = ${ann}`);
      await converged(page, "alice");
      // Ann is renamed: both lines of her ticket must show it (its member frames are folded into their collections:
      // their own reads are the collections', and the ticket's row did not change).
      await write(page, "update secrets set body = 'Ann Smith' where owner = 'ann'");
      assert.equal((page.body().match(/Ann Smith/g) ?? []).length, 2, page.body());
      await converged(page, "alice");
      page.close();
    });

    it("a member leaving its collection while its id is elsewhere on the page too removes its own element", async () => {
      const page = await openLivePage(upkeep, app, "/queue", viewer("alice"));
      const ann = Number(
        (await upkeep.db<DB>().selectFrom("items").select("id").where("title", "=", "ann").executeTakeFirstOrThrow())
          .id,
      );
      // In both lists (in the window since the test before; again if it ran alone).
      await write(page, `update items set pos = 10 where id = ${ann}`);
      assert.equal((page.body().match(new RegExp(`id="ticket_${ann}"`, "g")) ?? []).length, 2, page.body());
      // The ticket leaves the window; the first element with its id on the page is the other list's, which stays.
      await write(page, `update items set pos = 0 where id = ${ann}`);
      await converged(page, "alice");
      assert.match(page.body(), new RegExp(`<ul id="anns"><li id="ticket_${ann}">`));
      page.close();
    });

    it("a member on the page twice keeps its reads with its collection when the collection renders again", async () => {
      const page = await openLivePage(upkeep, app, "/queue", viewer("alice"));
      const ann = Number(
        (await upkeep.db<DB>().selectFrom("items").select("id").where("title", "=", "ann").executeTakeFirstOrThrow())
          .id,
      );
      await write(page, `update items set pos = 10 where id = ${ann}`); // in both lists
      // Ann's list renders again (a new ticket of hers): her first ticket's line is rendered with it, folded again.
      // (No fresh GET here: one would register the whole page again, its frames built anew.)
      await write(page, "insert into items (list, title, pos) values ('q', 'ann', 0)");
      await write(page, "update secrets set body = 'Ann Jones' where owner = 'ann'");
      assert.equal((page.body().match(/Ann Jones/g) ?? []).length, 3, page.body());
      await converged(page, "alice");
      page.close();
    });

    it("a frame that starts reading an input, or whose render is refused, replays its page instead", async () => {
      const page = await openLivePage(upkeep, app, "/data-inputs", { headers: { cookie: "viewer=alice; theme=dark" } });
      const inputs = await write(page, "insert into items (list, title, pos) values ('c', 'c1', 1)");
      assert.equal(inputs.deoptimizations.frame_inputs_changed, 1);
      assert.equal(inputs.pageRenders, 1);
      assert.equal(page.body(), await freshBody(app, "/data-inputs", { cookie: "viewer=alice; theme=dark" }));
      const refused = await write(page, "insert into items (list, title, pos) values ('r2', 'raw', 1)");
      assert.equal(refused.deoptimizations.frame_refused, 1);
      assert.ok(page.reloaded, "the page is no longer live: the browser reloads it");
      page.close();
    });

    it("frames that would put one id on the page twice, or whose HTML is not found, replay the page", async () => {
      await exec("insert into items (list, title, pos) values ('x', 'x3', 3)");
      const page = await openLivePage(upkeep, app, "/two", viewer("alice"));
      const group = [...upkeep.hub.registry.groups()].find((g) => g.url === "/two" && g.local.subscribers.size > 0)!;
      // As if list_x had been rendered after the next write committed but before its fact was planned for it.
      const listX = group.frames.find((f) => f.id === "list_x")!;
      listX.renderOffset = Number.MAX_SAFE_INTEGER;
      const x3 = await idOf("x3");
      const collide = await write(page, `update items set list = 'y', pos = 9 where id = ${x3}`);
      assert.equal(collide.deoptimizations.frame_ids_collide, 1);
      assert.equal(collide.pageRenders, 1);
      await converged(page, "alice");
      page.close();
      // A frame's ancestor whose records no longer hold the frame's HTML: the page is replayed instead.
      const framed = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const groups = [...upkeep.hub.registry.groups()].filter((g) => g.url === "/f/a" && g.local.subscribers.size > 0);
      assert.equal(groups.length, 1);
      const panel = groups[0]!.frames.find((f) => f.id === "panel_a")!;
      panel.html = `<section id="panel_a"></section>`; // no longer holds the note
      const lost = await write(framed, "insert into secrets (owner, body) values ('shared', 'memo3')");
      assert.equal(lost.deoptimizations.frame_not_located, 1);
      assert.equal(lost.pageRenders, 1);
      await converged(framed, "alice");
      framed.close();
    });

    it("a nested fragment is re-rendered alone; a change to its parent re-renders the parent with it, once", async () => {
      const page = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const note = await write(page, "insert into secrets (owner, body) values ('shared', 'memo')");
      assert.deepEqual(note.actions, ["replace note_shared"]);
      assert.equal(note.frameRenders, 1);
      await converged(page, "alice");
      const first = (
        await upkeep
          .db<DB>()
          .selectFrom("items")
          .select(["id", "pos"])
          .where("list", "=", "a")
          .orderBy("pos")
          .executeTakeFirstOrThrow()
      ).id;
      const both = await write(
        page,
        `update items set title = 'first!' where id = ${first}; insert into secrets (owner, body) values ('shared', 'memo2')`,
      );
      assert.ok(both.actions.includes("replace panel_a"), both.actions.join(" "));
      assert.ok(!both.actions.includes("replace note_shared"), "the note is rendered inside its panel");
      assert.match(both.html, /memo2/);
      await converged(page, "alice");
      page.close();
    });

    it("a frame that reads no viewer input is rendered once for every viewer's page", async () => {
      const alice = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const id = await idOf("a4");
      const alone = await write(alice, `update items set title = 'a4-alone' where id = ${id}`);
      const bob = await openLivePage(upkeep, app, "/f/a", viewer("bob"));
      const carol = await openLivePage(upkeep, app, "/f/a", viewer("carol"));
      const from = bob.messages.length;
      const cost = await write(alice, `update items set title = 'a4-shared' where id = ${id}`);
      // Three page groups (the greeting reads the cookie), and the frames render exactly as for one viewer.
      const groups = [...upkeep.hub.registry.groups()].filter((g) => g.url === "/f/a" && g.local.subscribers.size > 0);
      assert.equal(groups.length, 3);
      assert.ok(alone.frameRenders > 0);
      assert.equal(cost.frameRenders, alone.frameRenders);
      assert.equal(cost.pageRenders, 0);
      const sent = patches(bob, from);
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.html, cost.html, "the same bytes go to every viewer");
      for (const [page, name] of [
        [alice, "alice"],
        [bob, "bob"],
        [carol, "carol"],
      ] as const) {
        await converged(page, name);
        page.close();
      }
    });

    it("a frame that reads the viewer's cookie is rendered per viewer; no viewer receives another's bytes", async () => {
      const alice = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const bob = await openLivePage(upkeep, app, "/f/a", viewer("bob"));
      const fromBob = bob.messages.length;
      const cost = await write(alice, "insert into secrets (owner, body) values ('alice', 'alice-private')");
      assert.deepEqual(cost.actions, ["replace mine"]);
      assert.match(cost.html, /alice: alice-private/);
      assert.equal(patches(bob, fromBob).length, 0, "bob's frame does not read alice's rows");
      const fromAlice = alice.messages.length;
      await exec("insert into secrets (owner, body) values ('bob', 'bob-private')");
      assert.equal(patches(alice, fromAlice).length, 0);
      assert.match(
        patches(bob, fromBob)
          .map((p) => p.html)
          .join(""),
        /bob: bob-private/,
      );
      for (const message of bob.messages) assert.doesNotMatch(JSON.stringify(message), /alice-private/);
      for (const message of alice.messages) assert.doesNotMatch(JSON.stringify(message), /bob-private/);
      await converged(alice, "alice");
      await converged(bob, "bob");
      alice.close();
      bob.close();
    });

    it("with frames: false the same write replays the whole page (the comparison the bench makes)", async () => {
      const pageLevel = await createUpkeep({
        database: fixture!.database,
        secret: SECRET,
        mode: "test",
        frames: false,
      });
      try {
        const plainApp = framesApp(pageLevel);
        pageLevel.use(plainApp);
        const page = await openLivePage(pageLevel, plainApp, "/f/a", viewer("alice"));
        const id = await idOf("a4-shared");
        const before = { ...pageLevel.hub.stats };
        await fixture!.exec(`update items set title = 'a4-page-level' where id = ${id}`);
        await pageLevel.settle();
        assert.equal(pageLevel.hub.stats.renders - before.renders, 1);
        assert.equal(pageLevel.hub.stats.frameRenders - before.frameRenders, 0);
        assert.match(
          patches(page)
            .map((p) => p.html)
            .join(""),
          /a4-page-level/,
        );
        assert.equal(page.body(), await freshBody(plainApp, "/f/a", { cookie: "viewer=alice" }));
        page.close();
      } finally {
        await pageLevel.close();
      }
    });

    it("the match report names the frame that reacts and why", async () => {
      const page = await openLivePage(upkeep, app, "/f/a", viewer("alice"));
      const report = explain(upkeep, {
        table: "items",
        op: "insert",
        old: null,
        new: { id: 9999, list: "a", title: "x", pos: 50 },
      });
      const mine = report.matched.filter((m) => m.page.url === "/f/a");
      assert.ok(
        mine.some((m) => m.frame.kind === "collection" && m.frame.id === "items" && m.frame.partial === "item"),
      );
      assert.ok(
        mine.some((m) => m.frame.kind === "fragment" && m.frame.id === "count_a" && m.frame.partial === "count"),
      );
      assert.ok(
        mine.every((m) => m.frame.kind !== "page"),
        "the page frame reads no items",
      );
      assert.ok(mine.every((m) => /items/.test(m.why)));
      assert.ok(
        report.misses.some((m) => m.page.url === "/f/a" && m.frame.id === "mine" && m.reason === "table_not_read"),
      );
      page.close();
    });

    it("a partial whose props cannot be recorded, or that renders no single root with an id, is refused", async () => {
      const refusals: RefusedBoundaryError[] = [];
      app.onError((error) => {
        if (error instanceof RefusedBoundaryError) refusals.push(error);
        return new Response("refused", { status: 500 });
      });
      await app.request("/bad", { headers: { accept: "text/html" } });
      await app.request("/tworoots", { headers: { accept: "text/html" } });
      assert.deepEqual(
        refusals.map((r) => r.code),
        ["refused_frame_props", "refused_frame_root"],
      );
      assert.match(refusals[0]!.message, /props\.onClick is a function/);
      assert.equal(refusals[0]!.frame, "bad");
    });
  });
}
