// The demo's database opener waits for a lock held by another process instead of failing with "database is
// locked" (a restart right after kill -9 meets exactly that: another writer, or recovery, holds the lock).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { openRaw } from "../../demo/schema.ts";

test("openRaw waits for another process's write lock while switching to WAL", async () => {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-demo-"));
  const path = join(dir, "demo.sqlite");
  try {
    const setup = new DatabaseSync(path); // a rollback-journal database: switching it to WAL needs a lock
    setup.exec("create table t (id integer primary key)");
    setup.close();
    // Another process takes the write lock, says so, and releases it 400 ms later.
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(path)});
         db.exec("begin exclusive"); console.log("locked");
         setTimeout(() => { db.exec("commit"); db.close(); }, 400);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    const raw = await openRaw(`file:${path}`);
    const [mode] = await raw.query<{ journal_mode: string }>("pragma journal_mode");
    assert.equal(mode?.journal_mode, "wal");
    await raw.close();
    await new Promise((resolve) => holder.once("exit", resolve));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
