// Logical capture of transactions far larger than the leader's bound on held changes
// (LEDGER_TUNING.logicalHeldChanges, lowered here to 1,000): every fact arrives once and in order, readers see a
// transaction's facts all at once or not at all, the leader never holds more than the bound, and a leader killed
// or paused in the middle of such a transaction leaves nothing behind.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { LEDGER_TUNING } from "../../src/constants.ts";
import { type Fact, install, type Ledger, openLedger } from "../../src/ledger/index.ts";
import { logicalSkipReason } from "../support/postgres.ts";
import { freshDb, readAll, type TestDb } from "./harness.ts";

const skip = await logicalSkipReason();
const root = new URL("../../", import.meta.url).pathname;
const ROWS = 20_000;
const BOUND = 1_000;
const tuning = LEDGER_TUNING as { logicalHeldChanges: number };

async function bigTableDb(): Promise<TestDb> {
  const db = await freshDb("postgres");
  await db.exec(`CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL);
                 INSERT INTO items SELECT g, 0 FROM generate_series(1, ${ROWS}) g`);
  await install({ database: db.url, capture: "logical" });
  return db;
}

/** The update of every row, as facts: each id once, n from `from` to `from + 1`, one transaction. */
function assertWholeUpdate(facts: Fact[], first: number, from: number) {
  assert.equal(facts.length, ROWS);
  assert.deepEqual(
    facts.map((f) => f.offset),
    facts.map((_, i) => first + i),
    "offsets are gapless",
  );
  assert.ok(facts.every((f) => f.op === "update" && f.old?.n === from && f.new?.n === from + 1));
  assert.equal(new Set(facts.map((f) => f.key.id)).size, ROWS, "every row once");
  assert.equal(new Set(facts.map((f) => f.txid)).size, 1, "one transaction");
}

/** A leader in another process with the bound lowered, that runs `onInsert(n)` before its n-th INSERT of facts. */
function leaderChild(db: TestDb, onInsert: string): { process: ChildProcess; exit: Promise<number | null> } {
  const script = `import pg from "pg";
    const { LEDGER_TUNING } = await import(${JSON.stringify(`${root}src/constants.ts`)});
    LEDGER_TUNING.logicalHeldChanges = ${BOUND};
    let inserts = 0;
    const query = pg.Client.prototype.query;
    pg.Client.prototype.query = function (...args) {
      const text = typeof args[0] === "string" ? args[0] : args[0]?.text;
      if (typeof text === "string" && text.startsWith("INSERT INTO") && text.includes("upkeep_facts")) {
        inserts++;
        ${onInsert}
      }
      return query.apply(this, args);
    };
    const { openLedger } = await import(${JSON.stringify(`${root}src/ledger/index.ts`)});
    const ledger = await openLedger({ database: ${JSON.stringify(db.url)} });
    await ledger.sync();
    console.log(ledger.isSequencer ? "leader" : "follower");
    setInterval(() => {}, 1000);`;
  const p = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exit = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
  return { process: p, exit };
}

function firstLine(p: ChildProcess): Promise<string> {
  return new Promise((resolve) => p.stdout?.once("data", (d) => resolve(String(d).trim())));
}

describe("logical capture of a transaction larger than the held bound", { skip }, () => {
  let bound: number;
  before(() => {
    bound = tuning.logicalHeldChanges;
    tuning.logicalHeldChanges = BOUND;
  });
  after(() => {
    tuning.logicalHeldChanges = bound;
  });

  test(`a ${ROWS.toLocaleString("en")}-row UPDATE with a bound of ${BOUND}: every fact once, in order, all at once to readers; never more than the bound held`, async () => {
    const db = await bigTableDb();
    let ledger: Ledger | undefined;
    try {
      ledger = await openLedger({ database: db.url });
      const head = await ledger.sync();
      assert.equal((ledger as unknown as { isSequencer: boolean }).isSequencer, true);
      // A reader polling head while the transaction is appended sees it before or after, never in between.
      const seen = new Set<number>();
      let polling = true;
      const reader = await db.connect();
      const poll = (async () => {
        while (polling) {
          const { rows } = await reader.query("SELECT value FROM upkeep_meta WHERE key = 'head'");
          seen.add(Number(rows[0]?.value));
        }
      })();
      await db.exec("UPDATE items SET n = n + 1");
      await db.exec("INSERT INTO items VALUES (0, 7)");
      const facts = await readAll(ledger, head);
      polling = false;
      await poll;
      assertWholeUpdate(facts.slice(0, ROWS), head + 1, 0);
      assert.deepEqual(
        facts.slice(ROWS).map((f) => [f.op, f.key.id]),
        [["insert", 0]],
      );
      assert.deepEqual(
        [...seen].filter((h) => h !== head && h !== head + ROWS && h !== head + ROWS + 1),
        [],
        "no partial transaction was readable",
      );
      const [count] = await db.query("SELECT count(*)::int AS n FROM upkeep_facts");
      assert.equal(count?.n, ROWS + 1);
      const held = (ledger as unknown as { heldHighWater: number }).heldHighWater;
      assert.ok(held > 0 && held <= BOUND, `held at most ${held} changes (bound ${BOUND})`);
    } finally {
      await ledger?.close();
      await db.close();
    }
  });

  test("a leader killed in the middle of a large transaction's append leaves nothing; the next leader appends it once", {
    timeout: 120_000,
  }, async () => {
    const db = await bigTableDb();
    let ledger: Ledger | undefined;
    try {
      // Dies before its third INSERT of the transaction's facts: two are in its open database transaction.
      const child = leaderChild(db, `if (inserts === 3) process.kill(process.pid, "SIGKILL");`);
      assert.equal(await firstLine(child.process), "leader");
      await db.exec("UPDATE items SET n = n + 1");
      assert.equal(await child.exit, null, "the leader was killed");
      const [meta] = await db.query("SELECT value FROM upkeep_meta WHERE key = 'head'");
      assert.equal(meta?.value, "0", "nothing of the transaction became readable");
      const [count] = await db.query("SELECT count(*)::int AS n FROM upkeep_facts");
      assert.equal(count?.n, 0, "the inserts rolled back with the session");
      ledger = await openLedger({ database: db.url });
      assertWholeUpdate(await readAll(ledger), 1, 0);
    } finally {
      await ledger?.close();
      await db.close();
    }
  });

  test("a leader paused (SIGSTOP) in the middle of a large transaction's append is ended by the server; the next leader appends it once", {
    timeout: 120_000,
  }, async () => {
    const db = await bigTableDb();
    let child: ReturnType<typeof leaderChild> | undefined;
    let ledger: Ledger | undefined;
    try {
      child = leaderChild(db, `if (inserts === 3) process.kill(process.pid, "SIGSTOP");`);
      assert.equal(await firstLine(child.process), "leader");
      await db.exec("UPDATE items SET n = n + 1");
      // The paused leader holds the position rows in its open transaction until its session's idle timeout.
      await waitFor(async () => {
        const rows = await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
        );
        return rows.length > 0;
      });
      ledger = await openLedger({ database: db.url });
      assertWholeUpdate(await readAll(ledger), 1, 0);
      child.process.kill("SIGCONT");
      await db.exec("UPDATE items SET n = n + 1 WHERE id = 1");
      const later = await readAll(ledger, ROWS);
      assert.deepEqual(
        later.map((f) => [f.offset, f.key.id, f.new?.n]),
        [[ROWS + 1, 1, 2]],
      );
      const [count] = await db.query("SELECT count(*)::int AS n FROM upkeep_facts");
      assert.equal(count?.n, ROWS + 1, "the resumed leader appended nothing");
    } finally {
      child?.process.kill("SIGCONT");
      child?.process.kill("SIGKILL");
      await ledger?.close();
      await db.close();
    }
  });
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("timed out waiting");
}
