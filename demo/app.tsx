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
import { Collection, partial, type Upkeep, type UpkeepStats } from "../src/index.ts";
import { type CardStatus, type Database, STATUSES } from "./schema.ts";

export const VIEWER_COOKIE = "viewer";

const STATUS_LABELS: Record<CardStatus, string> = { todo: "To do", doing: "Doing", done: "Done" };

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; background: #fafbfc; }
header { display: flex; align-items: center; gap: 1rem; padding: 0.6rem 1.5rem; background: #fff; border-bottom: 1px solid #e3e6ec; }
header h1 { font-size: 1.15rem; margin: 0; flex: 1; }
main { display: grid; grid-template-columns: 1fr 19rem; gap: 1.25rem; padding: 1.25rem 1.5rem; align-items: start; }
.columns { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.9rem; }
.column { background: #eef0f4; border-radius: 8px; padding: 0.6rem; }
.column h2 { font-size: 0.95rem; margin: 0.1rem 0.2rem 0.5rem; }
.cards { list-style: none; padding: 0; margin: 0 0 0.5rem; min-height: 1rem; }
.card { background: #fff; border-radius: 6px; padding: 0.45rem 0.55rem; margin-bottom: 0.4rem; box-shadow: 0 1px 2px #0002;
  display: flex; align-items: start; gap: 0.4rem; }
.card .title { flex: 1; font-weight: 500; }
.menu { position: relative; }
.menu summary { list-style: none; cursor: pointer; padding: 0 0.35rem; border-radius: 4px; color: #5b6375; }
.menu summary::-webkit-details-marker { display: none; }
.menu[open] summary { background: #e3e6ec; }
.menu .actions { position: absolute; right: 0; z-index: 2; background: #fff; border: 1px solid #d5d9e2; border-radius: 6px;
  padding: 0.5rem; box-shadow: 0 4px 12px #0002; display: grid; gap: 0.35rem; min-width: 14rem; font-size: 0.85em; }
.menu .actions form { display: flex; gap: 0.3rem; }
.add-card { display: flex; gap: 0.3rem; } .add-card input { flex: 1; min-width: 0; }
#connection { font-size: 0.8rem; padding: 0.15rem 0.6rem; border-radius: 1rem; background: #e3e6ec; color: #5b6375; }
#connection[data-state="live"] { background: #dff3e4; color: #1f7a3d; }
#connection[data-state="reconnecting"] { background: #fff1d6; color: #8a5a00; }
#connection[data-state="offline"] { background: #fde2e0; color: #b3261e; }
.panel { background: #fff; border: 1px solid #e3e6ec; border-radius: 8px; padding: 0.6rem 0.8rem; font-size: 0.82rem; }
.panel h2 { font-size: 0.95rem; margin: 0.2rem 0 0.5rem; }
.panel ol { list-style: none; padding: 0; margin: 0; }
.panel li { padding: 0.35rem 0; border-top: 1px solid #f0f1f4; }
.panel .cost { color: #5b6375; }
@keyframes upkeep-flash { from { background-color: #fff3b0; } to { background-color: transparent; } }
.patched { animation: upkeep-flash 1.2s ease-out; }
table.boards { background: #fff; border-collapse: collapse; }
table.boards td, table.boards th { padding: 0.35rem 0.9rem; text-align: left; border-bottom: 1px solid #eef0f4; }
`;

/**
 * The browser side of the demo's chrome: a connection indicator driven by the client's states (live, reconnecting,
 * offline, with the offset the page shows), and a brief highlight on each element a patch changed. Neither is part
 * of what Upkeep keeps live: the indicator is permanent across morphs, and the highlight is a class added and removed
 * in the browser.
 */
const CHROME_SCRIPT = `
const indicator = document.getElementById("connection");
const show = () => {
  const debug = window.__upkeep;
  if (!indicator || !debug) return;
  const status = debug.state;
  const state = status === "open" ? "live" : status === "closed" ? "offline" : "reconnecting";
  const offsets = Object.values(debug.appliedOffsets ?? {});
  indicator.dataset.state = state;
  indicator.textContent = state + (offsets.length ? " · offset " + Math.max(...offsets) : "");
};
document.addEventListener("upkeep:state", show);
document.addEventListener("turbo:before-stream-render", () => setTimeout(show));
window.addEventListener("offline", show);
setInterval(show, 1000);
const flash = (node) => {
  const element = node.nodeType === 1 ? node : node.parentElement;
  const target = element?.closest("li, tr, h1, small, p") ?? element;
  if (!target || target.closest("#connection, upkeep-stream-source, header")) return;
  target.classList.remove("patched");
  void target.offsetWidth;
  target.classList.add("patched");
  setTimeout(() => target.classList.remove("patched"), 1300);
};
// Only what a patch really changed: new elements, text whose value differs, attributes whose value differs.
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === "childList") record.addedNodes.forEach((node) => node.nodeType === 1 && flash(node));
    else if (record.type === "characterData" && record.oldValue !== record.target.data) flash(record.target);
    else if (record.type === "attributes" && !["class", "open"].includes(record.attributeName ?? "")) {
      if (record.oldValue !== record.target.getAttribute(record.attributeName)) flash(record.target);
    }
  }
}).observe(document.body, {
  subtree: true,
  childList: true,
  characterData: true,
  characterDataOldValue: true,
  attributes: true,
  attributeOldValue: true,
});
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
      <script type="module">{raw(CHROME_SCRIPT)}</script>
    </head>
    <body>{children}</body>
  </html>
);

/** The connection indicator: kept by the browser across morphs (its text is the client's state, not page data). */
const Connection = () => (
  <span id="connection" data-state="connecting" data-turbo-permanent>
    connecting…
  </span>
);

const CardItem = partial("card", ({ card, boards }: { card: Card; boards: { id: number; name: string }[] }) => (
  <li id={`card_${card.id}`} class="card">
    <span class="title">{card.title}</span>
    <details class="menu">
      <summary aria-label={`Actions for ${card.title}`}>⋯</summary>
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
    </details>
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
    <script type="module">${raw(CHROME_SCRIPT)}</script>
  </head>
  <body>
    <header>
      <h1>Boards</h1>
      <span id="connection" data-state="connecting" data-turbo-permanent>connecting…</span>
      <span id="greeting">Hello, ${viewer ?? "guest"}.</span>
      <form method="post" action="/viewer">
        <input name="name" placeholder="Your name" aria-label="Your name" />
        <button type="submit">Sign in</button>
      </form>
    </header>
    <main style="display:block">
      <table class="boards">
        <thead><tr><th>Board</th><th>To do</th><th>Doing</th><th>Done</th></tr></thead>
        ${rows}
      </table>
      <form method="post" action="/boards" class="add-card" style="max-width:24rem;margin-top:1rem">
        <input name="name" placeholder="New board" aria-label="New board" required />
        <button type="submit">Create board</button>
      </form>
      <p><a href="/spa">The same board as an Inertia app →</a></p>
    </main>
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
/** One write in the activity panel: what it was, and what keeping every open page live cost. */
const ActivityItem = partial(
  "activity",
  ({ activity }: { activity: { id: number; summary: string; cost: string } }) => (
    <li id={`activity_${activity.id}`}>
      <strong>{activity.summary}</strong>
      <br />
      <span class="cost">{activity.cost}</span>
    </li>
  ),
);

/** "rename card 3" from "POST /cards/3/rename". */
function describeWrite(path: string): string {
  const card = /^\/cards\/(\d+)\/(\w+)$/.exec(path);
  if (card) return `${card[2]} card ${card[1]}`;
  const board = /^\/boards\/(\d+)\/cards$/.exec(path);
  if (board) return `add a card to board ${board[1]}`;
  return path === "/boards" ? "create a board" : path === "/viewer" ? "sign in" : `POST ${path}`;
}

function describeCost(before: UpkeepStats, after: UpkeepStats): string {
  const d = (key: "renders" | "frameRenders" | "messages" | "bytes" | "factsPlanned") => after[key] - before[key];
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const parts = [count(d("factsPlanned"), "fact")];
  if (d("renders") > 0) parts.push(count(d("renders"), "page replay"));
  if (d("frameRenders") > 0) parts.push(count(d("frameRenders"), "frame render"));
  const actions = Object.entries(after.actions)
    .map(([name, n]) => [name, n - (before.actions[name] ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${name} ×${n}`);
  const broadened = Object.entries(after.deoptimizations)
    .map(([name, n]) => [name, n - (before.deoptimizations[name as keyof typeof before.deoptimizations] ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${name} ×${n}`);
  parts.push(`${count(d("messages"), "message")}, ${d("bytes")} B`);
  if (actions.length > 0) parts.push(actions.join(", "));
  if (broadened.length > 0) parts.push(`broadened: ${broadened.join(", ")}`);
  return parts.join(" · ");
}

export interface DemoOptions {
  /** false: the plain app, without Upkeep (for comparisons). */
  live?: boolean;
  /** Record what each write cost in demo_activity and show it beside the board (the demo server turns it on). */
  activity?: boolean;
}

export function createDemoApp(upkeep: Upkeep, options: DemoOptions = {}): Hono {
  const db = upkeep.db<Database>();
  const app = new Hono();
  if (options.live !== false) app.use(upkeepMiddleware(upkeep));
  if (options.activity) {
    // After each write has settled, record what it cost: the panel beside the board is a live collection of these
    // rows, so Upkeep itself shows them. Work still in flight from earlier writes (such as the previous entry's own
    // insert) settles first, so that it is not counted as this write's. (Overlapping writes share their counts.)
    app.use(async (c, next) => {
      if (c.req.method !== "POST") return next();
      await upkeep.settle();
      const before = await upkeep.stats();
      await next();
      const summary = describeWrite(c.req.path);
      void (async () => {
        await upkeep.settle();
        const cost = describeCost(before, await upkeep.stats());
        await db.insertInto("demo_activity").values({ summary, cost }).execute();
      })().catch(() => {});
    });
  }

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
        <header>
          <h1 id="board_name">{board.name}</h1>
          <Connection />
          <nav>
            <a href="/">All boards</a> <span id="greeting">Signed in as {viewer ?? "guest"}</span>
          </nav>
        </header>
        <main>
          <div class="columns">
            {STATUSES.map((status) => (
              <Column boardId={id} status={status} boards={boards} />
            ))}
          </div>
          {options.activity ? (
            <aside class="panel">
              <h2>Latest writes, and what each cost</h2>
              <Collection
                id="activity"
                tag="ol"
                of={db.selectFrom("demo_activity").selectAll().orderBy("id", "desc").limit(8)}
                item={ActivityItem}
              />
            </aside>
          ) : null}
        </main>
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
