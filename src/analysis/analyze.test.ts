import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { Kysely, sql } from "kysely";
import { createCapture, runWithCapture } from "../capture/context.ts";
import { captureDialect, primaryKeyCatalog } from "../capture/dialect.ts";
import { nodeSqliteTestDialect, TEST_SCHEMA } from "../capture/sqlite-test-dialect.ts";
import { type RefusalCode, RefusedBoundaryError } from "../errors.ts";
import { analyzeQuery } from "./analyze.ts";
import type { Predicate, QueryDependency, TableRead } from "./types.ts";

interface DB {
  boards: { id: number; name: string; owner: string | null };
  cards: { id: number; board_id: number; title: string; status: string; position: number; archived: number };
  tags: { card_id: number; tag: string };
}

function setup() {
  const raw = new DatabaseSync(":memory:");
  raw.exec(TEST_SCHEMA);
  const db = new Kysely<DB>({ dialect: captureDialect(nodeSqliteTestDialect(raw), primaryKeyCatalog("sqlite")) });
  return db;
}
const db = setup();

async function capture(fn: () => Promise<unknown>) {
  const c = createCapture("/test");
  await runWithCapture(c, fn);
  return c;
}

async function dep(fn: () => Promise<unknown>): Promise<QueryDependency> {
  const c = await capture(fn);
  assert.deepEqual(c.refusals, []);
  assert.equal(c.queries.length, 1);
  return c.queries[0];
}

async function refusal(fn: () => Promise<unknown>): Promise<RefusalCode> {
  const c = await capture(fn);
  assert.equal(c.queries.length, 0);
  assert.equal(c.refusals.length, 1);
  assert.ok(c.refusals[0].sql.length > 0);
  assert.ok(c.refusals[0].hint.length > 0);
  return c.refusals[0].reason;
}

function read(d: QueryDependency, table: string, index = 0): TableRead {
  const reads = d.reads.filter((r) => r.table === table);
  assert.ok(reads[index], `no read of ${table} in ${d.sql}`);
  return reads[index];
}

function cols(r: TableRead): string[] | "*" {
  return r.columns === "*" ? "*" : [...r.columns].sort();
}

const col = (table: string, column: string) => ({ kind: "column" as const, table, column });
const val = (value: string | number | null) => ({ kind: "value" as const, value });

describe("analyzeQuery: captured shapes", () => {
  test("where with each operator, columns, order, limit/offset, row keys", async () => {
    const d = await dep(() =>
      db
        .selectFrom("cards")
        .select(["id", "title"])
        .where("board_id", "=", 1)
        .where("status", "in", ["todo", "doing"])
        .where("position", ">=", 1)
        .where("title", "like", "%")
        .where("archived", "<>", 5)
        .orderBy("position", "desc")
        .orderBy("id")
        .limit(10)
        .offset(0)
        .execute(),
    );
    const r = read(d, "cards");
    assert.deepEqual(cols(r), ["archived", "board_id", "id", "position", "status", "title"]);
    const f = r.filter as Extract<Predicate, { kind: "and" }>;
    assert.equal(f.kind, "and");
    assert.deepEqual(f.items[0], { kind: "compare", op: "=", left: col("cards", "board_id"), right: val(1) });
    assert.deepEqual(f.items[1], {
      kind: "in",
      negated: false,
      left: col("cards", "status"),
      values: [val("todo"), val("doing")],
    });
    assert.equal(f.items[2].kind, "compare");
    assert.deepEqual(f.items[3], {
      kind: "like",
      negated: false,
      left: col("cards", "title"),
      pattern: val("%"),
      caseInsensitive: false,
    });
    assert.deepEqual(f.items[4], { kind: "compare", op: "<>", left: col("cards", "archived"), right: val(5) });
    assert.deepEqual(d.order, [
      { column: col("cards", "position"), direction: "desc" },
      { column: col("cards", "id"), direction: "asc" },
    ]);
    assert.equal(d.orderIncomplete, undefined);
    assert.equal(d.limit, 10);
    assert.equal(d.offset, 0);
    assert.equal(d.aggregate, false);
    assert.deepEqual(d.rowKeys, { table: "cards", keys: [{ id: 2 }, { id: 1 }] });
  });

  test("is null, is not null, not in, not like, and/or/not, between", async () => {
    const d = await dep(() =>
      db
        .selectFrom("boards")
        .select("name")
        .where("owner", "is", null)
        .where("owner", "is not", null)
        .where("id", "not in", [3])
        .where("name", "not like", "x%")
        .where((eb) => eb.or([eb("id", "=", 1), eb.not(eb("name", "=", "Two"))]))
        .where((eb) => eb.between("id", 1, 5))
        .execute(),
    );
    const items = (read(d, "boards").filter as Extract<Predicate, { kind: "and" }>).items;
    assert.deepEqual(items[0], { kind: "null", negated: false, operand: col("boards", "owner") });
    assert.deepEqual(items[1], { kind: "null", negated: true, operand: col("boards", "owner") });
    assert.deepEqual(items[2], { kind: "in", negated: true, left: col("boards", "id"), values: [val(3)] });
    assert.equal(items[3].kind, "like");
    assert.equal((items[3] as { negated: boolean }).negated, true);
    assert.equal(items[4].kind, "or");
    assert.equal((items[4] as { items: Predicate[] }).items[1].kind, "not");
    assert.deepEqual(items[5], {
      kind: "and",
      items: [
        { kind: "compare", op: ">=", left: col("boards", "id"), right: val(1) },
        { kind: "compare", op: "<=", left: col("boards", "id"), right: val(5) },
      ],
    });
    assert.equal(d.rowKeys, null, "the key column is not selected");
  });

  test("selectAll reads every column; pk from selectAll", async () => {
    const d = await dep(() => db.selectFrom("boards").selectAll().where("id", "=", 2).execute());
    assert.equal(read(d, "boards").columns, "*");
    assert.deepEqual(d.rowKeys, { table: "boards", keys: [{ id: 2 }] });
  });

  test("composite primary keys and aliased key selections", async () => {
    const d = await dep(() => db.selectFrom("tags as t").select(["t.card_id as c", "t.tag"]).orderBy("c").execute());
    assert.deepEqual(d.rowKeys, {
      table: "tags",
      keys: [
        { card_id: 1, tag: "x" },
        { card_id: 2, tag: "y" },
      ],
    });
    assert.deepEqual(d.order, [{ column: col("tags", "card_id"), direction: "asc" }]);
    assert.deepEqual(read(d, "tags").aliases, ["t"]);
  });

  test("joins with aliases: per-table filters, cross-table conditions left out", async () => {
    const d = await dep(() =>
      db
        .selectFrom("cards as c")
        .innerJoin("boards as b", "b.id", "c.board_id")
        .select(["c.title", "b.name"])
        .where("b.owner", "=", "ann")
        .where("c.status", "=", "todo")
        .execute(),
    );
    assert.deepEqual(read(d, "boards").filter, {
      kind: "compare",
      op: "=",
      left: col("boards", "owner"),
      right: val("ann"),
    });
    assert.deepEqual(read(d, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "status"),
      right: val("todo"),
    });
    assert.deepEqual(cols(read(d, "boards")), ["id", "name", "owner"]);
    assert.deepEqual(cols(read(d, "cards")), ["board_id", "status", "title"]);
    assert.equal(d.rowKeys, null);
  });

  test("left join: ON filters only the joined table; WHERE never filters the null-extended side", async () => {
    const d = await dep(() =>
      db
        .selectFrom("boards")
        .leftJoin("cards", (j) =>
          j.onRef("cards.board_id", "=", "boards.id").on("cards.status", "=", "todo").on("boards.owner", "=", "ann"),
        )
        .select(["boards.name", "cards.title"])
        .where("cards.id", "is", null)
        .execute(),
    );
    assert.deepEqual(read(d, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "status"),
      right: val("todo"),
    });
    assert.deepEqual(read(d, "boards").filter, { kind: "true" });
  });

  test("self join keeps one read per occurrence", async () => {
    const d = await dep(() =>
      db
        .selectFrom("cards as a")
        .innerJoin("cards as b", "b.board_id", "a.board_id")
        .select(["a.id", "b.id as other"])
        .where("a.status", "=", "todo")
        .where("b.status", "=", "done")
        .execute(),
    );
    assert.equal(d.reads.length, 2);
    assert.deepEqual(read(d, "cards", 0).aliases, ["a"]);
    assert.deepEqual((read(d, "cards", 0).filter as { right: unknown }).right, val("todo"));
    assert.deepEqual((read(d, "cards", 1).filter as { right: unknown }).right, val("done"));
  });

  test("subqueries in WHERE (in, exists, correlated) and FROM", async () => {
    const d = await dep(() =>
      db
        .selectFrom("boards")
        .select("name")
        .where("id", "in", db.selectFrom("cards").select("board_id").where("status", "=", "todo"))
        .where((eb) =>
          eb.exists(
            eb.selectFrom("tags").select("tag").whereRef("tags.card_id", "=", "boards.id").where("tags.tag", "=", "x"),
          ),
        )
        .execute(),
    );
    assert.deepEqual(read(d, "boards").filter, { kind: "true" }, "conditions over subqueries are not row filters");
    assert.deepEqual(read(d, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "status"),
      right: val("todo"),
    });
    assert.deepEqual(read(d, "tags").filter, { kind: "compare", op: "=", left: col("tags", "tag"), right: val("x") });
    // An unqualified column inside a subquery could belong to the outer table: it is recorded there too.
    assert.ok((read(d, "boards").columns as Set<string>).has("board_id"));

    const derived = await dep(() =>
      db
        .selectFrom(db.selectFrom("cards").select(["id", "board_id"]).where("archived", "=", 0).as("s"))
        .select("s.id")
        .where("s.board_id", "=", 1)
        .execute(),
    );
    assert.deepEqual(read(derived, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "archived"),
      right: val(0),
    });
    assert.equal(derived.rowKeys, null);
  });

  test("count and aggregates depend on their predicates, group by and having", async () => {
    const d = await dep(() =>
      db
        .selectFrom("cards")
        .select((eb) => ["status", eb.fn.countAll().as("n"), eb.fn.max("position").as("top")])
        .where("board_id", "=", 1)
        .groupBy("status")
        .having((eb) => eb.fn.countAll(), ">", 0)
        .orderBy("n", "desc")
        .execute(),
    );
    assert.equal(d.aggregate, true);
    // `n` is an output alias; it is also recorded as a possible input column (PostgreSQL's GROUP BY rule).
    assert.deepEqual(cols(read(d, "cards")), ["board_id", "n", "position", "status"]);
    assert.deepEqual(read(d, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "board_id"),
      right: val(1),
    });
    assert.equal(d.orderIncomplete, true, "ordered by an aggregate alias");
    assert.equal(d.rowKeys, null);

    const count = await dep(() =>
      db
        .selectFrom("cards")
        .select((eb) => eb.fn.countAll().as("n"))
        .execute(),
    );
    assert.deepEqual(cols(read(count, "cards")), [], "count(*) depends on membership only");
    assert.equal(count.aggregate, true);
  });

  test("unions read every branch; CTEs are derived tables", async () => {
    const u = await dep(() =>
      db
        .selectFrom("cards")
        .select("title as label")
        .where("status", "=", "todo")
        .union(db.selectFrom("boards").select("name as label").where("owner", "=", "ann"))
        .execute(),
    );
    assert.deepEqual(
      u.reads.map((r) => r.table),
      ["cards", "boards"],
    );
    const w = await dep(() =>
      db
        .with("todo", (q) => q.selectFrom("cards").select(["id", "title"]).where("status", "=", "todo"))
        .selectFrom("todo")
        .select("title")
        .execute(),
    );
    assert.deepEqual(
      w.reads.map((r) => r.table),
      ["cards"],
    );
    assert.deepEqual(read(w, "cards").filter, {
      kind: "compare",
      op: "=",
      left: col("cards", "status"),
      right: val("todo"),
    });
  });

  test("a raw selection without a subquery makes the table's columns *", async () => {
    const d = await dep(() =>
      db.selectFrom("cards").select(sql<string>`upper(title)`.as("t")).where("id", "=", 1).execute(),
    );
    assert.equal(read(d, "cards").columns, "*");
    assert.equal(d.aggregate, true, "a raw selection may aggregate");
  });

  test("structural expressions we cannot evaluate become unknown, not refusals", async () => {
    const d = await dep(() =>
      db
        .selectFrom("cards")
        .select("id")
        .where((eb) => eb(eb.fn("lower", ["title"]), "=", "a"))
        .execute(),
    );
    assert.equal(read(d, "cards").filter.kind, "unknown");
    assert.ok((read(d, "cards").columns as Set<string>).has("title"));
  });

  test("writes are not reads, and a live render may not write (each write is refused)", async () => {
    const c = await capture(async () => {
      await db.insertInto("boards").values({ id: 9, name: "N", owner: null }).execute();
      await db.updateTable("boards").set({ name: "M" }).where("id", "=", 9).execute();
      await db.deleteFrom("boards").where("id", "=", 9).execute();
      await sql`delete from boards where id = 9`.execute(db);
    });
    assert.deepEqual(c.queries, []);
    assert.deepEqual(
      c.refusals.map((r) => r.reason),
      ["write_in_render", "write_in_render", "write_in_render", "write_in_render"],
    );
  });
});

describe("analyzeQuery: refusals", () => {
  test("opaque_modifier: modifyEnd/modifyFront fragments and SKIP LOCKED (they may change the rows); row locks pass", async () => {
    assert.equal(
      await refusal(() => db.selectFrom("cards").selectAll().orderBy("id").modifyEnd(sql`limit 1`).execute()),
      "opaque_modifier",
    );
    assert.equal(
      await refusal(() => db.selectFrom("cards").selectAll().modifyFront(sql`/* hint */`).execute()),
      "opaque_modifier",
    );
    const skipLocked = db.selectFrom("cards").selectAll().forUpdate().skipLocked().compile();
    const refused = analyzeQuery(skipLocked.query, skipLocked, [], () => undefined);
    assert.ok(refused instanceof RefusedBoundaryError && refused.reason === "opaque_modifier");
    const locked = db.selectFrom("cards").selectAll().forUpdate().compile();
    assert.ok(!(analyzeQuery(locked.query, locked, [], () => undefined) instanceof RefusedBoundaryError));
  });
  test("uncaptured_source: a read of a table the ledger does not capture (a view, an excluded or new table)", async () => {
    const raw = new DatabaseSync(":memory:");
    raw.exec(`${TEST_SCHEMA} create view open_cards as select * from cards where status <> 'done';`);
    const captured = new Set(["boards", "cards"]);
    const limited = new Kysely<DB & { open_cards: DB["cards"] }>({
      dialect: captureDialect(nodeSqliteTestDialect(raw), {
        ...primaryKeyCatalog("sqlite"),
        capturedTables: () => captured,
      }),
    });
    const c = await capture(async () => {
      await limited.selectFrom("cards").selectAll().execute();
      await limited.selectFrom("open_cards").selectAll().execute();
      await limited.selectFrom("cards").innerJoin("tags", "tags.card_id", "cards.id").selectAll().execute();
    });
    assert.equal(c.queries.length, 1);
    assert.deepEqual(
      c.refusals.map((r) => [r.reason, r.message.match(/reads (\w+)/)?.[1]]),
      [
        ["uncaptured_source", "open_cards"],
        ["uncaptured_source", "tags"],
      ],
    );
    assert.match(c.refusals[0]?.hint ?? "", /view/);
    await limited.destroy();
  });
  test("raw_query", async () => {
    assert.equal(await refusal(() => sql`select * from cards`.execute(db)), "raw_query");
  });
  test("opaque_predicate", async () => {
    assert.equal(
      await refusal(() => db.selectFrom("cards").selectAll().where(sql<boolean>`board_id = ${1}`).execute()),
      "opaque_predicate",
    );
  });
  test("opaque_join", async () => {
    assert.equal(
      await refusal(() =>
        db
          .selectFrom("cards")
          .innerJoin("boards", (j) => j.on(sql<boolean>`boards.id = cards.board_id`))
          .selectAll()
          .execute(),
      ),
      "opaque_join",
    );
  });
  test("opaque_source", async () => {
    assert.equal(
      await refusal(() => db.selectFrom(sql<{ id: number }>`(select id from cards)`.as("x")).selectAll().execute()),
      "opaque_source",
    );
  });
  test("opaque_order (direction alone is fine)", async () => {
    assert.equal(
      await refusal(() => db.selectFrom("cards").select("id").orderBy(sql`random()`).execute()),
      "opaque_order",
    );
  });
  test("opaque_selection for a raw selection containing a subquery", async () => {
    assert.equal(
      await refusal(() => db.selectFrom("boards").select(sql<number>`(select count(*) from cards)`.as("n")).execute()),
      "opaque_selection",
    );
  });
  test("the refusal carries the SQL and a structural rewrite", async () => {
    const c = await capture(() => db.selectFrom("cards").selectAll().where(sql<boolean>`board_id = ${1}`).execute());
    const error = c.refusals[0];
    assert.equal(error.code, "refused_opaque_predicate");
    assert.match(error.sql, /board_id = \?/);
    assert.match(error.hint, /\.where\('col', '=', value\)/);
  });
});

describe("analyzeQuery: direct", () => {
  const compile = (q: { compile(): { query: unknown; sql: string; parameters: readonly unknown[] } }) => {
    const c = q.compile();
    return analyzeQuery(c.query as never, c, [], () => undefined);
  };
  test("a write inside a CTE is unsupported_query", () => {
    const r = compile(
      db
        .with("x", (q) => q.insertInto("boards").values({ id: 5, name: "x", owner: null }).returning("id"))
        .selectFrom("x")
        .selectAll(),
    );
    assert.ok(r instanceof RefusedBoundaryError);
    assert.equal(r.reason, "unsupported_query");
  });
  test("a limit that is not a number is unsupported_query", () => {
    const r = compile(db.selectFrom("cards").select("id").limit(sql<number>`(select 1)`));
    assert.ok(r instanceof RefusedBoundaryError);
    assert.equal(r.reason, "unsupported_query");
  });
  test("non-select statements return null", () => {
    assert.equal(compile(db.updateTable("cards").set({ title: "x" }).where("id", "=", 1)), null);
    assert.equal(compile(db.deleteFrom("cards").where("id", "=", 1)), null);
  });
  test("a recursive CTE reads its base tables", () => {
    const r = compile(
      db
        .withRecursive("chain(id)", (q) =>
          q
            .selectFrom("cards")
            .select("id")
            .where("id", "=", 1)
            .unionAll((q2) => q2.selectFrom("cards as c").innerJoin("chain", "chain.id", "c.board_id").select("c.id")),
        )
        .selectFrom("chain")
        .select("id"),
    ) as QueryDependency;
    assert.deepEqual(
      r.reads.map((x) => x.table),
      ["cards", "cards"],
    );
  });
});

describe("capture context", () => {
  test("queries outside a capture are not analysed; inside, each query pairs with its own rows", async () => {
    const rows = await db.selectFrom("boards").select("id").execute();
    assert.equal(rows.length, 2);
    const c = await capture(async () => {
      await Promise.all([
        db.selectFrom("boards").select("id").where("id", "=", 1).execute(),
        db.selectFrom("cards").select("id").where("board_id", "=", 2).execute(),
      ]);
    });
    const keys = Object.fromEntries(c.queries.map((q) => [q.reads[0].table, q.rowKeys?.keys]));
    assert.deepEqual(keys, { boards: [{ id: 1 }], cards: [{ id: 3 }] });
  });

  test("transactions and streams are captured", async () => {
    const c = await capture(async () => {
      await db.transaction().execute(async (trx) => {
        await trx.selectFrom("boards").select("id").execute();
      });
      for await (const _ of db.selectFrom("cards").select("id").where("id", "<", 3).stream()) {
        // consume
      }
    });
    assert.equal(c.queries.length, 2);
    assert.deepEqual(c.queries[1].rowKeys?.keys, [{ id: 1 }, { id: 2 }]);
  });
});
