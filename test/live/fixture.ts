// A small live app over both dialects, for the integration suites of the live pipeline.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { Hono } from "hono";
import { html } from "hono/html";
import { sql } from "kysely";
import pg from "pg";
import type { Mode } from "../../src/deliver/hub.ts";
import { cookie, upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { createTestDatabase, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";

export const SECRET = "test-secret-0123456789abcdef0123456789";

export interface Items {
  id: number;
  list: string;
  title: string;
  pos: number;
}
export interface Secrets {
  id: number;
  owner: string;
  body: string;
}
export interface DB {
  items: Items;
  secrets: Secrets;
}

export type Dialect = "sqlite" | "postgres";
export const DIALECTS: Dialect[] = ["sqlite", "postgres"];

export interface Fixture {
  database: string;
  /** Runs raw SQL on a separate connection (not Upkeep's), as another service or a shell would. */
  exec(statement: string): Promise<void>;
  drop(): Promise<void>;
}

const SCHEMA = {
  sqlite: `create table items (id integer primary key, list text not null, title text not null, pos integer not null);
           create table secrets (id integer primary key, owner text not null, body text not null);`,
  postgres: `create table items (id serial primary key, list text not null, title text not null, pos integer not null);
             create table secrets (id serial primary key, owner text not null, body text not null);`,
};

/**
 * `test` for a suite of one dialect: each test skips, saying how to enable PostgreSQL, while `fixture()` is null (the
 * suite's database could not be made). With CI=true the test command fails before that can happen.
 */
export function dialectTest(fixture: () => Fixture | null) {
  return (name: string, fn: () => Promise<void>) =>
    test(name, async (t) => {
      if (!fixture()) return t.skip(POSTGRES_SKIP_MESSAGE);
      await fn();
    });
}

/** A fresh database with the fixture schema (null when PostgreSQL is not available). */
export async function fixtureDatabase(dialect: Dialect): Promise<Fixture | null> {
  if (dialect === "sqlite") {
    const path = join(mkdtempSync(join(tmpdir(), "upkeep-live-")), "app.sqlite");
    const db = new DatabaseSync(path);
    db.exec(SCHEMA.sqlite);
    db.close();
    return {
      database: `file:${path}`,
      async exec(statement) {
        const c = new DatabaseSync(path);
        c.exec("pragma busy_timeout = 5000");
        c.exec(statement);
        c.close();
      },
      async drop() {},
    };
  }
  if (!postgresUrl()) return null;
  const created = await createTestDatabase("upkeep_live");
  if (!created.url) return null;
  const client = new pg.Client({ connectionString: created.url });
  await client.connect();
  await client.query(SCHEMA.postgres);
  return {
    database: created.url,
    async exec(statement) {
      await client.query(statement);
    },
    async drop() {
      await client.end();
      await created.drop();
    },
  };
}

export function createApp(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/lists/:list", async (c) => {
    const items = await db
      .selectFrom("items")
      .select(["id", "title"])
      .where("list", "=", c.req.param("list"))
      .orderBy("pos")
      .orderBy("id")
      .execute();
    return c.html(
      html`<!doctype html><html><head><title>${c.req.param("list")}</title></head><body><ul id="items">${items.map(
        (i) => html`<li id="item_${i.id}">${i.title}</li>`,
      )}</ul></body></html>`,
    );
  });
  app.get("/count/:list", async (c) => {
    const { n } = await db
      .selectFrom("items")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("list", "=", c.req.param("list"))
      .executeTakeFirstOrThrow();
    return c.html(html`<html><body><p id="count">${Number(n)}</p></body></html>`);
  });
  app.get("/me", async (c) => {
    const owner = cookie(c, "user") ?? "nobody";
    const rows = await db
      .selectFrom("secrets")
      .select(["id", "body"])
      .where("owner", "=", owner)
      .orderBy("id")
      .execute();
    return c.html(
      html`<html><body><h1>${owner}</h1>${rows.map((r) => html`<p id="s_${r.id}">${r.body}</p>`)}</body></html>`,
    );
  });
  app.get("/lang", async (c) => {
    const language = c.req.header("accept-language") ?? "en";
    const rows = await db.selectFrom("items").select(["id", "title"]).where("list", "=", "a").orderBy("id").execute();
    const label = language.startsWith("fr") ? "articles" : "items";
    return c.html(html`<html><body><h1>${rows.length} ${label}</h1></body></html>`);
  });
  app.get("/items/:id", async (c) => {
    const item = await db
      .selectFrom("items")
      .selectAll()
      .where("id", "=", Number(c.req.param("id")))
      .executeTakeFirst();
    if (!item) return c.html(html`<html><body>gone</body></html>`, 404);
    return c.html(html`<html><body><h1 id="title">${item.title}</h1></body></html>`);
  });
  // Reads the theme cookie only when list "c" has items: the identity of the page depends on the data.
  app.get("/branch", async (c) => {
    const rows = await db.selectFrom("items").select(["id", "title"]).where("list", "=", "c").execute();
    const theme = rows.length > 0 ? (cookie(c, "theme") ?? "plain") : "none";
    return c.html(html`<html><body><p id="theme">${theme}</p><p id="n">${rows.length}</p></body></html>`);
  });
  app.get("/raw", async (c) => {
    const rows = await db.selectFrom("items").selectAll().where(sql<boolean>`title like 'a%'`).execute();
    return c.html(html`<html><body>${rows.length}</body></html>`);
  });
  // Counts its own views: a write during the render.
  app.get("/counted", async (c) => {
    await upkeep.db<any>().insertInto("secrets").values({ owner: "views", body: "x" }).execute();
    if (c.req.query("raw") !== undefined) await sql`update secrets set body = 'y' where owner = 'views'`.execute(db);
    return c.html(html`<html><body>counted</body></html>`);
  });
  // Prints the host it was requested on, as apps that build absolute URLs do.
  app.get("/where", async (c) => {
    const rows = await db.selectFrom("items").select("id").where("list", "=", "w").execute();
    return c.html(
      html`<html><body><a id="self" href="${new URL(c.req.url).origin}/where">${rows.length}</a></body></html>`,
    );
  });
  app.get("/plain.json", async (c) => c.json(await db.selectFrom("items").selectAll().execute()));
  return app;
}

export async function start(
  database: string,
  mode: Mode = "test",
  options: { coalesceMs?: number; refusals?: "throw" | "warn" } = {},
) {
  const upkeep = await createUpkeep({ database, secret: SECRET, mode, install: true, ...options });
  const app = createApp(upkeep);
  upkeep.use(app);
  return { upkeep, app };
}
