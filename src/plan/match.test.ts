import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import fc from "fast-check";
import { type Expression, Kysely, type SqlBool } from "kysely";
import { col, dependency, fact, val } from "../../test/support/facts.ts";
import type { Predicate } from "../analysis/types.ts";
import { createCapture, runWithCapture } from "../capture/context.ts";
import { captureDialect, primaryKeyCatalog } from "../capture/dialect.ts";
import { nodeSqliteTestDialect } from "../capture/sqlite-test-dialect.ts";
import type { Row } from "../ledger/types.ts";
import { ReverseIndex } from "../register/reverse-index.ts";
import { evaluate, F, matchFact, N, T } from "./match.ts";

const onBoard1: Predicate = { kind: "compare", op: "=", left: col("board_id"), right: val(1) };
const card = (board_id: number, extra: Row = {}): Row => ({
  id: 7,
  board_id,
  title: "t",
  status: "todo",
  position: 1,
  ...extra,
});

describe("matchFact decisions", () => {
  const dep = dependency([{ filter: onBoard1, columns: new Set(["id", "board_id", "title"]) }]);

  test("insert into / outside the filter", () => {
    assert.deepEqual(matchFact(dep, fact("insert", null, card(1))).affected, true);
    assert.deepEqual(matchFact(dep, fact("insert", null, card(2))), {
      affected: false,
      reason: "predicate_did_not_match",
    });
  });
  test("update moving in, out, staying out", () => {
    assert.equal(matchFact(dep, fact("update", card(2), card(1))).affected, true);
    assert.equal(matchFact(dep, fact("update", card(1), card(2))).affected, true);
    assert.deepEqual(matchFact(dep, fact("update", card(2, { title: "x" }), card(3, { title: "y" }))), {
      affected: false,
      reason: "predicate_did_not_match",
    });
  });
  test("update of columns the read does not depend on", () => {
    assert.deepEqual(matchFact(dep, fact("update", card(1), card(1, { status: "done" }))), {
      affected: false,
      reason: "columns_not_read",
    });
    assert.equal(matchFact(dep, fact("update", card(1), card(1, { title: "new" }))).affected, true);
  });
  test("delete inside / outside", () => {
    assert.equal(matchFact(dep, fact("delete", card(1), null)).affected, true);
    assert.equal(matchFact(dep, fact("delete", card(5), null)).affected, false);
  });
  test("another table", () => {
    assert.deepEqual(matchFact(dep, fact("insert", null, { id: 1 }, "boards")), {
      affected: false,
      reason: "table_not_read",
    });
  });
  test("unknown predicates and missing columns count as possibly true", () => {
    const unknown = dependency([{ filter: { kind: "not", item: { kind: "unknown", why: "test" } } }]);
    assert.equal(matchFact(unknown, fact("insert", null, card(2))).affected, true);
    const other = dependency([{ filter: { kind: "compare", op: "=", left: col("owner"), right: val("ann") } }]);
    assert.equal(matchFact(other, fact("insert", null, card(2))).affected, true);
  });
  test("a TRUNCATE affects every read of its table, whatever the filter", () => {
    const truncate = { ...fact("truncate", null, null), key: {} };
    const result = matchFact(dep, truncate);
    assert.equal(result.affected, true);
    assert.match(result.affected ? result.why : "", /TRUNCATE/);
    assert.equal(matchFact(dep, { ...truncate, table: "boards" }).affected, false);
  });
  test("an unavailable image affects every read of its table, even where the partial image would not match", () => {
    // The new image is partial (the oversized title was left out) and its board_id says "another board": without
    // the unavailable flag this would be a miss.
    const partial = { ...fact("update", null, card(2)), unavailable: "title: value too large" };
    const result = matchFact(dep, partial);
    assert.equal(result.affected, true);
    assert.match(result.affected ? result.why : "", /unavailable \(title: value too large\)/);
    assert.equal(matchFact(dep, { ...fact("update", null, card(2)) }).affected, false);
  });
});

describe("three-valued evaluation", () => {
  const cmp = (op: "=" | "<>" | "<" | "<=" | ">" | ">=", a: unknown, b: unknown) =>
    evaluate({ kind: "compare", op, left: col("x"), right: val(b as never) }, { x: a });
  test("NULL is NULL, NOT NULL is NULL, IS NULL is decided", () => {
    assert.equal(cmp("=", null, 1), N);
    assert.equal(
      evaluate({ kind: "not", item: { kind: "compare", op: "=", left: col("x"), right: val(1) } }, { x: null }),
      N,
    );
    assert.equal(evaluate({ kind: "null", negated: false, operand: col("x") }, { x: null }), T);
    assert.equal(evaluate({ kind: "in", negated: true, left: col("x"), values: [val(1), val(null)] }, { x: 2 }), N);
  });
  test("SQLite vs PostgreSQL values", () => {
    assert.equal(cmp("=", 1, true), T, "SQLite booleans are 0/1");
    assert.equal(cmp("=", true, true), T);
    assert.equal(cmp("=", 2n ** 60n, 2 ** 60), T);
    assert.equal(cmp("<", 2n ** 60n + 1n, 2 ** 60), F);
    assert.equal(cmp("=", 3, "3"), T | F, "affinity decides");
    assert.equal(cmp("=", 3, "abc"), F);
    assert.equal(cmp("=", "abc", "ABC"), T | F, "a NOCASE column may say equal");
    assert.equal(cmp("=", "abc", "abd"), F);
    assert.equal(cmp("<", "a", "B"), T | F, "string order depends on the collation");
    assert.equal(cmp("=", new Date(0), "x"), T | F);
  });
  test("LIKE differs between the databases in case", () => {
    const like = (v: string, p: string, ci = false) =>
      evaluate({ kind: "like", negated: false, left: col("x"), pattern: val(p), caseInsensitive: ci }, { x: v });
    assert.equal(like("Hello", "He%"), T);
    assert.equal(like("Hello", "he%"), T | F);
    assert.equal(like("Hello", "x%"), F);
    assert.equal(like("Hello", "he%", true), T);
    assert.equal(like("a.c", "a_c"), T);
    assert.equal(like("abc", "a.c"), F);
  });
});

// ── soundness against real SQLite ────────────────────────────────────────────────────────────────────────

interface TDB {
  t: { id: number; a: number | null; b: string | null; c: string | null; d: unknown };
}

const VALUES = [null, 0, 1, 2, 3, -1, "1", "a", "A", "b", "a ", "ab", "B"] as const;

type Shape =
  | { kind: "cmp"; column: string; op: string; value: unknown }
  | { kind: "in"; column: string; neg: boolean; values: unknown[] }
  | { kind: "null"; column: string; neg: boolean }
  | { kind: "like"; column: string; neg: boolean; pattern: string }
  | { kind: "between"; column: string; lo: unknown; hi: unknown }
  | { kind: "not"; item: Shape }
  | { kind: "and" | "or"; items: Shape[] };

const columnArb = fc.constantFrom("a", "b", "c", "d");
const valueArb = fc.constantFrom(...VALUES);
const leafArb: fc.Arbitrary<Shape> = fc.oneof(
  fc.record({
    kind: fc.constant("cmp" as const),
    column: columnArb,
    op: fc.constantFrom("=", "<>", "<", "<=", ">", ">="),
    value: valueArb,
  }),
  fc.record({
    kind: fc.constant("in" as const),
    column: columnArb,
    neg: fc.boolean(),
    values: fc.array(valueArb, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant("null" as const), column: columnArb, neg: fc.boolean() }),
  fc.record({
    kind: fc.constant("like" as const),
    column: columnArb,
    neg: fc.boolean(),
    pattern: fc.constantFrom("a%", "A%", "%b", "_", "1"),
  }),
  fc.record({ kind: fc.constant("between" as const), column: columnArb, lo: valueArb, hi: valueArb }),
);
const shapeArb: fc.Arbitrary<Shape> = fc.letrec<{ shape: Shape }>((tie) => ({
  shape: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leafArb,
    fc.record({ kind: fc.constant("not" as const), item: tie("shape") }),
    fc.record({
      kind: fc.constantFrom("and" as const, "or" as const),
      items: fc.array(tie("shape"), { minLength: 1, maxLength: 3 }),
    }),
  ),
})).shape;

function build(eb: any, s: Shape): Expression<SqlBool> {
  switch (s.kind) {
    case "cmp":
      return eb(s.column, s.op, s.value);
    case "in":
      return eb(s.column, s.neg ? "not in" : "in", s.values);
    case "null":
      return eb(s.column, s.neg ? "is not" : "is", null);
    case "like":
      return eb(s.column, s.neg ? "not like" : "like", s.pattern);
    case "between":
      return eb.between(s.column, s.lo, s.hi);
    case "not":
      return eb.not(build(eb, s.item));
    case "and":
      return eb.and(s.items.map((i) => build(eb, i)));
    case "or":
      return eb.or(s.items.map((i) => build(eb, i)));
  }
}

const rowArb = fc.record({ a: fc.constantFrom(null, 0, 1, 2, 3), b: valueArb, c: valueArb, d: valueArb });
const changeArb = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), row: rowArb }),
  fc.record({
    op: fc.constant("update" as const),
    id: fc.integer({ min: 1, max: 6 }),
    set: fc.record(
      { a: fc.constantFrom(null, 0, 1, 2, 3), b: valueArb, c: valueArb, d: valueArb },
      { requiredKeys: [] },
    ),
  }),
  fc.record({ op: fc.constant("delete" as const), id: fc.integer({ min: 1, max: 6 }) }),
);
const queryArb = fc.record({
  where: shapeArb,
  select: fc.constantFrom("all", "a", "b,c", "count", "group"),
  limit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  orderBy: fc.constantFrom("id", "a", "b"),
});

describe("soundness: a change that alters the result is always matched (real SQLite)", () => {
  test("random rows, predicates and changes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rowArb, { minLength: 0, maxLength: 6 }),
        queryArb,
        changeArb,
        async (rows, query, change) => {
          const raw = new DatabaseSync(":memory:");
          raw.exec("create table t (id integer primary key, a integer, b text, c text collate nocase, d)");
          const bind = (v: unknown) => (v === undefined ? null : (v as null));
          for (const [i, r] of rows.entries())
            raw.prepare("insert into t values (?, ?, ?, ?, ?)").run(i + 1, bind(r.a), bind(r.b), bind(r.c), bind(r.d));
          const db = new Kysely<TDB>({
            dialect: captureDialect(nodeSqliteTestDialect(raw), primaryKeyCatalog("sqlite")),
          });
          const run = () => {
            let q: any = db.selectFrom("t").where((eb) => build(eb, query.where));
            if (query.select === "all") q = q.selectAll();
            else if (query.select === "count") q = q.select((eb: any) => eb.fn.countAll().as("n"));
            else if (query.select === "group") q = q.select((eb: any) => ["a", eb.fn.countAll().as("n")]).groupBy("a");
            else q = q.select(query.select.split(","));
            if (query.select !== "count" && query.select !== "group") q = q.orderBy(query.orderBy).orderBy("id");
            else if (query.select === "group") q = q.orderBy("a");
            if (query.limit !== undefined) q = q.limit(query.limit);
            return q.execute() as Promise<unknown[]>;
          };
          const capture = createCapture("/");
          const before = await runWithCapture(capture, run);
          assert.equal(capture.refusals.length, 0);
          const dep = capture.queries[0];

          const image = (id: number) =>
            (raw.prepare("select * from t where id = ?").get(id) as Row | undefined) ?? null;
          let old: Row | null = null;
          let next: Row | null = null;
          if (change.op === "insert") {
            const r = change.row;
            const id = Number(
              raw
                .prepare("insert into t (a, b, c, d) values (?, ?, ?, ?)")
                .run(bind(r.a), bind(r.b), bind(r.c), bind(r.d)).lastInsertRowid,
            );
            next = image(id);
          } else if (change.op === "update") {
            old = image(change.id);
            const sets = Object.entries(change.set);
            if (old && sets.length > 0) {
              raw
                .prepare(`update t set ${sets.map(([k]) => `${k} = ?`).join(", ")} where id = ?`)
                .run(...sets.map(([, v]) => bind(v)), change.id);
            }
            next = image(change.id);
          } else {
            old = image(change.id);
            raw.prepare("delete from t where id = ?").run(change.id);
          }
          const after = await run();
          await db.destroy();
          if (!old && !next) return; // nothing happened
          if (change.op === "update" && JSON.stringify(old) === JSON.stringify(next)) return; // no-op: no fact
          const f = fact(change.op, old, next, "t");
          const result = matchFact(dep, f);
          const index = new ReverseIndex<string>();
          index.set("page", [dep]);
          if (JSON.stringify(before) !== JSON.stringify(after)) {
            assert.equal(result.affected, true, `${dep.sql}\n${JSON.stringify({ old, next, before, after, result })}`);
            assert.ok(index.candidates(f).has("page"), "the reverse index finds the affected page");
          }
          if (result.affected) assert.ok(index.candidates(f).has("page"), "the index finds every match");
        },
      ),
      { numRuns: 400 },
    );
  });
});
