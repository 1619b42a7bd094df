// The convergence app on Node's own http server: a request listener routing by hand, wrapped by upkeep/node's
// live(); upkeep.attach for the WebSocket endpoint and replays. The same faults as the Express app (express.ts).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Upkeep } from "../../../src/index.ts";
import { live } from "../../../src/node/index.ts";
import { REPLAY_HEADER } from "../../../src/render/page.ts";
import { staleContextApp } from "./faults.ts";
import { SETTLE_PATH, settle, WRITE_PATH, write } from "./harness.ts";
import type { Started } from "./server.ts";
import type { Views } from "./views.ts";

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startNode(upkeep: Upkeep, views: Views, port: number, fault: string): Promise<Started> {
  const send = (res: ServerResponse, type: string, text: string) => {
    res.setHeader("content-type", type);
    res.end(text);
  };
  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const { pathname } = new URL(req.url ?? "/", "http://localhost");
    const html = "text/html; charset=utf-8";
    const json = "application/json";
    const queue = /^\/queues\/(\d+)$/.exec(pathname);
    const person = /^\/people\/(\d+)$/.exec(pathname);
    const api = /^\/api\/queues\/(\d+)$/.exec(pathname);
    if (req.method === "GET" && pathname === "/") return send(res, html, await views.indexPage());
    if (req.method === "GET" && queue) return send(res, html, await views.queuePage(Number(queue[1])));
    if (req.method === "GET" && person) return send(res, html, await views.personPage(Number(person[1])));
    if (req.method === "GET" && api) return send(res, json, JSON.stringify(await views.queueJson(Number(api[1]))));
    if (req.method === "GET" && pathname === SETTLE_PATH) return send(res, json, JSON.stringify(await settle(upkeep)));
    if (req.method === "POST" && pathname === WRITE_PATH) {
      const written = await write(upkeep, JSON.parse(await body(req)));
      res.statusCode = written.status;
      return send(res, json, written.body);
    }
    res.statusCode = 404;
    res.end("not found");
  };
  const app = (req: IncomingMessage, res: ServerResponse) => {
    route(req, res).catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String((error as Error)?.stack ?? error));
    });
  };
  const wrapped = live(upkeep, app);
  const listener =
    fault === "drop-replay-header"
      ? (req: IncomingMessage, res: ServerResponse) => {
          delete req.headers[REPLAY_HEADER];
          wrapped(req, res);
        }
      : wrapped;
  const server = createServer(listener);
  upkeep.attach(server, listener);
  if (fault === "stale-context") upkeep.use(staleContextApp(listener));
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
