// The live pipeline when capture is at fault under a running app, on PostgreSQL with both capture modes: pages that
// filter on or show a STORED generated column follow the writes that change it, and a TRUNCATE of one partition
// reaches the pages that read its partitioned table; a render that started before the ledger became a new
// incarnation is not registered with its old offset.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import pg from "pg";
import { LEDGER } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { createTestDatabase, logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { SECRET } from "./fixture.ts";

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

/** Waits until `check` holds (polling); fails naming `what` if it never does. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`never happened: ${what}`);
}

function attribute(html: string, name: string): string {
  return new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] as string;
}
