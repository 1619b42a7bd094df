// Retention per table through createUpkeep, on both dialects: the policies in force, the pruning timer, and the
// readers that now depend only on the tables they read — a page resuming from an offset (reload only when a table it
// read was pruned past it), the changefeed's 409, history and rowAt.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import type { Hono } from "hono";
import { signToken, verifyToken } from "../../src/deliver/token.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { ConfigError, createUpkeep, OffsetTooOldError, type Upkeep } from "../../src/index.ts";
import { createApp, DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

for (const dialect of DIALECTS) {
  describe(`retention per table (${dialect})`, () => {
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
        // items keeps every fact; secrets only what a live process holds; "secret" is a typo the app made.
        retention: { default: "forever", tables: { secrets: "minimal", secret: "minimal" } },
        changefeed: { authorize: () => ({ tables: "*" }) },
        logger: { info() {}, warn: (_record, message) => warnings.push(message ?? ""), error() {} },
      });
      app = createApp(upkeep);
      upkeep.use(app);
      await fixture.exec("insert into items (list, title, pos) values ('a', 'one', 1)");
      await fixture.exec("insert into secrets (owner, body) values ('alice', 'alice-1')");
      await upkeep.settle();
    });
    after(async () => {
      await upkeep?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);

    /** A live GET: its token and the claims it signs. */
    async function page(url: string, headers: Record<string, string> = {}) {
      const response = await app.fetch(
        new Request(`http://localhost${url}`, { headers: { accept: "text/html", ...headers } }),
      );
      const token = /token="([^"]*)"/.exec(await response.text())?.[1] as string;
      return { token, claims: verifyToken(token, SECRET) };
    }

    async function resume(token: string, offset: number, headers: Record<string, string> = {}) {
      const messages: ServerMessage[] = [];
      const unsubscribe = await upkeep.hub.subscribe(
        { id: "resumed", token, offset, incarnation: upkeep.ledger.incarnation, headers },
        { send: (m) => messages.push(m) > 0 },
      );
      unsubscribe();
      return messages[0];
    }

    it("the policies in force are checked and shown; a table that is not captured is named in a warning", async () => {
      assert.deepEqual(upkeep.retention, {
        default: "forever",
        tables: { secrets: "minimal", secret: "minimal" },
      });
      assert.ok(
        warnings.some((w) => /retention names secret, not captured/.test(w)),
        `warnings: ${JSON.stringify(warnings)}`,
      );
      const refused = async (options: Record<string, unknown>, message: RegExp) =>
        assert.rejects(
          createUpkeep({ database: fixture!.database, secret: SECRET, mode: "test", ...options }),
          (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.equal(e.code, "config");
            assert.match(e.message, message);
            return true;
          },
        );
      await refused(
        { retention: { tables: { secrets: "short" } } },
        /Unknown retention policy "short" for table secrets/,
      );
      await refused({ retention: { default: { windowMs: -1 } } }, /retention window of the default is -1/);
      await refused({ retentionMs: -5 }, /retention window of the default \(retentionMs\) is -5/);
      await refused({ retentionMs: 1000, retention: { default: "minimal" } }, /both retentionMs and retention.default/);
    });

    it("a page resumes unless a table it read was pruned past its offset; the changefeed and rowAt likewise", async () => {
      const list = await page("/lists/a");
      const me = await page("/me", { cookie: "user=alice" });
      assert.deepEqual(list.claims.tables, ["items"]);
      assert.deepEqual(me.claims.tables, ["secrets"]);
      await fixture!.exec("insert into items (list, title, pos) values ('a', 'two', 2)");
      await fixture!.exec("insert into secrets (owner, body) values ('alice', 'alice-2')");
      await upkeep.settle();
      const head = await upkeep.ledger.sync();
      // Another process prunes while this one's hold is gone (a paused process whose lease expired).
      await upkeep.ledger.releasePosition(upkeep.hub.processId);
      await upkeep.ledger.prune({ retention: upkeep.retention, atOrBelow: head });
      const secrets = await upkeep.ledger.horizon(["secrets"]);
      assert.ok(secrets > me.claims.offset, `secrets pruned past the page's offset (${secrets})`);
      assert.equal(await upkeep.ledger.horizon(["items"]), 0);

      assert.deepEqual(await resume(list.token, list.claims.offset), {
        type: "subscribed",
        id: "resumed",
        offset: list.claims.offset,
      });
      assert.deepEqual(await resume(me.token, me.claims.offset, { cookie: "user=alice" }), {
        type: "reload",
        id: "resumed",
        reason: "offset_too_old",
      });
      // A token signed before tables were recorded is checked against every table's horizon, as before.
      const { tables: _tables, ...untabled } = list.claims;
      assert.deepEqual(await resume(signToken(untabled, SECRET), list.claims.offset), {
        type: "reload",
        id: "resumed",
        reason: "offset_too_old",
      });

      const changes = (query: string) => app.fetch(new Request(`http://localhost/upkeep/changes?${query}`));
      const items = await changes(`after=${list.claims.offset}&tables=items`);
      assert.equal(items.status, 200);
      assert.deepEqual(
        (await items.json()).facts.map((f: { table: string; new: { title: string } }) => [f.table, f.new.title]),
        [["items", "two"]],
      );
      for (const query of [`after=${me.claims.offset}&tables=secrets,items`, `after=${me.claims.offset}`]) {
        const stale = await changes(query);
        assert.equal(stale.status, 409, query);
        const body = await stale.json();
        assert.equal(body.error, "cursor_too_old");
        assert.equal(body.table, "secrets");
        assert.equal(body.oldest, secrets + 1);
      }

      const history = await upkeep.history("secrets", { id: 1 });
      assert.equal(history.horizon, secrets);
      await assert.rejects(upkeep.rowAt("secrets", { id: 1 }, 0), (e: unknown) => {
        assert.ok(e instanceof OffsetTooOldError);
        assert.equal(e.table, "secrets");
        assert.match(e.message, /Facts of secrets after offset 0 were pruned/);
        return true;
      });
      const first = await upkeep.rowAt("items", { id: 1 }, 0);
      assert.deepEqual(first, { row: null }, "items keeps its whole history: as of 0 its first row did not exist");
    });

    it("retain() prunes each table by its own policy, up to what the process holds", async () => {
      // Its own database: the pages above are held by this process (a browser may still resume them).
      const own = (await fixtureDatabase(dialect)) as Fixture;
      const other = await createUpkeep({ database: own.database, secret: SECRET, mode: "test", install: true });
      try {
        await own.exec("insert into secrets (owner, body) values ('bob', 'bob-1')");
        await own.exec("insert into items (list, title, pos) values ('b', 'three', 1)");
        await other.settle();
        const head = await other.ledger.sync();
        other.retain({ default: "forever", tables: { secrets: "minimal" } }, 20);
        const deadline = Date.now() + 5000;
        while ((await other.ledger.horizon(["secrets"])) === 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.deepEqual(await other.ledger.horizons(), { floor: 0, tables: { secrets: 1 } });
        assert.ok(head >= 2);
        assert.equal((await other.history("items", { id: 1 })).facts[0]?.op, "insert");
      } finally {
        await other.close();
        await own.drop();
      }
    });
  });
}
