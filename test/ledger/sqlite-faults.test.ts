// The SQLite ledger's fault model: a capture never fails a write, sees every committed change (generated columns,
// REPLACE's implicit deletes), writes valid facts whatever SQLite the writer runs (Debian's sqlite3 shell is 3.40),
// and a fact the reader cannot decode never stops a follower.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Kysely } from "kysely";
import { LEDGER_TUNING } from "../../src/constants.ts";
import { createDialect, type Fact, install, type Ledger, openLedger } from "../../src/ledger/index.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const SQLITE3 = process.env.UPKEEP_SQLITE3 ?? "/usr/bin/sqlite3";
const shellMissing = existsSync(SQLITE3)
  ? false
  : `Debian's sqlite3 shell is not installed (apt-get install sqlite3): ${SQLITE3}`;

/** Runs SQL through the system sqlite3 shell (a writer on another SQLite version, as users write). */
function shell(db: TestDb, sql: string): string {
  return execFileSync(SQLITE3, ["-cmd", ".timeout 5000", db.url.slice("file:".length), sql], { encoding: "utf8" });
}

describe("SQLite capture faults", () => {
  let db: TestDb;
  let ledger: Ledger;
  const logged: string[] = [];

  before(async () => {
    db = await freshDb("sqlite");
    await db.exec(`
      CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, title TEXT, price REAL,
        doubled REAL GENERATED ALWAYS AS (price * 2) VIRTUAL, upper_title TEXT GENERATED ALWAYS AS (upper(title)) STORED);
      CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);
      CREATE TABLE pairs (a INTEGER, b INTEGER, note TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
      CREATE TABLE lowered (id INTEGER PRIMARY KEY, name TEXT);
      CREATE UNIQUE INDEX lowered_name ON lowered (lower(name));
    `);
    const wide = Array.from({ length: 70 }, (_, i) => `"c${i}${i === 65 ? `q"" it's` : ""}" INTEGER`).join(", ");
    await db.exec(`CREATE TABLE wide (id INTEGER PRIMARY KEY, ${wide})`);
    await install({ database: db.url });
    ledger = await openLedger({ database: db.url, log: (_level, message) => logged.push(message) });
  });
  after(async () => {
    await ledger.close();
    await db.close();
  });

  async function factsOf(sql: () => unknown | Promise<unknown>): Promise<Fact[]> {
    const head = await ledger.head();
    await sql();
    return readAll(ledger, head);
  }

  test("generated columns (VIRTUAL and STORED) are in the row images", async () => {
    const [inserted] = await factsOf(() =>
      db.exec("INSERT INTO items (id, sku, title, price) VALUES (1, 'a', 'mug', 2.5)"),
    );
    assert.equal(inserted?.new?.doubled, 5);
    assert.equal(inserted?.new?.upper_title, "MUG");
    const [updated] = await factsOf(() => db.exec("UPDATE items SET price = 4 WHERE id = 1"));
    assert.deepEqual([updated?.old?.doubled, updated?.new?.doubled], [5, 8]);
  });

  test("INSERT OR REPLACE on the primary key records the replaced row's delete before the insert", async () => {
    await db.exec("INSERT INTO items (id, sku, title, price) VALUES (2, 'b', 'cup', 1)");
    const facts = await factsOf(() =>
      db.exec("INSERT OR REPLACE INTO items (id, sku, title, price) VALUES (2, 'b2', 'bowl', 3)"),
    );
    assert.deepEqual(
      facts.map((f) => [f.op, f.old?.title ?? null, f.new?.title ?? null]),
      [
        ["delete", "cup", null],
        ["insert", null, "bowl"],
      ],
    );
  });

  test("REPLACE through another UNIQUE index records the deleted row (sqlite3 shell and Kysely)", async (t) => {
    await db.exec("INSERT INTO items (id, sku, title, price) VALUES (3, 'c', 'plate', 1)");
    const viaKysely = await factsOf(async () => {
      const k = new Kysely<{ items: { id: number; sku: string; title: string; price: number } }>({
        dialect: createDialect(db.url),
      });
      await k.replaceInto("items").values({ id: 30, sku: "c", title: "saucer", price: 2 }).execute();
      await k.destroy();
    });
    assert.deepEqual(
      viaKysely.map((f) => [f.op, f.key.id]),
      [
        ["delete", 3],
        ["insert", 30],
      ],
    );
    if (shellMissing) return t.skip(shellMissing);
    const viaShell = await factsOf(() =>
      shell(db, "REPLACE INTO items (id, sku, title, price) VALUES (31, 'c', 'tray', 2)"),
    );
    assert.deepEqual(
      viaShell.map((f) => [f.op, f.key.id]),
      [
        ["delete", 30],
        ["insert", 31],
      ],
    );
  });

  test("UPDATE OR REPLACE records the row it deletes; WITHOUT ROWID tables too", async () => {
    await db.exec("INSERT INTO items (id, sku, title, price) VALUES (4, 'd', 'jug', 1), (5, 'e', 'pot', 1)");
    const facts = await factsOf(() => db.exec("UPDATE OR REPLACE items SET sku = 'd' WHERE id = 5"));
    assert.deepEqual(
      facts.map((f) => [f.op, f.key.id]),
      [
        ["delete", 4],
        ["update", 5],
      ],
    );
    await db.exec("INSERT INTO pairs VALUES (1, 1, 'x')");
    const pairs = await factsOf(() => db.exec("INSERT OR REPLACE INTO pairs VALUES (1, 1, 'y')"));
    assert.deepEqual(
      pairs.map((f) => [f.op, f.old?.note ?? null, f.new?.note ?? null]),
      [
        ["delete", "x", null],
        ["insert", null, "y"],
      ],
    );
  });

  test("OR IGNORE and DO NOTHING leave at most a spurious delete, never a wrong absence", async () => {
    const facts = await factsOf(() =>
      db.exec("INSERT OR IGNORE INTO items (id, sku, title, price) VALUES (1, 'zz', 'ignored', 0)"),
    );
    // The row is unchanged: the recorded delete only costs a replay of pages that read it.
    assert.ok(facts.every((f) => f.op === "delete" && f.key.id === 1));
    assert.equal((await db.query("SELECT title FROM items WHERE id = 1"))[0]?.title, "mug");
  });

  test("a REPLACE through an expression index is a table-wide fact (image unavailable)", async () => {
    await db.exec("INSERT INTO lowered VALUES (1, 'Ann')");
    const facts = await factsOf(() => db.exec("INSERT OR REPLACE INTO lowered VALUES (2, 'ANN')"));
    assert.ok(
      facts.some((f) => f.unavailable?.includes("lowered_name")),
      JSON.stringify(facts),
    );
    assert.deepEqual(
      (await db.query("SELECT id FROM lowered")).map((r) => r.id),
      [2],
    );
  });

  test("an oversized value is left out of the image and the fact is marked unavailable; the write succeeds", async () => {
    const big = LEDGER_TUNING.maxImageValueBytes + 1;
    const facts = await factsOf(() => db.exec(`INSERT INTO blobs VALUES (1, zeroblob(${big}))`));
    assert.equal(facts.length, 1);
    assert.match(facts[0]?.unavailable ?? "", /data: blob of \d+ bytes/);
    assert.equal(facts[0]?.new?.data, undefined);
    assert.equal(facts[0]?.new?.id, 1);
  });

  test("updating a row that holds a 270 MB blob succeeds and yields a fact", async () => {
    // Before the bound, the old and new images each held the blob's hex (540 MB): "string or blob too big".
    await db.exec("INSERT INTO blobs VALUES (2, zeroblob(270 * 1024 * 1024))");
    const facts = await factsOf(() => db.exec("UPDATE blobs SET data = zeroblob(270 * 1024 * 1024 + 1) WHERE id = 2"));
    assert.equal(facts.length, 1);
    assert.equal(facts[0]?.op, "update");
    assert.ok(facts[0]?.unavailable);
    await db.exec("DELETE FROM blobs WHERE id = 2");
  });

  test("rows wider than one json_object call keep every column, quoted names included", async () => {
    const facts = await factsOf(() => db.exec(`INSERT INTO wide (id, c0, c69, "c65q"" it's") VALUES (1, 10, 69, 65)`));
    const image = facts[0]?.new as Record<string, unknown>;
    assert.equal(Object.keys(image).length, 71);
    assert.deepEqual([image.c0, image.c69, image[`c65q" it's`]], [10, 69, 65]);
  });

  test("facts written by the sqlite3 shell (SQLite 3.40) are valid: commit time, txid, infinities, wide rows", async (t) => {
    if (shellMissing) return t.skip(shellMissing);
    const start = Date.now();
    const facts = await factsOf(() =>
      shell(
        db,
        `INSERT INTO items (id, sku, title, price) VALUES (40, 'inf', 'infinite', 9e999), (41, 'ninf', 'negative', -9e999);
         INSERT INTO wide (id, c1, "c65q"" it's") VALUES (2, 1, 650);`,
      ),
    );
    assert.equal(facts.length, 3);
    for (const fact of facts) {
      assert.equal(fact.unavailable, undefined);
      const at = Date.parse(fact.committedAt);
      assert.ok(at >= start - 5000 && at <= Date.now() + 5000, `commit time ${fact.committedAt}`);
      assert.notEqual(fact.txid, "null");
    }
    assert.deepEqual(
      facts.slice(0, 2).map((f) => f.new?.price),
      [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
    );
    assert.equal(facts[2]?.new?.[`c65q" it's`], 650);
    assert.equal(Object.keys(facts[2]?.new ?? {}).length, 71);
  });

  test("a poison fact is read as unavailable, logged once with its offset, and never stops a follower", async () => {
    const head = await ledger.head();
    await db.exec("INSERT INTO items (id, sku, title, price) VALUES (50, 'p', 'poison', 1)");
    await db.exec(`UPDATE upkeep_facts SET new = '{"price": Inf}' WHERE id = ${head + 1}`);
    await db.exec("INSERT INTO items (id, sku, title, price) VALUES (51, 'q', 'after', 1)");
    const iterator = ledger.follow(head)[Symbol.asyncIterator]();
    const { value } = await iterator.next();
    await iterator.return?.();
    const facts = value as Fact[];
    assert.deepEqual(
      facts.map((f) => [f.offset, f.unavailable !== undefined]),
      [
        [head + 1, true],
        [head + 2, false],
      ],
    );
    assert.match(facts[0]?.unavailable ?? "", /undecodable image/);
    await readAll(ledger, head); // reading it again logs nothing new
    assert.equal(logged.filter((m) => m.includes(`fact ${head + 1} `)).length, 1);
  });
});

describe("SQLite schema changes while running", () => {
  test("a table added while running is captured after the next check (refresh), or reported (report)", async () => {
    for (const mode of ["refresh", "report"] as const) {
      const db = await freshDb("sqlite");
      await db.exec("CREATE TABLE a (id INTEGER PRIMARY KEY)");
      await install({ database: db.url });
      const logged: string[] = [];
      const ledger = await openLedger({ database: db.url, schemaChanges: mode, log: (_l, m) => logged.push(m) });
      try {
        assert.deepEqual([...ledger.capturedTables()], ["a"]);
        await db.exec("CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT); ALTER TABLE a ADD COLUMN note TEXT");
        (ledger as unknown as { checkSchema(): void }).checkSchema();
        const head = await ledger.head();
        await db.exec("INSERT INTO b VALUES (1, 'x'); INSERT INTO a VALUES (1, 'n')");
        const facts = await readAll(ledger, head);
        if (mode === "refresh") {
          assert.deepEqual([...ledger.capturedTables()].sort(), ["a", "b"]);
          assert.deepEqual(
            facts.map((f) => [f.table, f.new]),
            [
              ["b", { id: 1, v: "x" }],
              ["a", { id: 1, note: "n" }],
            ],
          );
          assert.ok(logged.some((m) => m.includes("refreshed the capture triggers")));
        } else {
          // `a`'s triggers no longer name all its columns: it is not captured until the schema is fixed.
          assert.deepEqual([...ledger.capturedTables()], []);
          assert.ok(
            logged.some((m) => m.includes("schema_drift") || m.includes("out of date")),
            logged.join("\n"),
          );
        }
      } finally {
        await ledger.close();
        await db.close();
      }
    }
  });
});
