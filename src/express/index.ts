// `upkeep/express`: the Express 5 middleware that makes an app's HTML GETs live (and JSON GETs asked for live),
// and serves Upkeep's own paths under /upkeep/.
//
//   app.use(upkeepExpress(upkeep));                 // first, before middleware that reads cookies or headers
//   const server = app.listen(3000);
//   upkeep.attach(server, app);                     // the WebSocket endpoint; replays run through `app` in-process
//
// `cookie(req, name)` and `header(req, name)` read exactly one cookie or header as an input of the page; reading
// `req.headers` (or cookie-parser's `req.cookies`, which reads the whole Cookie header) works too, and records what
// it reads.
import type { IncomingMessage, ServerResponse } from "node:http";
import { handleNode } from "../node/index.ts";
import type { Upkeep } from "../upkeep.ts";

export { cookie, header } from "../node/index.ts";

type Next = (error?: unknown) => void;

export function upkeepExpress(upkeep: Upkeep): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  return (req, res, next) => {
    res.once("upkeep:error", (error: unknown) => {
      upkeep.logger.error(
        { event: "upkeep.response_failed", url: req.url, err: (error as Error)?.message ?? String(error) },
        `upkeep: ${req.url}: ${(error as Error)?.message ?? error}`,
      );
    });
    handleNode(upkeep, req, res, () => next()).catch(next);
  };
}
