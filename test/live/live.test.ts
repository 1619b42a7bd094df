// The live pipeline end to end in-process, on both dialects: capture → register → plan → replay → deliver.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { WIRE } from "../../src/constants.ts";
import { signToken, verifyToken } from "../../src/deliver/token.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { RefusedBoundaryError, SubscriptionTokenError } from "../../src/errors.ts";
import { explain, freshBody, openLivePage } from "../../src/testing/index.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET, start } from "./fixture.ts";

for (const dialect of DIALECTS) {
  describe(`live pages (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let ctx: Awaited<ReturnType<typeof start>>;

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      ctx = await start(fixture.database);
      await fixture.exec(
        `insert into items (list, title, pos) values ('a', 'one', 1), ('a', 'two', 2), ('b', 'three', 1);
         insert into secrets (owner, body) values ('alice', 'alice-1'), ('bob', 'bob-1');`,
      );
      await ctx.upkeep.settle();
    });
    after(async () => {
      await ctx?.upkeep.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);

    it("an insert through Upkeep's Kysely reaches the page and the page converges", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      await ctx.upkeep.db<any>().insertInto("items").values({ list: "a", title: "four", pos: 3 }).execute();
      await ctx.upkeep.settle();
      assert.equal(page.messages.filter((m) => m.type === "patch").length, 1);
      assert.match(page.body(), /four/);
      assert.equal(page.body(), await freshBody(ctx.app, "/lists/a"));
      page.close();
    });

    it("a change inside an element with an id is delivered as a replacement of that element only", async () => {
      await fixture!.exec("insert into items (list, title, pos) values ('r', 'first', 1), ('r', 'second', 2)");
      await ctx.upkeep.settle();
      // Two GETs of the same page: each browser's first patch is narrowed against exactly the HTML it was served.
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/r");
      const second = await openLivePage(ctx.upkeep, ctx.app, "/lists/r");
      const row = await ctx.upkeep
        .db<any>()
        .selectFrom("items")
        .select("id")
        .where("title", "=", "second")
        .executeTakeFirstOrThrow();
      await fixture!.exec(`update items set title = 'renamed' where id = ${row.id}`);
      await ctx.upkeep.settle();
      for (const p of [page, second]) {
        const patches = p.messages.filter((m) => m.type === "patch");
        assert.equal(patches.length, 1);
        assert.equal(
          (patches[0] as { html: string }).html,
          `<turbo-stream action="replace" method="morph" target="item_${row.id}"><template><li id="item_${row.id}">renamed</li></template></turbo-stream>`,
        );
        assert.equal(p.body(), await freshBody(ctx.app, "/lists/r"));
        p.close();
      }
    });

    it("the match report says which pages a fact reaches and why the others do not", async () => {
      const a = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const b = await openLivePage(ctx.upkeep, ctx.app, "/lists/b");
      const row = { id: 999, list: "a", title: "x", pos: 1 };
      const report = explain(ctx.upkeep, { table: "items", op: "insert", old: null, new: row });
      assert.ok(
        report.matched.some((m) => m.page.url === "/lists/a" && m.page.subscribers >= 1 && m.frame.kind === "page"),
      );
      assert.ok(report.matched.every((m) => m.why.includes("items")));
      assert.ok(!report.matched.some((m) => m.page.url === "/lists/b"));
      assert.ok(report.misses.some((m) => m.page.url === "/lists/b" && m.reason === "predicate_did_not_match"));
      const unrelated = explain(ctx.upkeep, { table: "nothing_reads_this", op: "insert", old: null, new: { id: 1 } });
      assert.equal(unrelated.reason, "no_matching_subscriber");
      assert.deepEqual(unrelated.matched, []);
      const unread = explain(ctx.upkeep, {
        table: "items",
        op: "update",
        old: { ...row, pos: 1 },
        new: { ...row, pos: 1, list: "a" },
      });
      assert.equal(unread.reason, "no_matching_subscriber");
      a.close();
      b.close();
    });

    it("cookie(c, name) records that one cookie, also when the request has no Cookie header", async () => {
      // Anonymous visitors with no cookies and with unrelated ones show the same page: one group, one identity.
      const bare = await openLivePage(ctx.upkeep, ctx.app, "/me");
      const other = await openLivePage(ctx.upkeep, ctx.app, "/me", { headers: { cookie: "tracking=1" } });
      const groups = [...ctx.upkeep.hub.registry.groups()].filter(
        (g) => g.url === "/me" && g.local.subscribers.size > 0,
      );
      assert.equal(groups.length, 1);
      assert.deepEqual(groups[0]!.inputs, ["cookie:user"]);
      bare.close();
      other.close();
    });

    it("a whole-body morph is reported with the reason it could not be narrowed", async () => {
      const deopts = () => ({ ...ctx.upkeep.hub.stats.deoptimizations });
      const page = await openLivePage(ctx.upkeep, ctx.app, "/me", { headers: { cookie: "user=dora" } });
      const before = deopts();
      // A new secret adds a <p> directly inside <body>: no element with an id covers the change.
      await fixture!.exec("insert into secrets (owner, body) values ('dora', 'dora-1')");
      await ctx.upkeep.settle();
      assert.deepEqual(deopts(), { ...before, change_not_covered_by_id: before.change_not_covered_by_id + 1 });
      assert.match((page.messages.at(-1) as { html: string }).html, /targets="body"/);
      // A change inside <p id="s_…"> is narrowed again: no deoptimization.
      await fixture!.exec("update secrets set body = 'dora-2' where owner = 'dora'");
      await ctx.upkeep.settle();
      assert.deepEqual(deopts(), { ...before, change_not_covered_by_id: before.change_not_covered_by_id + 1 });
      assert.match((page.messages.at(-1) as { html: string }).html, /action="replace" method="morph" target="s_/);
      assert.equal(page.body(), await freshBody(ctx.app, "/me", { cookie: "user=dora" }));
      page.close();
    });

    it("a write that cannot affect the page causes no render and no message", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const renders = ctx.upkeep.hub.stats.renders;
      await fixture!.exec("insert into items (list, title, pos) values ('b', 'elsewhere', 9)");
      await fixture!.exec("update items set title = 'three!' where list = 'b'");
      await fixture!.exec("insert into secrets (owner, body) values ('carol', 'c')");
      await ctx.upkeep.settle();
      assert.equal(ctx.upkeep.hub.stats.renders, renders, "no replay for facts outside the page's reads");
      assert.deepEqual(
        page.messages.filter((m) => m.type === "patch"),
        [],
      );
      page.close();
    });

    it("raw SQL from another connection, moves between filters and deletes converge", async () => {
      const a = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const b = await openLivePage(ctx.upkeep, ctx.app, "/lists/b");
      const count = await openLivePage(ctx.upkeep, ctx.app, "/count/b");
      await fixture!.exec("update items set list = 'b' where title = 'one'");
      await fixture!.exec("delete from items where title = 'two'");
      await ctx.upkeep.settle();
      for (const page of [a, b, count]) {
        assert.equal(page.body(), await freshBody(ctx.app, page.url), page.url);
        assert.ok(
          page.messages.some((m) => m.type === "patch"),
          `${page.url} was patched`,
        );
        page.close();
      }
    });

    it("a write landing between the GET and the subscribe is not lost", async () => {
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const html = await response.text();
      const attr = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(html)![1]!;
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'between', 0)");
      await ctx.upkeep.settle();
      const messages: ServerMessage[] = [];
      const stop = await ctx.upkeep.hub.subscribe(
        {
          id: "x",
          token: attr(WIRE.tokenAttr),
          offset: Number(attr(WIRE.offsetAttr)),
          incarnation: attr(WIRE.incarnationAttr),
          headers: {},
        },
        { send: (m) => messages.push(m) > 0 },
      );
      await ctx.upkeep.settle();
      const patch = messages.find((m) => m.type === "patch");
      assert.ok(patch && patch.type === "patch" && patch.html.includes("between"), JSON.stringify(messages));
      stop();
    });

    it("pages are partitioned by the cookies they read, and nobody receives another viewer's bytes", async () => {
      const alice = await openLivePage(ctx.upkeep, ctx.app, "/me", { headers: { cookie: "user=alice; theme=dark" } });
      const alice2 = await openLivePage(ctx.upkeep, ctx.app, "/me", { headers: { cookie: "theme=light; user=alice" } });
      const bob = await openLivePage(ctx.upkeep, ctx.app, "/me", { headers: { cookie: "user=bob" } });
      await fixture!.exec("update secrets set body = 'alice-2' where owner = 'alice'");
      await ctx.upkeep.settle();
      assert.deepEqual(
        bob.messages.filter((m) => m.type === "patch"),
        [],
      );
      for (const page of [alice, alice2]) {
        assert.match(page.body(), /alice-2/);
        assert.doesNotMatch(page.body(), /bob/);
      }
      assert.equal(alice.body(), await freshBody(ctx.app, "/me", { cookie: "user=alice" }));
      await fixture!.exec("update secrets set body = 'bob-2' where owner = 'bob'");
      await ctx.upkeep.settle();
      assert.match(bob.body(), /bob-2/);
      for (const page of [alice, alice2]) assert.doesNotMatch(page.body(), /bob/);
      for (const page of [alice, alice2, bob]) page.close();
    });

    it("a render that starts reading a cookie splits the page group by that cookie's values", async () => {
      const dark = await openLivePage(ctx.upkeep, ctx.app, "/branch", { headers: { cookie: "theme=dark" } });
      const light = await openLivePage(ctx.upkeep, ctx.app, "/branch", { headers: { cookie: "theme=light" } });
      const none = await openLivePage(ctx.upkeep, ctx.app, "/branch");
      assert.match(dark.body(), /none/);
      await fixture!.exec("insert into items (list, title, pos) values ('c', 'first', 1)");
      await ctx.upkeep.settle();
      assert.match(dark.body(), />dark</);
      assert.match(light.body(), />light</);
      assert.match(none.body(), />plain</);
      await fixture!.exec("insert into items (list, title, pos) values ('c', 'second', 2)");
      await ctx.upkeep.settle();
      for (const [page, cookie] of [
        [dark, "theme=dark"],
        [light, "theme=light"],
        [none, ""],
      ] as const) {
        assert.equal(page.body(), await freshBody(ctx.app, "/branch", cookie ? { cookie } : {}));
        page.close();
      }
    });

    it("a page whose GET stops answering 200 is told to reload, as a fresh GET would not show it", async () => {
      await fixture!.exec("insert into items (list, title, pos) values ('z', 'doomed', 1)");
      await ctx.upkeep.settle();
      const row = await ctx.upkeep
        .db<any>()
        .selectFrom("items")
        .select("id")
        .where("title", "=", "doomed")
        .executeTakeFirstOrThrow();
      const page = await openLivePage(ctx.upkeep, ctx.app, `/items/${row.id}`);
      await fixture!.exec("update items set title = 'still here' where title = 'doomed'");
      await ctx.upkeep.settle();
      assert.match(page.body(), /still here/);
      await fixture!.exec("delete from items where title = 'still here'");
      await ctx.upkeep.settle();
      assert.equal(page.reloaded, true);
      assert.deepEqual(page.messages.at(-1), {
        type: "reload",
        id: (page.messages[0] as { id: string }).id,
        reason: "status_404",
      });
    });

    it("a subscriber sending another Host header cannot change what other viewers' replays render", async () => {
      const honest = await openLivePage(ctx.upkeep, ctx.app, "/where");
      const evil = await openLivePage(ctx.upkeep, ctx.app, "/where", { headers: { host: "evil.example" } });
      await fixture!.exec("insert into items (list, title, pos) values ('w', 'one', 1)");
      await ctx.upkeep.settle();
      assert.match(honest.body(), /http:\/\/localhost\/where/);
      assert.doesNotMatch(honest.body(), /evil/);
      // Replays run against the origin of the page's own GET, which its token carries, never a subscriber's Host.
      assert.doesNotMatch(evil.body(), /evil/);
      honest.close();
      evil.close();
    });

    it("tokens: forged, tampered, expired and another viewer's are refused with their codes", async () => {
      const response = await ctx.app.fetch(
        new Request("http://localhost/me", { headers: { accept: "text/html", cookie: "user=alice" } }),
      );
      const token = /token="([^"]*)"/.exec(await response.text())![1]!;
      const claims = verifyToken(token, SECRET);
      const request = (t: string, cookie: string) => ({
        id: "t",
        token: t,
        offset: claims.offset,
        incarnation: claims.incarnation,
        headers: { cookie },
      });
      const sink = { send: () => true };
      const refused = async (t: string, cookie: string, code: string) => {
        await assert.rejects(ctx.upkeep.hub.subscribe(request(t, cookie), sink), (e: unknown) => {
          assert.ok(e instanceof SubscriptionTokenError);
          assert.equal(e.code, code);
          return true;
        });
      };
      await refused(token, "user=bob", "token_identity_mismatch");
      await refused(token, "", "token_identity_mismatch");
      await refused(signToken(claims, "another-secret-0123456789abcdef012345"), "user=alice", "token_forged");
      await refused(signToken({ ...claims, exp: Date.now() - 1 }, SECRET), "user=alice", "token_expired");
      await refused(`${token.slice(0, -2)}xx`, "user=alice", "token_forged");
      await refused("garbage", "user=alice", "token_malformed");
      const ok = await ctx.upkeep.hub.subscribe(request(token, "user=alice"), sink);
      ok();
    });

    it("an offset below the pruned horizon is answered with a reload", async () => {
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const token = /token="([^"]*)"/.exec(await response.text())![1]!;
      const claims = verifyToken(token, SECRET);
      await fixture!.exec("insert into items (list, title, pos) values ('p', 'pruned-1', 1), ('p', 'pruned-2', 2)");
      await ctx.upkeep.settle();
      const head = await ctx.upkeep.ledger.sync();
      // This process's hold protects the page's offset (its GET registered it); with the hold gone (a paused
      // process whose lease expired), another process's pruning can pass it.
      await ctx.upkeep.ledger.releasePosition(ctx.upkeep.hub.processId);
      const { horizon } = await ctx.upkeep.ledger.prune({ olderThanMs: 0, atOrBelow: head });
      assert.ok(horizon > claims.offset, `pruned past the page's offset (${horizon} > ${claims.offset})`);
      const messages: ServerMessage[] = [];
      await ctx.upkeep.hub.subscribe(
        { id: "old", token, offset: claims.offset, incarnation: claims.incarnation, headers: {} },
        { send: (m) => messages.push(m) > 0 },
      );
      assert.deepEqual(messages, [{ type: "reload", id: "old", reason: "offset_too_old" }]);
    });

    it("an offset from another incarnation is answered with a reload", async () => {
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const token = /token="([^"]*)"/.exec(await response.text())![1]!;
      const claims = verifyToken(token, SECRET);
      const messages: ServerMessage[] = [];
      const forged = signToken({ ...claims, incarnation: "another" }, SECRET);
      await ctx.upkeep.hub.subscribe(
        { id: "r", token: forged, offset: claims.offset, incarnation: "another", headers: {} },
        { send: (m) => messages.push(m) > 0 },
      );
      assert.deepEqual(messages, [{ type: "reload", id: "r", reason: "incarnation_mismatch" }]);
    });

    it("a query Upkeep cannot analyse is refused loudly in test mode and served non-live in production", async () => {
      const response = await ctx.app.fetch(new Request("http://localhost/raw", { headers: { accept: "text/html" } }));
      assert.equal(response.status, 500);
      // The choice is configurable apart from the mode.
      const lenient = await start(fixture!.database, "test", { refusals: "warn" });
      const warnBefore = console.warn;
      console.warn = () => {};
      try {
        const r = await lenient.app.fetch(new Request("http://localhost/raw", { headers: { accept: "text/html" } }));
        assert.equal(r.status, 200);
      } finally {
        console.warn = warnBefore;
        await lenient.upkeep.close();
      }
      const production = await start(fixture!.database, "production");
      const warn = console.warn;
      const warnings: string[] = [];
      console.warn = (m: string) => warnings.push(m);
      try {
        const r = await production.app.fetch(new Request("http://localhost/raw", { headers: { accept: "text/html" } }));
        assert.equal(r.status, 200);
        assert.doesNotMatch(await r.text(), new RegExp(WIRE.streamSourceTag));
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, /opaque_predicate/);
        assert.match(warnings[0]!, /page: \/raw/);
      } finally {
        console.warn = warn;
        await production.upkeep.close();
      }
      // In development the browser gets a page naming the code, the page, the SQL and the fix; the log gets a
      // structured record of the same.
      const development = await start(fixture!.database, "development");
      const error = console.error;
      const records: string[] = [];
      console.error = (m: string) => records.push(m);
      try {
        const r = await development.app.fetch(
          new Request("http://localhost/raw", { headers: { accept: "text/html" } }),
        );
        assert.equal(r.status, 500);
        const page = await r.text();
        for (const part of ["refused_opaque_predicate", "/raw", "title like", "use structural conditions"]) {
          assert.ok(page.includes(part), `${part} in the development page`);
        }
        const record = JSON.parse(records[0]!);
        assert.equal(record.event, "upkeep.refusal");
        assert.equal(record.code, "refused_opaque_predicate");
        assert.equal(record.url, "/raw");
        assert.match(record.sql, /title like/);
        assert.match(record.fix, /structural conditions/);
      } finally {
        console.error = error;
        await development.upkeep.close();
      }
    });

    it("a render that writes is refused (its replays would write again)", async () => {
      const errors: unknown[] = [];
      const error = console.error;
      console.error = (e: unknown) => errors.push(e);
      try {
        for (const url of ["http://localhost/counted", "http://localhost/counted?raw"]) {
          const r = await ctx.app.fetch(new Request(url, { headers: { accept: "text/html" } }));
          assert.equal(r.status, 500);
        }
      } finally {
        console.error = error;
      }
      const refused = errors.filter((e) => e instanceof RefusedBoundaryError && e.code === "refused_write_in_render");
      assert.equal(refused.length, 2);
    });

    it("non-HTML responses are left alone", async () => {
      const r = await ctx.app.fetch(new Request("http://localhost/plain.json"));
      assert.equal(r.headers.get("content-type")?.includes("json"), true);
      assert.doesNotMatch(await r.text(), new RegExp(WIRE.streamSourceTag));
    });

    it("a page resumes on another process: the new process replays it and patches it to current state", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const html = await response.text();
      const attr = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(html)![1]!;
      const other = await start(fixture!.database);
      try {
        await fixture!.exec("insert into items (list, title, pos) values ('a', 'while-away', 5)");
        const messages: ServerMessage[] = [];
        await other.upkeep.hub.subscribe(
          {
            id: "p",
            token: attr(WIRE.tokenAttr),
            offset: Number(attr(WIRE.offsetAttr)),
            incarnation: attr(WIRE.incarnationAttr),
            headers: {},
          },
          { send: (m) => messages.push(m) > 0 },
        );
        await other.upkeep.settle();
        const patch = messages.find((m) => m.type === "patch");
        assert.ok(patch && patch.type === "patch" && patch.html.includes("while-away"));
        // This process never served the page: it cannot know its HTML, so the whole body is sent, and says why.
        assert.equal(other.upkeep.hub.stats.deoptimizations.html_not_known, 1);
      } finally {
        await other.upkeep.close();
        page.close();
      }
    });

    it("many subscribers of one public page share one replay per write", async () => {
      const pages = await Promise.all(Array.from({ length: 20 }, () => openLivePage(ctx.upkeep, ctx.app, "/lists/b")));
      const renders = ctx.upkeep.hub.stats.renders;
      await fixture!.exec("insert into items (list, title, pos) values ('b', 'shared', 7)");
      await ctx.upkeep.settle();
      assert.equal(ctx.upkeep.hub.stats.renders - renders, 1);
      for (const page of pages) {
        assert.match(page.body(), /shared/);
        page.close();
      }
    });

    it("separate commits within the coalescing window share one replay", async () => {
      const wide = await start(fixture!.database, "test", { coalesceMs: 300 });
      try {
        const page = await openLivePage(wide.upkeep, wide.app, "/lists/a");
        const renders = wide.upkeep.hub.stats.renders;
        const db = wide.upkeep.db<any>();
        await db.insertInto("items").values({ list: "a", title: "burst-1", pos: 20 }).execute();
        await db.insertInto("items").values({ list: "a", title: "burst-2", pos: 21 }).execute();
        await db.updateTable("items").set({ title: "burst-2!" }).where("title", "=", "burst-2").execute();
        await wide.upkeep.settle();
        assert.equal(wide.upkeep.hub.stats.renders - renders, 1);
        assert.equal(page.body(), await freshBody(wide.app, "/lists/a"));
        page.close();
      } finally {
        await wide.upkeep.close();
      }
    });

    it("a transaction of several writes is coalesced into one replay", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const renders = ctx.upkeep.hub.stats.renders;
      await ctx.upkeep
        .db<any>()
        .transaction()
        .execute(async (tx) => {
          for (let i = 0; i < 5; i++)
            await tx
              .insertInto("items")
              .values({ list: "a", title: `tx${i}`, pos: 10 + i })
              .execute();
        });
      await ctx.upkeep.settle();
      assert.equal(ctx.upkeep.hub.stats.renders - renders, 1);
      assert.equal(page.body(), await freshBody(ctx.app, "/lists/a"));
      page.close();
    });
  });
}
