// An app that prepares its SQLite statements at start-up, before Upkeep captures the driver (better-sqlite3's advice):
// those statements are captured all the same, from their own text.
import assert from "node:assert/strict";
import * as sqlite from "node:sqlite";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { Hono } from "hono";
import { html } from "hono/html";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

describe("statements prepared before the driver was captured", () => {
  let fixture: Fixture;
  let upkeep: Upkeep;
  let app: Hono;
  let close: () => void;
  before(async () => {
    fixture = (await fixtureDatabase("sqlite")) as Fixture;
    const path = fixture.database.slice("file:".length);
    await fixture.exec("insert into items (list, title, pos) values ('a', 'one', 1)");
    const nodeDb = new sqlite.DatabaseSync(path);
    const betterDb = new Database(path);
    const viaNode = nodeDb.prepare("select id, title from items where list = ? order by pos, id");
    const viaBetter = betterDb.prepare("select id, title from items where list = ? order by pos, id");
    upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
    upkeep.capture(sqlite);
    upkeep.capture(Database);
    app = new Hono();
    app.use(upkeepMiddleware(upkeep));
    for (const [name, statement] of [
      ["node", viaNode],
      ["better", viaBetter],
    ] as const) {
      app.get(`/${name}/:list`, (c) => {
        const rows = statement.all(c.req.param("list")) as { id: number; title: string }[];
        return c.html(
          html`<html><body><ul id="items">${rows.map((r) => html`<li id="i_${r.id}">${r.title}</li>`)}</ul></body></html>`,
        );
      });
    }
    upkeep.use(app);
    close = () => {
      nodeDb.close();
      betterDb.close();
    };
  });
  after(async () => {
    close?.();
    await upkeep?.close();
  });

  test("a page read through them converges after a write", async () => {
    const pages = [await openLivePage(upkeep, app, "/node/a"), await openLivePage(upkeep, app, "/better/a")];
    await fixture.exec("insert into items (list, title, pos) values ('a', 'two', 2)");
    await upkeep.settle();
    for (const [i, page] of pages.entries()) {
      assert.match(page.body(), />two</);
      assert.equal(page.body(), await freshBody(app, i === 0 ? "/node/a" : "/better/a"));
      page.close();
    }
  });
});
