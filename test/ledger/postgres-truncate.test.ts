// TRUNCATE on PostgreSQL, with both capture modes: every truncated table (CASCADE included) is one table-wide fact in
// the transaction's order, a rolled-back TRUNCATE is none, and under logical capture a TRUNCATE of one partition
// (which pgoutput does not send when partitions are published through their root) is a fact of the root.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { install, type Ledger, openLedger } from "../../src/ledger/index.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb, readAll } from "./harness.ts";

const logicalSkip = await logicalSkipReason();

for (const capture of ["triggers", "logical"] as const) {
  const skip = !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;

  describe(`TRUNCATE (${capture})`, { skip }, () => {
    test("TRUNCATE … CASCADE is one table-wide fact per truncated table, in order with the transaction's writes; a rolled-back one is none", async () => {
      const db = await freshDb("postgres");
      let ledger: Ledger | undefined;
      try {
        await db.exec(`CREATE TABLE a (id integer PRIMARY KEY);
                       CREATE TABLE b (id integer PRIMARY KEY, a_id integer REFERENCES a)`);
        await install({ database: db.url, capture });
        ledger = await openLedger({ database: db.url });
        await db.exec("INSERT INTO a VALUES (1); INSERT INTO b VALUES (1, 1)");
        const head = await ledger.sync();
        await db.exec("BEGIN; TRUNCATE a CASCADE; ROLLBACK");
        await db.exec("BEGIN; INSERT INTO a VALUES (2); TRUNCATE a CASCADE; INSERT INTO a VALUES (3); COMMIT");
        const facts = await readAll(ledger, head);
        assert.deepEqual(
          facts.map((f) => [f.table, f.op, f.key]),
          [
            ["a", "insert", { id: 2 }],
            ["a", "truncate", {}],
            ["b", "truncate", {}],
            ["a", "insert", { id: 3 }],
          ],
        );
      } finally {
        await ledger?.close();
        await db.close();
      }
    });

    if (capture === "logical") {
      test("a TRUNCATE of one partition (or a sub-partition) is a truncate fact of the root; the root's own TRUNCATE is one fact", async () => {
        const db = await freshDb("postgres");
        let ledger: Ledger | undefined;
        try {
          await db.exec(`CREATE TABLE events (id integer, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
                         CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
                         CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us', 'ca') PARTITION BY LIST (region);
                         CREATE TABLE events_ca PARTITION OF events_us FOR VALUES IN ('ca');
                         CREATE TABLE events_us1 PARTITION OF events_us FOR VALUES IN ('us')`);
          await install({ database: db.url, capture });
          ledger = await openLedger({ database: db.url });
          await db.exec("INSERT INTO events VALUES (1, 'eu'), (2, 'us'), (3, 'ca')");
          const head = await ledger.sync();
          await db.exec("BEGIN; TRUNCATE events_eu; INSERT INTO events VALUES (4, 'eu'); COMMIT");
          await db.exec("TRUNCATE events_ca");
          await db.exec("TRUNCATE events");
          const facts = await readAll(ledger, head);
          assert.deepEqual(
            facts.map((f) => [f.table, f.op, f.key]),
            [
              ["events", "truncate", {}],
              ["events", "insert", { id: 4, region: "eu" }],
              ["events", "truncate", {}],
              ["events", "truncate", {}],
            ],
          );
          // A partition attached later has no trigger yet: drift, which install (or the running refresh) fixes.
          await db.exec("CREATE TABLE events_ap PARTITION OF events FOR VALUES IN ('ap')");
          await ledger.close();
          ledger = undefined;
          await assert.rejects(openLedger({ database: db.url }), /events_ap .* has no TRUNCATE trigger/);
          await install({ database: db.url });
          ledger = await openLedger({ database: db.url });
          const later = await ledger.sync();
          await db.exec("INSERT INTO events VALUES (5, 'ap'); TRUNCATE events_ap");
          assert.deepEqual(
            (await readAll(ledger, later)).map((f) => [f.table, f.op]),
            [
              ["events", "insert"],
              ["events", "truncate"],
            ],
          );
        } finally {
          await ledger?.close();
          await db.close();
        }
      });
    }
  });
}
