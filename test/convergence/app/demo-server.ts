// The demo's own app in the convergence oracle: demo/app.tsx (JSX views: the transform is registered first) with its
// Inertia SPA under /spa (its pages answered as page objects; the browser bundle is not built), plus the harness's
// routes, served by upkeep.serve. The activity panel is off: it writes after every write, which the oracle does not
// generate.
import { register } from "tsx/esm/api";
import type { Upkeep } from "../../../src/index.ts";
import { demoKit } from "./demo.ts";
import { SETTLE_PATH, settle, WRITE_PATH, write } from "./harness.ts";
import type { Started } from "./server.ts";

export async function startDemo(upkeep: Upkeep, port: number): Promise<Started> {
  register();
  const { createDemoApp } = await import("../../../demo/app.tsx");
  const { createSpaApp, SPA_PREFIX } = await import("../../../demo/spa/app.ts");
  const app = createDemoApp(upkeep);
  app.get(SETTLE_PATH, async (c) => c.json(await settle(upkeep)));
  app.post(WRITE_PATH, async (c) => {
    const { status, body } = await write(upkeep, await c.req.json(), demoKit);
    return c.body(body, status as 200, { "content-type": "application/json" });
  });
  app.route(SPA_PREFIX, createSpaApp(upkeep).app);
  const served = await upkeep.serve(app, { port, hostname: "127.0.0.1" });
  return { url: served.url, close: served.close };
}
