// The `upkeep` command line, run as a real child process against a real SQLite file.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { openLedger } from "../../src/ledger/index.ts";
import { POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { freshDb } from "./harness.ts";

const bin = new URL("../../bin/upkeep.js", import.meta.url).pathname;

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, DATABASE_URL: "", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exit, out: () => stdout, err: () => stderr };
}

test("usage errors exit 2 with the usage text", async () => {
  for (const args of [
    [],
    ["frobnicate", "--database", "x.db"],
    ["tail", "--after", "-1", "--database", "x.db"],
    ["tail"],
  ]) {
    const r = run(args);
    assert.equal(await r.exit, 2, args.join(" "));
    assert.match(r.err(), /usage:\n {2}upkeep install/);
  }
});

const SCHEMA = {
  sqlite: {
    create: "CREATE TABLE files (id integer PRIMARY KEY, body blob, size integer)",
    insert: "INSERT INTO files VALUES (1, x'00ff', 9223372036854775807)",
  },
  postgres: {
    create: "CREATE TABLE files (id integer PRIMARY KEY, body bytea, size bigint)",
    insert: "INSERT INTO files VALUES (1, '\\x00ff', 9223372036854775807)",
  },
};

for (const dialect of ["sqlite", "postgres"] as const) {
  test(`install, tail from an offset (following new facts), interrupt, uninstall (${dialect})`, async (t) => {
    if (dialect === "postgres" && !postgresUrl()) return t.skip(POSTGRES_SKIP_MESSAGE);
    const db = await freshDb(dialect);
    try {
      await db.exec(SCHEMA[dialect].create);
      const installed = run(["install", "--database", db.url, "--exclude", "other"]);
      assert.equal(await installed.exit, 0);
      assert.match(installed.out(), /capturing: files/);
      await db.exec(SCHEMA[dialect].insert);
      // DATABASE_URL is the default database.
      const tail = run(["tail", "--after", "0"], { DATABASE_URL: db.url });
      const lines: string[] = [];
      await new Promise<void>((resolve) => {
        tail.child.stdout.on("data", () => {
          lines.splice(0, lines.length, ...tail.out().split("\n").filter(Boolean));
          if (lines.length === 1) void db.exec("DELETE FROM files");
          if (lines.length === 2) resolve();
        });
      });
      tail.child.kill("SIGINT");
      assert.equal(await tail.exit, 0);
      const [first, second] = lines.map((l) => JSON.parse(l));
      assert.equal(first.offset, 1);
      assert.equal(first.table, "files");
      assert.equal(first.op, "insert");
      assert.deepEqual(first.key, { id: 1 });
      assert.deepEqual(first.new, { id: 1, body: "00ff", size: "9223372036854775807" });
      assert.equal(typeof first.incarnation, "string");
      assert.ok(first.committedAt);
      assert.equal(second.offset, 2);
      assert.equal(second.op, "delete");
      const removed = run(["uninstall", "--database", db.url]);
      assert.equal(await removed.exit, 0);
      const again = run(["tail", "--database", db.url]);
      assert.equal(await again.exit, 1);
      assert.match(again.err(), /not installed/);
    } finally {
      await db.close();
    }
  });
}

test("tail goes past a fact it cannot decode, printing it as unavailable (SQLite)", async () => {
  const db = await freshDb("sqlite");
  try {
    await db.exec("CREATE TABLE items (id integer PRIMARY KEY, price real)");
    assert.equal(await run(["install", "--database", db.url]).exit, 0);
    await db.exec("INSERT INTO items VALUES (1, 1.5); INSERT INTO items VALUES (2, 2.5)");
    // What an older install wrote for an infinite value: not JSON.
    await db.exec(`UPDATE upkeep_facts SET new = '{"id": 1, "price": Inf}' WHERE id = 1`);
    const tail = run(["tail", "--after", "0", "--database", db.url]);
    let buffered = "";
    await new Promise<void>((resolve) => {
      tail.child.stdout.on("data", () => {
        buffered = tail.out();
        if (buffered.split("\n").filter(Boolean).length >= 2) resolve();
      });
    });
    tail.child.kill("SIGINT");
    await tail.exit;
    const [first, second] = buffered
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    assert.equal(first.offset, 1);
    assert.match(first.unavailable, /undecodable image/);
    assert.equal(second.offset, 2);
    assert.deepEqual(second.new, { id: 2, price: 2.5 });
  } finally {
    await db.close();
  }
});

test("tail --tables keeps only those tables; history prints a row's facts and the row as of an offset (SQLite)", async () => {
  const db = await freshDb("sqlite");
  try {
    await db.exec("CREATE TABLE a (id integer PRIMARY KEY, v text)");
    await db.exec("CREATE TABLE b (id integer PRIMARY KEY, v text)");
    assert.equal(await run(["install", "--database", db.url]).exit, 0);
    await db.exec("INSERT INTO a VALUES (1, 'first')");
    await db.exec("INSERT INTO b VALUES (1, 'other table')");
    await db.exec("UPDATE a SET v = 'second' WHERE id = 1");
    const tail = run(["tail", "--after", "0", "--tables", "a", "--database", db.url]);
    await new Promise<void>((resolve) => {
      tail.child.stdout.on("data", () => {
        if (tail.out().split("\n").filter(Boolean).length >= 2) resolve();
      });
    });
    tail.child.kill("SIGINT");
    await tail.exit;
    const tailed = tail
      .out()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      tailed.map((f) => f.table),
      ["a", "a"],
    );

    const history = run(["history", "--database", db.url, "--table", "a", "--key", '{"id": 1}']);
    assert.equal(await history.exit, 0, history.err());
    const facts = history
      .out()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      facts.map((f) => [f.op, f.new.v]),
      [
        ["insert", "first"],
        ["update", "second"],
      ],
    );
    const at = run([
      "history",
      "--database",
      db.url,
      "--table",
      "a",
      "--key",
      '{"id": 1}',
      "--at",
      String(facts[0].offset),
    ]);
    assert.equal(await at.exit, 0, at.err());
    assert.deepEqual(JSON.parse(at.out()), { row: { id: 1, v: "first" } });
    const bad = run(["history", "--database", db.url, "--table", "a", "--key", "42"]);
    assert.equal(await bad.exit, 2);
    assert.match(bad.err(), /--key must be a JSON object/);
  } finally {
    await db.close();
  }
});

test("history and tail follow the table's own retention: its horizon on stderr, an offset below it refused (SQLite)", async () => {
  const db = await freshDb("sqlite");
  try {
    await db.exec("CREATE TABLE a (id integer PRIMARY KEY, v text)");
    await db.exec("CREATE TABLE b (id integer PRIMARY KEY, v text)");
    assert.equal(await run(["install", "--database", db.url]).exit, 0);
    await db.exec("INSERT INTO a VALUES (1, 'first')"); // 1
    await db.exec("INSERT INTO b VALUES (1, 'kept')"); // 2
    await db.exec("UPDATE a SET v = 'second' WHERE id = 1"); // 3
    const ledger = await openLedger({ database: db.url });
    try {
      await ledger.prune({ retention: { default: "forever", tables: { a: "minimal" } } });
    } finally {
      await ledger.close();
    }
    const pruned = run(["history", "--database", db.url, "--table", "a", "--key", '{"id": 1}']);
    assert.equal(await pruned.exit, 0, pruned.err());
    assert.equal(pruned.out(), "");
    assert.match(pruned.err(), /a's facts at or below offset 3 were pruned by its retention/);
    const kept = run(["history", "--database", db.url, "--table", "b", "--key", '{"id": 1}']);
    assert.equal(await kept.exit, 0, kept.err());
    assert.equal(kept.err(), "");
    assert.deepEqual(JSON.parse(kept.out()).new, { id: 1, v: "kept" });
    const at = run(["history", "--database", db.url, "--table", "a", "--key", '{"id": 1}', "--at", "1"]);
    assert.equal(await at.exit, 1);
    assert.match(at.err(), /Facts of a after offset 1 were pruned \(its horizon is 3\)/);
    assert.match(at.err(), /fix: .*retention: \{ tables: \{ "a"/);
    const all = run(["tail", "--database", db.url, "--after", "0"]);
    assert.equal(await all.exit, 1);
    assert.match(all.err(), /Facts of a after offset 0 were pruned/);
    const onlyB = run(["tail", "--database", db.url, "--after", "0", "--tables", "b"]);
    await new Promise<void>((resolve) => {
      onlyB.child.stdout.on("data", () => {
        if (onlyB.out().includes("\n")) resolve();
      });
    });
    onlyB.child.kill("SIGINT");
    assert.equal(await onlyB.exit, 0, onlyB.err());
    assert.deepEqual(
      onlyB
        .out()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l).offset),
      [2],
    );
  } finally {
    await db.close();
  }
});
