// Logical capture on PostgreSQL beyond the behaviour suite: partitioned tables, TRUNCATE, a leader killed between
// appending facts and confirming them, leaders competing for the lease, the slot's lag warning, doctor, and the
// errors that name their fix (missing slot, wal_level, replication privilege).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { describe, test } from "node:test";
import pg from "pg";
import { LogicalCaptureError } from "../../src/errors.ts";
import { doctor } from "../../src/ledger/doctor.ts";
import { type Fact, install, type Ledger, openLedger, uninstall } from "../../src/ledger/index.ts";
import { chooseCapture, logicalNamesFor, type Readiness } from "../../src/ledger/postgres/logical.ts";
import { logicalSkipReason } from "../support/postgres.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const skip = await logicalSkipReason();
const root = new URL("../../", import.meta.url).pathname;

async function logicalDb(setup: string): Promise<TestDb> {
  const db = await freshDb("postgres");
  await db.exec(setup);
  const report = await install({ database: db.url, capture: "logical" });
  assert.equal(report.capture, "logical");
  return db;
}

async function slotOf(db: TestDb) {
  const rows = await db.query(
    "SELECT slot_name, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE database = current_database()",
  );
  return rows[0] as { slot_name: string; confirmed: string } | undefined;
}

function child(script: string): { process: ChildProcess; line: Promise<string>; exit: Promise<number | null> } {
  const p = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = new Promise<string>((resolve) => p.stdout?.once("data", (d) => resolve(String(d).trim())));
  const exit = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
  return { process: p, line, exit };
}

describe("logical capture on PostgreSQL", { skip }, () => {
  test("partitioned tables are captured through their root, across partitions and partitions attached later", async () => {
    const db = await logicalDb(
      `CREATE TABLE events (id integer, region text, n integer, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
       CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
       CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us')`,
    );
    let ledger: Ledger | undefined;
    try {
      ledger = await openLedger({ database: db.url });
      assert.ok(ledger.capturedTables().has("events"));
      await db.exec("INSERT INTO events VALUES (1, 'eu', 1), (2, 'us', 1)");
      await db.exec("UPDATE events SET n = 2 WHERE id = 1");
      await db.exec("UPDATE events SET region = 'us' WHERE id = 1"); // moves the row to another partition
      const facts = await readAll(ledger);
      assert.ok(facts.every((f) => f.table === "events"));
      assert.deepEqual(
        facts.slice(0, 3).map((f) => [f.op, f.key, f.old, f.new]),
        [
          ["insert", { id: 1, region: "eu" }, null, { id: 1, region: "eu", n: 1 }],
          ["insert", { id: 2, region: "us" }, null, { id: 2, region: "us", n: 1 }],
          ["update", { id: 1, region: "eu" }, { id: 1, region: "eu", n: 1 }, { id: 1, region: "eu", n: 2 }],
        ],
      );
      // A cross-partition move is a delete from one partition and an insert into the other.
      assert.deepEqual(
        facts.slice(3).map((f) => [f.op, f.old?.region ?? null, f.new?.region ?? null]),
        [
          ["delete", "eu", null],
          ["insert", null, "us"],
        ],
      );
      // A partition attached after install has the default replica identity: drift, refreshed by install.
      await db.exec("CREATE TABLE events_ap PARTITION OF events FOR VALUES IN ('ap')");
      await ledger.close();
      ledger = undefined;
      await assert.rejects(openLedger({ database: db.url }), /events_ap's REPLICA IDENTITY is not FULL/);
      await install({ database: db.url });
      ledger = await openLedger({ database: db.url });
      const head = await ledger.sync();
      await db.exec("INSERT INTO events VALUES (3, 'ap', 1); UPDATE events SET n = 5 WHERE id = 3");
      const later = await readAll(ledger, head);
      assert.deepEqual(
        later.map((f) => [f.table, f.op, f.old?.n ?? null, f.new?.n]),
        [
          ["events", "insert", null, 1],
          ["events", "update", 1, 5],
        ],
      );
    } finally {
      await ledger?.close();
      await db.close();
    }
  });

  test("TRUNCATE is one table-wide fact per table, in commit order with the writes around it", async () => {
    const db = await logicalDb(
      "CREATE TABLE a (id integer PRIMARY KEY); CREATE TABLE b (id integer PRIMARY KEY, a_id integer)",
    );
    const ledger = await openLedger({ database: db.url });
    try {
      await db.exec("INSERT INTO a VALUES (1); INSERT INTO b VALUES (1, 1)");
      await db.exec("BEGIN; TRUNCATE a, b; INSERT INTO a VALUES (2); COMMIT");
      const facts = await readAll(ledger);
      assert.deepEqual(
        facts.map((f) => [f.offset, f.table, f.op, f.key, f.old, f.new, f.keyless]),
        [
          [1, "a", "insert", { id: 1 }, null, { id: 1 }, false],
          [2, "b", "insert", { id: 1 }, null, { id: 1, a_id: 1 }, false],
          [3, "a", "truncate", {}, null, null, true],
          [4, "b", "truncate", {}, null, null, true],
          [5, "a", "insert", { id: 2 }, null, { id: 2 }, false],
        ],
      );
      assert.equal(facts[2]?.txid, facts[4]?.txid);
    } finally {
      await ledger.close();
      await db.close();
    }
  });

  test("a leader killed (SIGKILL) after appending facts and before confirming them: nothing lost, nothing twice", async () => {
    const db = await logicalDb("CREATE TABLE items (id integer PRIMARY KEY, n integer)");
    let ledger: Ledger | undefined;
    try {
      for (let i = 1; i <= 100; i++) await db.exec(`INSERT INTO items VALUES (${i}, ${i})`);
      // The child leads and dies at the worst moment: its facts are committed, the server was not told yet.
      const leader = child(
        `import pg from "pg";
         // Dies when it next reports a position to the server after committing appended facts.
         let appended = false;
         let committed = false;
         const query = pg.Client.prototype.query;
         pg.Client.prototype.query = function (...args) {
           const text = typeof args[0] === "string" ? args[0] : args[0]?.text;
           if (typeof text === "string" && text.includes("INSERT INTO") && text.includes("upkeep_facts")) appended = true;
           if (typeof text === "string" && text.trimEnd().endsWith("COMMIT") && appended) committed = true;
           return query.apply(this, args);
         };
         const send = pg.Connection.prototype.sendCopyFromChunk;
         pg.Connection.prototype.sendCopyFromChunk = function (chunk) {
           if (committed) process.kill(process.pid, "SIGKILL");
           return send.call(this, chunk);
         };
         const { openLedger } = await import(${JSON.stringify(`${root}src/ledger/index.ts`)});
         await openLedger({ database: ${JSON.stringify(db.url)} });
         setInterval(() => {}, 1000);`,
      );
      assert.equal(await leader.exit, null, "the leader was killed");
      const [meta] = await db.query("SELECT value FROM upkeep_meta WHERE key = 'head'");
      assert.ok(Number(meta?.value) >= 1, "the killed leader's facts are durable");
      const behind = await db.query(
        "SELECT (SELECT value::pg_lsn FROM upkeep_meta WHERE key = 'lsn') > confirmed_flush_lsn AS behind FROM pg_replication_slots WHERE database = current_database()",
      );
      assert.equal(behind[0]?.behind, true, "the slot is behind the facts: the next leader decodes them again");
      for (let i = 101; i <= 150; i++) await db.exec(`INSERT INTO items VALUES (${i}, ${i})`);
      // The next leader takes the lease once the dead one's expires, skips what was appended, appends the rest.
      ledger = await openLedger({ database: db.url });
      const facts = await readAll(ledger);
      assert.deepEqual(
        facts.map((f) => [f.offset, f.key.id]),
        Array.from({ length: 150 }, (_, i) => [i + 1, i + 1]),
      );
      const [count] = await db.query("SELECT count(*)::int AS n FROM upkeep_facts");
      assert.equal(count?.n, 150);
    } finally {
      await ledger?.close();
      await db.close();
    }
  });

  test("leaders killed at random moments and processes competing for the lease: every commit once, in commit order", async () => {
    const db = await logicalDb("CREATE TABLE items (id integer PRIMARY KEY, n integer)");
    const script = `const { openLedger } = await import(${JSON.stringify(`${root}src/ledger/index.ts`)});
      for (;;) {
        const ledger = await openLedger({ database: ${JSON.stringify(db.url)}, pollIntervalMs: 5 });
        console.log("open");
        for (let i = 0; i < 5; i++) await ledger.sync();
        await ledger.close(); // hands the lease back: the other process takes over
      }`;
    const children: ChildProcess[] = [];
    let ledger: Ledger | undefined;
    try {
      let id = 0;
      const writing = (async () => {
        // One writer, one row per transaction: commit order is id order.
        for (let round = 0; round < 3; round++) {
          const a = child(script);
          const b = child(script);
          children.push(a.process, b.process);
          await Promise.all([a.line, b.line]);
          const until = Date.now() + 400 + Math.random() * 400;
          while (Date.now() < until) {
            id++;
            await db.exec(`INSERT INTO items VALUES (${id}, 0); UPDATE items SET n = 1 WHERE id = ${id}`);
          }
          a.process.kill("SIGKILL");
          b.process.kill("SIGKILL");
          await Promise.all([a.exit, b.exit]);
        }
      })();
      await writing;
      ledger = await openLedger({ database: db.url });
      const facts = await readAll(ledger);
      assert.equal(facts.length, id * 2);
      assert.deepEqual(
        facts.map((f) => f.offset),
        facts.map((_, i) => i + 1),
      );
      for (const [i, f] of facts.entries()) {
        assert.equal(f.key.id, Math.floor(i / 2) + 1, `fact ${f.offset} out of commit order`);
        assert.equal(f.op, i % 2 === 0 ? "insert" : "update");
      }
    } finally {
      for (const c of children) c.kill("SIGKILL");
      await ledger?.close();
      await db.close();
    }
  });

  test("the slot's lag is warned about past the bound, once per interval", async () => {
    const db = await logicalDb("CREATE TABLE items (id integer PRIMARY KEY); CREATE TABLE bulk (t text)");
    const logged: string[] = [];
    // Another process holds the lease and consumes nothing (stopped, say): the slot falls behind.
    await db.exec("UPDATE upkeep_lease SET holder = 'elsewhere', until = now() + interval '1 hour'");
    const ledger = await openLedger({
      database: db.url,
      maxSlotLagBytes: 1024,
      log: (_level, message) => logged.push(message),
    });
    try {
      await db.exec("INSERT INTO bulk SELECT repeat('x', 100) FROM generate_series(1, 1000)");
      const check = (ledger as unknown as { checkSlot(): Promise<void> }).checkSlot.bind(ledger);
      await check();
      await check();
      assert.equal(logged.length, 1, logged.join("\n"));
      assert.match(logged[0] as string, /replication slot upkeep_\w+ is [\d.]+ (kB|MB) behind/);
      assert.match(logged[0] as string, /no process is decoding it/);
      assert.match(logged[0] as string, /fix: .*upkeep uninstall/);
      const findings = await doctor({ database: db.url, maxSlotLagBytes: 1024 });
      assert.ok(findings.some((f) => f.status === "warn" && /past the 1\.0 kB bound/.test(f.message)));
    } finally {
      await ledger.close();
      await db.close();
    }
  });

  test("doctor reports the mode and the slot; a missing slot is an error with its fix, and install recreates it", async () => {
    const db = await logicalDb("CREATE TABLE items (id integer PRIMARY KEY)");
    try {
      const healthy = await doctor({ database: db.url });
      // (The Node check comes first; the ledger's findings follow it.)
      const capture = healthy.find((f) => f.message.startsWith("capture:"));
      assert.match(capture?.message ?? "", /^capture: logical decoding .* chosen at install \(--capture logical\)/);
      assert.ok(
        healthy.some((f) => f.status === "ok" && /^slot upkeep_\w+: lag .*, retains .* of WAL$/.test(f.message)),
      );
      assert.ok(!healthy.some((f) => f.status === "error"), JSON.stringify(healthy));
      const slot = (await slotOf(db))?.slot_name as string;
      await db.query("SELECT pg_drop_replication_slot($1)", [slot]);
      await assert.rejects(openLedger({ database: db.url }), (e: LogicalCaptureError) => {
        assert.ok(e instanceof LogicalCaptureError);
        assert.equal(e.code, "capture_slot_missing");
        assert.match(e.hint, /upkeep install --database/);
        return true;
      });
      const broken = await doctor({ database: db.url });
      assert.ok(
        broken.some((f) => f.status === "error" && /slot .* is missing/.test(f.message) && /install/.test(f.fix ?? "")),
      );
      const cli = child(
        `const { main } = await import(${JSON.stringify(`${root}src/ledger/cli.ts`)}); process.exitCode = await main(["doctor", "--database", ${JSON.stringify(db.url)}]);`,
      );
      assert.equal(await cli.exit, 1);
      // Reinstalling recreates the slot; what was committed meanwhile was not captured: a new incarnation.
      const before = (await db.query("SELECT value FROM upkeep_meta WHERE key = 'incarnation'"))[0]?.value;
      const report = await install({ database: db.url });
      assert.equal(report.capture, "logical");
      assert.notEqual(report.incarnation, before);
      assert.ok(await slotOf(db));
    } finally {
      await db.close();
    }
  });

  test("uninstall drops the slot and the publication and puts replica identities back", async () => {
    const db = await logicalDb(
      `CREATE TABLE plain (id integer PRIMARY KEY); CREATE TABLE nothing (id integer PRIMARY KEY);
       ALTER TABLE nothing REPLICA IDENTITY NOTHING`,
    );
    try {
      const identities = async () =>
        (await db.query("SELECT relname, relreplident FROM pg_class WHERE relname IN ('plain', 'nothing') ORDER BY 1"))
          .map((r) => `${r.relname}:${r.relreplident}`)
          .join(" ");
      assert.equal(await identities(), "nothing:f plain:f");
      assert.ok(await slotOf(db));
      await uninstall({ database: db.url });
      assert.equal(await identities(), "nothing:n plain:d");
      assert.equal(await slotOf(db), undefined);
      assert.deepEqual(await db.query("SELECT pubname FROM pg_publication"), []);
    } finally {
      await db.close();
    }
  });

  test("changing the capture mode starts a new incarnation; triggers and slot are swapped", async () => {
    const db = await logicalDb("CREATE TABLE items (id integer PRIMARY KEY)");
    try {
      const first = await openLedger({ database: db.url });
      await db.exec("INSERT INTO items VALUES (1)");
      assert.equal((await readAll(first)).length, 1);
      await first.close();
      const report = await install({ database: db.url, capture: "triggers" });
      assert.equal(report.capture, "triggers");
      assert.notEqual(report.incarnation, first.incarnation);
      assert.equal(await slotOf(db), undefined);
      const second = await openLedger({ database: db.url });
      await db.exec("INSERT INTO items VALUES (2)");
      assert.deepEqual(
        (await readAll(second)).map((f: Fact) => [f.offset, f.key.id]),
        [[1, 2]],
      );
      await second.close();
    } finally {
      await db.close();
    }
  });

  test("a role that may not replicate: --capture logical fails with the fix, auto falls back to triggers and says why", async () => {
    const db = await freshDb("postgres");
    const role = `upkeep_norepl_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      await admin.query(`GRANT CREATE, USAGE ON SCHEMA public TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      const asRole = new pg.Client({ connectionString: url.toString() });
      await asRole.connect();
      await asRole.query("CREATE TABLE items (id integer PRIMARY KEY)");
      await asRole.end();
      await assert.rejects(install({ database: url.toString(), capture: "logical" }), (e: LogicalCaptureError) => {
        assert.equal(e.code, "capture_privilege");
        assert.match(e.message, new RegExp(`role ${role} may not use replication`));
        assert.match(e.hint, new RegExp(`ALTER ROLE "${role}" REPLICATION`));
        return true;
      });
      const warnings: string[] = [];
      const report = await install({ database: url.toString(), log: (_l, m) => warnings.push(m) });
      assert.equal(report.capture, "triggers");
      assert.match(report.captureReason, /^auto: The role .* may not use replication/);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] as string, /ALTER ROLE .* REPLICATION/);
      await uninstall({ database: url.toString() });
    } finally {
      await admin.query(`DROP OWNED BY ${role}`).catch(() => {});
      await admin.end();
      await db.close();
      const cleanup = new pg.Client({ connectionString: new URL("/postgres", db.url).toString() });
      await cleanup.connect();
      await cleanup.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await cleanup.end();
    }
  });
});

describe("choosing the capture mode", () => {
  const ready: Readiness = {
    walLevel: "logical",
    role: "app",
    mayReplicate: true,
    maxSlots: 10,
    usedSlots: 1,
    version: 150000,
    slotExists: false,
  };

  test("auto picks logical on a ready server", () => {
    assert.equal(chooseCapture("auto", ready).mode, "logical");
    assert.equal(chooseCapture("triggers", ready).mode, "triggers");
  });

  test("wal_level replica: logical is refused with the fix; auto falls back to triggers with a warning", () => {
    const replica = { ...ready, walLevel: "replica" };
    assert.throws(
      () => chooseCapture("logical", replica),
      (e: LogicalCaptureError) => {
        assert.equal(e.code, "capture_wal_level");
        assert.match(e.hint, /ALTER SYSTEM SET wal_level = logical/);
        assert.match(e.hint, /restart/);
        return true;
      },
    );
    const auto = chooseCapture("auto", { ...replica, mayReplicate: false });
    assert.equal(auto.mode, "triggers");
    assert.match(auto.warning ?? "", /ALTER SYSTEM SET wal_level = logical/);
    assert.match(auto.warning ?? "", /ALTER ROLE "app" REPLICATION/);
  });

  test("no free replication slot, or a server older than 13", () => {
    assert.throws(() => chooseCapture("logical", { ...ready, usedSlots: 10 }), { code: "capture_slots" });
    assert.equal(chooseCapture("logical", { ...ready, usedSlots: 10, slotExists: true }).mode, "logical");
    assert.throws(() => chooseCapture("logical", { ...ready, version: 120000 }), { code: "capture_version" });
  });

  test("slot names are valid, unique per database and schema, and bounded", () => {
    const a = logicalNamesFor("shop", "public");
    const b = logicalNamesFor("shop", "tenant-1");
    const long = logicalNamesFor("x".repeat(100), "Y".repeat(100));
    for (const n of [a, b, long]) assert.match(n.slot, /^[a-z0-9_]{1,63}$/);
    assert.notEqual(a.slot, b.slot);
    assert.notEqual(logicalNamesFor("shop_a", "b").slot, logicalNamesFor("shop", "a_b").slot);
  });
});
