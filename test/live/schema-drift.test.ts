// A captured table's columns changed while pages that read it are open: whatever the DDL and whatever is written
// before the ledger notices, the pages converge on a fresh GET. SQLite (triggers generated from the column list),
// PostgreSQL trigger capture (images of whole rows) and logical capture (the stream's Relation messages).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import pg from "pg";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { openLedger } from "../../src/ledger/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { createTestDatabase, logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { SECRET } from "./fixture.ts";

const logicalSkip = await logicalSkipReason();

const CASES = [
  { name: "SQLite", dialect: "sqlite", skip: false },
  {
    name: "PostgreSQL (triggers)",
    dialect: "postgres",
    capture: "triggers",
    skip: !postgresUrl() && POSTGRES_SKIP_MESSAGE,
  },
  { name: "PostgreSQL (logical)", dialect: "postgres", capture: "logical", skip: logicalSkip },
] as const;

const TABLES = `create table notes (id integer primary key, body text not null);
  insert into notes values (1, 'first');
  create table gone (id integer primary key, body text not null);
  insert into gone values (1, 'here')`;

interface Database {
  database: string;
  /** Runs statements on a connection of their own (a migration tool, a shell). */
  exec(statements: string): Promise<void>;
  drop(): Promise<void>;
}

async function database(dialect: "sqlite" | "postgres"): Promise<Database> {
  if (dialect === "sqlite") {
    const path = join(mkdtempSync(join(tmpdir(), "upkeep-drift-")), "app.sqlite");
    const db = new DatabaseSync(path);
    db.exec(TABLES);
    db.close();
    return {
      database: `file:${path}`,
      async exec(statements) {
        // One synchronous call: the DDL and the writes after it all commit before any timer of this process (the
        // ledger's schema check) can run, so the writes fall inside the window.
        const c = new DatabaseSync(path);
        c.exec("pragma busy_timeout = 5000");
        c.exec(statements);
        c.close();
      },
      async drop() {},
    };
  }
  const created = await createTestDatabase("upkeep_drift");
  const client = new pg.Client({ connectionString: created.url as string });
  await client.connect();
  await client.query(TABLES);
  return {
    database: created.url as string,
    async exec(statements) {
      await client.query(statements);
    },
    async drop() {
      await client.end();
      await created.drop();
    },
  };
}

/** One page that shows every column of every row (`select *`). */
function app(upkeep: Upkeep) {
  const db = upkeep.db<any>();
  const hono = new Hono();
  hono.use(upkeepMiddleware(upkeep));
  hono.onError((error, c) => c.text(error.message, 500));
  hono.get("/notes", async (c) => {
    const rows = await db.selectFrom("notes").selectAll().orderBy("id").execute();
    return c.html(html`<html><body><ul>${rows.map((r) => html`<li>${JSON.stringify(r)}</li>`)}</ul></body></html>`);
  });
  hono.get("/gone", async (c) => {
    const rows = await db.selectFrom("gone").selectAll().execute();
    return c.html(html`<html><body>${rows.length} rows</body></html>`);
  });
  return hono;
}

for (const kind of CASES) {
  describe(`a captured table's columns change under open pages (${kind.name})`, { skip: kind.skip }, () => {
    let db: Database;
    let upkeep: Upkeep;
    let hono: ReturnType<typeof app>;
    before(async () => {
      db = await database(kind.dialect);
      upkeep = await createUpkeep({
        database: db.database,
        secret: SECRET,
        mode: "test",
        install: true,
        ...("capture" in kind ? { capture: kind.capture } : {}),
        logger: { info() {}, warn() {}, error() {} } as never,
      });
      hono = app(upkeep);
      upkeep.use(hono);
    });
    after(async () => {
      await upkeep?.close();
      await db?.drop();
    });

    test("a column added, then written before the ledger's schema check: the page converges", async () => {
      const page = await openLivePage(upkeep, hono, "/notes");
      await db.exec("alter table notes add column late text; update notes set late = 'set in the window' where id = 1");
      await upkeep.settle();
      const fresh = await freshBody(hono, "/notes");
      assert.match(fresh, /set in the window/);
      assert.equal(page.body(), fresh);
      page.close();
    });

    test("a column added with a default (every row changes, no row is written): the page converges", async () => {
      const page = await openLivePage(upkeep, hono, "/notes");
      await db.exec("alter table notes add column tag text not null default 'tagged'");
      await upkeep.settle();
      const fresh = await freshBody(hono, "/notes");
      assert.match(fresh, /tagged/);
      assert.equal(page.body(), fresh);
      page.close();
    });

    test("after the change, writes to the new column are facts like any other", async () => {
      const page = await openLivePage(upkeep, hono, "/notes");
      await upkeep.settle();
      await db.exec(
        "update notes set tag = 'retagged' where id = 1; insert into notes (id, body, tag) values (2, 'second', 'new')",
      );
      await upkeep.settle();
      const fresh = await freshBody(hono, "/notes");
      assert.match(fresh, /retagged/);
      assert.equal(page.body(), fresh);
      page.close();
    });

    test("a change noticed by several processes is one fact", async () => {
      const others = [await openLedger({ database: db.database }), await openLedger({ database: db.database })];
      try {
        const head = await upkeep.ledger.sync();
        await db.exec("alter table notes add column twice integer");
        await Promise.all([...others, upkeep.ledger].map((ledger) => ledger.sync()));
        const facts = await upkeep.ledger.read(head);
        assert.deepEqual(
          facts.map((f) => [f.table, f.unavailable]),
          [["notes", "the columns or capture of notes changed: every row may have changed"]],
        );
      } finally {
        for (const other of others) await other.close();
      }
    });

    test("a table dropped under open pages: they reload, as a fresh GET no longer shows a live page", async () => {
      const page = await openLivePage(upkeep, hono, "/gone");
      await db.exec("drop table gone");
      await upkeep.settle();
      assert.equal(page.reloaded, true);
      assert.match(
        await (await hono.fetch(new Request("http://localhost/gone"))).text(),
        /no such table|does not exist/,
      );
    });
  });
}

test("SQLite with schemaChanges: report: a drifted table's pages reload and new pages that read it are refused", async () => {
  const db = await database("sqlite");
  const upkeep = await createUpkeep({
    database: db.database,
    secret: SECRET,
    mode: "test",
    install: true,
    schemaChanges: "report",
    logger: { info() {}, warn() {}, error() {} } as never,
  });
  try {
    const hono = app(upkeep);
    const page = await openLivePage(upkeep, hono, "/notes");
    await db.exec("alter table notes add column late text; update notes set late = 'set in the window' where id = 1");
    await upkeep.settle();
    assert.equal(page.reloaded, true);
    assert.equal(upkeep.ledger.capturedTables().has("notes"), false);
    assert.match(await (await hono.fetch(new Request("http://localhost/notes"))).text(), /uncaptured_source/);
  } finally {
    await upkeep.close();
  }
});
