// Data layers captured at their driver: Drizzle, Knex and Prisma on PostgreSQL (pg, @prisma/adapter-pg) and SQLite
// (better-sqlite3, @prisma/adapter-better-sqlite3). A board page
// read through each ORM's own query shapes (Drizzle's relational query, Knex's join, Prisma's
// relation loaded by a second statement) converges after writes through
// the ORM and from another connection; a collection fed by an ORM query is patched member by member.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { freshBody, openLivePage } from "../../src/testing/index.ts";
import { BOARD_SCHEMA, boardApp, drizzleOrm, knexOrm, type Orm, prismaOrm } from "./drivers/orms.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

const ORMS: { name: string; make(dialect: "sqlite" | "postgres", database: string): Orm | Promise<Orm> }[] = [
  { name: "drizzle", make: drizzleOrm },
  { name: "knex", make: knexOrm },
  { name: "prisma", make: prismaOrm },
];

for (const dialect of DIALECTS) {
  for (const spec of ORMS) {
    describe(`${spec.name} on ${dialect}`, () => {
      let fixture: Fixture | null = null;
      let upkeep: Upkeep;
      let orm: Orm;
      let app: ReturnType<typeof boardApp>;

      before(async () => {
        fixture = await fixtureDatabase(dialect);
        if (!fixture) return;
        await fixture.exec(BOARD_SCHEMA[dialect]);
        await fixture.exec(
          "insert into boards (name) values ('one'), ('two'); insert into cards (board_id, title, pos) values (1, 'a', 1), (1, 'b', 2), (2, 'c', 1)",
        );
        upkeep = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test", install: true });
        orm = await spec.make(dialect, fixture.database);
        upkeep.capture(orm.driver);
        app = boardApp(upkeep, orm);
        upkeep.use(app);
      });
      after(async () => {
        await orm?.close();
        await upkeep?.close();
        await fixture?.drop();
      });
      const it = dialectTest(() => fixture);

      it("a board read through the ORM converges after writes through it and from another connection", async () => {
        const page = await openLivePage(upkeep, app, "/boards/1");
        const other = await openLivePage(upkeep, app, "/boards/2");
        assert.match(page.body(), /<li id="card_1">a<\/li><li id="card_2">b<\/li>/);
        await orm.addCard(1, "new", 3);
        await upkeep.settle();
        assert.match(page.body(), />new</);
        assert.equal(page.body(), await freshBody(app, "/boards/1"));
        await orm.rename(1, "renamed");
        await upkeep.settle();
        assert.match(page.body(), />renamed</);
        await fixture!.exec("update boards set name = 'first' where id = 1");
        await upkeep.settle();
        assert.match(page.body(), /<h1>first<\/h1>/);
        assert.equal(page.body(), await freshBody(app, "/boards/1"));
        // Board 2's page read neither board 1 nor its cards.
        assert.equal(other.messages.filter((m) => m.type === "patch").length, 0);
        page.close();
        other.close();
      });

      it("a collection of boards with their cards (the ORM's relation loading) replaces the one board a write changes", async () => {
        const page = await openLivePage(upkeep, app, "/boards");
        await fixture!.exec("update cards set title = 'moved' where id = 3");
        await upkeep.settle();
        const patches = page.messages.filter((m) => m.type === "patch") as { html: string }[];
        assert.equal(patches.length, 1);
        assert.match(patches[0]!.html, /action="replace"[^>]*target="board_2"/);
        assert.doesNotMatch(patches[0]!.html, /board_1/);
        assert.equal(page.body(), await freshBody(app, "/boards"));
        page.close();
      });

      it("a collection fed by an ORM query is patched member by member", async () => {
        const page = await openLivePage(upkeep, app, "/boards/2/cards");
        await orm.addCard(2, "d", 2);
        await upkeep.settle();
        const patches = page.messages.filter((m) => m.type === "patch") as { html: string }[];
        assert.equal(patches.length, 1);
        assert.match(patches[0]!.html, /action="after"/);
        assert.equal(page.body(), await freshBody(app, "/boards/2/cards"));
        page.close();
      });
    });
  }
}
