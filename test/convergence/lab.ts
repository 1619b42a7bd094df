// Pages of frame shapes the demo does not have, for the convergence oracle: a LIMIT window, a joined collection,
// nested fragments holding a collection, and a fragment that reads the viewer's cookie beside frames every viewer
// shares; and a live JSON resource (/lab/api/:board). Mounted under /lab on the demo app (whose middleware makes them live); written with hono's `html`
// template, so the oracle covers both view styles.
import { Hono } from "hono";
import { html } from "hono/html";
import type { Database } from "../../demo/schema.ts";
import { Collection, cookie, partial, type Upkeep } from "../../src/index.ts";

export function createLabApp(upkeep: Upkeep): Hono {
  const db = upkeep.db<Database>();
  const Top = partial(
    "top",
    ({ top }: { top: { id: number; title: string; position: number } }) =>
      html`<li id="top_${top.id}">${top.title} @${top.position}</li>`,
  );
  const Joined = partial(
    "row",
    ({ row }: { row: { id: number; title: string; board: string } }) =>
      html`<tr id="joined_${row.id}"><td>${row.title}</td><td>${row.board}</td></tr>`,
  );
  const Todo = partial(
    "todo",
    ({ todo }: { todo: { id: number; title: string } }) => html`<li id="todo_${todo.id}">${todo.title}</li>`,
  );
  const Summary = partial("summary", async ({ board }: { board: number }) => {
    const rows = await db
      .selectFrom("cards")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .where("board_id", "=", board)
      .groupBy("status")
      .orderBy("status")
      .execute();
    return html`<p id="summary_${board}">${rows.map((r) => `${r.status}:${Number(r.n)}`).join(" ")}</p>`;
  });
  // A fragment holding a fragment and a collection: each can change alone, or with its parent.
  const Panel = partial("panel", async ({ board }: { board: number }) => {
    const found = await db.selectFrom("boards").select("name").where("id", "=", board).executeTakeFirst();
    const todo = db
      .selectFrom("cards")
      .select(["id", "title"])
      .where("board_id", "=", board)
      .where("status", "=", "todo")
      .orderBy("title")
      .orderBy("id");
    return html`<section id="panel_${board}"><h2>${found?.name ?? "?"}</h2>${Summary({ board })}${Collection({ id: `todos_${board}`, tag: "ul", of: todo, item: Todo })}</section>`;
  });
  // Reads the viewer's cookie: one per viewer, beside the frames every viewer shares.
  const Mine = partial("mine", async ({ board }: { board: number }) => {
    const viewer = cookie("viewer") ?? "guest";
    const status = viewer === "alice" ? "doing" : "done";
    const rows = await db
      .selectFrom("cards")
      .select("title")
      .where("board_id", "=", board)
      .where("status", "=", status)
      .orderBy("id")
      .execute();
    return html`<p id="mine">${viewer} (${status}): ${rows.map((r) => r.title).join(", ")}</p>`;
  });

  const app = new Hono();
  // A live JSON resource (data mode): a LIMIT window and a join in one value.
  app.get("/api/:board", async (c) => {
    const board = Number(c.req.param("board"));
    const top = await db
      .selectFrom("cards")
      .select(["id", "title", "position"])
      .where("board_id", "=", board)
      .orderBy("position")
      .orderBy("id")
      .limit(4)
      .execute();
    const doing = await db
      .selectFrom("cards")
      .innerJoin("boards", "boards.id", "cards.board_id")
      .select(["cards.id", "boards.name"])
      .where("cards.status", "=", "doing")
      .orderBy("cards.id")
      .execute();
    return c.json({ board, top, doing });
  });
  app.get("/:board", async (c) => {
    const board = Number(c.req.param("board"));
    const top = db
      .selectFrom("cards")
      .select(["id", "title", "position"])
      .where("board_id", "=", board)
      .orderBy("position", "desc")
      .orderBy("id")
      .limit(3);
    const joined = db
      .selectFrom("cards")
      .innerJoin("boards", "boards.id", "cards.board_id")
      .select(["cards.id", "cards.title", "boards.name as board"])
      .where("cards.status", "=", "doing")
      .orderBy("cards.title")
      .orderBy("cards.id");
    return c.html(html`<!doctype html><html><head><title>lab ${board}</title></head><body>
${Mine({ board })}
${Collection({ id: "top", tag: "ol", of: top, item: Top })}
<table>${Collection({ id: "joined", tag: "tbody", of: joined, item: Joined })}</table>
${Panel({ board })}
</body></html>`);
  });
  return app;
}
