// The convergence app on Hono: the views mounted with Hono's routes, served by upkeep.serve (the WebSocket endpoint
// attached); Inertia pages (data mode) under /spa.
import { Hono } from "hono";
import { upkeepMiddleware } from "../../../src/hono/index.ts";
import type { Upkeep } from "../../../src/index.ts";
import { SETTLE_PATH, settle, WRITE_PATH, write } from "./harness.ts";
import { mountInertia } from "./inertia.ts";
import type { Started } from "./server.ts";
import type { Views } from "./views.ts";

export async function startHono(upkeep: Upkeep, views: Views, port: number): Promise<Started> {
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/", async (c) => c.html(await views.indexPage()));
  app.get("/queues/:id", async (c) => c.html(await views.queuePage(Number(c.req.param("id")))));
  app.get("/people/:id", async (c) => c.html(await views.personPage(Number(c.req.param("id")))));
  app.get("/api/queues/:id", async (c) => c.json(await views.queueJson(Number(c.req.param("id")))));
  mountInertia(app, upkeep);
  app.get(SETTLE_PATH, async (c) => c.json(await settle(upkeep)));
  app.post(WRITE_PATH, async (c) => {
    const { status, body } = await write(upkeep, await c.req.json());
    return c.body(body, status as 200, { "content-type": "application/json" });
  });
  const served = await upkeep.serve(app, { port, hostname: "127.0.0.1" });
  return { url: served.url, close: served.close };
}
