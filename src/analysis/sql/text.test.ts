// One semantics: a Kysely query analysed from its OperationNode tree and the same query analysed from the SQL text
// it compiles to (PostgreSQL's and SQLite's), with the parameters bound, give the same dependency.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import { RefusedBoundaryError } from "../../errors.ts";
import { analyzeQuery } from "../analyze.ts";
import type { QueryDependency } from "../types.ts";
import { analyzeSql, loadPostgresParser, type SqlDialect } from "./text.ts";

interface DB {
  boards: { id: number; name: string; owner: string | null };
  cards: { id: number; board_id: number; title: string; status: string; position: number; archived: number };
  tags: { card_id: number; tag: string };
}

const builders: Record<SqlDialect, Kysely<DB>> = {
  postgres: new Kysely<DB>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  }),
  sqlite: new Kysely<DB>({
    dialect: {
      createAdapter: () => new SqliteAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new SqliteIntrospector(db),
      createQueryCompiler: () => new SqliteQueryCompiler(),
    },
  }),
};

const pk = (t: string) => (t === "tags" ? ["card_id", "tag"] : ["id"]);

/** The parts of a dependency both routes must agree on (columns as sorted lists). */
function shape(d: QueryDependency) {
  return {
    reads: d.reads.map((r) => ({
      table: r.table,
      aliases: r.aliases,
      columns: r.columns === "*" ? "*" : [...r.columns].sort(),
      filter: r.filter,
    })),
    order: d.order,
    orderIncomplete: d.orderIncomplete ?? false,
    limit: d.limit,
    offset: d.offset,
    aggregate: d.aggregate,
    rowKeys: d.rowKeys,
  };
}

const QUERIES: [string, (db: Kysely<DB>) => { compile(): any }][] = [
  [
    "where, order, limit, offset",
    (db) =>
      db
        .selectFrom("cards")
        .select(["id", "title"])
        .where("board_id", "=", 1)
        .where("status", "<>", "done")
        .orderBy("position", "desc")
        .limit(10)
        .offset(5),
  ],
  [
    "in, not in, is null, like, between, or, not",
    (db) =>
      db
        .selectFrom("cards")
        .selectAll()
        .where((eb) =>
          eb.or([eb("id", "in", [1, 2]), eb("status", "not in", ["x"]), eb.not(eb("title", "like", "a%"))]),
        )
        .where("position", "is", null)
        .where((eb) => eb.between("id", 1, 9)),
  ],
  [
    "inner and left joins with aliases",
    (db) =>
      db
        .selectFrom("cards as c")
        .innerJoin("boards as b", "b.id", "c.board_id")
        .leftJoin("tags as t", "t.card_id", "c.id")
        .select(["c.id", "b.name", "t.tag"])
        .where("b.owner", "=", "ann")
        .where("c.archived", "=", 0),
  ],
  [
    "exists and in subqueries",
    (db) =>
      db
        .selectFrom("boards")
        .select("id")
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom("cards")
              .select("id")
              .whereRef("cards.board_id", "=", "boards.id")
              .where("status", "=", "todo"),
          ),
        )
        .where("id", "in", (eb) =>
          eb
            .selectFrom("tags")
            .innerJoin("cards", "cards.id", "tags.card_id")
            .select("cards.board_id")
            .where("tag", "=", "x"),
        ),
  ],
  [
    "count, group by, having",
    (db) =>
      db
        .selectFrom("cards")
        .select(["board_id", (eb) => eb.fn.countAll().as("n")])
        .where("archived", "=", 0)
        .groupBy("board_id")
        .having((eb) => eb.fn.countAll(), ">", 1),
  ],
  [
    "a CTE and a union",
    (db) =>
      db
        .with("open", (q) => q.selectFrom("cards").select(["id", "board_id"]).where("status", "<>", "done"))
        .selectFrom("open")
        .innerJoin("boards", "boards.id", "open.board_id")
        .select(["open.id", "boards.name"])
        .union(db.selectFrom("cards").select(["id", "title as name"]).where("archived", "=", 1)),
  ],
  [
    "a derived table",
    (db) =>
      db
        .selectFrom((eb) => eb.selectFrom("cards").select(["id", "title"]).where("board_id", "=", 2).as("d"))
        .select(["d.id", "d.title"])
        .orderBy("d.id"),
  ],
  ["composite keys", (db) => db.selectFrom("tags").select(["card_id", "tag"]).where("tag", "=", "y")],
];

describe("SQL text and Kysely's tree give the same dependency", () => {
  before(() => loadPostgresParser());
  for (const dialect of ["postgres", "sqlite"] as const) {
    for (const [name, build] of QUERIES) {
      test(`${dialect}: ${name}`, () => {
        const compiled = build(builders[dialect]).compile();
        const rows = [{ id: 1, card_id: 1, tag: "y" }];
        const fromTree = analyzeQuery(compiled.query, compiled, rows, pk);
        const fromText = analyzeSql(dialect, compiled.sql, compiled.parameters, rows, pk);
        assert.ok(fromTree && !(fromTree instanceof RefusedBoundaryError), String(fromTree));
        assert.ok(fromText && !(fromText instanceof RefusedBoundaryError), `${fromText}`);
        assert.deepEqual(shape(fromText), shape(fromTree));
      });
    }
  }
});
