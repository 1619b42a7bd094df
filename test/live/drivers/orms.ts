// The same small board app written with Drizzle and with Knex, on PostgreSQL (through pg) and SQLite (through
// better-sqlite3): each reads a board with its cards the ORM's own way (Drizzle's relational query, Knex's builder),
// and a collection of cards fed by a function. Upkeep captures the driver under the ORM.

import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { asc, eq, relations } from "drizzle-orm";
import { drizzle as drizzleSqlite } from "drizzle-orm/better-sqlite3";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { integer as pgInteger, pgTable, text as pgText, serial } from "drizzle-orm/pg-core";
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { Hono } from "hono";
import { html } from "hono/html";
import knex, { type Knex } from "knex";
import pg from "pg";
import { upkeepMiddleware } from "../../../src/hono/index.ts";
import { Collection, partial, type Upkeep } from "../../../src/index.ts";
import type { Dialect } from "../fixture.ts";

export const BOARD_SCHEMA = {
  sqlite: `create table boards (id integer primary key, name text not null);
           create table cards (id integer primary key, board_id integer not null references boards(id), title text not null, pos integer not null);`,
  postgres: `create table boards (id serial primary key, name text not null);
             create table cards (id serial primary key, board_id integer not null references boards(id), title text not null, pos integer not null);`,
};

export interface Card {
  id: number;
  title: string;
}

/** What the board app needs of an ORM. */
export interface Orm {
  readonly name: string;
  /** The driver module under it, for upkeep.capture. */
  readonly driver: unknown;
  board(id: number): Promise<{ name: string; cards: Card[] } | undefined>;
  cards(boardId: number): Promise<Card[]>;
  /** Every board with its cards, in one call of the ORM (relational query, include, or two queries). */
  boards(): Promise<{ id: number; name: string; cards: Card[] }[]>;
  addCard(boardId: number, title: string, pos: number): Promise<void>;
  rename(cardId: number, title: string): Promise<void>;
  close(): Promise<void>;
}

const pgBoards = pgTable("boards", { id: serial("id").primaryKey(), name: pgText("name").notNull() });
const pgCards = pgTable("cards", {
  id: serial("id").primaryKey(),
  boardId: pgInteger("board_id").notNull(),
  title: pgText("title").notNull(),
  pos: pgInteger("pos").notNull(),
});
const sqliteBoards = sqliteTable("boards", { id: integer("id").primaryKey(), name: text("name").notNull() });
const sqliteCards = sqliteTable("cards", {
  id: integer("id").primaryKey(),
  boardId: integer("board_id").notNull(),
  title: text("title").notNull(),
  pos: integer("pos").notNull(),
});

function drizzleSchema<B, C>(boards: B, cards: C) {
  return {
    boards,
    cards,
    boardsRelations: relations(boards as any, ({ many }) => ({ cards: many(cards as any) })),
    cardsRelations: relations(cards as any, ({ one }) => ({
      board: one(boards as any, { fields: [(cards as any).boardId], references: [(boards as any).id] }),
    })),
  };
}

export function drizzleOrm(dialect: Dialect, database: string): Orm {
  if (dialect === "postgres") {
    const pool = new pg.Pool({ connectionString: database, max: 3 });
    const db = drizzlePg({ client: pool, schema: drizzleSchema(pgBoards, pgCards) }) as any;
    return drizzleCommon("drizzle", pg, db, pgBoards, pgCards, () => pool.end());
  }
  const sqlite = new Database(database.slice("file:".length));
  sqlite.pragma("busy_timeout = 5000");
  const db = drizzleSqlite({ client: sqlite, schema: drizzleSchema(sqliteBoards, sqliteCards) }) as any;
  return drizzleCommon("drizzle", Database, db, sqliteBoards, sqliteCards, async () => {
    sqlite.close();
  });
}

function drizzleCommon(
  name: string,
  driver: unknown,
  db: any,
  boards: any,
  cards: any,
  close: () => Promise<void>,
): Orm {
  return {
    name,
    driver,
    async board(id) {
      // The relational query: one statement with the cards nested (a lateral join on PostgreSQL, a correlated
      // json_group_array subquery on SQLite).
      return db.query.boards.findFirst({
        where: eq(boards.id, id),
        columns: { name: true },
        with: { cards: { columns: { id: true, title: true }, orderBy: [asc(cards.pos), asc(cards.id)] } },
      });
    },
    boards: () =>
      db.query.boards.findMany({
        columns: { id: true, name: true },
        with: { cards: { columns: { id: true, title: true }, orderBy: [asc(cards.pos), asc(cards.id)] } },
        orderBy: [asc(boards.id)],
      }),
    cards: (boardId) =>
      db
        .select({ id: cards.id, title: cards.title })
        .from(cards)
        .where(eq(cards.boardId, boardId))
        .orderBy(asc(cards.pos), asc(cards.id)),
    async addCard(boardId, title, pos) {
      await db.insert(cards).values({ boardId, title, pos });
    },
    async rename(cardId, title) {
      await db.update(cards).set({ title }).where(eq(cards.id, cardId));
    },
    close,
  };
}

export function knexOrm(dialect: Dialect, database: string): Orm {
  const db: Knex =
    dialect === "postgres"
      ? knex({ client: "pg", connection: database, pool: { min: 0, max: 3 } })
      : knex({
          client: "better-sqlite3",
          connection: { filename: database.slice("file:".length) },
          useNullAsDefault: true,
          pool: { min: 0, max: 1 },
        });
  return {
    name: "knex",
    driver: dialect === "postgres" ? pg : Database,
    async board(id) {
      const board = await db("boards").select("name").where({ id }).first();
      if (!board) return undefined;
      const cards = await db("cards")
        .select("cards.id", "cards.title")
        .join("boards", "boards.id", "cards.board_id")
        .where("boards.id", id)
        .whereNot("cards.title", "hidden")
        .orderBy([{ column: "cards.pos" }, { column: "cards.id" }]);
      return { name: board.name, cards };
    },
    cards: (boardId) => db("cards").select("id", "title").where("board_id", boardId).orderBy(["pos", "id"]),
    async boards() {
      const boards = await db("boards").select("id", "name").orderBy("id");
      const cards = await db("cards")
        .select("id", "title", "board_id")
        .whereIn(
          "board_id",
          boards.map((b) => b.id),
        )
        .orderBy(["pos", "id"]);
      return boards.map((b) => ({
        ...b,
        cards: cards.filter((c) => c.board_id === b.id).map(({ id, title }) => ({ id, title })),
      }));
    },
    async addCard(boardId, title, pos) {
      await db("cards").insert({ board_id: boardId, title, pos });
    },
    async rename(cardId, title) {
      await db("cards").update({ title }).where({ id: cardId });
    },
    close: () => db.destroy(),
  };
}

/** Prisma clients generated per dialect (once per process), from test/live/drivers/prisma/<provider>.prisma. */
const generated = new Map<string, Promise<any>>();

function prismaClientModule(provider: "postgresql" | "sqlite"): Promise<any> {
  let module = generated.get(provider);
  if (!module) {
    const root = new URL("../../../", import.meta.url).pathname;
    // No engine binary is needed to generate a client for a driver adapter; telemetry is off.
    execFileSync(
      process.execPath,
      [
        `${root}node_modules/prisma/build/index.js`,
        "generate",
        "--schema",
        `${root}test/live/drivers/prisma/${provider}.prisma`,
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          PRISMA_SCHEMA_ENGINE_BINARY: "/bin/false",
          CHECKPOINT_DISABLE: "1",
          PRISMA_HIDE_UPDATE_MESSAGE: "1",
        },
        stdio: "pipe",
      },
    );
    module = import(pathToFileURL(`${root}.generated/prisma/${provider}/client.ts`).href);
    generated.set(provider, module);
  }
  return module;
}

export async function prismaOrm(dialect: Dialect, database: string): Promise<Orm> {
  const { PrismaClient } = await prismaClientModule(dialect === "postgres" ? "postgresql" : "sqlite");
  const adapter =
    dialect === "postgres"
      ? new (await import("@prisma/adapter-pg")).PrismaPg({ connectionString: database, max: 3 })
      : new (await import("@prisma/adapter-better-sqlite3")).PrismaBetterSqlite3({ url: database });
  const prisma = new PrismaClient({ adapter });
  const order = [{ pos: "asc" }, { id: "asc" }];
  return {
    name: "prisma",
    driver: dialect === "postgres" ? pg : Database,
    // `include`-style relation loading: the board, then its cards (WHERE board_id IN (…)).
    board: (id) =>
      prisma.board.findUnique({
        where: { id },
        select: { name: true, cards: { select: { id: true, title: true }, orderBy: order } },
      }),
    boards: () =>
      prisma.board.findMany({
        select: { id: true, name: true, cards: { select: { id: true, title: true }, orderBy: order } },
        orderBy: { id: "asc" },
      }),
    cards: (boardId) => prisma.card.findMany({ where: { boardId }, select: { id: true, title: true }, orderBy: order }),
    async addCard(boardId, title, pos) {
      await prisma.card.create({ data: { boardId, title, pos } });
    },
    async rename(cardId, title) {
      await prisma.card.update({ where: { id: cardId }, data: { title } });
    },
    close: () => prisma.$disconnect(),
  };
}

const CardItem = partial("card", ({ card }: { card: Card }) => html`<li id="card_${card.id}">${card.title}</li>`);

const BoardItem = partial(
  "board",
  ({ board }: { board: { id: number; name: string; cards: Card[] } }) =>
    html`<section id="board_${board.id}"><h2>${board.name}</h2><ul>${board.cards.map((card) => html`<li id="card_${card.id}">${card.title}</li>`)}</ul></section>`,
);

export function boardApp(upkeep: Upkeep, orm: Orm) {
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/boards/:id", async (c) => {
    const board = await orm.board(Number(c.req.param("id")));
    if (!board) return c.html(html`<html><body>no board</body></html>`, 404);
    return c.html(
      html`<!doctype html><html><body><h1>${board.name}</h1><ul id="cards">${board.cards.map(
        (card) => html`<li id="card_${card.id}">${card.title}</li>`,
      )}</ul></body></html>`,
    );
  });
  app.get("/boards", async (c) =>
    c.html(
      html`<html><body>${Collection({ id: "boards", tag: "div", item: BoardItem, of: () => orm.boards() })}</body></html>`,
    ),
  );
  app.get("/boards/:id/cards", async (c) => {
    const id = Number(c.req.param("id"));
    return c.html(
      html`<html><body>${Collection({ id: "cards", tag: "ul", item: CardItem, of: () => orm.cards(id) })}</body></html>`,
    );
  });
  return app;
}
