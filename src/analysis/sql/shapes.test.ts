// The statements data layers send, analysed from their SQL text on each dialect: Prisma's, Drizzle's and Knex's own
// shapes with their parameters bound, the precision the Kysely path has, and refusals with their codes.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { type RefusalCode, RefusedBoundaryError } from "../../errors.ts";
import type { Predicate, QueryDependency, TableRead } from "../types.ts";
import { analyzeSql, loadPostgresParser, parseSql, type SqlDialect } from "./text.ts";

const pk = (t: string) => (t === "tags" ? ["card_id", "tag"] : ["id"]);

function dep(dialect: SqlDialect, sql: string, params: unknown[] = [], rows: Record<string, unknown>[] = []) {
  const result = analyzeSql(dialect, sql, params, rows, pk);
  assert.ok(result && !(result instanceof RefusedBoundaryError), `expected a dependency, got ${result}`);
  return result as QueryDependency;
}

function refusal(dialect: SqlDialect, sql: string, params: unknown[] = []): RefusalCode {
  const result = analyzeSql(dialect, sql, params, [], pk);
  assert.ok(result instanceof RefusedBoundaryError, `expected a refusal, got ${JSON.stringify(result)}`);
  assert.equal(result.sql, sql);
  assert.ok(result.hint.length > 0);
  return result.reason;
}

function read(d: QueryDependency, table: string): TableRead {
  const r = d.reads.find((x) => x.table === table);
  assert.ok(r, `no read of ${table}`);
  return r;
}

const cols = (r: TableRead) => (r.columns === "*" ? "*" : [...r.columns].sort());
const col = (table: string, column: string) => ({ kind: "column" as const, table, column });
const val = (value: unknown) => ({ kind: "value" as const, value });
const eq = (table: string, column: string, value: unknown): Predicate => ({
  kind: "compare",
  op: "=",
  left: col(table, column),
  right: val(value) as never,
});

before(() => loadPostgresParser());

describe("PostgreSQL statements", () => {
  test("Prisma: quoted schema-qualified names, 1=1, LIMIT and OFFSET as string parameters", () => {
    const d = dep(
      "postgres",
      `SELECT "public"."cards"."id", "public"."cards"."title" FROM "public"."cards" WHERE ("public"."cards"."board_id" = $1 AND 1=1) ORDER BY "public"."cards"."position" ASC LIMIT $2 OFFSET $3`,
      [7, "10", "0"],
      [{ id: 3, title: "x" }],
    );
    const r = read(d, "cards");
    assert.deepEqual(cols(r), ["board_id", "id", "position", "title"]);
    assert.deepEqual(r.filter, {
      kind: "and",
      items: [eq("cards", "board_id", 7), { kind: "compare", op: "=", left: val(1), right: val(1) }],
    });
    assert.deepEqual(d.order, [{ column: col("cards", "position"), direction: "asc" }]);
    assert.equal(d.limit, 10);
    assert.equal(d.offset, 0);
    assert.deepEqual(d.rowKeys, { table: "cards", keys: [{ id: 3 }] });
  });

  test("Prisma's include: the children's statement filters by the parents' keys (IN and = ANY)", () => {
    const d = dep(
      "postgres",
      `SELECT "public"."cards"."id", "public"."cards"."board_id" FROM "public"."cards" WHERE "public"."cards"."board_id" IN ($1,$2) OFFSET $3`,
      [1, 2, "0"],
    );
    assert.deepEqual(read(d, "cards").filter, {
      kind: "in",
      negated: false,
      left: col("cards", "board_id"),
      values: [val(1), val(2)],
    });
    const any = dep("postgres", `select "id" from "cards" where "board_id" = any($1)`, [[1, 2]]);
    assert.deepEqual(read(any, "cards").filter, {
      kind: "in",
      negated: false,
      left: col("cards", "board_id"),
      values: [val(1), val(2)],
    });
  });

  test("Prisma's relation joins: LATERAL json aggregation reads the child table with its columns", () => {
    const d = dep(
      "postgres",
      `SELECT "t1"."id", "t1"."name", "Board_cards"."__prisma_data__" AS "cards" FROM "public"."boards" AS "t1" LEFT JOIN LATERAL (SELECT COALESCE(JSONB_AGG("__prisma_data__"), '[]') AS "__prisma_data__" FROM (SELECT "t4"."__prisma_data__" FROM (SELECT JSONB_BUILD_OBJECT('id', "t3"."id", 'title', "t3"."title") AS "__prisma_data__", "t3"."position" FROM (SELECT "t2".* FROM "public"."cards" AS "t2" WHERE "t1"."id" = "t2"."board_id" /* root select */) AS "t3" /* inner select */) AS "t4" ORDER BY "t4"."position" ASC /* middle select */) AS "t5" /* outer select */) AS "Board_cards" ON true WHERE "t1"."id" = $1 LIMIT $2 OFFSET $3`,
      [5, "1", "0"],
    );
    assert.deepEqual(read(d, "boards").filter, eq("boards", "id", 5));
    // The correlation is no filter of the child: every card may belong.
    assert.equal(cols(read(d, "cards")), "*");
    assert.deepEqual(read(d, "cards").filter, { kind: "true" });
  });

  test("Drizzle's relational query: left join lateral with json_agg(… order by …) on true", () => {
    const d = dep(
      "postgres",
      `select "boards"."name", "boards_cards"."data" as "cards" from "boards" "boards" left join lateral (select coalesce(json_agg(json_build_array("boards_cards"."id", "boards_cards"."title") order by "boards_cards"."pos" asc, "boards_cards"."id" asc), '[]'::json) as "data" from "cards" "boards_cards" where "boards_cards"."board_id" = "boards"."id") "boards_cards" on true where "boards"."id" = $1 limit $2`,
      [1, 1],
    );
    assert.deepEqual(read(d, "boards").filter, eq("boards", "id", 1));
    assert.deepEqual(cols(read(d, "cards")), ["board_id", "id", "pos", "title"]);
    assert.equal(d.limit, 1);

    // The lateral join keeps the boards one for one: the rows' keys are the boards' (a collection's members).
    const keyed = dep(
      "postgres",
      `select "boards"."id", "boards_cards"."data" as "cards" from "boards" "boards" left join lateral (select coalesce(json_agg(json_build_array("boards_cards"."id")), '[]'::json) as "data" from "cards" "boards_cards" where "boards_cards"."board_id" = "boards"."id") "boards_cards" on true`,
      [],
      [{ id: 4, cards: [] }],
    );
    assert.deepEqual(keyed.rowKeys, { table: "boards", keys: [{ id: 4 }] });
    // A window function or a plain join multiplies rows: no keys.
    for (const sql of [
      `select b.id from boards b left join lateral (select row_number() over () as n from cards) c on true`,
      `select b.id from boards b left join cards c on c.board_id = b.id`,
      `select b.id from boards b left join lateral (select c.board_id, count(*) from cards c group by c.board_id) c on true`,
    ]) {
      assert.equal(dep("postgres", sql, [], [{ id: 4 }]).rowKeys, null, sql);
    }
  });

  test("Knex: `not x = $2`, bindings made $n, and select version();", () => {
    const d = dep(
      "postgres",
      `select "id", "title" from "cards" where "board_id" = $1 and not "title" = $2 order by "pos" asc`,
      [1, "hidden"],
    );
    assert.deepEqual(read(d, "cards").filter, {
      kind: "and",
      items: [eq("cards", "board_id", 1), { kind: "not", item: eq("cards", "title", "hidden") }],
    });
    assert.deepEqual(dep("postgres", "select version();").reads, []);
  });

  test("casts, schemas, exists, aggregates, CTEs and unions", () => {
    const cast = dep(
      "postgres",
      `select id from cards where board_id = $1::int4 and title = $2::text and status = $3::status`,
      ["4", "a", "x"],
    );
    const f = read(cast, "cards").filter as { items: Predicate[] };
    assert.deepEqual(f.items[0], eq("cards", "board_id", 4));
    assert.deepEqual(f.items[1], eq("cards", "title", "a"));
    assert.equal(f.items[2]?.kind, "unknown");
    assert.equal(dep("postgres", `select * from "app"."cards"`).reads[0]?.table, "app.cards");
    const agg = dep(
      "postgres",
      `select board_id, count(*) filter (where archived = 0) from cards where status = $1 group by board_id having count(*) > $2`,
      ["todo", 1],
    );
    assert.equal(agg.aggregate, true);
    assert.deepEqual(read(agg, "cards").filter, eq("cards", "status", "todo"));
    const cte = dep(
      "postgres",
      `with recursive t(n) as (select 1 union all select n + 1 from t where n < 3) select b.id from boards b where exists (select 1 from cards c where c.board_id = b.id and c.status = $1) and b.id in (select card_id from tags)`,
      ["done"],
    );
    assert.deepEqual(read(cte, "cards").filter, eq("cards", "status", "done"));
    assert.ok(read(cte, "tags"));
  });

  test("writes, RETURNING and transaction control are not reads", () => {
    assert.equal(parseSql("postgres", `insert into "cards" ("title") values ($1) returning "id"`).kind, "write");
    assert.equal(parseSql("postgres", "with d as (delete from cards returning id) select * from d").kind, "write");
    assert.equal(parseSql("postgres", "BEGIN").kind, "control");
    assert.equal(analyzeSql("postgres", "update cards set title = $1", ["x"], [], pk), null);
  });

  test("refusals carry a code", () => {
    assert.equal(refusal("postgres", "select * from generate_series(1, 3)"), "opaque_source");
    assert.equal(refusal("postgres", "select * from cards for update skip locked"), "opaque_modifier");
    assert.equal(refusal("postgres", "select * from cards natural join boards"), "unsupported_query");
    assert.equal(refusal("postgres", "select 1; select 2"), "unsupported_query");
    assert.equal(refusal("postgres", "select * from cards fetch first 3 rows with ties"), "unsupported_query");
    assert.equal(refusal("postgres", "select * from cards where id = $2", [1]), "unsupported_query");
    assert.equal(refusal("postgres", "select * from cards limit $1", ["ten"]), "unsupported_query");
    assert.equal(refusal("postgres", "select * form cards"), "unsupported_query");
  });
});

describe("SQLite statements", () => {
  test("Prisma: backticks, the main. prefix, 1=1, LIMIT -1 (none) and OFFSET", () => {
    const d = dep(
      "sqlite",
      "SELECT `main`.`cards`.`id`, `main`.`cards`.`title` FROM `main`.`cards` WHERE (`main`.`cards`.`board_id` = ? AND 1=1) ORDER BY `main`.`cards`.`position` ASC LIMIT ? OFFSET ?",
      [7, -1, 2],
      [{ id: 3, title: "x" }],
    );
    const r = read(d, "cards");
    assert.deepEqual(cols(r), ["board_id", "id", "position", "title"]);
    assert.deepEqual((r.filter as { items: Predicate[] }).items[0], eq("cards", "board_id", 7));
    assert.equal(d.limit, null);
    assert.equal(d.offset, 2);
    assert.deepEqual(d.rowKeys, { table: "cards", keys: [{ id: 3 }] });
  });

  test("Drizzle's relational query: a correlated json_group_array subquery", () => {
    const d = dep(
      "sqlite",
      `select "name", (select coalesce(json_group_array(json_array("id", "title")), json_array()) as "data" from (select * from "cards" "boards_cards" where "boards_cards"."board_id" = "boards"."id" order by "boards_cards"."pos" asc) "boards_cards") as "cards" from "boards" "boards" where "boards"."id" = ? limit ?`,
      [1, 1],
    );
    assert.deepEqual(read(d, "boards").filter, eq("boards", "id", 1));
    assert.equal(cols(read(d, "cards")), "*");
    assert.equal(d.limit, 1);
  });

  test("parameters as SQLite numbers them: ?, ?NNN and names", () => {
    const d = dep(
      "sqlite",
      "select id from cards where board_id = ?2 and status = ? and title = :t and position = :t",
      [1, 2, 3, 4],
    );
    const f = read(d, "cards").filter as { items: Predicate[] };
    assert.deepEqual(
      f.items.map((p) => (p as { right: { value: unknown } }).right.value),
      [2, 3, 4, 4],
    );
    const named = analyzeSql(
      "sqlite",
      "select id from cards where title = :t",
      { positional: [], named: { t: "x" } } as never,
      [],
      pk,
    ) as QueryDependency;
    assert.deepEqual(read(named, "cards").filter, eq("cards", "title", "x"));
  });

  test("SQLite's own meanings: TRUE is 1, IS compares, min/max of several are scalar", () => {
    const d = dep("sqlite", "select id from cards where archived = true and status is 'x' and max(position, 3) > 1");
    const f = read(d, "cards").filter as { items: Predicate[] };
    assert.deepEqual(f.items[0], eq("cards", "archived", 1));
    assert.equal(f.items[1]?.kind, "unknown");
    assert.equal(f.items[2]?.kind, "unknown");
    assert.equal(d.aggregate, false);
  });

  test("joins, exists, unions and CTEs", () => {
    const d = dep(
      "sqlite",
      "with o as (select id from cards where status <> 'done') select c.id from cards c left join tags t on t.card_id = c.id and t.tag = ? where c.board_id = ? and exists (select 1 from boards b where b.id = c.board_id) union select card_id from tags where tag = 'z' order by 1 limit 5, 10",
      ["x", 2],
    );
    assert.equal(d.reads.filter((r) => r.table === "tags").length, 2);
    assert.deepEqual(read(d, "boards").filter, { kind: "true" });
    assert.equal(d.limit, 10);
    assert.equal(d.offset, 5);
  });

  test("writes and control are not reads; refusals carry a code", () => {
    assert.equal(parseSql("sqlite", "insert into cards (title) values (?) returning id").kind, "write");
    assert.equal(parseSql("sqlite", "begin immediate").kind, "control");
    assert.equal(refusal("sqlite", "select * from json_each('[1]')"), "opaque_source");
    assert.equal(refusal("sqlite", "select * from cards where id in ()"), "unsupported_query");
    assert.equal(refusal("sqlite", "select * from cards natural join boards"), "unsupported_query");
    assert.equal(refusal("sqlite", "select * from cards where id in boards"), "unsupported_query");
    assert.equal(refusal("sqlite", "select * from cards where id = ?"), "unsupported_query");
  });
});
