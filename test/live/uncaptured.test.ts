// Reads of sources whose changes Upkeep does not capture are refused, never served live: on PostgreSQL a view, a
// foreign-schema table, an excluded table and (trigger capture only: logical capture publishes it through its
// root) a partitioned table; on both dialects a table created while running until the ledger captures it.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { createCapture, runWithCapture } from "../../src/capture/context.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { createTestDatabase, logicalSkipReason, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";
import { SECRET } from "./fixture.ts";

async function refusalsOf(upkeep: Upkeep, read: (db: any) => Promise<unknown>): Promise<string[]> {
  const capture = createCapture("/test");
  await runWithCapture(capture, () => read(upkeep.db<any>()));
  return capture.refusals.map((r) => r.reason);
}

const logicalSkip = await logicalSkipReason();

describe("uncaptured sources are refused", () => {
  for (const capture of ["triggers", "logical"] as const)
    test(`PostgreSQL (${capture}): views, partitioned tables, other schemas and excluded tables`, {
      skip: !postgresUrl() ? POSTGRES_SKIP_MESSAGE : capture === "logical" ? logicalSkip : false,
    }, async () => {
      const database = await createTestDatabase("upkeep_uncaptured");
      const url = database.url as string;
      const pg = (await import("pg")).default;
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      let upkeep: Upkeep | undefined;
      try {
        await raw.query(`
        create table items (id integer primary key, title text);
        create table hidden (id integer primary key);
        create view titled as select * from items where title is not null;
        create table events (id integer, at date) partition by range (at);
        create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
        create schema other; create table other.notes (id integer primary key);`);
        upkeep = await createUpkeep({
          database: url,
          secret: SECRET,
          mode: "test",
          install: true,
          exclude: ["hidden"],
          capture,
        });
        assert.deepEqual(await refusalsOf(upkeep, (db) => db.selectFrom("items").selectAll().execute()), []);
        const events = (db: any) => db.selectFrom("events").selectAll().execute();
        if (capture === "logical") assert.deepEqual(await refusalsOf(upkeep, events), []);
        for (const read of [
          (db: any) => db.selectFrom("titled").selectAll().execute(),
          ...(capture === "triggers" ? [events] : []),
          (db: any) => db.withSchema("other").selectFrom("notes").selectAll().execute(),
          (db: any) => db.selectFrom("hidden").selectAll().execute(),
        ]) {
          assert.deepEqual(await refusalsOf(upkeep, read), ["uncaptured_source"]);
        }
      } finally {
        await upkeep?.close();
        await raw.end();
        await database.drop();
      }
    });

  test("SQLite: a table created while running is refused until the ledger captures it", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "upkeep-uncaptured-")), "app.sqlite");
    const raw = new DatabaseSync(path);
    raw.exec("create table items (id integer primary key, title text)");
    const upkeep = await createUpkeep({ database: `file:${path}`, secret: SECRET, mode: "test", install: true });
    try {
      raw.exec("create table later (id integer primary key)");
      // Until the schema check runs, no fact would say that `later` changed.
      const before = await refusalsOf(upkeep, (db) => db.selectFrom("later").selectAll().execute());
      (upkeep.ledger as unknown as { checkSchema(): void }).checkSchema();
      const after = await refusalsOf(upkeep, (db) => db.selectFrom("later").selectAll().execute());
      assert.deepEqual([before, after], [["uncaptured_source"], []]);
    } finally {
      await upkeep.close();
      raw.close();
    }
  });
});
