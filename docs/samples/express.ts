// Getting started on Express 5: a live todo list, its views written with html`` (no JSX, no build step).
import { createServer, type Server } from "node:http";
import express from "express";
import { Collection, html, partial, type Upkeep } from "../../src/index.ts";
import { cookie, upkeepExpress } from "../../src/express/index.ts";
import type { Database } from "./schema.ts";

// html`` escapes every value put into it; a partial's or a collection's markup goes in as it is.
const Todo = partial("todo", ({ todo }: { todo: { id: number; title: string } }) =>
  html`<li id="todo_${todo.id}">${todo.title}</li>`,
);

export function createApp(upkeep: Upkeep): express.Express {
  const db = upkeep.db<Database>();
  const app = express();
  app.use(upkeepExpress(upkeep)); // first, before anything that reads cookies or headers
  app.get("/lists/:list", async (req, res) => {
    const todos = db.selectFrom("todos").select(["id", "title"]).where("list", "=", req.params.list).orderBy("id");
    const page = await html`<!doctype html><html><head><script type="module" src="/upkeep/turbo.js"></script></head>
<body><p>Hello, ${cookie(req, "name") ?? "guest"}</p>${Collection({ id: "todos", tag: "ul", of: todos, item: Todo })}</body></html>`;
    res.type("html").send(String(page)); // html`` gives a String object: Express sends a string as HTML
  });
  return app;
}

export function listen(upkeep: Upkeep, app: express.Express, port: number): Server {
  const server = createServer(app);
  upkeep.attach(server, app); // the WebSocket endpoint; replays run through the app
  return server.listen(port, "127.0.0.1");
}
