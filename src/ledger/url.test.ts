import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../errors.ts";
import { parseDatabaseUrl } from "./url.ts";

test("parseDatabaseUrl tells SQLite paths from PostgreSQL URLs", () => {
  assert.deepEqual(parseDatabaseUrl("postgres://u@h:5432/db"), { kind: "postgres", url: "postgres://u@h:5432/db" });
  assert.deepEqual(parseDatabaseUrl("postgresql://h/db"), { kind: "postgres", url: "postgresql://h/db" });
  assert.deepEqual(parseDatabaseUrl("file:./data/app.sqlite"), { kind: "sqlite", path: "./data/app.sqlite" });
  assert.deepEqual(parseDatabaseUrl("file:///tmp/a%20b.db"), { kind: "sqlite", path: "/tmp/a b.db" });
  assert.deepEqual(parseDatabaseUrl("sqlite:app.db"), { kind: "sqlite", path: "app.db" });
  assert.deepEqual(parseDatabaseUrl("data/app.sqlite"), { kind: "sqlite", path: "data/app.sqlite" });
  assert.deepEqual(parseDatabaseUrl(":memory:"), { kind: "sqlite", path: ":memory:" });
  for (const bad of ["", "  ", "mysql://h/db", "file:"]) {
    assert.throws(
      () => parseDatabaseUrl(bad),
      (e: ConfigError) => e instanceof ConfigError && e.code === "config",
    );
  }
});
