// The kanban board as an Inertia app (data mode): the same database and the same writes as the HTML demo, with its
// pages answered as Inertia page objects whose props stay live. Mounted under /spa (SPA_PREFIX) by `npm start`; a
// change made in either demo shows in the other.
//
// Each column is a prop of its own, so a card renamed in "Doing" evaluates that column alone — once for every viewer,
// since no column reads the viewer's cookie; the greeting (a shared prop) reads it.
import { type Context, Hono } from "hono";
import { setCookie } from "hono/cookie";
import { cookie, type Upkeep } from "../../src/index.ts";
import { createInertia, type Inertia } from "../../src/inertia/index.ts";
import { type CardStatus, type Database, STATUSES } from "../schema.ts";

export const SPA_PREFIX = "/spa";
const VIEWER_COOKIE = "viewer";

export interface SpaOptions {
  /** The shell's <head> additions: the client bundle's script and styles. */
  head?: () => string;
}

async function body(c: Context): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (type.includes("application/json")) return (await c.req.json().catch(() => ({}))) as Record<string, string>;
  const form = await c.req.parseBody().catch(() => ({}));
  return Object.fromEntries(Object.entries(form).map(([k, v]) => [k, String(v)]));
}

const isStatus = (value: unknown): value is CardStatus => STATUSES.includes(value as CardStatus);

export function createSpaApp(upkeep: Upkeep, options: SpaOptions = {}): { app: Hono; inertia: Inertia } {
  const db = upkeep.db<Database>();
  const inertia = createInertia({
    version: "1",
    html: (page) =>
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Upkeep board (Inertia)</title>${options.head?.() ?? ""}</head><body>${page}</body></html>`,
    // Reads exactly the viewer cookie (an input of this prop alone when the request is live). cookie() from "upkeep"
    // reads the request an Upkeep adapter serves: on a plain app (the benchmark's baseline) there is none, so null.
    share: { viewer: () => cookie(VIEWER_COOKIE) ?? null },
  });
  // Routes only: mount it on an app that runs upkeepMiddleware (or on a plain one, for comparisons).
  const app = new Hono();

  const column = (boardId: number, status: CardStatus) => () =>
    db
      .selectFrom("cards")
      .select(["id", "title", "status", "position", "board_id"])
      .where("board_id", "=", boardId)
      .where("status", "=", status)
      .orderBy("position")
      .orderBy("id")
      .execute();

  app.get("/", (c) =>
    inertia.render(c, "Boards", {
      boards: async () => {
        const boards = await db.selectFrom("boards").select(["id", "name"]).orderBy("id").execute();
        const counts = await db
          .selectFrom("cards")
          .select(["board_id", (eb) => eb.fn.countAll<number>().as("n")])
          .groupBy("board_id")
          .execute();
        return boards.map((b) => ({ ...b, cards: Number(counts.find((r) => r.board_id === b.id)?.n ?? 0) }));
      },
    }),
  );

  app.get("/boards/:id", (c) => {
    const id = Number(c.req.param("id"));
    return inertia.render(c, "Board", {
      board: () => db.selectFrom("boards").select(["id", "name"]).where("id", "=", id).executeTakeFirst(),
      boards: () => db.selectFrom("boards").select(["id", "name"]).orderBy("id").execute(),
      todo: column(id, "todo"),
      doing: column(id, "doing"),
      done: column(id, "done"),
    });
  });

  app.post("/viewer", async (c) => {
    const { name } = await body(c);
    if (name) setCookie(c, VIEWER_COOKIE, name, { path: "/", sameSite: "Lax", httpOnly: true });
    return inertia.redirect(c, c.req.header("referer") ?? SPA_PREFIX);
  });

  const findCard = (id: number) =>
    Number.isInteger(id) ? db.selectFrom("cards").selectAll().where("id", "=", id).executeTakeFirst() : undefined;
  const back = (c: Context, boardId: number | undefined) =>
    inertia.redirect(c, boardId === undefined ? SPA_PREFIX : `${SPA_PREFIX}/boards/${boardId}`);

  app.post("/boards/:id/cards", async (c) => {
    const boardId = Number(c.req.param("id"));
    const { title, status } = await body(c);
    if (title && isStatus(status)) {
      const last = await db
        .selectFrom("cards")
        .select((eb) => eb.fn.max("position").as("max"))
        .where("board_id", "=", boardId)
        .where("status", "=", status)
        .executeTakeFirst();
      await db
        .insertInto("cards")
        .values({ board_id: boardId, title, status, position: Number(last?.max ?? 0) + 1 })
        .execute();
    }
    return back(c, boardId);
  });

  app.post("/cards/:id/rename", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    const { title } = await body(c);
    if (card && title) await db.updateTable("cards").set({ title }).where("id", "=", card.id).execute();
    return back(c, card?.board_id);
  });

  app.post("/cards/:id/move", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    const { status } = await body(c);
    if (card && isStatus(status) && status !== card.status) {
      await db.transaction().execute(async (trx) => {
        const last = await trx
          .selectFrom("cards")
          .select((eb) => eb.fn.max("position").as("max"))
          .where("board_id", "=", card.board_id)
          .where("status", "=", status)
          .executeTakeFirst();
        await trx
          .updateTable("cards")
          .set({ status, position: Number(last?.max ?? 0) + 1 })
          .where("id", "=", card.id)
          .execute();
      });
    }
    return back(c, card?.board_id);
  });

  app.post("/cards/:id/delete", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (card) await db.deleteFrom("cards").where("id", "=", card.id).execute();
    return back(c, card?.board_id);
  });

  return { app, inertia };
}
