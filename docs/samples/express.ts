// Getting started on Express 5.
import { createServer, type Server } from "node:http";
import express from "express";
import type { Upkeep } from "../../src/index.ts";
import { cookie, upkeepExpress } from "../../src/express/index.ts";
import type { Database } from "./schema.ts";

export function createApp(upkeep: Upkeep): express.Express {
  const db = upkeep.db<Database>();
  const app = express();
  app.use(upkeepExpress(upkeep)); // first, before anything that reads cookies or headers
  app.get("/lists/:list", async (req, res) => {
    const todos = await db.selectFrom("todos").select(["id", "title"]).where("list", "=", req.params.list).orderBy("id").execute();
    const items = todos.map((t) => `<li id="todo_${t.id}">${t.title}</li>`).join("");
    res.type("html").send(`<!doctype html><html><body><p>Hello, ${cookie(req, "name") ?? "guest"}</p><ul id="todos">${items}</ul></body></html>`);
  });
  return app;
}

export function listen(upkeep: Upkeep, app: express.Express, port: number): Server {
  const server = createServer(app);
  upkeep.attach(server, app); // the WebSocket endpoint; replays run through the app
  return server.listen(port, "127.0.0.1");
}
