import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../errors.ts";
import { horizonOf, parseHorizons } from "./core.ts";
import { cutOf, prunePolicies, pruneSteps, resolveRetention, windowsOf } from "./retention.ts";
import type { RetentionPolicy } from "./types.ts";

const HOUR = 3_600_000;
const HOUR_POLICY = { windowMs: HOUR };

/** A pass where the head, atOrBelow and holds allow offset 100, and windows of one hour start at offset 60. */
const cut = (policy: RetentionPolicy) => cutOf(policy, 100, new Map([[HOUR, 61]]));

test("each policy's cut: forever keeps all, minimal goes to the limit, a window to its first recent fact", () => {
  assert.equal(cut("forever"), null);
  assert.equal(cut("minimal"), 100);
  assert.equal(cut({ windowMs: HOUR }), 60);
  // No fact as recent as the window: everything up to the limit is older.
  assert.equal(cutOf({ windowMs: HOUR }, 100, new Map([[HOUR, undefined]])), 100);
  // Never above the limit (a live hold, atOrBelow), whatever the window says.
  assert.equal(cutOf({ windowMs: HOUR }, 40, new Map([[HOUR, 61]])), 40);
});

test("one policy for every table prunes a prefix; per-table policies prune table by table", () => {
  const global = resolveRetention(undefined, { windowMs: HOUR }, "test");
  assert.deepEqual(pruneSteps(global, cut), [{ cut: 60, except: [] }]);
  assert.deepEqual(pruneSteps(resolveRetention(undefined, "forever", "test"), cut), []);

  const mixed = resolveRetention(
    { tables: { audit: "forever", sessions: "minimal", tokens: "minimal", cards: { windowMs: HOUR } } },
    { windowMs: HOUR },
    "test",
  );
  // cards has the default's cut: it is pruned with the default's step, not on its own.
  assert.deepEqual(pruneSteps(mixed, cut), [
    { cut: 60, except: ["audit", "sessions", "tokens"] },
    { cut: 100, only: ["sessions", "tokens"] },
  ]);
  const foreverByDefault = resolveRetention({ default: "forever", tables: { sessions: "minimal" } }, HOUR_POLICY, "t");
  assert.deepEqual(pruneSteps(foreverByDefault, cut), [{ cut: 100, only: ["sessions"] }]);
  assert.deepEqual(windowsOf(mixed), [HOUR]);
});

test("horizons: the floor covers every table, a table's own only above it", () => {
  const horizons = parseHorizons([
    { key: "incarnation", value: "abc" },
    { key: "horizon", value: "10" },
    { key: "horizon:sessions", value: "40" },
    { key: "horizon:old", value: "5" },
  ]);
  assert.deepEqual(horizons, { floor: 10, tables: { sessions: 40 } });
  assert.deepEqual(horizonOf(horizons), { horizon: 40, table: "sessions" });
  assert.deepEqual(horizonOf(horizons, ["cards"]), { horizon: 10, table: null });
  assert.deepEqual(horizonOf(horizons, ["cards", "sessions"]), { horizon: 40, table: "sessions" });
  assert.deepEqual(horizonOf(horizons, []), { horizon: 10, table: null });
});

test("bad retention configuration fails naming the problem and the fix", () => {
  const fails = (fn: () => unknown, message: RegExp, hint: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.code, "config");
      assert.match(e.message, message);
      assert.match(e.hint, hint);
      return true;
    });
  const resolve = (retention: unknown) => () => resolveRetention(retention as never, "forever", "createUpkeep()");
  fails(
    resolve({ tables: { audit_log: "forevr" } }),
    /Unknown retention policy "forevr" for table audit_log/,
    /"forever", "minimal" or \{ windowMs/,
  );
  fails(
    resolve({ tables: { sessions: { windowMs: -5 } } }),
    /retention window of table sessions is -5/,
    /windowMs: 7 \* 24/,
  );
  fails(resolve({ default: { windowMs: Number.NaN } }), /window of the default is NaN/, /windowMs/);
  fails(resolve({ default: { window: 5 } }), /exactly one key, windowMs/, /windowMs/);
  fails(resolve({ default: 7 }), /retention policy of the default is 7/, /"forever"/);
  fails(resolve({ defualt: "forever" }), /unknown retention option "defualt"/, /\{ default, tables \}/);
  fails(resolve({ tables: ["audit"] }), /retention.tables is \["audit"\]/, /tables: \{/);
  fails(() => prunePolicies({}), /needs the default policy/, /olderThanMs/);
  fails(() => prunePolicies({ olderThanMs: -1 }), /window of olderThanMs is -1/, /windowMs/);
  fails(
    () => prunePolicies({ olderThanMs: 0, retention: { default: "minimal" } }),
    /both olderThanMs and retention.default/,
    /one of them/,
  );
  assert.deepEqual(prunePolicies({ olderThanMs: 5 }), { default: { windowMs: 5 }, tables: new Map() });
});
