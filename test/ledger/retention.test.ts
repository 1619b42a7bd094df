// Retention per table, on both dialects (and PostgreSQL's two capture modes): a "forever" table keeps its facts while
// others are pruned, "minimal" prunes below the lowest live hold whatever the age, a window per table; each table's
// horizon decides what reading it may do, survives a restart and is reset with a new incarnation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LEDGER } from "../../src/constants.ts";
import { ConfigError, OffsetTooOldError } from "../../src/errors.ts";
import {
  changes,
  type Fact,
  history,
  install as installLedger,
  type Ledger,
  openLedger,
  rowAt,
  uninstall,
} from "../../src/ledger/index.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const HOUR = 3_600_000;
const SCHEMA = `CREATE TABLE items (id integer PRIMARY KEY, v text);
CREATE TABLE audit (id integer PRIMARY KEY, v text);
CREATE TABLE sessions (id integer PRIMARY KEY, v text)`;

const logicalSkip = await logicalSkipReason();
const variants = [
  { dialect: "sqlite", capture: "triggers", name: "sqlite" },
  { dialect: "postgres", capture: "triggers", name: "postgres (triggers)" },
  { dialect: "postgres", capture: "logical", name: "postgres (logical decoding)" },
] as const;

/** Every fact of the ledger at or below `offset` committed two hours ago (as if written then). */
async function backdate(db: TestDb, offset: number): Promise<void> {
  await db.exec(
    db.kind === "sqlite"
      ? `UPDATE ${LEDGER.factsTable} SET at = at - 7200 WHERE id <= ${offset}`
      : `UPDATE ${LEDGER.factsTable} SET committed_at = committed_at - interval '2 hours' WHERE ledger_offset <= ${offset}`,
  );
}

const tooOld = (table: string | null, oldest: number) => (e: unknown) => {
  assert.ok(e instanceof OffsetTooOldError, String(e));
  assert.equal(e.code, "offset_too_old");
  assert.equal(e.table, table);
  assert.equal(e.oldest, oldest);
  if (table) {
    assert.match(
      e.message,
      new RegExp(`Facts of ${table} after offset \\d+ were pruned \\(its horizon is ${oldest - 1}\\)`),
    );
    assert.match(e.hint, new RegExp(`retention: \\{ tables: \\{ "${table}"`));
  }
  return true;
};

const offsets = (facts: Fact[]) => facts.map((f) => [f.table, f.offset]);

for (const { dialect, capture, name } of variants) {
  const skip =
    dialect === "postgres" && !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;
  const install = (database: string) =>
    installLedger({ database, capture: dialect === "postgres" ? capture : undefined });

  describe(`retention per table on ${name}`, { skip }, () => {
    async function withLedger(body: (db: TestDb, ledger: Ledger) => Promise<void>) {
      const db = await freshDb(dialect);
      let ledger: Ledger | undefined;
      try {
        await db.exec(SCHEMA);
        await install(db.url);
        ledger = await openLedger({ database: db.url });
        await body(db, ledger);
      } finally {
        await ledger?.close();
        await db.close();
      }
    }

    /** Runs the statements one by one, each its own transaction, and makes their facts readable. */
    async function write(db: TestDb, ledger: Ledger, ...statements: string[]): Promise<void> {
      for (const statement of statements) await db.exec(statement);
      await ledger.sync();
    }

    test("a forever table keeps its facts while a window prunes the others; rowAt reaches back to the start", () =>
      withLedger(async (db, ledger) => {
        await write(
          db,
          ledger,
          "INSERT INTO items VALUES (1, 'first')", // 1
          "INSERT INTO audit VALUES (1, 'first')", // 2
          "INSERT INTO sessions VALUES (1, 'first')", // 3
          "UPDATE items SET v = 'second' WHERE id = 1", // 4
          "UPDATE audit SET v = 'second' WHERE id = 1", // 5
        );
        await backdate(db, 5);
        await write(db, ledger, "INSERT INTO items VALUES (2, 'recent')", "INSERT INTO audit VALUES (2, 'recent')");
        const result = await ledger.prune({ olderThanMs: HOUR, retention: { tables: { audit: "forever" } } });
        assert.deepEqual(result, { pruned: 3, horizon: 4 });
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: { items: 4, sessions: 3 } });
        assert.equal(await ledger.horizon(), 4, "every table's facts are complete above the highest horizon");
        assert.equal(await ledger.horizon(["audit"]), 0);
        assert.equal(await ledger.horizon(["audit", "sessions"]), 3);

        // Reading every table from 0 is too old (items was pruned up to 4); reading for audit alone is not.
        await assert.rejects(ledger.read(0), tooOld("items", 5));
        await assert.rejects(ledger.read(2, { tables: ["sessions", "audit"] }), tooOld("sessions", 4));
        assert.deepEqual(offsets(await ledger.read(0, { tables: ["audit"] })), [
          ["audit", 2],
          ["audit", 5],
          ["items", 6],
          ["audit", 7],
        ]);

        const audit = await history(ledger, "audit", { id: 1 });
        assert.equal(audit.horizon, 0);
        assert.deepEqual(
          audit.facts.map((f) => [f.offset, f.op, f.new?.v]),
          [
            [2, "insert", "first"],
            [5, "update", "second"],
          ],
        );
        assert.deepEqual(await rowAt(ledger, "audit", { id: 1 }, 0), { row: null });
        assert.deepEqual(await rowAt(ledger, "audit", { id: 1 }, 4), { row: { id: 1, v: "first" } });
        assert.deepEqual(await rowAt(ledger, "audit", { id: 1 }, 5), { row: { id: 1, v: "second" } });

        const items = await history(ledger, "items", { id: 1 });
        assert.deepEqual(items, { table: "items", key: { id: 1 }, horizon: 4, facts: [] });
        await assert.rejects(rowAt(ledger, "items", { id: 1 }, 3), tooOld("items", 5));
        assert.deepEqual(await rowAt(ledger, "items", { id: 1 }, 4), { untouched: true });

        // changes(): too old only for the tables asked for.
        const seen: Fact[] = [];
        const abort = new AbortController();
        for await (const fact of changes(ledger, { tables: ["audit"], after: 0, signal: abort.signal })) {
          seen.push(fact);
          if (seen.length === 3) abort.abort();
        }
        assert.deepEqual(offsets(seen), [
          ["audit", 2],
          ["audit", 5],
          ["audit", 7],
        ]);
        const stale = changes(ledger, { tables: ["items", "audit"], after: 0 })[Symbol.asyncIterator]();
        await assert.rejects(stale.next(), tooOld("items", 5));
      }));

    test("minimal prunes below the lowest live hold whatever the age, never above it nor atOrBelow", () =>
      withLedger(async (db, ledger) => {
        await write(
          db,
          ledger,
          "INSERT INTO sessions VALUES (1, 's')", // 1
          "INSERT INTO items VALUES (1, 'i')", // 2
          "INSERT INTO sessions VALUES (2, 's')", // 3
          "INSERT INTO items VALUES (2, 'i')", // 4
          "INSERT INTO sessions VALUES (3, 's')", // 5
        );
        const retention = { default: { windowMs: HOUR }, tables: { sessions: "minimal" as const } };
        await ledger.holdPosition("process-a", 3);
        await ledger.holdPosition("process-b", 4);
        // Every fact is seconds old: the window keeps items; minimal lets sessions go up to the lowest hold.
        assert.deepEqual(await ledger.prune({ retention }), { pruned: 2, horizon: 3 });
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: { sessions: 3 } });
        await ledger.releasePosition("process-a");
        await ledger.releasePosition("process-b");
        assert.deepEqual(await ledger.prune({ retention, atOrBelow: 4 }), { pruned: 0, horizon: 3 });
        assert.deepEqual(await ledger.prune({ retention }), { pruned: 1, horizon: 5 });
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: { sessions: 5 } });
        assert.deepEqual(offsets(await ledger.read(0, { tables: ["items"] })), [
          ["items", 2],
          ["items", 4],
        ]);
        await assert.rejects(ledger.read(4, { tables: ["items", "sessions"] }), tooOld("sessions", 6));

        // A window of its own prunes one table by age, whatever the default keeps.
        await write(db, ledger, "INSERT INTO audit VALUES (1, 'old')", "INSERT INTO items VALUES (3, 'old')"); // 6, 7
        await backdate(db, 7);
        await write(db, ledger, "INSERT INTO audit VALUES (2, 'new')"); // 8
        const windows = { default: "forever" as const, tables: { audit: { windowMs: HOUR } } };
        assert.deepEqual(await ledger.prune({ retention: windows }), { pruned: 1, horizon: 6 });
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: { audit: 6, sessions: 5 } });
        await assert.rejects(ledger.read(0), tooOld("audit", 7));
        assert.deepEqual(offsets(await ledger.read(0, { tables: ["items"] })), [
          ["items", 2],
          ["items", 4],
          ["items", 7],
          ["audit", 8],
        ]);
      }));

    test("one policy for every table prunes a prefix and raises the floor, as a global retention did", () =>
      withLedger(async (db, ledger) => {
        await write(
          db,
          ledger,
          "INSERT INTO sessions VALUES (1, 's')", // 1
          "INSERT INTO items VALUES (1, 'i')", // 2
          "INSERT INTO audit VALUES (1, 'a')", // 3
          "INSERT INTO items VALUES (2, 'i')", // 4
        );
        await ledger.prune({ retention: { default: "forever", tables: { sessions: "minimal" } } });
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: { sessions: 1 } });
        // The same policy for every table named or not: one prefix, every table's horizon at least its cut.
        assert.deepEqual(
          await ledger.prune({ olderThanMs: 0, atOrBelow: 3, retention: { tables: { items: "minimal" } } }),
          {
            pruned: 2,
            horizon: 3,
          },
        );
        assert.deepEqual(await ledger.horizons(), { floor: 3, tables: {} });
        assert.equal(await ledger.horizon(["audit"]), 3);
        await assert.rejects(ledger.read(2, { tables: ["audit"] }), tooOld(null, 4));
        assert.deepEqual(offsets(await ledger.read(3)), [["items", 4]]);
      }));

    test("horizons survive a restart and are reset with a new incarnation", () =>
      withLedger(async (db, ledger) => {
        await write(db, ledger, "INSERT INTO sessions VALUES (1, 's')", "INSERT INTO items VALUES (1, 'i')");
        await ledger.prune({ olderThanMs: HOUR, retention: { tables: { sessions: "minimal" } } });
        const before = await ledger.horizons();
        assert.deepEqual(before, { floor: 0, tables: { sessions: 1 } });
        await ledger.close();
        const reopened = await openLedger({ database: db.url });
        try {
          assert.deepEqual(await reopened.horizons(), before);
          assert.equal(await reopened.horizon(["items"]), 0);
          await assert.rejects(reopened.read(0), tooOld("sessions", 2));
          assert.deepEqual(offsets(await reopened.read(0, { tables: ["items"] })), [["items", 2]]);
          assert.deepEqual((await reopened.resync()).horizon, 1);
        } finally {
          await reopened.close();
        }
        await uninstall({ database: db.url });
        await install(db.url);
        const fresh = await openLedger({ database: db.url });
        try {
          assert.deepEqual(await fresh.horizons(), { floor: 0, tables: {} });
          await write(db, fresh, "INSERT INTO sessions VALUES (2, 's')");
          assert.deepEqual(offsets(await fresh.read(0)), [["sessions", 1]]);
          assert.equal(await fresh.horizon(["sessions"]), 0);
        } finally {
          await fresh.close();
        }
      }));

    test("a retention that is not valid fails before anything is pruned", () =>
      withLedger(async (db, ledger) => {
        await write(db, ledger, "INSERT INTO sessions VALUES (1, 's')");
        const refused = (options: Parameters<Ledger["prune"]>[0], message: RegExp) =>
          assert.rejects(ledger.prune(options), (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.match(e.message, message);
            return true;
          });
        await refused(
          { retention: { default: "minimal", tables: { sessions: "gone" as never } } },
          /"gone" for table sessions/,
        );
        await refused(
          { olderThanMs: 0, retention: { tables: { sessions: { windowMs: -1 } } } },
          /window of table sessions is -1/,
        );
        await refused({ atOrBelow: 1 }, /needs the default policy/);
        assert.deepEqual(offsets(await readAll(ledger)), [["sessions", 1]]);
        assert.deepEqual(await ledger.horizons(), { floor: 0, tables: {} });
      }));
  });
}
