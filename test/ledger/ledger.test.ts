// The change ledger's behaviour suite, looped over both dialects and PostgreSQL's two capture modes: real
// node:sqlite files, and a real PostgreSQL database per test with trigger capture and with logical capture
// database per test (PostgreSQL cases skip when no server is configured).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { Kysely } from "kysely";
import type pg from "pg";
import { LEDGER } from "../../src/constants.ts";
import {
  IncarnationMismatchError,
  LedgerNotInstalledError,
  OffsetTooOldError,
  SchemaDriftError,
} from "../../src/errors.ts";
import {
  changedColumns,
  createDialect,
  type Fact,
  install as installLedger,
  type Ledger,
  openLedger,
  uninstall,
} from "../../src/ledger/index.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb, readAll, schemaObjects, type TestDb } from "./harness.ts";

const root = new URL("../../", import.meta.url).pathname;

function summary(facts: Fact[]) {
  return facts.map((f) => ({ offset: f.offset, table: f.table, op: f.op, key: f.key, old: f.old, new: f.new }));
}

const logicalSkip = await logicalSkipReason();

const variants = [
  { dialect: "sqlite", capture: "triggers", name: "sqlite" },
  { dialect: "postgres", capture: "triggers", name: "postgres (triggers)" },
  { dialect: "postgres", capture: "logical", name: "postgres (logical decoding)" },
] as const;

for (const { dialect, capture, name } of variants) {
  const skip =
    dialect === "postgres" && !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;
  const install = (options: Parameters<typeof installLedger>[0]) =>
    installLedger({ ...options, capture: dialect === "postgres" ? capture : undefined });

  describe(`change ledger on ${name}`, { skip }, () => {
    /** A fresh database with `setup` applied, the ledger installed and opened; cleaned up afterwards. */
    async function withLedger(
      setup: string,
      body: (db: TestDb, ledger: Ledger) => Promise<void>,
      options: { exclude?: string[]; pollIntervalMs?: number } = {},
    ) {
      const db = await freshDb(dialect);
      let ledger: Ledger | undefined;
      try {
        if (setup) await db.exec(setup);
        await install({ database: db.url, exclude: options.exclude });
        ledger = await openLedger({ database: db.url, pollIntervalMs: options.pollIntervalMs });
        await body(db, ledger);
      } finally {
        await ledger?.close();
        await db.close();
      }
    }

    const ITEMS = "CREATE TABLE items (id integer PRIMARY KEY, name text, n integer)";

    test("insert, update, delete, no-op update and bulk statements", () =>
      withLedger(ITEMS, async (db, ledger) => {
        assert.equal(await ledger.head(), 0);
        await db.exec("INSERT INTO items (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
        await db.exec("UPDATE items SET n = n + 10 WHERE id <= 2");
        await db.exec("UPDATE items SET name = name"); // no-op for every row
        await db.exec("UPDATE items SET n = 13 WHERE id = 3"); // a real change that equals the old value? no: 3 → 13
        await db.exec("UPDATE items SET n = 13 WHERE id = 3"); // no-op
        await db.exec("DELETE FROM items WHERE id >= 2");
        const facts = await readAll(ledger);
        assert.deepEqual(
          facts.map((f) => [f.offset, f.op, f.key.id]),
          [
            [1, "insert", 1],
            [2, "insert", 2],
            [3, "insert", 3],
            [4, "update", 1],
            [5, "update", 2],
            [6, "update", 3],
            [7, "delete", 2],
            [8, "delete", 3],
          ],
        );
        assert.deepEqual(summary(facts)[3], {
          offset: 4,
          table: "items",
          op: "update",
          key: { id: 1 },
          old: { id: 1, name: "a", n: 1 },
          new: { id: 1, name: "a", n: 11 },
        });
        assert.deepEqual(changedColumns(facts[3] as Fact), ["n"]);
        assert.deepEqual(facts[0]?.old, null);
        assert.deepEqual(facts[6]?.new, null);
        assert.deepEqual(facts[6]?.old, { id: 2, name: "b", n: 12 });
        for (const f of facts) {
          assert.equal(f.incarnation, ledger.incarnation);
          assert.equal(f.keyless, false);
          assert.ok(!Number.isNaN(Date.parse(f.committedAt)), f.committedAt);
        }
        assert.equal(await ledger.head(), 8);
      }));

    test("multi-statement transactions commit together; a rollback leaves no fact and no gap", () =>
      withLedger(ITEMS, async (db, ledger) => {
        await db.exec("BEGIN; INSERT INTO items VALUES (1, 'a', 1); UPDATE items SET n = 2 WHERE id = 1; COMMIT;");
        await db.exec("BEGIN; INSERT INTO items VALUES (2, 'b', 1); UPDATE items SET n = 5 WHERE id = 1; ROLLBACK;");
        await db.exec("INSERT INTO items VALUES (3, 'c', 1)");
        const facts = await readAll(ledger);
        assert.deepEqual(
          facts.map((f) => [f.offset, f.op, f.key.id]),
          [
            [1, "insert", 1],
            [2, "update", 1],
            [3, "insert", 3],
          ],
        );
        if (dialect === "postgres") {
          assert.equal(facts[0]?.txid, facts[1]?.txid);
          assert.notEqual(facts[1]?.txid, facts[2]?.txid);
        }
      }));

    test("a failed statement inside a committed transaction leaves no fact and no gap", () =>
      withLedger(ITEMS, async (db, ledger) => {
        await db.exec("INSERT INTO items VALUES (1, 'a', 1)");
        // The second row violates the primary key: the whole statement fails, including its first row's fact.
        await assert.rejects(db.exec("INSERT INTO items VALUES (2, 'b', 1), (1, 'dup', 1)"));
        await db.exec("INSERT INTO items VALUES (3, 'c', 1)");
        const facts = await readAll(ledger);
        assert.deepEqual(
          facts.map((f) => [f.offset, f.key.id]),
          [
            [1, 1],
            [2, 3],
          ],
        );
      }));

    test("a commit through Upkeep's Kysely wakes a follower without waiting for a poll; raw SQL is seen too", () =>
      withLedger(
        ITEMS,
        async (db, ledger) => {
          const kysely = new Kysely<{ items: { id: number; name: string; n: number } }>({
            dialect: createDialect(db.url, { onCommit: () => ledger.poke() }),
          });
          try {
            const abort = new AbortController();
            const iterator = ledger.follow(0, { signal: abort.signal })[Symbol.asyncIterator]();
            const first = iterator.next();
            await kysely.insertInto("items").values({ id: 1, name: "a", n: 1 }).execute();
            // The poll interval is a minute: only the commit signal can have woken the follower.
            const batch = await first;
            assert.deepEqual(
              batch.value?.map((f: Fact) => [f.op, f.new]),
              [["insert", { id: 1, name: "a", n: 1 }]],
            );
            const second = iterator.next();
            await kysely.transaction().execute(async (trx) => {
              await trx.updateTable("items").set({ n: 2 }).where("id", "=", 1).execute();
              await trx.insertInto("items").values({ id: 2, name: "b", n: 1 }).execute();
            });
            const got: Fact[] = [...((await second).value as Fact[])];
            while (got.length < 2) got.push(...((await iterator.next()).value as Fact[]));
            assert.deepEqual(
              got.map((f) => [f.offset, f.op, f.key.id]),
              [
                [2, "update", 1],
                [3, "insert", 2],
              ],
            );
            abort.abort();
            assert.equal((await iterator.next()).done, true);
            // A raw write, outside Upkeep, is in the ledger too.
            await db.exec("DELETE FROM items WHERE id = 2");
            const raw = await readAll(ledger, 3);
            assert.deepEqual(
              raw.map((f) => [f.offset, f.op, f.old]),
              [[4, "delete", { id: 2, name: "b", n: 1 }]],
            );
          } finally {
            await kysely.destroy();
          }
        },
        { pollIntervalMs: 60_000 },
      ));

    test("a write from another process reaches a follower", () =>
      withLedger(ITEMS, async (db, ledger) => {
        const abort = new AbortController();
        const iterator = ledger.follow(0, { signal: abort.signal })[Symbol.asyncIterator]();
        const next = iterator.next();
        const script =
          dialect === "sqlite"
            ? `import { DatabaseSync } from "node:sqlite"; const db = new DatabaseSync(${JSON.stringify(db.url.slice(5))}); db.exec("PRAGMA busy_timeout = 5000"); db.exec("INSERT INTO items VALUES (7, 'child', 1)"); db.close();`
            : `import pg from "pg"; const c = new pg.Client({ connectionString: ${JSON.stringify(db.url)} }); await c.connect(); await c.query("INSERT INTO items VALUES (7, 'child', 1)"); await c.end();`;
        const code = await new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: root, stdio: "inherit" });
          child.on("exit", resolve);
        });
        assert.equal(code, 0);
        const batch = (await next).value as Fact[];
        abort.abort();
        assert.deepEqual(
          batch.map((f) => [f.offset, f.op, f.new]),
          [[1, "insert", { id: 7, name: "child", n: 1 }]],
        );
      }));

    test("updates that change primary keys are captured, one fact per changed row", () =>
      withLedger(ITEMS, async (db, ledger) => {
        await db.exec("INSERT INTO items (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2)");
        await db.exec("UPDATE items SET id = 10 WHERE id = 1");
        const rekeyed = (await readAll(ledger)).slice(2);
        assert.deepEqual(summary(rekeyed), [
          {
            offset: 3,
            table: "items",
            op: "update",
            key: { id: 10 },
            old: { id: 1, name: "a", n: 1 },
            new: { id: 10, name: "a", n: 1 },
          },
        ]);
        // One statement that moves every key (and changes another column) and one that changes only some rows.
        await db.exec("UPDATE items SET id = id + 100, n = n + 1");
        await db.exec("UPDATE items SET n = 0 WHERE id = 102");
        const moved = (await readAll(ledger)).slice(3);
        assert.deepEqual(
          moved.map((f) => [f.op, f.old, f.new]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
          [
            ["update", { id: 10, name: "a", n: 1 }, { id: 110, name: "a", n: 2 }],
            ["update", { id: 102, name: "b", n: 3 }, { id: 102, name: "b", n: 0 }],
            ["update", { id: 2, name: "b", n: 2 }, { id: 102, name: "b", n: 3 }],
          ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        );
        assert.equal(moved.at(-1)?.new?.n, 0, "the later write of row 102 comes last");
      }));

    test("composite keys in key order; tables without a primary key produce flagged facts", () =>
      withLedger(
        "CREATE TABLE memberships (org integer, member integer, role text, PRIMARY KEY (member, org)); CREATE TABLE notes (body text, n integer)",
        async (db, ledger) => {
          await db.exec("INSERT INTO memberships VALUES (1, 2, 'admin')");
          await db.exec("UPDATE memberships SET role = 'owner' WHERE org = 1 AND member = 2");
          await db.exec("DELETE FROM memberships");
          await db.exec("INSERT INTO notes VALUES ('hello', 1)");
          await db.exec("UPDATE notes SET n = 2");
          const facts = await readAll(ledger);
          assert.deepEqual(
            facts.map((f) => [f.table, f.op, Object.entries(f.key), f.keyless]),
            [
              [
                "memberships",
                "insert",
                [
                  ["member", 2],
                  ["org", 1],
                ],
                false,
              ],
              [
                "memberships",
                "update",
                [
                  ["member", 2],
                  ["org", 1],
                ],
                false,
              ],
              [
                "memberships",
                "delete",
                [
                  ["member", 2],
                  ["org", 1],
                ],
                false,
              ],
              [
                "notes",
                "insert",
                [
                  ["body", "hello"],
                  ["n", 1],
                ],
                true,
              ],
              [
                "notes",
                "update",
                [
                  ["body", "hello"],
                  ["n", 2],
                ],
                true,
              ],
            ],
          );
          assert.deepEqual(Object.keys(facts[0]?.new ?? {}), ["org", "member", "role"]);
          assert.deepEqual(facts[4]?.old, { body: "hello", n: 1 });
        },
      ));

    test("every column type round-trips", async () => {
      if (dialect === "sqlite") {
        await withLedger(
          "CREATE TABLE kinds (id integer PRIMARY KEY, i integer, big integer, neg integer, r real, t text, b blob, empty blob, nul text, j text, ts text, flag integer)",
          async (db, ledger) => {
            const row = {
              id: 1,
              i: 42,
              big: 9007199254740993n,
              neg: -9223372036854775808n,
              r: 1.5,
              t: 'héllo "q"\n\u{1F600}',
              b: new Uint8Array([0, 1, 127, 255]),
              empty: new Uint8Array([]),
              nul: null,
              j: '{"a":[1,2]}',
              ts: "2024-05-01T12:00:00.000Z",
              flag: 1,
            };
            await db.query(
              "INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
              Object.values(row),
            );
            await db.exec("UPDATE kinds SET b = x'0a0b', r = 2.0");
            const facts = await readAll(ledger);
            assert.deepEqual(facts[0]?.new, row);
            assert.deepEqual(facts[1]?.old, row);
            assert.deepEqual(facts[1]?.new, { ...row, b: new Uint8Array([10, 11]), r: 2 });
            assert.deepEqual(changedColumns(facts[1] as Fact), ["r", "b"]);
          },
        );
        return;
      }
      await withLedger(
        `CREATE TABLE kinds (id integer PRIMARY KEY, i integer, big bigint, neg bigint, r double precision, num numeric,
           t text, b bytea, empty bytea, nul text, j jsonb, js json, ts timestamptz, tsn timestamp, d date,
           flag boolean, arr integer[], u uuid)`,
        async (db, ledger) => {
          await db.query(
            "INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            [
              1,
              42,
              "9007199254740993",
              "-9223372036854775808",
              1.5,
              "12.25",
              'héllo "q"\n\u{1F600}',
              Buffer.from([0, 1, 127, 255]),
              Buffer.from([]),
              null,
              '{"a": [1, 2], "big": 12345678901234567890}',
              '{"z": 1, "a": null}',
              "2024-05-01 12:00:00.123456+02",
              "2024-05-01 12:00:00",
              "2024-05-01",
              true,
              [1, 2, 3],
              "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            ],
          );
          await db.exec("UPDATE kinds SET flag = false, b = '\\x0a0b'");
          const facts = await readAll(ledger);
          const expected = {
            id: 1,
            i: 42,
            big: 9007199254740993n,
            neg: -9223372036854775808n,
            r: 1.5,
            num: 12.25,
            t: 'héllo "q"\n\u{1F600}',
            b: new Uint8Array([0, 1, 127, 255]),
            empty: new Uint8Array([]),
            nul: null,
            j: { a: [1, 2], big: 12345678901234567890n },
            js: { z: 1, a: null },
            ts: "2024-05-01T10:00:00.123456Z",
            tsn: "2024-05-01T12:00:00",
            d: "2024-05-01",
            flag: true,
            arr: [1, 2, 3],
            u: "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
          };
          assert.deepEqual(facts[0]?.new, expected);
          assert.deepEqual(facts[1]?.new, { ...expected, flag: false, b: new Uint8Array([10, 11]) });
          assert.deepEqual(changedColumns(facts[1] as Fact), ["b", "flag"]);
        },
      );
    });

    test("wide tables and names that need quoting", () => {
      const columns = Array.from({ length: 130 }, (_, i) => `c${i}`);
      const ddl = `CREATE TABLE "odd ""name"" t" ("the id" integer PRIMARY KEY, ${columns.map((c) => `${c} integer`).join(", ")}, "it's" text)`;
      return withLedger(ddl, async (db, ledger) => {
        await db.exec(`INSERT INTO "odd ""name"" t" ("the id", c0, c129, "it's") VALUES (1, 0, 129, 'yes')`);
        const [fact] = await readAll(ledger);
        assert.equal(fact?.table, 'odd "name" t');
        assert.deepEqual(fact?.key, { "the id": 1 });
        const image = fact?.new as Record<string, unknown>;
        assert.equal(Object.keys(image).length, 132);
        assert.deepEqual([image.c0, image.c1, image.c129, image["it's"]], [0, null, 129, "yes"]);
      });
    });

    test("restart: offsets continue and the incarnation is kept", async () => {
      const db = await freshDb(dialect);
      try {
        await db.exec(ITEMS);
        await install({ database: db.url });
        const first = await openLedger({ database: db.url });
        await db.exec("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 1)");
        const before = await readAll(first);
        await first.close();
        await db.exec("INSERT INTO items VALUES (3, 'c', 1)");
        const second = await openLedger({ database: db.url });
        try {
          assert.equal(second.incarnation, first.incarnation);
          const after = await readAll(second, 2);
          assert.deepEqual(
            [...before, ...after].map((f) => f.offset),
            [1, 2, 3],
          );
          assert.equal((await second.read(0, { incarnation: first.incarnation })).length, 3);
        } finally {
          await second.close();
        }
      } finally {
        await db.close();
      }
    });

    test("reset: reinstalling, truncating the log or a restored database make old offsets untrustworthy", async () => {
      const db = await freshDb(dialect);
      try {
        await db.exec(ITEMS);
        await install({ database: db.url });
        let ledger = await openLedger({ database: db.url });
        await db.exec("INSERT INTO items VALUES (1, 'a', 1)");
        await readAll(ledger);
        const old = ledger.incarnation;
        // An offset beyond head is what a client holds after the database was restored from an older copy.
        await assert.rejects(ledger.read(5), IncarnationMismatchError);
        await ledger.close();

        await uninstall({ database: db.url });
        await install({ database: db.url });
        ledger = await openLedger({ database: db.url });
        assert.notEqual(ledger.incarnation, old);
        await assert.rejects(ledger.read(0, { incarnation: old }), (e: IncarnationMismatchError) => {
          assert.equal(e.code, "incarnation_mismatch");
          assert.equal(e.expected, old);
          assert.equal(e.actual, ledger.incarnation);
          return true;
        });
        await db.exec("INSERT INTO items VALUES (2, 'b', 1)");
        assert.deepEqual(
          (await readAll(ledger)).map((f) => [f.offset, f.key.id]),
          [[1, 2]],
        );

        // Truncating the facts table by hand starts a new incarnation; the open ledger refuses to read on.
        const current = ledger.incarnation;
        await db.exec(dialect === "sqlite" ? `DELETE FROM ${LEDGER.factsTable}` : `TRUNCATE ${LEDGER.factsTable}`);
        await assert.rejects(ledger.read(0), IncarnationMismatchError);
        const iterator = ledger.follow(0)[Symbol.asyncIterator]();
        await assert.rejects(iterator.next(), IncarnationMismatchError);
        await ledger.close();
        ledger = await openLedger({ database: db.url });
        assert.notEqual(ledger.incarnation, current);
        await ledger.close();
      } finally {
        await db.close();
      }
    });

    test("prune removes a prefix; reading below the horizon is OffsetTooOld", () =>
      withLedger(ITEMS, async (db, ledger) => {
        await db.exec("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 1), (4, 'd', 1), (5, 'e', 1)");
        await readAll(ledger);
        // Nothing is older than an hour: nothing is pruned.
        assert.deepEqual(await ledger.prune({ olderThanMs: 3_600_000 }), { pruned: 0, horizon: 0 });
        assert.deepEqual(await ledger.prune({ olderThanMs: 0, atOrBelow: 3 }), { pruned: 3, horizon: 3 });
        assert.equal(await ledger.horizon(), 3);
        await assert.rejects(ledger.read(2), (e: OffsetTooOldError) => {
          assert.ok(e instanceof OffsetTooOldError);
          assert.equal(e.code, "offset_too_old");
          assert.equal(e.oldest, 4);
          return true;
        });
        assert.deepEqual(
          (await ledger.read(3)).map((f) => f.offset),
          [4, 5],
        );
        // Pruning everything keeps head and incarnation; new facts continue the offsets.
        assert.deepEqual(await ledger.prune({ olderThanMs: 0 }), { pruned: 2, horizon: 5 });
        await db.exec("INSERT INTO items VALUES (6, 'f', 1)");
        assert.deepEqual(
          (await readAll(ledger, 5)).map((f) => f.offset),
          [6],
        );
        assert.deepEqual(
          await ledger.read(0, { incarnation: ledger.incarnation }).catch((e) => e.code),
          "offset_too_old",
        );
        const reopened = await openLedger({ database: db.url });
        assert.equal(reopened.incarnation, ledger.incarnation);
        await reopened.close();
      }));

    test("schema drift is detected at open and fixed by install", async () => {
      const db = await freshDb(dialect);
      try {
        await db.exec(ITEMS);
        await install({ database: db.url });
        await db.exec("CREATE TABLE later (id integer PRIMARY KEY, v text)");
        await assert.rejects(openLedger({ database: db.url }), (e: SchemaDriftError) => {
          assert.ok(e instanceof SchemaDriftError);
          assert.equal(e.code, "schema_drift");
          assert.deepEqual(e.tables, ["later"]);
          assert.match(e.message, /upkeep install --database/);
          return true;
        });
        await install({ database: db.url });
        await db.exec("ALTER TABLE items ADD COLUMN extra text");
        if (dialect === "sqlite") {
          // SQLite's triggers name every column: a new column would be missing from the images.
          await assert.rejects(openLedger({ database: db.url }), (e: SchemaDriftError) => {
            assert.deepEqual(e.tables, ["items"]);
            return true;
          });
          await install({ database: db.url });
        }
        // PostgreSQL's generic trigger images whole rows: a new column needs no refresh.
        const ledger = await openLedger({ database: db.url });
        try {
          await db.exec(
            "INSERT INTO items (id, name, n, extra) VALUES (1, 'a', 1, 'x'); INSERT INTO later VALUES (1, 'v')",
          );
          assert.deepEqual(
            (await readAll(ledger)).map((f) => [f.table, f.new]),
            [
              // SQLite: the install that refreshed items' triggers says every row of items may have changed.
              ...(dialect === "sqlite" ? [["items", null]] : []),
              ["items", { id: 1, name: "a", n: 1, extra: "x" }],
              ["later", { id: 1, v: "v" }],
            ],
          );
        } finally {
          await ledger.close();
        }
      } finally {
        await db.close();
      }
    });

    test("install is idempotent, honours the exclude list, and uninstall removes exactly what it added", async () => {
      const db = await freshDb(dialect);
      try {
        await db.exec(`${ITEMS}; CREATE TABLE audit (id integer PRIMARY KEY, what text)`);
        const before = await schemaObjects(db);
        await assert.rejects(openLedger({ database: db.url }), LedgerNotInstalledError);
        const first = await install({ database: db.url, exclude: ["audit"] });
        assert.equal(first.created, true);
        assert.deepEqual(first.tables, ["items"]);
        assert.deepEqual(first.excluded, ["audit"]);
        const installedObjects = await schemaObjects(db);
        const second = await install({ database: db.url, exclude: ["audit"] });
        assert.equal(second.created, false);
        assert.equal(second.incarnation, first.incarnation);
        assert.deepEqual(await schemaObjects(db), installedObjects);
        const ledger = await openLedger({ database: db.url });
        await db.exec("INSERT INTO items VALUES (1, 'a', 1); INSERT INTO audit VALUES (1, 'x')");
        assert.deepEqual(
          (await readAll(ledger)).map((f) => [f.offset, f.table]),
          [[1, "items"]],
        );
        await ledger.close();
        await uninstall({ database: db.url });
        assert.deepEqual(await schemaObjects(db), before);
        await uninstall({ database: db.url }); // twice is fine
        await db.exec("INSERT INTO items VALUES (2, 'b', 1)"); // writes work without the ledger
        await assert.rejects(openLedger({ database: db.url }), LedgerNotInstalledError);
      } finally {
        await db.close();
      }
    });

    if (dialect === "postgres") {
      test("concurrent transactions committing out of staging order, with rollbacks: every committed fact exactly once, per row in write order", async () => {
        // The poll interval is a minute: batches are cut only by the sync() calls below, so a batch spans several
        // commits and often holds several writes of one row.
        const setup = "CREATE TABLE counters (id integer PRIMARY KEY, v integer NOT NULL)";
        await withLedger(
          setup,
          async (db, ledger) => {
            const rows = 24;
            const writers = 6;
            const rounds = 25;
            await db.exec(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, ${rows}) g`);
            const clients = await Promise.all(Array.from({ length: writers }, () => db.connect()));
            const blocker = await db.connect();
            const expected = new Map<string, number>(); // "id:v" → times expected (once)
            for (let id = 1; id <= rows; id++) expected.set(`${id}:0`, 1); // the seeding inserts
            let seed = 7;
            const random = () => {
              seed = (seed * 1103515245 + 12345) % 2 ** 31;
              return seed / 2 ** 31;
            };
            // A follower reading the whole run.
            const abort = new AbortController();
            const collected: Fact[] = [];
            const following = (async () => {
              for await (const batch of ledger.follow(0, { signal: abort.signal })) collected.push(...batch);
            })();
            for (let round = 0; round < rounds; round++) {
              // Each writer owns disjoint rows this round (rows move between writers across rounds), so writers do
              // not block each other while their staging ids interleave.
              const owned = clients.map((_, w) => [1, 2, 3, 4].map((k) => ((w * 4 + k + round * 5) % rows) + 1));
              await Promise.all(clients.map((c) => c.query("BEGIN")));
              const pending = new Map<number, string[]>();
              for (let step = 0; step < 4; step++) {
                for (const [w, c] of clients.entries()) {
                  const id = owned[w]?.[step] as number;
                  const { rows: r } = await c.query("UPDATE counters SET v = v + 1 WHERE id = $1 RETURNING v", [id]);
                  pending.set(w, [...(pending.get(w) ?? []), `${id}:${r[0].v}`]);
                }
              }
              // A later writer of a row another transaction holds: it waits for that transaction to end.
              await blocker.query("BEGIN");
              const contended = owned[0]?.[0] as number;
              const blocked = blocker.query("UPDATE counters SET v = v + 1 WHERE id = $1 RETURNING v", [contended]);
              const order = clients.map((_, w) => w).sort(() => random() - 0.5);
              for (const w of order) {
                const c = clients[w] as pg.Client;
                if (random() < 0.3) {
                  await c.query("ROLLBACK");
                } else {
                  await c.query("COMMIT");
                  for (const k of pending.get(w) ?? []) expected.set(k, 1);
                }
                if (random() < 0.3) await ledger.sync(); // sequence a batch mid-round
              }
              const { rows: b } = await blocked;
              await blocker.query("COMMIT");
              expected.set(`${contended}:${b[0].v}`, 1);
            }
            const head = await ledger.sync();
            const facts = await readAll(ledger);
            while (collected.length < head) await new Promise((r) => setTimeout(r, 10));
            abort.abort();
            await following;
            assert.deepEqual(
              facts.map((f) => f.offset),
              Array.from({ length: head }, (_, i) => i + 1),
            );
            assert.deepEqual(summary(collected), summary(facts));
            if (capture === "triggers") {
              // The scenario really happened: some facts were numbered out of staging-id (sequence) order.
              const inverted = await db.query(
                `SELECT count(*)::int AS n FROM ${LEDGER.factsTable} a JOIN ${LEDGER.factsTable} b
                ON a.staging_id < b.staging_id AND a.ledger_offset > b.ledger_offset`,
              );
              assert.ok((inverted[0]?.n as number) > 0, "no out-of-order commits were exercised");
            }
            // Every committed write exactly once: v only grows per row, so "id:v" names one write.
            const seen = new Map<string, number>();
            for (const f of facts) {
              if (f.op !== "update" && f.op !== "insert") continue;
              const k = `${f.new?.id}:${f.new?.v}`;
              seen.set(k, (seen.get(k) ?? 0) + 1);
            }
            assert.equal(seen.size, expected.size);
            for (const [k] of expected) assert.equal(seen.get(k), 1, `fact ${k} seen ${seen.get(k) ?? 0} times`);
            // Per row: each fact's old image is the previous fact's new image (write order, none lost).
            const last = new Map<number, unknown>();
            for (const f of facts) {
              const id = (f.new ?? f.old)?.id as number;
              if (f.op === "update") assert.deepEqual(f.old, last.get(id), `row ${id} out of order at ${f.offset}`);
              last.set(id, f.new);
            }
          },
          { pollIntervalMs: 60_000 },
        );
      });

      test("an idle open transaction does not stall others' facts", () =>
        withLedger(ITEMS, async (db, ledger) => {
          const idle = await db.connect();
          await idle.query("BEGIN");
          await idle.query("INSERT INTO items VALUES (1, 'idle', 1)"); // takes the lower staging id
          await db.exec("INSERT INTO items VALUES (2, 'busy', 1)");
          assert.deepEqual(
            (await readAll(ledger)).map((f) => [f.offset, f.key.id]),
            [[1, 2]],
          );
          await idle.query("COMMIT");
          assert.deepEqual(
            (await readAll(ledger, 1)).map((f) => [f.offset, f.key.id]),
            [[2, 1]],
          );
        }));

      test("when the sequencer's process closes, another open ledger takes over", () =>
        withLedger(ITEMS, async (db, first) => {
          const second = await openLedger({ database: db.url });
          try {
            await db.exec("INSERT INTO items VALUES (1, 'a', 1)");
            assert.equal(await first.sync(), 1);
            await first.close();
            await db.exec("INSERT INTO items VALUES (2, 'b', 1)");
            assert.deepEqual(
              (await readAll(second)).map((f) => [f.offset, f.key.id]),
              [
                [1, 1],
                [2, 2],
              ],
            );
          } finally {
            await second.close();
          }
        }));
    }
  });
}
