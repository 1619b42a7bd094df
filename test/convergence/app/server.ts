// The convergence apps' server, run as a child process by the oracle (test/convergence/oracle.ts), one per cell:
// the desk's views and the harness routes on the adapter CONVERGENCE_ADAPTER (or "demo": the demo's own Hono app,
// demo-server.ts), against DATABASE_URL, with Upkeep's capture
// CONVERGENCE_CAPTURE (PostgreSQL: "triggers" or "logical") and frames on or off (CONVERGENCE_FRAMES = "0" replays
// whole pages). It prints "listening on <url>" once it serves. Started again on the same database and port, it must
// pick up where the killed one left off.
//
//   CONVERGENCE_FAULT  a deliberately broken replay path (faults.ts), for the oracle's own test
import type { Upkeep } from "../../../src/index.ts";
import { createUpkeep } from "../../../src/index.ts";
import { FAULTS } from "./faults.ts";
import { createViews, type Views } from "./views.ts";

export interface Started {
  url: string;
  close(): Promise<void>;
}

const SECRET = "upkeep-convergence-secret-at-least-32-characters";

const adapter = process.env.CONVERGENCE_ADAPTER ?? "hono";
const database = process.env.DATABASE_URL;
const capture = process.env.CONVERGENCE_CAPTURE as "triggers" | "logical" | undefined;
const frames = process.env.CONVERGENCE_FRAMES !== "0";
const fault = process.env.CONVERGENCE_FAULT ?? "";
const port = Number(process.env.PORT ?? 0);
if (!database) throw new Error("DATABASE_URL is required");
if (fault && !FAULTS[fault]?.includes(adapter)) throw new Error(`no fault "${fault}" on ${adapter}`);

const upkeep = await createUpkeep({
  database,
  secret: SECRET,
  mode: "test",
  install: true,
  frames,
  ...(capture ? { capture } : {}),
});
const views = createViews(upkeep);

const starters: Record<string, (upkeep: Upkeep, views: Views, port: number, fault: string) => Promise<Started>> = {
  demo: async (u, _v, p) => (await import("./demo-server.ts")).startDemo(u, p),
  hono: async (u, v, p) => (await import("./hono.ts")).startHono(u, v, p),
  express: async (u, v, p, f) => (await import("./express.ts")).startExpress(u, v, p, f),
  fastify: async (u, v, p) => (await import("./fastify.ts")).startFastify(u, v, p),
  node: async (u, v, p, f) => (await import("./node.ts")).startNode(u, v, p, f),
};
const start = starters[adapter];
if (!start) throw new Error(`unknown adapter ${adapter}`);
const served = await start(upkeep, views, port, fault);
console.log(`listening on ${served.url}`);

let closing = false;
process.on("SIGTERM", () => {
  if (closing) return;
  closing = true;
  served
    .close()
    .then(() => upkeep.close())
    .then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
});
