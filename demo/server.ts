// `npm start`: the live kanban board.
//   PORT          (default 3000)
//   HOST          (default 127.0.0.1)
//   DATABASE_URL  (default file:./data/demo.sqlite; postgres://… runs the same app on PostgreSQL)
//   UPKEEP_SECRET (at least 32 characters; a fixed development secret is used when unset)
// The database is created, its tables made and seeded when new; Upkeep installs its ledger triggers at start.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { register } from "tsx/esm/api";
import { createUpkeep } from "../src/index.ts";
import { prepareDemoDatabase } from "./schema.ts";

// The views are JSX: register the transform before loading them.
register();
const { createDemoApp } = await import("./app.tsx");

const DEVELOPMENT_SECRET = "upkeep-demo-development-secret-not-for-production";

const port = Number(process.env.PORT ?? 3000);
const hostname = process.env.HOST ?? "127.0.0.1";
const database = process.env.DATABASE_URL ?? "file:./data/demo.sqlite";
const secret = process.env.UPKEEP_SECRET ?? DEVELOPMENT_SECRET;
if (secret === DEVELOPMENT_SECRET && process.env.NODE_ENV === "production") {
  console.warn("UPKEEP_SECRET is not set: using the demo's development secret. Set UPKEEP_SECRET in production.");
}

const { seeded } = await prepareDemoDatabase(database);
if (seeded) console.log(`Seeded ${database} with demo boards.`);

const upkeep = await createUpkeep({ database, secret, install: true });
const app = createDemoApp(upkeep, { activity: true });
// The same board as an Inertia app (data mode) under /spa: its React client is built at start-up.
const { createSpaApp, SPA_PREFIX } = await import("./spa/app.ts");
const { buildSpaClient, serveSpaClient, spaHead } = await import("./spa/client/build.ts");
const spaClient = mkdtempSync(join(tmpdir(), "upkeep-spa-client-"));
await buildSpaClient(spaClient);
serveSpaClient(app, spaClient);
app.route(SPA_PREFIX, createSpaApp(upkeep, { head: spaHead }).app);
const { url } = await upkeep.serve(app, { port, hostname });
console.log(`Upkeep demo listening on ${url} (the Inertia version: ${url}${SPA_PREFIX})`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (closing) process.exit(1);
    closing = true;
    upkeep.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
