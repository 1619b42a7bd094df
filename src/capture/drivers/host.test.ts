// Recording statements captured at a driver: SQLite's parse checked against SQLite's own reading, the dependency
// cache (row keys taken again from each statement's rows), writes refused during a render.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createCapture } from "../context.ts";
import { type CaptureHost, recordSync, type SqliteReads } from "./host.ts";

function host(reads: SqliteReads | null): CaptureHost {
  return {
    dialect: "sqlite",
    primaryKeys: (t) => (t === "cards" ? ["id"] : undefined),
    loadPrimaryKeys: async () => {},
    capturedTables: () => new Set(["cards", "boards"]),
    poke() {},
    sqliteReads: () => reads,
  };
}

describe("recording a statement sent through a SQLite driver", () => {
  test("a parse that misses a table or column SQLite reads is refused, naming it", () => {
    const sql = "select id, title from cards where board_id = ? and 1 = 1 -- missed";
    const capture = createCapture("/p");
    recordSync(capture.root, host(new Map([["cards", new Set(["id", "title", "board_id", "secret"])]])), {
      sql,
      params: [1],
      rows: [],
    });
    assert.equal(capture.queries.length, 0);
    assert.equal(capture.refusals[0]?.code, "refused_unsupported_query");
    assert.match(capture.refusals[0]!.message, /cards\.secret/);
    const other = createCapture("/p");
    recordSync(other.root, host(new Map([["boards", new Set([""])]])), {
      sql: "select id from cards -- a table missed",
      params: [],
      rows: [],
    });
    assert.match(other.refusals[0]!.message, /SQLite reads boards/);
    const unprepared = createCapture("/p");
    recordSync(unprepared.root, host(null), { sql: "select id from cards -- unprepared", params: [], rows: [] });
    assert.match(unprepared.refusals[0]!.message, /could not prepare/);
  });

  test("a parse SQLite agrees with is recorded; the same text and parameters reuse the dependency with new row keys", () => {
    const sql = "select id, title from cards where board_id = ?";
    const agrees = host(new Map([["cards", new Set(["id", "title", "board_id"])]]));
    const first = createCapture("/p");
    recordSync(first.root, agrees, { sql, params: [1], rows: [{ id: 1, title: "a" }] });
    const second = createCapture("/p");
    recordSync(second.root, agrees, { sql, params: [1], rows: [{ id: 2, title: "b" }] });
    const [a, b] = [first.queries[0]!, second.queries[0]!];
    assert.deepEqual(a.rowKeys, { table: "cards", keys: [{ id: 1 }] });
    assert.deepEqual(b.rowKeys, { table: "cards", keys: [{ id: 2 }] });
    assert.deepEqual(b.reads, a.reads);
    assert.equal(b.readsKey, a.readsKey);
    const third = createCapture("/p");
    recordSync(third.root, agrees, { sql, params: [2], rows: [] });
    assert.notEqual(third.queries[0]!.readsKey, a.readsKey);
    assert.deepEqual((third.queries[0]!.reads[0]!.filter as { right: unknown }).right, { kind: "value", value: 2 });
  });

  test("a write during a render is refused; a read of an uncaptured table too", () => {
    const capture = createCapture("/p");
    const h = host(new Map());
    recordSync(capture.root, h, { sql: "insert into cards (title) values (?)", params: ["x"], rows: [] });
    recordSync(capture.root, h, { sql: "select * from secrets", params: [], rows: [] });
    assert.deepEqual(
      capture.refusals.map((r) => r.code),
      ["refused_write_in_render", "refused_uncaptured_source"],
    );
  });
});
