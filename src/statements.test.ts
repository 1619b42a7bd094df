import assert from "node:assert/strict";
import { test } from "node:test";
import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, sql } from "kysely";
import { returnsNoRows, statementKind } from "./statements.ts";

const db = new Kysely<{ t: { id: number } }>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new SqliteIntrospector(k),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
});

test("one classification of statements for capture, analysis and the ledger's dialect", () => {
  const raw = (text: string) => sql.raw(text).compile(db);
  assert.equal(statementKind(db.selectFrom("t").selectAll().compile()), "read");
  assert.equal(statementKind(db.insertInto("t").values({ id: 1 }).compile()), "write");
  assert.equal(statementKind(db.updateTable("t").set({ id: 2 }).compile()), "write");
  assert.equal(statementKind(db.deleteFrom("t").compile()), "write");
  assert.equal(statementKind(db.schema.createTable("u").addColumn("id", "integer").compile()), "control");
  assert.equal(statementKind(raw("  SELECT 1")), "read");
  assert.equal(statementKind(raw("pragma table_info(t)")), "read");
  assert.equal(statementKind(raw("replace into t values (1)")), "write");
  assert.equal(statementKind(raw("begin immediate")), "control");
  // A WITH may hold a data-modifying CTE: it may read and may write.
  assert.equal(statementKind(raw("with x as (insert into t values (1) returning *) select * from x")), "unknown");
  assert.equal(returnsNoRows(raw("update t set id = 1")), true);
  assert.equal(returnsNoRows(raw("insert into t values (1) returning id")), false);
  assert.equal(returnsNoRows(raw("select 1")), false);
});
