// The ledger's fault model, one behaviour suite over both dialects and PostgreSQL's two capture modes: a dropped
// facts table is installed again by a running ledger that refreshes capture, or reported (logged once with its fix;
// on PostgreSQL it never fails a write), a reinstall starts a new incarnation that a running ledger adopts with
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
    async function withLedger(
      body: (db: TestDb, ledger: Ledger, logged: string[]) => Promise<void>,
      schemaChanges?: "refresh" | "report",
    ) {
      const db = await freshDb(dialect);
      const logged: string[] = [];
      let ledger: Ledger | undefined;
      try {
        await db.exec(ITEMS);
        await install({ database: db.url });
        ledger = await openLedger({ database: db.url, schemaChanges, log: (_level, message) => logged.push(message) });
        await body(db, ledger, logged);
      } finally {
        await ledger?.close();
        await db.close();
      }
    }

    test("a facts table dropped under a running ledger that reports: reads say LedgerMissingError, logged once with the fix; nothing is captured until a reinstall, a new incarnation that resync adopts", () =>
      withLedger(async (db, ledger, logged) => {
        await db.exec("INSERT INTO items VALUES (1, 'a')");
        assert.equal((await readAll(ledger)).length, 1);
        const before = ledger.incarnation;
        await db.exec(`DROP TABLE ${LEDGER.factsTable}`);
        await assert.rejects(ledger.read(1), (e: LedgerMissingError) => e.code === "ledger_missing");
        await assert.rejects(ledger.read(1), LedgerMissingError);
        const gone = logged.filter((m) => m.includes("change ledger") && m.includes("is gone"));
        assert.equal(gone.length, 1, logged.join("\n"));
        assert.match(gone[0] as string, new RegExp(`fix: run \`npx upkeep install --database ${db.url}\``));
        // Pages are not served live on tables whose changes are not captured.
        assert.deepEqual([...ledger.capturedTables()], []);
        if (dialect === "postgres") {
          // The capture function skips a missing ledger, and logical capture is not in the write's path: the user's
          // write succeeds. It belongs to no incarnation: the reinstall below starts after it.
          assert.match(gone[0] as string, /writes are not affected/);
          await db.exec("INSERT INTO items VALUES (2, 'b')");
        } else {
          // SQLite's triggers cannot skip a missing table: the one case where capture fails a write, and the log
          // says so.
          assert.match(gone[0] as string, /every write to a captured table fails until it is back/);
          await assert.rejects(db.exec("INSERT INTO items VALUES (2, 'b')"), /no such table/);
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
        assert.deepEqual([...ledger.capturedTables()], ["items"]);
      }, "report"));

    test("a facts table dropped under a running ledger that refreshes capture (the default): installed again at once, a new incarnation; writes succeed and are captured; logged once with the fix", () =>
      withLedger(async (db, ledger, logged) => {
        await db.exec("INSERT INTO items VALUES (1, 'a')");
        assert.equal((await readAll(ledger)).length, 1);
        const before = ledger.incarnation;
        await db.exec(`DROP TABLE ${LEDGER.factsTable}`);
        // The read meets the missing table, the ledger installs it again, and the read meets the new incarnation.
        await assert.rejects(ledger.read(1), IncarnationMismatchError);
        const position = await ledger.resync();
        assert.notEqual(position.incarnation, before);
        assert.equal(position.head, 0);
        if (dialect === "sqlite") await db.query("SELECT count(*) FROM sqlite_master");
        await db.exec("INSERT INTO items VALUES (2, 'b')");
        assert.deepEqual(
          (await readAll(ledger)).map((f) => [f.offset, f.key.id]),
          [[1, 2]],
        );
        assert.equal(logged.length, 1, logged.join("\n"));
        assert.match(logged[0] as string, /installed (it|them) again.*new incarnation/s);
        assert.match(logged[0] as string, /fix: to remove Upkeep, run `npx upkeep uninstall --database/);
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
