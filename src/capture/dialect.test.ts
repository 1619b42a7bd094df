import assert from "node:assert/strict";
import { test } from "node:test";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { POSTGRES_SKIP_MESSAGE, postgresUrl } from "../../test/support/postgres.ts";
import { createCapture, runWithCapture } from "./context.ts";
import { captureDialect, primaryKeyCatalog } from "./dialect.ts";

interface DB {
  upkeep_capture_items: { a: number; b: string; title: string };
}

const url = postgresUrl();

test("PostgreSQL: primary keys from pg_index, row keys and refusals captured", {
  skip: url ? false : POSTGRES_SKIP_MESSAGE,
}, async () => {
  const pool = new pg.Pool({ connectionString: url as string, max: 2 });
  const db = new Kysely<DB>({ dialect: captureDialect(new PostgresDialect({ pool }), primaryKeyCatalog("postgres")) });
  try {
    await pool.query("drop table if exists upkeep_capture_items");
    await pool.query("create table upkeep_capture_items (title text, b text, a int, primary key (b, a))");
    await pool.query("insert into upkeep_capture_items values ('x', 'k', 1), ('y', 'k', 2)");
    const capture = createCapture("/");
    await runWithCapture(capture, async () => {
      await db.transaction().execute(async (trx) => {
        await trx.selectFrom("upkeep_capture_items").selectAll().where("b", "=", "k").orderBy("a").execute();
        // A missing table must not abort the transaction (to_regclass, not ::regclass).
        await trx.selectFrom("upkeep_capture_items as i").select("i.title").execute();
      });
    });
    assert.deepEqual(capture.refusals, []);
    assert.deepEqual(capture.queries[0].rowKeys, {
      table: "upkeep_capture_items",
      keys: [
        { b: "k", a: 1 },
        { b: "k", a: 2 },
      ],
    });
    assert.equal(capture.queries[1].rowKeys, null, "key columns not selected");
    const catalog = primaryKeyCatalog("postgres");
    const conn = await pool.connect();
    try {
      await conn.query("begin");
      await catalog.loadPrimaryKeys(
        {
          executeQuery: async (q) => ({ rows: (await conn.query(q.sql, [...q.parameters])).rows }),
          streamQuery: () => {
            throw new Error("unused");
          },
        },
        ["no_such_table"],
      );
      assert.equal(catalog.primaryKeys("no_such_table"), undefined);
      await conn.query("select 1");
      await conn.query("commit");
    } finally {
      conn.release();
    }
  } finally {
    await pool.query("drop table if exists upkeep_capture_items");
    await db.destroy();
  }
});

test("savepoints pass through both driver wrappers (capture over the ledger's commit-signalling dialect)", async () => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { createDialect } = await import("../ledger/dialect.ts");
  const path = join(mkdtempSync(join(tmpdir(), "upkeep-savepoint-")), "app.sqlite");
  let commits = 0;
  const db = new Kysely<{ t: { id: number } }>({
    dialect: captureDialect(createDialect(`file:${path}`, { onCommit: () => commits++ }), primaryKeyCatalog("sqlite")),
  });
  try {
    await db.schema
      .createTable("t")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .execute();
    const trx = await db.startTransaction().execute();
    await trx.insertInto("t").values({ id: 1 }).execute();
    const inner = await trx.savepoint("before_two").execute();
    await inner.insertInto("t").values({ id: 2 }).execute();
    await inner.rollbackToSavepoint("before_two").execute();
    const before = commits;
    await trx.commit().execute();
    assert.equal(commits, before + 1, "the commit woke followers once");
    assert.deepEqual(
      (await db.selectFrom("t").select("id").execute()).map((r) => r.id),
      [1],
    );
  } finally {
    await db.destroy();
  }
});
