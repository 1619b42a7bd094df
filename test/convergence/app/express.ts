// The convergence app on Express 5: the views mounted with Express's routes, upkeep.attach for the WebSocket
// endpoint and replays. Faults for the harness's own check (never the library's): "drop-replay-header" removes the
// header a replay names itself by before Upkeep sees it; "stale-context" replays through a loopback server made inside
// the first replay's async context, as Upkeep did before it made it outside every request.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { upkeepExpress } from "../../../src/express/index.ts";
import type { Upkeep } from "../../../src/index.ts";
import { REPLAY_HEADER } from "../../../src/render/page.ts";
import { staleContextApp } from "./faults.ts";
import { SETTLE_PATH, settle, WRITE_PATH, write } from "./harness.ts";
import type { Started } from "./server.ts";
import type { Views } from "./views.ts";

export async function startExpress(upkeep: Upkeep, views: Views, port: number, fault: string): Promise<Started> {
  const app = express();
  if (fault === "drop-replay-header") {
    app.use((req, _res, next) => {
      delete req.headers[REPLAY_HEADER];
      next();
    });
  }
  app.use(upkeepExpress(upkeep));
  app.use(express.json());
  app.get("/", async (_req, res) => {
    res.type("html").send(await views.indexPage());
  });
  app.get("/queues/:id", async (req, res) => {
    res.type("html").send(await views.queuePage(Number(req.params.id)));
  });
  app.get("/people/:id", async (req, res) => {
    res.type("html").send(await views.personPage(Number(req.params.id)));
  });
  app.get("/api/queues/:id", async (req, res) => {
    res.json(await views.queueJson(Number(req.params.id)));
  });
  app.get(SETTLE_PATH, async (_req, res) => {
    res.json(await settle(upkeep));
  });
  app.post(WRITE_PATH, async (req, res) => {
    const { status, body } = await write(upkeep, req.body);
    res.status(status).type("json").send(body);
  });
  const server = createServer(app);
  upkeep.attach(server, app);
  if (fault === "stale-context") upkeep.use(staleContextApp(app));
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
