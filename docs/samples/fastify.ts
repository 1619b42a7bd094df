// Getting started on Fastify 5: a live todo list, its views written with html`` (no JSX, no build step).
import Fastify, { type FastifyInstance } from "fastify";
import { Collection, html, partial, type Upkeep } from "../../src/index.ts";
import { cookie, upkeepFastify } from "../../src/fastify/index.ts";
import type { Database } from "./schema.ts";

const Todo = partial("todo", ({ todo }: { todo: { id: number; title: string } }) =>
  html`<li id="todo_${todo.id}">${todo.title}</li>`,
);

export async function createApp(upkeep: Upkeep): Promise<FastifyInstance> {
  const db = upkeep.db<Database>();
  const app = Fastify();
  await app.register(upkeepFastify, { upkeep }); // before the routes; attaches the WebSocket endpoint too
  app.get<{ Params: { list: string } }>("/lists/:list", async (request, reply) => {
    const todos = db.selectFrom("todos").select(["id", "title"]).where("list", "=", request.params.list).orderBy("id");
    const page = await html`<!doctype html><html><head><script type="module" src="/upkeep/turbo.js"></script></head>
<body><p>Hello, ${cookie(request, "name") ?? "guest"}</p>${Collection({ id: "todos", tag: "ul", of: todos, item: Todo })}</body></html>`;
    return reply.type("text/html").send(String(page));
  });
  return app;
}

// In your server: const app = await createApp(upkeep); await app.listen({ port: 3000 });
