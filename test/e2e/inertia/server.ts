// The fixture server: one Hono app on SQLite serving the React and the Svelte fixture apps through upkeep/inertia,
// under /react/… and /svelte/…. The board page reads the board, its cards, the viewer's own notes (through the
// `user` cookie) and a deferred count; the other page reads a count.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Hono } from "hono";
import { setCookie } from "hono/cookie";
import type { Generated } from "kysely";
import { upkeepMiddleware } from "../../../src/hono/index.ts";
import { cookie, createUpkeep, type Upkeep } from "../../../src/index.ts";
import { createInertia, defer, reloadOnly } from "../../../src/inertia/index.ts";
import { FRAMEWORKS } from "./build.ts";

export const SECRET = "inertia-e2e-secret-0123456789abcdef";

export interface DB {
  boards: { id: Generated<number>; name: string };
  cards: { id: Generated<number>; board_id: number; title: string; position: number };
  notes: { id: Generated<number>; owner: string; body: string };
  flags: { name: string; value: string };
}

/** A new SQLite database with the fixture schema and two boards. */
export function createFixtureDatabase(path: string): void {
  const db = new DatabaseSync(path);
  db.exec(`
    pragma journal_mode = wal;
    create table boards (id integer primary key, name text not null);
    create table cards (id integer primary key, board_id integer not null, title text not null, position integer not null);
    create table notes (id integer primary key, owner text not null, body text not null);
    create table flags (name text primary key, value text not null);
    insert into boards (id, name) values (1, 'Roadmap'), (2, 'Chores');
    insert into cards (id, board_id, title, position) values (1, 1, 'Design', 1), (2, 1, 'Build', 2), (3, 2, 'Dishes', 1);
    insert into notes (id, owner, body) values (1, 'alice', 'alice first note'), (2, 'bob', 'bob first note');
  `);
  db.close();
}

export interface FixtureServer {
  url: string;
  upkeep: Upkeep;
  db: ReturnType<Upkeep["db"]> & any;
  close(): Promise<void>;
}

export async function startFixtureServer(options: { databasePath: string; assets: string }): Promise<FixtureServer> {
  const upkeep = await createUpkeep({ database: `file:${options.databasePath}`, secret: SECRET, install: true });
  const db = upkeep.db<DB>();
  const app = new Hono();

  // Built assets, before the middleware (they are not pages).
  app.get("/assets/:framework/:file", async (c) => {
    const { framework, file } = c.req.param();
    if (!(FRAMEWORKS as readonly string[]).includes(framework) || !/^[\w.-]+\.js$/.test(file)) return c.notFound();
    const body = await readFile(join(options.assets, framework, file), "utf8");
    return c.body(body, 200, { "content-type": "text/javascript; charset=utf-8" });
  });

  app.get("/favicon.ico", (c) => c.body(null, 204));
  app.use(upkeepMiddleware(upkeep));

  // A live JSON resource (useLiveResource in the React app).
  app.get("/api/boards/:id/cards", async (c) =>
    c.json(
      await db
        .selectFrom("cards")
        .select(["id", "title"])
        .where("board_id", "=", Number(c.req.param("id")))
        .orderBy("id")
        .execute(),
    ),
  );

  for (const framework of FRAMEWORKS) {
    const inertia = createInertia({
      version: "1",
      html: (page) =>
        `<!doctype html><html><head><meta charset="utf-8"><title>${framework}</title>` +
        `<script type="module" src="/assets/${framework}/app.js"></script></head><body>${page}</body></html>`,
      share: { viewer: () => cookie("user") ?? null },
    });
    app.get(`/${framework}/boards/:id`, async (c) => {
      const id = Number(c.req.param("id"));
      // Read by the handler, outside any prop: whether the page has a `banner` prop at all. A write to it changes the
      // page's set of props, so the browser visits the page anew.
      const banner = await db.selectFrom("flags").select(["value"]).where("name", "=", "banner").executeTakeFirst();
      return inertia.render(c, "Board", {
        ...(banner ? { banner: banner.value } : {}),
        board: () => db.selectFrom("boards").select(["id", "name"]).where("id", "=", id).executeTakeFirstOrThrow(),
        cards: () =>
          db
            .selectFrom("cards")
            .select(["id", "title"])
            .where("board_id", "=", id)
            .orderBy("position")
            .orderBy("id")
            .execute(),
        mine: () =>
          db
            .selectFrom("notes")
            .select(["id", "body"])
            .where("owner", "=", cookie("user") ?? "")
            .orderBy("id")
            .execute(),
        // Pushed as a name only: the browser fetches it with a partial reload of its own.
        latest: reloadOnly(async () => {
          const row = await db
            .selectFrom("cards")
            .select(["title"])
            .where("board_id", "=", id)
            .orderBy("id", "desc")
            .limit(1)
            .executeTakeFirst();
          return row?.title ?? null;
        }),
        stats: defer(async () => {
          const rows = await db.selectFrom("cards").select(["id"]).where("board_id", "=", id).execute();
          return { cards: rows.length };
        }),
      });
    });
    app.get(`/${framework}/other`, (c) =>
      inertia.render(c, "Other", {
        count: async () => (await db.selectFrom("cards").select(["id"]).where("board_id", "=", 2).execute()).length,
      }),
    );
    // Signing in as someone else: the cookie changes while the page (and its connection) stays open.
    app.post(`/${framework}/viewer`, async (c) => {
      const { name, back } = await c.req.json<{ name: string; back: string }>();
      setCookie(c, "user", name, { path: "/" });
      return inertia.redirect(c, back);
    });
    app.post(`/${framework}/boards/:id/cards`, async (c) => {
      const id = Number(c.req.param("id"));
      const { title } = await c.req.json<{ title: string }>(); // Inertia posts JSON
      await db.insertInto("cards").values({ board_id: id, title, position: 100 }).execute();
      return inertia.redirect(c, `/${framework}/boards/${id}`);
    });
  }

  const served = await upkeep.serve(app, { port: 0, hostname: "127.0.0.1" });
  return {
    url: served.url,
    upkeep,
    db,
    close: () => upkeep.close(),
  };
}
