// The ledger's fault model, one behaviour suite over both dialects and PostgreSQL's two capture modes: a dropped facts table is reported (and on
// PostgreSQL never fails a write), reinstalling starts a new incarnation that a running ledger adopts with
// resync(), and pruning never cuts above a live position hold.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LEDGER } from "../../src/constants.ts";
import { IncarnationMismatchError, LedgerMissingError } from "../../src/errors.ts";
import { install as installLedger, type Ledger, openLedger } from "../../src/ledger/index.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const ITEMS = "CREATE TABLE items (id integer PRIMARY KEY, name text)";

const logicalSkip = await logicalSkipReason();
const variants = [
  { dialect: "sqlite", capture: undefined, name: "sqlite" },
  { dialect: "postgres", capture: "triggers", name: "postgres (triggers)" },
  { dialect: "postgres", capture: "logical", name: "postgres (logical decoding)" },
] as const;

for (const { dialect, capture, name } of variants) {
  const skip =
    dialect === "postgres" && !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;
  const install = (options: { database: string }) => installLedger({ ...options, capture });

  describe(`ledger faults on ${name}`, { skip }, () => {
    async function withLedger(body: (db: TestDb, ledger: Ledger, logged: string[]) => Promise<void>) {
      const db = await freshDb(dialect);
      const logged: string[] = [];
      let ledger: Ledger | undefined;
      try {
        await db.exec(ITEMS);
        await install({ database: db.url });
        ledger = await openLedger({ database: db.url, log: (_level, message) => logged.push(message) });
        await body(db, ledger, logged);
      } finally {
        await ledger?.close();
        await db.close();
      }
    }

    test("a facts table dropped under a running ledger: reads say LedgerMissingError once in the log; a reinstall is a new incarnation that resync adopts", () =>
      withLedger(async (db, ledger, logged) => {
        await db.exec("INSERT INTO items VALUES (1, 'a')");
        assert.equal((await readAll(ledger)).length, 1);
        const before = ledger.incarnation;
        await db.exec(`DROP TABLE ${LEDGER.factsTable}`);
        await assert.rejects(ledger.read(1), (e: LedgerMissingError) => e.code === "ledger_missing");
        await assert.rejects(ledger.read(1), LedgerMissingError);
        assert.equal(logged.filter((m) => m.includes("change ledger") && m.includes("is gone")).length, 1);
        if (dialect === "postgres") {
          // The capture function skips a missing ledger, and logical capture is not in the write's path: the user's
          // write succeeds. It belongs to no incarnation: the reinstall below starts after it.
          await db.exec("INSERT INTO items VALUES (2, 'b')");
        }
        await install({ database: db.url });
        // Offsets restart at 1 in the new incarnation: the old offset 1 must not be trusted.
        await assert.rejects(ledger.read(1), IncarnationMismatchError);
        const position = await ledger.resync();
        assert.notEqual(position.incarnation, before);
        assert.equal(ledger.incarnation, position.incarnation);
        assert.equal(position.head, 0);
        // SQLite: the connection that dropped the table keeps a schema without it when preparing trigger bodies
        // until it reads the schema again (an SQLite behaviour, not Upkeep's).
        if (dialect === "sqlite") await db.query("SELECT count(*) FROM sqlite_master");
        await db.exec("INSERT INTO items VALUES (3, 'c')");
        assert.deepEqual(
          (await readAll(ledger)).map((f) => [f.offset, f.key.id]),
          [[1, 3]],
        );
      }));

    test("pruning never removes facts above a live hold; an expired hold holds nothing back", () =>
      withLedger(async (db, ledger) => {
        for (let i = 1; i <= 6; i++) await db.exec(`INSERT INTO items VALUES (${i}, 'x')`);
        await ledger.sync();
        await ledger.holdPosition("process-a", 2);
        await ledger.holdPosition("process-b", 4);
        assert.deepEqual(await ledger.prune({ olderThanMs: 0 }), { pruned: 2, horizon: 2 });
        await ledger.releasePosition("process-a");
        assert.deepEqual(await ledger.prune({ olderThanMs: 0 }), { pruned: 2, horizon: 4 });
        // A crashed process stops renewing: once its hold expired, pruning goes on.
        await db.exec(
          dialect === "sqlite"
            ? `UPDATE ${LEDGER.holdsTable} SET expires = 0`
            : `UPDATE ${LEDGER.holdsTable} SET expires = now() - interval '1 second'`,
        );
        assert.deepEqual(await ledger.prune({ olderThanMs: 0 }), { pruned: 2, horizon: 6 });
      }));

    test("capturedTables names the tables with capture triggers, not the ledger's own", () =>
      withLedger(async (_db, ledger) => {
        assert.deepEqual([...ledger.capturedTables()], ["items"]);
      }));
  });
}
