// Getting started on Hono: a live todo list.
import { Hono } from "hono";
import { html } from "hono/html";
import { Collection, createUpkeep, partial, type Upkeep } from "../../src/index.ts";
import { cookie, upkeepMiddleware } from "../../src/hono/index.ts";
import type { Database } from "./schema.ts";

export async function startUpkeep(database: string): Promise<Upkeep> {
  return createUpkeep({ database, secret: process.env.UPKEEP_SECRET ?? "a-development-secret-of-32-characters", install: true });
}

export function createApp(upkeep: Upkeep): Hono {
  const db = upkeep.db<Database>();
  const Todo = partial("todo", ({ todo }: { todo: { id: number; title: string } }) =>
    html`<li id="todo_${todo.id}">${todo.title}</li>`,
  );
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep)); // first, before anything that reads cookies or headers
  app.get("/lists/:list", (c) => {
    const todos = db.selectFrom("todos").select(["id", "title"]).where("list", "=", c.req.param("list")).orderBy("id");
    return c.html(html`<!doctype html><html><head><script type="module" src="/upkeep/turbo.js"></script></head>
<body><p>Hello, ${cookie(c, "name") ?? "guest"}</p>${Collection({ id: "todos", tag: "ul", of: todos, item: Todo })}</body></html>`);
  });
  return app;
}

// In your server: const upkeep = await startUpkeep(process.env.DATABASE_URL); await upkeep.serve(createApp(upkeep), { port: 3000 });
