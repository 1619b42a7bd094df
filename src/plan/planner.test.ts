import assert from "node:assert/strict";
import { test } from "node:test";
import type { QueryDependency } from "../analysis/types.ts";
import { valuesKey } from "../analysis/values.ts";
import type { Fact } from "../ledger/types.ts";
import { depsKey, planBatch, readsKey } from "./planner.ts";

test("values keys: equal only for equal values (no string, number, bigint, null or bytes spelling collides)", () => {
  const values = [
    1,
    "1",
    1n,
    "1n",
    { $bigint: "1" },
    null,
    "null",
    Number.NaN,
    Number.POSITIVE_INFINITY,
    new Uint8Array([1]),
    "x01",
    true,
    "true",
  ];
  const keys = values.map((v) => valuesKey([v]));
  assert.equal(new Set(keys).size, values.length, keys.join(" | "));
  assert.equal(valuesKey([1n, new Uint8Array([1, 2])]), valuesKey([1n, new Uint8Array([1, 2])]));
  // A value it cannot encode is equal to nothing, not even itself encoded again.
  class Money {}
  const money = new Money();
  assert.notEqual(valuesKey([money]), valuesKey([money]));
});

const dep = (value: string, key?: string): QueryDependency => ({
  sql: "select * from cards where status = ?",
  reads: [
    {
      table: "cards",
      aliases: ["cards"],
      columns: "*",
      filter: {
        kind: "compare",
        op: "=",
        left: { kind: "column", table: "cards", column: "status" },
        right: { kind: "value", value },
      },
    },
  ],
  order: [],
  limit: null,
  offset: null,
  aggregate: false,
  rowKeys: null,
  ...(key === undefined ? {} : { readsKey: key }),
});

test("planning decides each distinct read once per fact, and every frame holding it by itself", () => {
  const frames = [
    { dirty: false, renderOffset: 0, deps: [dep("todo")] },
    { dirty: false, renderOffset: 0, deps: [dep("todo")] },
    { dirty: false, renderOffset: 0, deps: [dep("done")] },
    { dirty: false, renderOffset: 10, deps: [dep("todo")] }, // rendered after the fact
  ].map((f) => ({ ...f, depsKey: depsKey(f.deps) }));
  assert.equal(frames[0]!.depsKey, frames[1]!.depsKey, "equal reads share one interned key");
  assert.notEqual(readsKey(dep("todo")), readsKey(dep("done")));
  const fact = {
    offset: 5,
    table: "cards",
    op: "insert",
    old: null,
    new: { id: 1, status: "todo" },
  } as unknown as Fact;
  const registry = {
    forEachCandidate: (_: Fact, visit: (f: (typeof frames)[number]) => void) => frames.forEach(visit),
  };
  const { dirtied } = planBatch(registry, [fact]);
  assert.deepEqual(dirtied, [frames[0], frames[1]]);
  assert.deepEqual(
    frames.map((f) => f.dirty),
    [true, true, false, false],
  );
});
