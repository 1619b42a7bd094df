// Getting started on Node's own http: a live todo list, its views written with html`` (no JSX, no build step).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Collection, html, partial, type Upkeep } from "../../src/index.ts";
import { cookie, live } from "../../src/node/index.ts";
import type { Database } from "./schema.ts";

const Todo = partial("todo", ({ todo }: { todo: { id: number; title: string } }) =>
  html`<li id="todo_${todo.id}">${todo.title}</li>`,
);

export function createListener(upkeep: Upkeep): (req: IncomingMessage, res: ServerResponse) => void {
  const db = upkeep.db<Database>();
  const respond = async (req: IncomingMessage, res: ServerResponse) => {
    const list = /^\/lists\/([^/]+)$/.exec(new URL(req.url ?? "/", "http://localhost").pathname)?.[1];
    if (req.method !== "GET" || !list) {
      res.statusCode = 404;
      res.end("not found");
      return;
    }
    const todos = db.selectFrom("todos").select(["id", "title"]).where("list", "=", decodeURIComponent(list)).orderBy("id");
    const page = await html`<!doctype html><html><head><script type="module" src="/upkeep/turbo.js"></script></head>
<body><p>Hello, ${cookie(req, "name") ?? "guest"}</p>${Collection({ id: "todos", tag: "ul", of: todos, item: Todo })}</body></html>`;
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.end(String(page));
  };
  // live() makes the listener's pages live and serves Upkeep's own paths under /upkeep/.
  return live(upkeep, (req, res) => {
    respond(req, res).catch((error: unknown) => {
      console.error(error);
      res.statusCode = 500;
      res.end();
    });
  });
}

export function listen(upkeep: Upkeep, listener: (req: IncomingMessage, res: ServerResponse) => void, port: number): Server {
  const server = createServer(listener);
  upkeep.attach(server, listener); // the WebSocket endpoint; replays run through the listener
  return server.listen(port, "127.0.0.1");
}
