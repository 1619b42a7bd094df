import assert from "node:assert/strict";
import { test } from "node:test";
import { decodePgImage, decodeSqliteImage, parseJson, toJsonSafe, undecodableReason, utcIso } from "./decode.ts";

test("integers beyond 2^53 become bigints; others stay numbers", () => {
  assert.deepEqual(
    parseJson('{"a":9007199254740993,"b":9007199254740991,"c":-9223372036854775808,"d":1.5,"e":1e300}'),
    {
      a: 9007199254740993n,
      b: 9007199254740991,
      c: -9223372036854775808n,
      d: 1.5,
      e: 1e300,
    },
  );
});

test("SQLite blob tags become bytes", () => {
  assert.deepEqual(decodeSqliteImage('{"b":{"$blob":"00ff"},"t":"{\\"$blob\\":\\"00\\"}"}'), {
    b: new Uint8Array([0, 255]),
    t: '{"$blob":"00"}',
  });
  assert.equal(decodeSqliteImage(null), null);
});

test("PostgreSQL bytea and timestamptz are decoded by column type", () => {
  const codecs = new Map([
    ["b", "bytea" as const],
    ["ts", "timestamptz" as const],
  ]);
  assert.deepEqual(decodePgImage('{"b":"\\\\x0aff","ts":"2024-05-01T12:00:00.5+02:00","t":"\\\\x00"}', codecs), {
    b: new Uint8Array([10, 255]),
    ts: "2024-05-01T10:00:00.5Z",
    t: "\\x00",
  });
  assert.equal(utcIso("2024-01-01T00:00:00-05:30"), "2024-01-01T05:30:00Z");
  assert.equal(utcIso("infinity"), "infinity");
});

test("toJsonSafe renders bigints as strings and bytes as hex", () => {
  assert.deepEqual(toJsonSafe({ a: 1n, b: new Uint8Array([1, 171]), c: [2n] }), { a: "1", b: "01ab", c: ["2"] });
});

test("reasons name no row data: an undecodable image keeps only the fault's position", () => {
  const reasons = ['{"title": "top-secret" Inf}', '{"title": "top-secret"', "null"].map((text) => {
    try {
      decodeSqliteImage(text);
      return "decoded";
    } catch (error) {
      return undecodableReason(error);
    }
  });
  assert.deepEqual(reasons, [
    "undecodable image (not valid JSON at position 23)",
    "undecodable image (not valid JSON at position 22)",
    "undecodable image (not a row image)",
  ]);
});

test("a one-column image of a table with a column named $unavailable is unavailable, with Upkeep's own reason", () => {
  const why: string[] = [];
  assert.equal(decodeSqliteImage('{"$unavailable":"a value"}', why, true), null);
  assert.equal(decodePgImage('{"$unavailable":"a value"}', new Map([["$unavailable", "plain" as const]]), why), null);
  assert.deepEqual(why, [
    "image unavailable (the table has a column named $unavailable)",
    "image unavailable (the table has a column named $unavailable)",
  ]);
  const marker: string[] = [];
  assert.equal(decodeSqliteImage('{"$unavailable":"blob of 9 bytes"}', marker), null);
  assert.deepEqual(marker, ["blob of 9 bytes"]);
});
