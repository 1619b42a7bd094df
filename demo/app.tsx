// The demo: a kanban board kept live by Upkeep. Nothing here is about liveness: handlers read with Kysely, views
// render HTML, POST handlers write and redirect. The middleware makes every HTML GET live.
//
// Render boundaries are marked and nothing else: `partial` marks a component as a frame (its reads are its own, so
// a write re-renders it alone), and `Collection` renders one member per row of a query (a write re-renders the
// changed members and moves them into place). Each column is a collection of cards, each count a fragment, and the
// greeting reads the viewer's cookie, so every viewer's page is its own, while the board's frames are rendered
// once for all of them.
//
// Board pages are hono/jsx components; the board list is written with hono's `html` tagged template (no JSX
// transform needed) to show that both styles work.

import type { Context } from "hono";
import { Hono } from "hono";
import { setCookie } from "hono/cookie";
import { html, raw } from "hono/html";
import type { Child, FC } from "hono/jsx";
import { cookie, upkeepMiddleware } from "../src/hono/index.ts";
import { Collection, partial, type Upkeep } from "../src/index.ts";
import { type CardStatus, type Database, STATUSES } from "./schema.ts";

export const VIEWER_COOKIE = "viewer";

const STATUS_LABELS: Record<CardStatus, string> = { todo: "To do", doing: "Doing", done: "Done" };

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
.columns { display: grid; grid-template-columns: repeat(3, 1fr); gap: 1rem; }
.column { background: #f4f5f7; border-radius: 8px; padding: 0.75rem; }
.cards { list-style: none; padding: 0; margin: 0 0 0.75rem; }
.card { background: white; border-radius: 6px; padding: 0.5rem; margin-bottom: 0.5rem; box-shadow: 0 1px 2px #0002; }
.card form { display: inline; }
.card .actions { margin-top: 0.35rem; font-size: 0.85em; }
table.boards td, table.boards th { padding: 0.25rem 0.75rem; text-align: left; }
`;

interface Card {
  id: number;
  board_id: number;
  title: string;
  status: CardStatus;
  position: number;
}

const Layout: FC<{ title: string; children?: Child }> = ({ title, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <title>{title}</title>
      <style>{raw(STYLE)}</style>
      <script type="module" src="/upkeep/turbo.js"></script>
    </head>
    <body>{children}</body>
  </html>
);

const CardItem = partial("card", ({ card, boards }: { card: Card; boards: { id: number; name: string }[] }) => (
  <li id={`card_${card.id}`} class="card">
    <strong class="title">{card.title}</strong>
    <div class="actions">
      <form method="post" action={`/cards/${card.id}/rename`}>
        <input name="title" value={card.title} aria-label="New title" required />
        <button type="submit">Rename</button>
      </form>
      {STATUSES.filter((s) => s !== card.status).map((s) => (
        <form method="post" action={`/cards/${card.id}/move`}>
          <input type="hidden" name="status" value={s} />
          <button type="submit">→ {STATUS_LABELS[s]}</button>
        </form>
      ))}
      <form method="post" action={`/cards/${card.id}/reorder`}>
        <input type="hidden" name="direction" value="up" />
        <button type="submit" aria-label="Move up">
          ↑
        </button>
      </form>
      <form method="post" action={`/cards/${card.id}/reorder`}>
        <input type="hidden" name="direction" value="down" />
        <button type="submit" aria-label="Move down">
          ↓
        </button>
      </form>
      <form method="post" action={`/cards/${card.id}/board`}>
        <select name="board_id" aria-label="Move to board">
          {boards.map((b) => (
            <option value={String(b.id)} selected={b.id === card.board_id}>
              {b.name}
            </option>
          ))}
        </select>
        <button type="submit">Move</button>
      </form>
      <form method="post" action={`/cards/${card.id}/delete`}>
        <button type="submit">Delete</button>
      </form>
    </div>
  </li>
));

/** The list of boards, in hono's `html` tagged template. */
function boardList(viewer: string | undefined, rows: unknown) {
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Boards</title>
    <style>${raw(STYLE)}</style>
    <script type="module" src="/upkeep/turbo.js"></script>
  </head>
  <body>
    <p id="greeting">Hello, ${viewer ?? "guest"}.</p>
    <form method="post" action="/viewer">
      <input name="name" placeholder="Your name" aria-label="Your name" />
      <button type="submit">Sign in</button>
    </form>
    <h1>Boards</h1>
    <table class="boards">
      <thead><tr><th>Board</th><th>To do</th><th>Doing</th><th>Done</th></tr></thead>
      ${rows}
    </table>
    <form method="post" action="/boards">
      <input name="name" placeholder="New board" aria-label="New board" required />
      <button type="submit">Create board</button>
    </form>
  </body>
</html>`;
}

async function form(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out[k] = v;
  return out;
}

function isStatus(value: string | undefined): value is CardStatus {
  return value !== undefined && (STATUSES as readonly string[]).includes(value);
}

/** The demo application: pass an Upkeep instance whose database holds the demo schema (see schema.ts). */
export function createDemoApp(upkeep: Upkeep, options: { live?: boolean } = {}): Hono {
  const db = upkeep.db<Database>();
  const app = new Hono();
  if (options.live !== false) app.use(upkeepMiddleware(upkeep));

  // A row of the board list counts its board's cards with its own read: a new card re-renders that row alone.
  const BoardRow = partial("board", async ({ board }: { board: { id: number; name: string } }) => {
    const counts = await db
      .selectFrom("cards")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .where("board_id", "=", board.id)
      .groupBy("status")
      .execute();
    const n = (status: CardStatus) => Number(counts.find((row) => row.status === status)?.n ?? 0);
    return html`<tr id="board_${board.id}">
      <td><a href="/boards/${board.id}">${board.name}</a></td>
      <td class="todo">${n("todo")}</td>
      <td class="doing">${n("doing")}</td>
      <td class="done">${n("done")}</td>
    </tr>`;
  });

  const CardCount = partial("count", async ({ boardId, status }: { boardId: number; status: CardStatus }) => {
    const { n } = await db
      .selectFrom("cards")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("board_id", "=", boardId)
      .where("status", "=", status)
      .executeTakeFirstOrThrow();
    return (
      <small class="count" id={`count_${status}`}>
        ({Number(n)})
      </small>
    );
  });

  const Column: FC<{ boardId: number; status: CardStatus; boards: { id: number; name: string }[] }> = ({
    boardId,
    status,
    boards,
  }) => (
    <section class="column" id={`column_${status}`}>
      <h2>
        {STATUS_LABELS[status]} <CardCount boardId={boardId} status={status} />
      </h2>
      <Collection
        id={`cards_${status}`}
        tag="ul"
        class="cards"
        of={db
          .selectFrom("cards")
          .selectAll()
          .where("board_id", "=", boardId)
          .where("status", "=", status)
          .orderBy("position")
          .orderBy("id")}
        item={CardItem}
        props={{ boards }}
      />
      <form method="post" action={`/boards/${boardId}/cards`} class="add-card">
        <input type="hidden" name="status" value={status} />
        <input name="title" placeholder="New card" aria-label={`New card in ${STATUS_LABELS[status]}`} required />
        <button type="submit">Add</button>
      </form>
    </section>
  );

  app.get("/", async (c) => {
    const viewer = cookie(c, VIEWER_COOKIE);
    const boards = db.selectFrom("boards").select(["id", "name"]).orderBy("id");
    return c.html(boardList(viewer, Collection({ id: "boards", tag: "tbody", of: boards, item: BoardRow })));
  });

  app.get("/boards/:id", async (c) => {
    const id = Number(c.req.param("id"));
    if (!Number.isInteger(id)) return c.notFound();
    const board = await db.selectFrom("boards").select(["id", "name"]).where("id", "=", id).executeTakeFirst();
    if (!board) return c.notFound();
    const boards = await db.selectFrom("boards").select(["id", "name"]).orderBy("id").execute();
    const viewer = cookie(c, VIEWER_COOKIE);
    return c.html(
      <Layout title={board.name}>
        <nav>
          <a href="/">All boards</a> <span id="greeting">Signed in as {viewer ?? "guest"}</span>
        </nav>
        <h1 id="board_name">{board.name}</h1>
        <div class="columns">
          {STATUSES.map((status) => (
            <Column boardId={id} status={status} boards={boards} />
          ))}
        </div>
      </Layout>,
    );
  });

  app.post("/viewer", async (c) => {
    const { name } = await form(c);
    if (name) setCookie(c, VIEWER_COOKIE, name, { path: "/", sameSite: "Lax", httpOnly: true });
    return c.redirect("/", 303);
  });

  app.post("/boards", async (c) => {
    const { name } = await form(c);
    if (!name) return c.redirect("/", 303);
    const board = await db.insertInto("boards").values({ name }).returning("id").executeTakeFirstOrThrow();
    return c.redirect(`/boards/${board.id}`, 303);
  });

  app.post("/boards/:id/cards", async (c) => {
    const boardId = Number(c.req.param("id"));
    const { title, status } = await form(c);
    if (!title || !isStatus(status)) return c.redirect(`/boards/${boardId}`, 303);
    await db.transaction().execute(async (trx) => {
      const last = await trx
        .selectFrom("cards")
        .select((eb) => eb.fn.max("position").as("max"))
        .where("board_id", "=", boardId)
        .where("status", "=", status)
        .executeTakeFirst();
      await trx
        .insertInto("cards")
        .values({ board_id: boardId, title, status, position: Number(last?.max ?? 0) + 1 })
        .execute();
    });
    return c.redirect(`/boards/${boardId}`, 303);
  });

  const findCard = (id: number) => db.selectFrom("cards").selectAll().where("id", "=", id).executeTakeFirst();

  app.post("/cards/:id/rename", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (!card) return c.redirect("/", 303);
    const { title } = await form(c);
    if (title) await db.updateTable("cards").set({ title }).where("id", "=", card.id).execute();
    return c.redirect(`/boards/${card.board_id}`, 303);
  });

  // Moving to another column or board puts the card at the end of its new column.
  const moveTo = async (card: Card, boardId: number, status: CardStatus) => {
    await db.transaction().execute(async (trx) => {
      const last = await trx
        .selectFrom("cards")
        .select((eb) => eb.fn.max("position").as("max"))
        .where("board_id", "=", boardId)
        .where("status", "=", status)
        .executeTakeFirst();
      await trx
        .updateTable("cards")
        .set({ board_id: boardId, status, position: Number(last?.max ?? 0) + 1 })
        .where("id", "=", card.id)
        .execute();
    });
  };

  app.post("/cards/:id/move", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (!card) return c.redirect("/", 303);
    const { status } = await form(c);
    if (isStatus(status) && status !== card.status) await moveTo(card, card.board_id, status);
    return c.redirect(`/boards/${card.board_id}`, 303);
  });

  app.post("/cards/:id/board", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (!card) return c.redirect("/", 303);
    const boardId = Number((await form(c)).board_id);
    const board = await db.selectFrom("boards").select("id").where("id", "=", boardId).executeTakeFirst();
    if (board && board.id !== card.board_id) await moveTo(card, board.id, card.status);
    return c.redirect(`/boards/${card.board_id}`, 303);
  });

  // Reordering swaps positions with the neighbour above or below in the same column, in one transaction.
  app.post("/cards/:id/reorder", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (!card) return c.redirect("/", 303);
    const up = (await form(c)).direction === "up";
    await db.transaction().execute(async (trx) => {
      const neighbour = await trx
        .selectFrom("cards")
        .selectAll()
        .where("board_id", "=", card.board_id)
        .where("status", "=", card.status)
        .where((eb) =>
          eb.or([
            eb("position", up ? "<" : ">", card.position),
            eb.and([eb("position", "=", card.position), eb("id", up ? "<" : ">", card.id)]),
          ]),
        )
        .orderBy("position", up ? "desc" : "asc")
        .orderBy("id", up ? "desc" : "asc")
        .limit(1)
        .executeTakeFirst();
      if (!neighbour) return;
      // Equal positions (after bulk edits) would swap to no change: separate them by one.
      const mine = neighbour.position === card.position ? neighbour.position + (up ? -1 : 1) : neighbour.position;
      await trx.updateTable("cards").set({ position: mine }).where("id", "=", card.id).execute();
      await trx.updateTable("cards").set({ position: card.position }).where("id", "=", neighbour.id).execute();
    });
    return c.redirect(`/boards/${card.board_id}`, 303);
  });

  app.post("/cards/:id/delete", async (c) => {
    const card = await findCard(Number(c.req.param("id")));
    if (card) await db.deleteFrom("cards").where("id", "=", card.id).execute();
    return c.redirect(card ? `/boards/${card.board_id}` : "/", 303);
  });

  return app;
}
