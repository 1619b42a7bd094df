// Getting started on Fastify 5.
import Fastify, { type FastifyInstance } from "fastify";
import type { Upkeep } from "../../src/index.ts";
import { cookie, upkeepFastify } from "../../src/fastify/index.ts";
import type { Database } from "./schema.ts";

export async function createApp(upkeep: Upkeep): Promise<FastifyInstance> {
  const db = upkeep.db<Database>();
  const app = Fastify();
  await app.register(upkeepFastify, { upkeep }); // before the routes; attaches the WebSocket endpoint too
  app.get<{ Params: { list: string } }>("/lists/:list", async (request, reply) => {
    const todos = await db.selectFrom("todos").select(["id", "title"]).where("list", "=", request.params.list).orderBy("id").execute();
    const items = todos.map((t) => `<li id="todo_${t.id}">${t.title}</li>`).join("");
    return reply.type("text/html").send(`<!doctype html><html><body><p>Hello, ${cookie(request, "name") ?? "guest"}</p><ul id="todos">${items}</ul></body></html>`);
  });
  return app;
}
