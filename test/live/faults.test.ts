// The live pipeline's fault model, on both dialects: the follower survives pruning by another process and a new
// ledger incarnation, table-wide facts replay instead of missing, only delivered patches are counted, close()
// stops all work, and one token cannot fan out into many page groups.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { install, openLedger, uninstall } from "../../src/ledger/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, start } from "./fixture.ts";

for (const dialect of DIALECTS) {
  describe(`live pipeline faults (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let ctx: Awaited<ReturnType<typeof start>>;

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      ctx = await start(fixture.database);
      await fixture.exec("insert into items (list, title, pos) values ('a', 'one', 1), ('a', 'two', 2)");
      await ctx.upkeep.settle();
    });
    after(async () => {
      await ctx?.upkeep.close().catch(() => {});
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);

    it("one token sent with 3,000 Host values makes one page group, and a write costs one replay", async () => {
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const html = await response.text();
      const token = /token="([^"]*)"/.exec(html)?.[1] as string;
      const offset = Number(/offset="(\d+)"/.exec(html)?.[1]);
      const incarnation = /incarnation="([^"]*)"/.exec(html)?.[1] as string;
      const groupsBefore = (await ctx.upkeep.stats()).groups;
      const stops: (() => void)[] = [];
      for (let i = 0; i < 3000; i++) {
        stops.push(
          await ctx.upkeep.hub.subscribe(
            { id: `h${i}`, token, offset, incarnation, headers: { host: `evil${i}.example` } },
            { send: () => true },
          ),
        );
      }
      const stats = await ctx.upkeep.stats();
      assert.ok(stats.groups <= groupsBefore + 1, `${stats.groups - groupsBefore} new groups`);
      const renders = stats.renders;
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'three', 3)");
      await ctx.upkeep.settle();
      assert.equal((await ctx.upkeep.stats()).renders - renders, 1);
      for (const stop of stops) stop();
    });

    it("a page served over https is replayed as https", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "https://localhost/where");
      assert.match(page.body(), /https:\/\/localhost\/where/);
      await fixture!.exec("insert into items (list, title, pos) values ('w', 'secure', 1)");
      await ctx.upkeep.settle();
      assert.ok(page.messages.some((m) => m.type === "patch"));
      assert.match(page.body(), /https:\/\/localhost\/where/);
      page.close();
    });

    it("patches to a connection that is already closed are not counted as messages", async () => {
      const open = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const response = await ctx.app.fetch(
        new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }),
      );
      const html = await response.text();
      const attempts: ServerMessage[] = [];
      const stop = await ctx.upkeep.hub.subscribe(
        {
          id: "closed",
          token: /token="([^"]*)"/.exec(html)?.[1] as string,
          offset: Number(/offset="(\d+)"/.exec(html)?.[1]),
          incarnation: /incarnation="([^"]*)"/.exec(html)?.[1] as string,
          headers: { host: "localhost" },
        },
        { send: (m) => attempts.push(m) < 0 }, // a transport whose socket closed: never delivered
      );
      const before = (await ctx.upkeep.stats()).messages;
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'four', 4)");
      await ctx.upkeep.settle();
      assert.ok(attempts.some((m) => m.type === "patch"));
      assert.equal((await ctx.upkeep.stats()).messages - before, 1, "only the open page's patch counts");
      stop();
      open.close();
    });

    it("a TRUNCATE (PostgreSQL) or an oversized image reaches the pages that read the table", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/big");
      const before = (await ctx.upkeep.stats()).factsTableWide;
      // The title is larger than the image bound: its fact names no values, so it is planned table-wide.
      await fixture!.exec(
        dialect === "sqlite"
          ? "insert into items (list, title, pos) values ('big', 'x' || hex(zeroblob(5000000)), 1)"
          : "insert into items (list, title, pos) select 'big', string_agg(md5(random()::text), ''), 1 from generate_series(1, 300000)",
      );
      await ctx.upkeep.settle();
      assert.equal((await ctx.upkeep.stats()).factsTableWide - before, 1);
      assert.equal(page.body(), await freshBody(ctx.app, "/lists/big"));
      if (dialect === "postgres") {
        await fixture!.exec("truncate items");
        await ctx.upkeep.settle();
        assert.equal(page.body(), await freshBody(ctx.app, "/lists/big"));
        await fixture!.exec("insert into items (list, title, pos) values ('a', 'one', 1), ('a', 'two', 2)");
        await ctx.upkeep.settle();
      }
      page.close();
    });

    it("facts pruned by another process before this one planned them: the follower resyncs and pages converge", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/p");
      const ledger = ctx.upkeep.ledger;
      // Hold this process's follower back (a long pause), let another process prune past it, then let it go.
      const read = ledger.read.bind(ledger);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      ledger.read = async (after, options) => {
        await gate;
        return read(after, options);
      };
      const before = (await ctx.upkeep.stats()).resyncs;
      try {
        await fixture!.exec("insert into items (list, title, pos) values ('p', 'pruned-away', 1)");
        const other = await openLedger({ database: fixture!.database });
        await other.releasePosition(ctx.upkeep.hub.processId);
        await other.sync();
        const { horizon } = await other.prune({ olderThanMs: 0 });
        assert.ok(horizon > ctx.upkeep.hub.position, "pruned past this process's position");
        await other.close();
      } finally {
        ledger.read = read;
        release();
      }
      await ctx.upkeep.settle();
      assert.ok((await ctx.upkeep.stats()).resyncs > before, "the follower resynchronised");
      assert.match(page.body(), /pruned-away/);
      assert.equal(page.body(), await freshBody(ctx.app, "/lists/p"));
      await ctx.upkeep.hub.holdPosition();
      page.close();
    });

    it("a reinstall under the running app: every open page reloads, and new pages carry the new incarnation", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      const before = ctx.upkeep.ledger.incarnation;
      await uninstall({ database: fixture!.database });
      await install({ database: fixture!.database });
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'after-reinstall', 9)");
      const deadline = Date.now() + 10_000;
      // The follower has moved to the new incarnation (and capture is back) once the hub's incarnation changed.
      while ((!page.reloaded || ctx.upkeep.hub.incarnation === before) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(page.reloaded, true);
      // Reloaded when the follower met the new incarnation, or already when it met the uninstalled ledger.
      const reload = page.messages.at(-1) as { type: string; id: string; reason: string };
      assert.deepEqual([reload.type, reload.id], ["reload", (page.messages[0] as { id: string }).id]);
      assert.ok(["incarnation_changed", "capture_lost"].includes(reload.reason), reload.reason);
      assert.notEqual(ctx.upkeep.ledger.incarnation, before);
      const fresh = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      assert.equal(fresh.reloaded, false);
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'live-again', 10)");
      await ctx.upkeep.settle();
      assert.match(fresh.body(), /live-again/);
      fresh.close();
    });

    it("close() stops all work: no replay, catch-up or ledger read starts after it resolves", async () => {
      const page = await openLivePage(ctx.upkeep, ctx.app, "/lists/a");
      let fetches = 0;
      const app = ctx.upkeep.hub.app!;
      ctx.upkeep.hub.app = {
        fetch: (request: Request) => {
          fetches++;
          return app.fetch(request);
        },
      };
      let reads = 0;
      const ledger = ctx.upkeep.ledger;
      const read = ledger.read.bind(ledger);
      ledger.read = (after, options) => {
        reads++;
        return read(after, options);
      };
      // Work in flight while closing: a write the hub is about to replay.
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'closing', 11)");
      await ctx.upkeep.hub.close();
      const [fetchesAtClose, readsAtClose] = [fetches, reads];
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'after-close', 12)");
      ledger.poke();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fetches, fetchesAtClose, "no replay after close");
      assert.equal(reads, readsAtClose, "no ledger read after close");
      page.close();
    });
  });
}
