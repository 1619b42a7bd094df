import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { applyJsonPatch, diffJson, jsonEqual } from "./json-patch.ts";

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(null, true, false, 0, 1, "", "a", "~/x"),
    fc.integer(),
    fc.string({ maxLength: 4 }),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(fc.constantFrom("a", "b", "c", "~", "/", "a/b~1"), tie("value"), { maxKeys: 4 }),
  ),
})).value;

test("applying the diff of two JSON values turns the first into the second, without modifying it", () => {
  fc.assert(
    fc.property(json, json, (a, b) => {
      const frozen = JSON.stringify(a);
      const patch = diffJson(a, b);
      assert.ok(jsonEqual(applyJsonPatch(a, patch), b), JSON.stringify({ a, b, patch }));
      assert.equal(JSON.stringify(a), frozen);
    }),
    { numRuns: 2000 },
  );
});

test("equal values differ by nothing, and key order does not count", () => {
  assert.deepEqual(diffJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }), []);
});

test("one insertion or removal anywhere in an array is one operation", () => {
  const rows = [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }];
  assert.deepEqual(diffJson(rows, [rows[0], rows[1], { id: 9 }, rows[2], rows[3]]), [
    { op: "add", path: "/2", value: { id: 9 } },
  ]);
  assert.deepEqual(diffJson(rows, [rows[0], rows[2], rows[3]]), [{ op: "remove", path: "/1" }]);
  assert.deepEqual(diffJson(rows, [rows[0], { id: 2, title: "x" }, rows[2], rows[3]]), [
    { op: "add", path: "/1/title", value: "x" },
  ]);
});

test("keys with / and ~ are escaped as RFC 6901 says", () => {
  assert.deepEqual(diffJson({ "a/b": 1, "c~d": 1 }, { "a/b": 2, "c~d": 3 }), [
    { op: "replace", path: "/a~1b", value: 2 },
    { op: "replace", path: "/c~0d", value: 3 },
  ]);
});

test("unchanged branches keep their identity after a patch", () => {
  const doc = { left: { deep: [1, 2] }, right: { n: 1 } };
  const out = applyJsonPatch<typeof doc>(doc, [{ op: "replace", path: "/right/n", value: 2 }]);
  assert.equal(out.left, doc.left);
  assert.notEqual(out.right, doc.right);
});

test("an operation that does not fit the document is an error naming the path", () => {
  assert.throws(() => applyJsonPatch({ a: 1 }, [{ op: "remove", path: "/b" }]), /missing "b"/);
  assert.throws(() => applyJsonPatch([1], [{ op: "replace", path: "/3", value: 0 }]), /out of range/);
  assert.throws(() => applyJsonPatch(1, [{ op: "add", path: "/x", value: 0 }]), /inside a scalar/);
  assert.throws(() => applyJsonPatch({}, [{ op: "add", path: "x", value: 0 }]), /must start with/);
});
