// The convergence app on Fastify 5: the views mounted with Fastify's routes; the plugin attaches the WebSocket
// endpoint and replays through fastify.inject().
import Fastify from "fastify";
import { upkeepFastify } from "../../../src/fastify/index.ts";
import type { Upkeep } from "../../../src/index.ts";
import { SETTLE_PATH, settle, WRITE_PATH, write } from "./harness.ts";
import type { Step } from "./kit.ts";
import type { Started } from "./server.ts";
import type { Views } from "./views.ts";

export async function startFastify(upkeep: Upkeep, views: Views, port: number): Promise<Started> {
  const app = Fastify();
  await app.register(upkeepFastify, { upkeep });
  type Id = { Params: { id: string } };
  app.get("/", async (_request, reply) => reply.type("text/html").send(await views.indexPage()));
  app.get<Id>("/queues/:id", async (request, reply) =>
    reply.type("text/html").send(await views.queuePage(Number(request.params.id))),
  );
  app.get<Id>("/people/:id", async (request, reply) =>
    reply.type("text/html").send(await views.personPage(Number(request.params.id))),
  );
  app.get<Id>("/api/queues/:id", async (request) => views.queueJson(Number(request.params.id)));
  app.get(SETTLE_PATH, async () => settle(upkeep));
  app.post<{ Body: Step }>(WRITE_PATH, async (request, reply) => {
    const { status, body } = await write(upkeep, request.body);
    return reply.code(status).type("application/json").send(body);
  });
  const url = await app.listen({ port, host: "127.0.0.1" });
  return { url, close: () => app.close() };
}
