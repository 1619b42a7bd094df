import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError } from "../errors.ts";
import { loadSqlite, openSqlite } from "./dialect.ts";

test("a Node without node:sqlite fails when a SQLite database is opened, naming the Node it needs", () => {
  const missing = () => {
    throw new Error("No such built-in module: node:sqlite");
  };
  assert.throws(
    () => loadSqlite(missing),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.includes(process.version) &&
      /Node 24 LTS \(or 22\.13 and later\), or use a postgres:\/\/ database/.test(error.message),
  );
  assert.equal(typeof loadSqlite().DatabaseSync, "function");
});

test("opening a SQLite file creates its folder", () => {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-open-"));
  try {
    const db = openSqlite(join(dir, "data", "nested", "app.sqlite"));
    db.exec("create table t (id integer primary key)");
    db.close();
    assert.ok(existsSync(join(dir, "data", "nested", "app.sqlite")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
