import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ANONYMOUS_IDENTITY,
  createCapture,
  currentCapture,
  deriveIdentity,
  identityDigest,
  parseCookies,
  recordInput,
  runWithCapture,
  runWithoutCapture,
} from "./context.ts";

describe("capture context", () => {
  test("the current capture follows async work and is absent outside", async () => {
    assert.equal(currentCapture(), undefined);
    const capture = createCapture("/boards/1", 42);
    await runWithCapture(capture, async () => {
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(currentCapture(), capture);
      recordInput("cookie:session", "abc");
      recordInput("cookie:session", "changed");
      recordInput("header:accept-language", "en");
      runWithoutCapture(() => assert.equal(currentCapture(), undefined));
    });
    recordInput("cookie:other", "ignored");
    assert.equal(capture.renderOffset, 42);
    assert.deepEqual(
      [...capture.inputs],
      [
        ["cookie:session", "abc"],
        ["header:accept-language", "en"],
      ],
    );
  });

  test("deriveIdentity re-derives cookie and header inputs and matches the recorded digest", () => {
    const recorded = new Map<string, string | null>([
      ["cookie:session", "abc def"],
      ["header:accept-language", "en"],
      ["session:user_id", "7"],
      ["cookie:theme", null],
    ]);
    const derived = deriveIdentity([...recorded.keys()], {
      Cookie: 'other=1; session="abc%20def"; session=second',
      "Accept-Language": "en",
    });
    assert.deepEqual(
      [...derived.values],
      [
        ["cookie:session", "abc def"],
        ["header:accept-language", "en"],
        ["cookie:theme", null],
      ],
    );
    assert.equal(derived.digest, identityDigest(recorded));
    const someoneElse = deriveIdentity([...recorded.keys()], { cookie: "session=xyz", "accept-language": "en" });
    assert.notEqual(someoneElse.digest, derived.digest);
  });

  test("no identity inputs: the anonymous signature; null differs from empty", () => {
    assert.equal(deriveIdentity([], { cookie: "a=1" }).digest, ANONYMOUS_IDENTITY);
    assert.equal(identityDigest(new Map([["user", "7"]])), ANONYMOUS_IDENTITY);
    assert.notEqual(identityDigest(new Map([["cookie:a", null]])), identityDigest(new Map([["cookie:a", ""]])));
    assert.notEqual(
      identityDigest(
        new Map([
          ["cookie:a", "b"],
          ["cookie:c", "d"],
        ]),
      ),
      identityDigest(new Map([["cookie:a", "b1:cookie:c1:d"]])),
    );
  });

  test("cookie parsing", () => {
    assert.deepEqual(
      [...parseCookies(" a=1;b = 2 ; c=%E2%9C%93; bad; d=%zz")],
      [
        ["a", "1"],
        ["b", "2"],
        ["c", "✓"],
        ["d", "%zz"],
      ],
    );
  });
});
