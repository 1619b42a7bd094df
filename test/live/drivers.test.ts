// Capture at the driver: a small app reading and writing through raw pg, node:sqlite and better-sqlite3 (no
// Kysely), with `upkeep.capture(module)`. Live pages converge after writes from the driver, from another connection
// and from the database's shell; a write wakes the ledger when it commits; refusals name the statement and the
// rewrite; a collection fed by a function is live and needs its rows' primary key.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import pg from "pg";
import { createCapture, runWithCapture } from "../../src/capture/context.ts";
import { hostFor, registerHost } from "../../src/capture/drivers/host.ts";
import { RefusedBoundaryError } from "../../src/errors.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { betterSqliteDriver, type DriverApp, driverApp, nodeSqliteDriver, pgDriver } from "./drivers/app.ts";
import { dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

const DRIVERS: { name: string; dialect: "sqlite" | "postgres"; make(database: string): DriverApp }[] = [
  { name: "pg", dialect: "postgres", make: (url) => pgDriver(url) },
  { name: "node:sqlite", dialect: "sqlite", make: (url) => nodeSqliteDriver(url.slice("file:".length)) },
  { name: "better-sqlite3", dialect: "sqlite", make: (url) => betterSqliteDriver(url.slice("file:".length)) },
];

for (const spec of DRIVERS) {
  describe(`capture at the driver: ${spec.name}`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let driver: DriverApp;
    let app: ReturnType<typeof driverApp>;

    before(async () => {
      fixture = await fixtureDatabase(spec.dialect);
      if (!fixture) return;
      upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
      driver = spec.make(fixture.database);
      upkeep.capture(driver.module);
      app = driverApp(upkeep, driver);
      upkeep.use(app);
      await fixture.exec(
        "insert into items (list, title, pos) values ('a', 'one', 1), ('a', 'two', 2), ('b', 'three', 1)",
      );
      await upkeep.settle();
    });
    after(async () => {
      await driver?.close();
      await upkeep?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);

    it("a page read through the driver converges after writes from the driver, another connection and the shell", async () => {
      const page = await openLivePage(upkeep, app, "/lists/a");
      const other = await openLivePage(upkeep, app, "/lists/b");
      const count = await openLivePage(upkeep, app, "/count/a");
      assert.match(page.body(), /one/);
      await driver.run("insert into items (list, title, pos) values (?, ?, ?)", ["a", "from-driver", 3]);
      await upkeep.settle();
      assert.match(page.body(), /from-driver/);
      assert.equal(page.body(), await freshBody(app, "/lists/a"));
      await fixture!.exec("update items set title = 'renamed' where title = 'one'");
      await upkeep.settle();
      assert.match(page.body(), /renamed/);
      driver.shell("delete from items where title = 'two'");
      await upkeep.settle();
      assert.doesNotMatch(page.body(), /two/);
      assert.equal(page.body(), await freshBody(app, "/lists/a"));
      assert.equal(count.body(), await freshBody(app, "/count/a"));
      assert.match(count.body(), /<p id="count">2<\/p>/);
      // Precision: list b's page read `where list = 'b'`, which none of these rows pass.
      assert.equal(other.messages.filter((m) => m.type === "patch").length, 0);
      for (const p of [page, other, count]) p.close();
    });

    it("a write outside a transaction wakes the ledger after it; inside BEGIN … COMMIT, at the COMMIT", async () => {
      // A host that counts the wakes the captured driver sends (the ledger also wakes itself: not counted).
      let pokes = 0;
      const real = hostFor(spec.dialect)!;
      const unregister = registerHost({
        ...real,
        poke: () => {
          pokes++;
          real.poke();
        },
      });
      try {
        await driver.all("select id from items where list = ?", ["a"]);
        assert.equal(pokes, 0, "a read wakes nothing");
        await driver.run("insert into items (list, title, pos) values (?, ?, ?)", ["z", "w1", 1]);
        assert.equal(pokes, 1);
        const page = await openLivePage(upkeep, app, "/lists/z");
        await driver.transaction([
          ["insert into items (list, title, pos) values (?, ?, ?)", ["z", "w2", 2]],
          ["insert into items (list, title, pos) values (?, ?, ?)", ["z", "w3", 3]],
        ]);
        assert.equal(pokes, 2, "one wake, at the commit");
        await upkeep.settle();
        assert.match(page.body(), /w2[\s\S]*w3/);
        assert.equal(page.body(), await freshBody(app, "/lists/z"));
        page.close();
      } finally {
        unregister();
      }
    });

    it("a collection fed by a function is live, member by member", async () => {
      await driver.run("insert into items (list, title, pos) values (?, ?, ?)", ["c", "c1", 1]);
      await upkeep.settle();
      const page = await openLivePage(upkeep, app, "/collection/c");
      await driver.run("insert into items (list, title, pos) values (?, ?, ?)", ["c", "c2", 2]);
      await upkeep.settle();
      const patches = page.messages.filter((m) => m.type === "patch") as { html: string }[];
      assert.equal(patches.length, 1);
      assert.match(patches[0].html, /action="after"/);
      assert.equal(page.body(), await freshBody(app, "/collection/c"));
      page.close();
    });

    it("refusals name the statement and the rewrite", async () => {
      const errors: unknown[] = [];
      const error = console.error;
      console.error = (e: unknown) => errors.push(e);
      try {
        for (const url of ["/refused", "/writes", "/no-key/a"]) {
          const r = await app.fetch(new Request(`http://localhost${url}`, { headers: { accept: "text/html" } }));
          assert.equal(r.status, 500, url);
        }
      } finally {
        console.error = error;
      }
      const refusals = errors.filter((e) => e instanceof RefusedBoundaryError) as RefusedBoundaryError[];
      const source = refusals.find((e) => e.code === "refused_opaque_source");
      assert.ok(source, "a function as a source is refused");
      assert.match(source.sql, spec.dialect === "postgres" ? /generate_series/ : /json_each/);
      assert.match(source.hint, /select from tables or subqueries/);
      const write = refusals.find((e) => e.code === "refused_write_in_render");
      assert.ok(write);
      assert.match(write.sql, /insert into secrets/);
      const key = refusals.find((e) => e.code === "refused_collection_key");
      assert.ok(key, "a collection whose rows lack the primary key is refused");
      assert.match(key.hint, /primary key/);
    });
  });
}

describe("capture at pg: a pool's waiting caller", () => {
  let fixture: Fixture | null = null;
  let upkeep: Upkeep;
  before(async () => {
    fixture = await fixtureDatabase("postgres");
    if (!fixture) return;
    upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
    upkeep.capture(pg);
  });
  after(async () => {
    await upkeep?.close();
    await fixture?.drop();
  });
  const it = dialectTest(() => fixture);

  it("a statement that waited for a client is recorded on its own page, not on the page that released the client", async () => {
    const pool = new pg.Pool({ connectionString: fixture!.database, max: 1 });
    try {
      const a = createCapture("/a");
      const b = createCapture("/b");
      let release = () => {};
      const holding = new Promise<void>((held) => {
        runWithCapture(a, async () => {
          const client = await pool.connect();
          release = () => client.release();
          held();
        });
      });
      await holding;
      // Page b's read waits for the one client; page a releases it, in its own async context.
      const read = runWithCapture(b, () => pool.query("select id, title from items where list = $1", ["b"]));
      await runWithCapture(a, async () => release());
      await read;
      assert.deepEqual(
        b.queries.map((q) => q.sql),
        ["select id, title from items where list = $1"],
      );
      assert.deepEqual(a.queries, []);
    } finally {
      await pool.end();
    }
  });
});
