import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { col, dependency, eq, fact, val } from "../../test/support/facts.ts";
import type { Predicate, QueryDependency } from "../analysis/types.ts";
import type { Row } from "../ledger/types.ts";
import { anchorOf, ReverseIndex } from "./reverse-index.ts";

const dep = (filter: Predicate, table = "cards", columns: Set<string> | "*" = "*"): QueryDependency =>
  dependency([{ table, columns, filter }]);

const card = (id: number, board_id: number, status = "todo"): Row => ({ id, board_id, status, title: "t" });

describe("ReverseIndex", () => {
  const index = new ReverseIndex<string>();
  index.set("board1", [dep(eq("board_id", 1))]);
  index.set("board2", [dep(eq("board_id", 2))]);
  index.set("card5", [dep(eq("id", 5))]);
  index.set("todoOrDoing", [
    dep({ kind: "in", negated: false, left: col("status"), values: [val("todo"), val("doing")] }),
  ]);
  index.set("recent", [dep({ kind: "compare", op: ">", left: col("id"), right: val(100) })]);
  index.set("boards", [dep({ kind: "true" }, "boards")]);

  test("precision: a fact only finds subjects keyed by its values, plus the table's scan list", () => {
    const c = index.candidates(fact("insert", null, card(9, 3, "done")));
    assert.deepEqual([...c].sort(), ["recent"]);
    assert.deepEqual(index.match(fact("insert", null, card(9, 3, "done"))), []);
  });

  test("a table-wide fact (TRUNCATE, unavailable image) finds every subject of its table and no other", () => {
    const expected = ["board1", "board2", "card5", "recent", "todoOrDoing"];
    const truncate = { ...fact("truncate", null, null), key: {} };
    assert.deepEqual([...index.candidates(truncate)].sort(), expected);
    assert.deepEqual(
      index
        .match(truncate)
        .map((m) => m.subject)
        .sort(),
      expected,
    );
    const unavailable = { ...fact("update", null, null), key: { id: 9 }, unavailable: "image not decodable" };
    assert.deepEqual(
      index
        .match(unavailable)
        .map((m) => m.subject)
        .sort(),
      expected,
    );
  });

  test("old and new images are both looked up", () => {
    const moved = fact("update", card(5, 1), card(5, 2));
    assert.deepEqual([...index.candidates(moved)].sort(), ["board1", "board2", "card5", "recent", "todoOrDoing"]);
    assert.deepEqual(
      index
        .match(moved)
        .map((m) => m.subject)
        .sort(),
      ["board1", "board2", "card5", "todoOrDoing"],
    );
  });

  test("another table finds nothing of this one", () => {
    assert.deepEqual([...index.candidates(fact("insert", null, { id: 1 }, "tags"))], []);
    assert.deepEqual([...index.candidates(fact("insert", null, { id: 1 }, "boards"))], ["boards"]);
  });

  test("values that the database may call equal share keys (numeric strings, NOCASE strings)", () => {
    assert.ok(index.candidates(fact("insert", null, { ...card(9, 3), board_id: "1" })).has("board1"));
    assert.ok(index.candidates(fact("insert", null, { ...card(9, 3), status: "TODO" })).has("todoOrDoing"));
    assert.ok(!index.candidates(fact("insert", null, { ...card(9, 3), board_id: null })).has("board1"));
  });

  test("an image without the anchored column finds every entry of that column", () => {
    const c = index.candidates(fact("insert", null, { id: 9 }));
    assert.ok(c.has("board1") && c.has("board2") && c.has("todoOrDoing"));
  });

  test("set replaces, delete removes", () => {
    const i = new ReverseIndex<string>();
    i.set("p", [dep(eq("board_id", 1))]);
    i.set("p", [dep(eq("board_id", 2))]);
    assert.equal(i.candidates(fact("insert", null, card(1, 1))).size, 0);
    assert.equal(i.candidates(fact("insert", null, card(1, 2))).size, 1);
    assert.equal(i.delete("p"), true);
    assert.equal(i.candidates(fact("insert", null, card(1, 2))).size, 0);
    assert.equal(i.size, 0);
  });

  test("explain names the reason for every miss", () => {
    const i = new ReverseIndex<string>();
    i.set("board1", [dep(eq("board_id", 1), "cards", new Set(["board_id", "title"]))]);
    i.set("boards", [dep({ kind: "true" }, "boards")]);
    const none = i.explain(fact("insert", null, card(1, 2)));
    assert.deepEqual(none.candidates, []);
    assert.equal(none.reason, "no_matching_subscriber");
    assert.deepEqual(none.misses, [
      { subject: "board1", reason: "predicate_did_not_match" },
      { subject: "boards", reason: "table_not_read" },
    ]);
    const status = i.explain(fact("update", card(1, 1, "todo"), card(1, 1, "done")));
    assert.deepEqual(status.candidates, ["board1"]);
    assert.deepEqual(status.matched, []);
    assert.deepEqual(status.misses[0], { subject: "board1", reason: "columns_not_read" });
    const hit = i.explain(fact("insert", null, card(1, 1)));
    assert.deepEqual(hit.matched, ["board1"]);
    assert.equal(hit.reason, undefined);
  });

  test("anchors: fewest keys wins; null anchors match nothing; non-keyable values are not anchors", () => {
    const both: Predicate = {
      kind: "and",
      items: [{ kind: "in", negated: false, left: col("status"), values: [val("a"), val("b")] }, eq("id", 3)],
    };
    assert.equal(anchorOf(both)?.column, "id");
    assert.deepEqual(anchorOf(eq("id", null)), { column: "id", keys: [] });
    assert.equal(
      anchorOf({ kind: "compare", op: "=", left: col("x"), right: { kind: "value", value: new Uint8Array([1]) } }),
      null,
    );
    assert.equal(anchorOf({ kind: "or", items: [eq("id", 1), eq("id", 2)] }), null);
  });
});
