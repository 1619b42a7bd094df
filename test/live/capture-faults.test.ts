// The live pipeline when capture is at fault under a running app. On PostgreSQL with both capture modes: pages that
// filter on or show a STORED generated column follow the writes that change it, and a TRUNCATE of one partition
// reaches the pages that read its partitioned table. On both dialects and every capture mode: when capture is lost
// under the app (its facts table dropped, `upkeep uninstall`, the replication slot dropped) the fault is logged once
// with its fix, every open page reloads, and capture comes back as a new incarnation, or pages are served as
// ordinary, non-live pages until it is back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import pg from "pg";
import { LEDGER, WIRE } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { install, uninstall } from "../../src/ledger/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { createTestDatabase, logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { createApp, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

interface DB {
  g: { id: number; a: number; b: number };
  events: { id: number; region: string };
}

const logicalSkip = await logicalSkipReason();

function appOf(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/b/:b", async (c) => {
    const rows = await db
      .selectFrom("g")
      .select(["id", "a"])
      .where("b", "=", Number(c.req.param("b")))
      .orderBy("id")
      .execute();
    return c.html(html`<html><body><ul>${rows.map((r) => html`<li id="g_${r.id}">${r.a}</li>`)}</ul></body></html>`);
  });
  // Shows only the generated column: an update of `a` changes what it shows.
  app.get("/doubles", async (c) => {
    const rows = await db.selectFrom("g").select(["id", "b"]).orderBy("id").execute();
    return c.html(html`<html><body><ul>${rows.map((r) => html`<li id="g_${r.id}">${r.b}</li>`)}</ul></body></html>`);
  });
  app.get("/events/:region", async (c) => {
    const rows = await db.selectFrom("events").select("id").where("region", "=", c.req.param("region")).execute();
    return c.html(html`<html><body><p id="n">${rows.length}</p></body></html>`);
  });
  // Waits, when a gate is set, after its render offset was taken and before it reads.
  app.get("/slow", async (c) => {
    const gate = slowGate;
    slowGate = null;
    if (gate) {
      gate.arrived();
      await gate.open;
    }
    const rows = await db.selectFrom("g").select(["id", "a"]).orderBy("id").execute();
    return c.html(html`<html><body><ul>${rows.map((r) => html`<li id="g_${r.id}">${r.a}</li>`)}</ul></body></html>`);
  });
  upkeep.use(app);
  return app;
}

let slowGate: { arrived(): void; open: Promise<void> } | null = null;

for (const capture of ["logical", "triggers"] as const) {
  const skip = !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;

  describe(`live pages and capture faults (PostgreSQL, ${capture})`, { skip }, () => {
    let database: Awaited<ReturnType<typeof createTestDatabase>>;
    let client: pg.Client;
    let upkeep: Upkeep;
    let app: Hono;

    before(async () => {
      database = await createTestDatabase("upkeep_capture");
      client = new pg.Client({ connectionString: database.url as string });
      await client.connect();
      await client.query(
        "CREATE TABLE g (id integer PRIMARY KEY, a integer, b integer GENERATED ALWAYS AS (a * 2) STORED)",
      );
      await client.query("INSERT INTO g (id, a) VALUES (1, 22), (2, 5)");
      if (capture === "logical") {
        await client.query(`CREATE TABLE events (id integer, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
          CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
          CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
          INSERT INTO events VALUES (1, 'eu'), (2, 'eu'), (3, 'us')`);
      }
      upkeep = await createUpkeep({
        database: database.url as string,
        secret: SECRET,
        mode: "test",
        install: true,
        capture,
      });
      app = appOf(upkeep);
    });
    after(async () => {
      await upkeep?.close().catch(() => {});
      await client?.end().catch(() => {});
      await database?.drop();
    });

    test("a page filtering on a STORED generated column follows the writes that move rows in and out of it", async () => {
      const page = await openLivePage(upkeep, app, "/b/44");
      assert.match(page.body(), /g_1/);
      // b 10 → 12: neither image has b = 44, and the planner can tell (the images carry b), so nothing renders.
      const renders = (await upkeep.stats()).renders;
      await client.query("UPDATE g SET a = 6 WHERE id = 2");
      await upkeep.settle();
      assert.equal((await upkeep.stats()).renders, renders, "a write the page cannot show renders nothing");
      await client.query("UPDATE g SET a = 23 WHERE id = 1"); // b 44 → 46: the row leaves the page
      await upkeep.settle();
      assert.equal(page.body(), await freshBody(app, "/b/44"));
      assert.doesNotMatch(page.body(), /g_1/);
      await client.query("UPDATE g SET a = 22 WHERE id = 2"); // b 10 → 44: the row enters it
      await upkeep.settle();
      assert.equal(page.body(), await freshBody(app, "/b/44"));
      assert.match(page.body(), /g_2/);
      page.close();
    });

    if (capture === "logical") {
      test("a TRUNCATE of one partition reaches the pages that read its partitioned table", async () => {
        const page = await openLivePage(upkeep, app, "/events/eu");
        assert.match(page.body(), /<p id="n">2<\/p>/);
        await client.query("TRUNCATE events_eu");
        await upkeep.settle();
        assert.match(page.body(), /<p id="n">0<\/p>/);
        assert.equal(page.body(), await freshBody(app, "/events/eu"));
        page.close();
      });
    }

    test("a render that started before the ledger became a new incarnation is not registered with its old offset: its page reloads, and the next render of the page is live", async () => {
      for (let id = 10; id < 13; id++) await client.query("INSERT INTO g (id, a) VALUES ($1, 1)", [id]);
      await upkeep.settle();
      let arrived!: () => void;
      const atGate = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      let open!: () => void;
      slowGate = { arrived, open: new Promise<void>((resolve) => (open = resolve)) };
      const slow = app.fetch(new Request("http://localhost/slow", { headers: { accept: "text/html" } }));
      await atGate;
      // Deleting facts by hand truncates the log: a new incarnation, whose offsets are not the old ones.
      const before = upkeep.ledger.incarnation;
      await client.query(`DELETE FROM ${LEDGER.factsTable}`);
      await client.query("INSERT INTO g (id, a) VALUES (13, 1)");
      await until(
        () => upkeep.ledger.incarnation !== before && upkeep.hub.incarnation !== before,
        "the hub moves to the new incarnation",
      );
      open();
      const stale = await (await slow).text();
      const answers: ServerMessage[] = [];
      await upkeep.hub.subscribe(
        {
          id: "stale",
          token: attribute(stale, "token"),
          offset: Number(attribute(stale, "offset")),
          incarnation: attribute(stale, "incarnation"),
          headers: { host: "localhost", accept: "text/html" },
        },
        { send: (m) => answers.push(m) > 0 },
      );
      assert.deepEqual(answers, [{ type: "reload", id: "stale", reason: "incarnation_mismatch" }]);
      // The page's next render (the reload) is live, and follows writes.
      const page = await openLivePage(upkeep, app, "/slow");
      await client.query("UPDATE g SET a = 77 WHERE id = 10");
      await upkeep.settle();
      assert.match(page.body(), /<li id="g_10">77<\/li>/);
      assert.equal(page.body(), await freshBody(app, "/slow"));
      page.close();
    });

    test("a page showing only a STORED generated column is updated when the column it is computed from changes", async () => {
      const page = await openLivePage(upkeep, app, "/doubles");
      await client.query("UPDATE g SET a = 50 WHERE id = 1");
      await upkeep.settle();
      assert.match(page.body(), /<li id="g_1">100<\/li>/);
      assert.equal(page.body(), await freshBody(app, "/doubles"));
      page.close();
    });
  });
}

// ── capture lost under a running app ─────────────────────────────────────────────────────────────────────────

const variants = [
  { dialect: "sqlite", capture: undefined, name: "sqlite" },
  { dialect: "postgres", capture: "triggers", name: "PostgreSQL, triggers" },
  { dialect: "postgres", capture: "logical", name: "PostgreSQL, logical" },
] as const;

/** Waits until `check` holds (polling); fails naming `what` if it never does. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`never happened: ${what}`);
}

async function isLive(app: { fetch(r: Request): Response | Promise<Response> }, url: string): Promise<boolean> {
  const response = await app.fetch(new Request(`http://localhost${url}`, { headers: { accept: "text/html" } }));
  return (await response.text()).includes(`<${WIRE.streamSourceTag}`);
}

for (const { dialect, capture, name } of variants) {
  const skip =
    dialect === "postgres" && !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;

  describe(`capture lost under a running app (${name})`, { skip }, () => {
    /** A running app on a fresh database, its log, and the database to break. */
    async function running(
      options: { schemaChanges?: "refresh" | "report"; refusals?: "throw" | "warn" },
      body: (ctx: {
        upkeep: Upkeep;
        app: ReturnType<typeof createApp>;
        fixture: Fixture;
        logged: string[];
      }) => Promise<void>,
    ) {
      const fixture = (await fixtureDatabase(dialect)) as Fixture;
      const logged: string[] = [];
      const record = (_: unknown, message?: string) => logged.push(message ?? "");
      const upkeep = await createUpkeep({
        database: fixture.database,
        secret: SECRET,
        mode: "test",
        install: true,
        capture,
        ...options,
        logger: { info: () => {}, warn: record, error: record },
      });
      const app = createApp(upkeep);
      upkeep.use(app);
      try {
        await fixture.exec("insert into items (list, title, pos) values ('a', 'one', 1)");
        await upkeep.settle();
        await body({ upkeep, app, fixture, logged });
      } finally {
        await upkeep.close().catch(() => {});
        await fixture.drop();
      }
    }

    test("the ledger's facts table dropped: installed again at once (a new incarnation), open pages reload, writes succeed and reach pages again; logged once with its fix", () =>
      running({}, async ({ upkeep, app, fixture, logged }) => {
        const page = await openLivePage(upkeep, app, "/lists/a");
        await fixture.exec(`drop table ${LEDGER.factsTable}`);
        await until(() => page.reloaded, "the open page reloads");
        assert.equal((page.messages.at(-1) as { reason: string }).reason, "incarnation_changed");
        // The app's writes succeed (on SQLite the triggers insert into the facts table, installed again), and
        // are captured.
        await until(async () => {
          try {
            await fixture.exec("insert into items (list, title, pos) values ('a', 'after', 2)");
            return true;
          } catch {
            return false;
          }
        }, "a write succeeds");
        const fresh = await openLivePage(upkeep, app, "/lists/a");
        await fixture.exec("insert into items (list, title, pos) values ('a', 'live-again', 3)");
        await upkeep.settle();
        assert.match(fresh.body(), /live-again/);
        assert.equal(fresh.body(), await freshBody(app, "/lists/a"));
        // (The repair's line is written once it finished; pages may reload a little before.)
        await until(() => logged.some((m) => /installed (it|them) again/.test(m)), "the repair is logged");
        const repaired = logged.filter((m) => /facts table|ledger tables/.test(m));
        assert.equal(repaired.length, 1, logged.join("\n"));
        assert.match(repaired[0] as string, /installed (it|them) again.*new incarnation.*\n {2}fix: /s);
        fresh.close();
      }));

    test("`upkeep uninstall` under a running app: logged once (writes are not said to fail), open pages reload, pages are not live until a reinstall", () =>
      running({ refusals: "warn" }, async ({ upkeep, app, fixture, logged }) => {
        const page = await openLivePage(upkeep, app, "/lists/a");
        await uninstall({ database: fixture.database });
        await until(() => page.reloaded, "the open page reloads");
        assert.equal((page.messages.at(-1) as { reason: string }).reason, "capture_lost");
        await fixture.exec("insert into items (list, title, pos) values ('a', 'uninstalled', 2)");
        const gone = logged.filter((m) => m.includes("is gone"));
        assert.equal(gone.length, 1, logged.join("\n"));
        assert.match(gone[0] as string, /writes are not affected/);
        assert.match(gone[0] as string, /fix: run `npx upkeep install --database .*remove createUpkeep/);
        assert.ok(!logged.some((m) => /fail/.test(m) && !/refus/.test(m)), logged.join("\n"));
        // Pages render, as ordinary pages, with their current data.
        assert.equal(await isLive(app, "/lists/a"), false);
        assert.match(await freshBody(app, "/lists/a"), /uninstalled/);
        const before = upkeep.ledger.incarnation;
        await install({ database: fixture.database, capture });
        // The follower adopts the new incarnation (a page rendered before it did would reload once more).
        await until(() => upkeep.hub.incarnation !== before, "the new incarnation is adopted");
        await until(() => isLive(app, "/lists/a"), "pages are live again after the reinstall");
        const fresh = await openLivePage(upkeep, app, "/lists/a");
        await fixture.exec("insert into items (list, title, pos) values ('a', 'reinstalled', 3)");
        await upkeep.settle();
        assert.match(
          fresh.body(),
          /reinstalled/,
          JSON.stringify(fresh.messages) +
            logged.join("\n") +
            JSON.stringify(await upkeep.ledger.read(0).catch(String)),
        );
        fresh.close();
      }));

    if (capture === "logical") {
      test("the replication slot dropped: open pages reload, an old page's offset is refused, capture is created again (a new incarnation) and later writes reach pages; logged once with its fix", () =>
        running({}, async ({ upkeep, app, fixture, logged }) => {
          const page = await openLivePage(upkeep, app, "/lists/a");
          const old = await app.fetch(new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }));
          const html = await old.text();
          await dropSlot(fixture.database);
          await until(() => page.reloaded, "the open page reloads");
          assert.equal((page.messages.at(-1) as { reason: string }).reason, "incarnation_changed");
          // A browser resuming the page rendered before, with its offset of the old incarnation, rebuilds from a
          // fresh GET.
          const answers: ServerMessage[] = [];
          await upkeep.hub.subscribe(
            {
              id: "old",
              token: attribute(html, "token"),
              offset: Number(attribute(html, "offset")),
              incarnation: attribute(html, "incarnation"),
              headers: { host: "localhost", accept: "text/html" },
            },
            { send: (m) => answers.push(m) > 0 },
          );
          assert.deepEqual(answers, [{ type: "reload", id: "old", reason: "incarnation_mismatch" }]);
          const fresh = await openLivePage(upkeep, app, "/lists/a");
          await fixture.exec("insert into items (list, title, pos) values ('a', 'captured-again', 2)");
          await upkeep.settle();
          assert.match(fresh.body(), /captured-again/);
          await until(() => logged.some((m) => /Upkeep created a new one/.test(m)), "the repair is logged");
          const lines = logged.filter((m) => m.includes("replication slot"));
          assert.equal(lines.length, 1, logged.join("\n"));
          assert.match(lines[0] as string, /was dropped; Upkeep created a new one.*new incarnation.*\n {2}fix: /s);
          fresh.close();
        }));

      test("the replication slot dropped, with schemaChanges: 'report': logged once with its fix, open pages reload, pages are not live until `upkeep install` creates it again", () =>
        running({ schemaChanges: "report", refusals: "warn" }, async ({ upkeep, app, fixture, logged }) => {
          const page = await openLivePage(upkeep, app, "/lists/a");
          await dropSlot(fixture.database);
          await until(() => page.reloaded, "the open page reloads");
          assert.equal((page.messages.at(-1) as { reason: string }).reason, "capture_lost");
          assert.equal(await isLive(app, "/lists/a"), false);
          const lines = logged.filter((m) => m.includes("replication slot"));
          assert.equal(lines.length, 1, logged.join("\n"));
          assert.match(lines[0] as string, /is missing .*\n {2}fix: run `npx upkeep install --database/s);
          const before = upkeep.ledger.incarnation;
          await install({ database: fixture.database, capture });
          await until(() => upkeep.hub.incarnation !== before, "the new incarnation is adopted");
          await until(() => isLive(app, "/lists/a"), "pages are live again after `upkeep install`");
          const fresh = await openLivePage(upkeep, app, "/lists/a");
          await fixture.exec("insert into items (list, title, pos) values ('a', 'captured-again', 2)");
          await upkeep.settle();
          assert.match(fresh.body(), /captured-again/, JSON.stringify(fresh.messages) + logged.join("\n"));
          fresh.close();
        }));
    }
  });
}

/** Drops the database's replication slot as someone at a psql prompt would: end the connection that streams it,
 *  then drop it. */
async function dropSlot(database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: database });
  await admin.connect();
  try {
    await until(async () => {
      try {
        await admin.query(
          `SELECT pg_terminate_backend(s.active_pid) FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
            WHERE s.database = current_database() AND a.backend_type = 'walsender'`,
        );
        const { rowCount } = await admin.query(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()",
        );
        return rowCount === 1;
      } catch {
        return false; // still active: the ended connection has not exited yet
      }
    }, "the slot is dropped");
  } finally {
    await admin.end();
  }
}

function attribute(html: string, name: string): string {
  return new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] as string;
}
