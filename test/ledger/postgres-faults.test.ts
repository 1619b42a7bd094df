// PostgreSQL capture faults, with trigger and with logical capture: capture never fails a write (values to_jsonb
// rejects, rows too large for an image), TRUNCATE is a table-wide fact, generated columns are in every image, and
// a paused leader loses its lease to another process without any fact being appended or numbered twice.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { LEDGER_TUNING } from "../../src/constants.ts";
import { type Fact, install as installLedger, type Ledger, openLedger } from "../../src/ledger/index.ts";
import { logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const root = new URL("../../", import.meta.url).pathname;
const logicalSkip = await logicalSkipReason();

for (const capture of ["triggers", "logical"] as const) {
  const skip = !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false;
  const install = (options: { database: string }) => installLedger({ ...options, capture });

  describe(`PostgreSQL capture (${capture}) never fails a write`, { skip }, () => {
    let db: TestDb;
    let ledger: Ledger;

    before(async () => {
      db = await freshDb("postgres");
      await db.exec("CREATE TABLE docs (id integer PRIMARY KEY, body json, note text)");
      await install({ database: db.url });
      ledger = await openLedger({ database: db.url });
    });
    after(async () => {
      await ledger?.close();
      await db?.close();
    });

    async function factsOf(sql: string): Promise<Fact[]> {
      const head = await ledger.sync();
      await db.exec(sql);
      return readAll(ledger, head);
    }

    test("json values that to_jsonb rejects (\\u0000, a lone surrogate) are captured as written", async () => {
      const facts = await factsOf(`INSERT INTO docs VALUES (1, '{"a": "x\\u0000y"}'), (2, '{"b": "\\ud800"}')`);
      assert.deepEqual(
        facts.map((f) => [f.key.id, f.new?.body, f.unavailable]),
        [
          [1, { a: "x\u0000y" }, undefined],
          [2, { b: "\ud800" }, undefined],
        ],
      );
      const updated = await factsOf(`UPDATE docs SET note = 'seen' WHERE id = 1`);
      assert.deepEqual(updated[0]?.old?.body, { a: "x\u0000y" });
    });

    test("a row larger than the image bound is written, and its fact is marked unavailable", async () => {
      // Random hex does not compress much, so the stored row is far above 64 kB and its text above the bound.
      const chunks = Math.ceil((LEDGER_TUNING.maxImageValueBytes + 1) / 32);
      const facts = await factsOf(
        `INSERT INTO docs (id, note) SELECT 3, string_agg(md5(random()::text), '') FROM generate_series(1, ${chunks})`,
      );
      assert.equal(facts.length, 1);
      assert.match(facts[0]?.unavailable ?? "", /larger than the image bound/);
      assert.equal(facts[0]?.new, null);
      const updated = await factsOf("UPDATE docs SET id = 4 WHERE id = 3");
      assert.equal(updated.length, 1);
      assert.ok(updated[0]?.unavailable);
    });

    test("a 300 MB text value is written (jsonb could not hold it) ", async () => {
      const facts = await factsOf("INSERT INTO docs (id, note) VALUES (5, repeat('x', 300 * 1024 * 1024))");
      assert.equal(facts.length, 1);
      await db.exec("DELETE FROM docs WHERE id = 5");
    });

    test("TRUNCATE is one table-wide fact", async () => {
      const facts = await factsOf("TRUNCATE docs");
      assert.deepEqual(
        facts.map((f) => [f.table, f.op, f.key, f.old, f.new]),
        [["docs", "truncate", {}, null, null]],
      );
    });
  });

  describe(`PostgreSQL capture (${capture}) images`, { skip }, () => {
    test("STORED generated columns are in every image, computed from the row's own values (an unchanged TOASTed value included)", async () => {
      const db = await freshDb("postgres");
      let ledger: Ledger | undefined;
      try {
        await db.exec(`CREATE TABLE g (id integer PRIMARY KEY, a integer, body text,
          b integer GENERATED ALWAYS AS (a * 2) STORED,
          label text GENERATED ALWAYS AS ('n' || a::text) STORED,
          blen integer GENERATED ALWAYS AS (length(body)) STORED)`);
        await install({ database: db.url });
        ledger = await openLedger({ database: db.url });
        // 6,400 characters of random hex: stored out of line (TOAST), and left out of an update that keeps it.
        await db.exec(
          "INSERT INTO g (id, a, body) SELECT 1, 22, string_agg(md5(random()::text), '') FROM generate_series(1, 200)",
        );
        await db.exec("UPDATE g SET a = 23");
        await db.exec("DELETE FROM g");
        const facts = await readAll(ledger);
        const pick = (row: Record<string, unknown> | null) => row && [row.a, row.b, row.label, row.blen];
        assert.deepEqual(
          facts.map((f) => [f.op, pick(f.old), pick(f.new), f.unavailable]),
          [
            ["insert", null, [22, 44, "n22", 6400], undefined],
            ["update", [22, 44, "n22", 6400], [23, 46, "n23", 6400], undefined],
            ["delete", [23, 46, "n23", 6400], null, undefined],
          ],
        );
        assert.deepEqual(Object.keys(facts[0]?.new ?? {}), ["id", "a", "body", "b", "label", "blen"]);
      } finally {
        await ledger?.close();
        await db.close();
      }
    });
  });

  describe(`PostgreSQL capture (${capture}) partitioned tables`, {
    skip: skip || (capture === "triggers" && "triggers do not capture partitioned tables"),
  }, () => {
    test("a partitioned table's values decode as a plain table's (bytea as bytes, timestamptz in UTC)", async () => {
      const db = await freshDb("postgres");
      let ledger: Ledger | undefined;
      try {
        await db.exec(`CREATE TABLE p (id integer, at timestamptz, data bytea, PRIMARY KEY (id)) PARTITION BY RANGE (id);
                       CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)`);
        await install({ database: db.url });
        ledger = await openLedger({ database: db.url });
        await db.exec("INSERT INTO p VALUES (1, '2024-05-01 12:00:00+02', '\\x0102')");
        const [fact] = await readAll(ledger);
        assert.deepEqual(fact?.new, { id: 1, at: "2024-05-01T10:00:00Z", data: new Uint8Array([1, 2]) });
      } finally {
        await ledger?.close();
        await db.close();
      }
    });
  });

  describe(`PostgreSQL leader lease (${capture})`, { skip }, () => {
    test("a paused sequencer (SIGSTOP) loses its lease within seconds; after SIGCONT no fact is numbered twice", async () => {
      const db = await freshDb("postgres");
      let child: ChildProcess | undefined;
      let ledger: Ledger | undefined;
      try {
        await db.exec("CREATE TABLE items (id integer PRIMARY KEY, n integer)");
        await install({ database: db.url });
        // The child opens the ledger first, so it holds the lease, and keeps sequencing until it is killed.
        child = spawn(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            `import { openLedger } from ${JSON.stringify(`${root}src/ledger/index.ts`)};
           const ledger = await openLedger({ database: ${JSON.stringify(db.url)} });
           await ledger.sync();
           console.log(ledger.isSequencer ? "leader" : "follower");
           setInterval(() => {}, 1000);`,
          ],
          { stdio: ["ignore", "pipe", "inherit"] },
        );
        const role = await new Promise<string>((resolve) =>
          child?.stdout?.once("data", (d) => resolve(String(d).trim())),
        );
        assert.equal(role, "leader");
        ledger = await openLedger({ database: db.url });
        await db.exec("INSERT INTO items VALUES (1, 1)");
        await ledger.sync();
        child.kill("SIGSTOP");
        const stoppedAt = Date.now();
        for (let i = 2; i <= 20; i++) await db.exec(`INSERT INTO items VALUES (${i}, ${i})`);
        // sync() waits until every visible fact is numbered: only a takeover can do that now.
        assert.equal(await ledger.sync(), 20);
        const takeover = Date.now() - stoppedAt;
        assert.ok(takeover < 5000, `takeover took ${takeover} ms`);
        child.kill("SIGCONT");
        for (let i = 21; i <= 40; i++)
          await db.exec(`INSERT INTO items VALUES (${i}, ${i}); UPDATE items SET n = n + 1 WHERE id = ${i - 20}`);
        await new Promise((resolve) => setTimeout(resolve, LEDGER_TUNING.leaseMs));
        const facts = await readAll(ledger);
        assert.deepEqual(
          facts.map((f) => f.offset),
          facts.map((_, i) => i + 1),
          "offsets are gapless and unique",
        );
        assert.equal(facts.length, 60);
        const rows = await db.query(
          "SELECT count(*)::int AS n, count(DISTINCT ledger_offset)::int AS d FROM upkeep_facts",
        );
        assert.deepEqual(rows[0], { n: 60, d: 60 });
        // Per row, offsets follow write order: each item's insert precedes its update.
        const firstOp = new Map<unknown, string>();
        for (const f of facts) if (!firstOp.has(f.key.id)) firstOp.set(f.key.id, f.op);
        assert.ok([...firstOp.values()].every((op) => op === "insert"));
      } finally {
        child?.kill("SIGCONT");
        child?.kill("SIGKILL");
        await ledger?.close();
        await db.close();
      }
    });
  });

  describe(`PostgreSQL install under writes (${capture})`, { skip }, () => {
    test("installing (or refreshing after a schema change) while the app writes never fails a user's write", async () => {
      const db = await freshDb("postgres");
      try {
        await db.exec("CREATE TABLE items (id integer PRIMARY KEY, n integer)");
        await db.exec("INSERT INTO items SELECT g, 0 FROM generate_series(1, 50) g");
        await install({ database: db.url });
        const writers = await Promise.all([db.connect(), db.connect(), db.connect()]);
        const errors: string[] = [];
        let running = true;
        const loops = writers.map(async (client, w) => {
          for (let i = 0; running; i++) {
            await client
              .query("UPDATE items SET n = n + 1 WHERE id = $1", [1 + ((i * 7 + w) % 50)])
              .catch((error: Error) => errors.push(error.message));
          }
        });
        // Restarts (nothing to change) and refreshes after new tables (triggers to create), under load.
        for (let round = 0; round < 6; round++) {
          if (round % 2 === 1) await db.exec(`CREATE TABLE extra_${round} (id integer PRIMARY KEY)`);
          await install({ database: db.url });
        }
        running = false;
        await Promise.all(loops);
        assert.deepEqual(errors, []);
      } finally {
        await db.close();
      }
    });
  });
}
