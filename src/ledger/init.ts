// `npx upkeep init [database]`: set Upkeep up in an existing app. Finds the database (the argument, --database,
// DATABASE_URL, or a SQLite file under ./data), checks the Node version, makes sure the app is an ES module project,
// creates a SQLite file's folder, installs the ledger, and prints the lines to add to the app for the framework it
// uses (--framework, or found from its package.json and imports), with a fresh secret.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UpkeepError } from "../errors.ts";
import { nodeCheck } from "./doctor.ts";
import { install } from "./index.ts";
import { type AppPackage, detectFramework, ensureModule, FRAMEWORKS, type Framework, readPackage } from "./init-app.ts";
import { parseDatabaseUrl } from "./url.ts";

const SNIPPETS: Record<Framework, string> = {
  hono: `import { createUpkeep } from "upkeep";
import { upkeepMiddleware } from "upkeep/hono";

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
app.use(upkeepMiddleware(upkeep));             // first, before middleware that reads cookies or headers
await upkeep.serve(app, { port: 3000 });       // or upkeep.attach(server, app) on your own server`,
  express: `import { createUpkeep } from "upkeep";
import { upkeepExpress } from "upkeep/express";
// views without JSX: html\`…\` from "upkeep" escapes your values and renders partials (no hono needed)

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
app.use(upkeepExpress(upkeep));                // first, before middleware that reads cookies or headers
upkeep.attach(app.listen(3000), app);          // the WebSocket endpoint; replays run through the app`,
  fastify: `import { createUpkeep } from "upkeep";
import { upkeepFastify } from "upkeep/fastify";
// views without JSX: html\`…\` from "upkeep" escapes your values and renders partials (no hono needed)

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
await app.register(upkeepFastify, { upkeep }); // before the routes`,
  node: `import { createServer } from "node:http";
import { createUpkeep } from "upkeep";
import { live } from "upkeep/node";
// views without JSX: html\`…\` from "upkeep" escapes your values and renders partials (no hono needed)

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const listener = live(upkeep, yourRequestListener);
upkeep.attach(createServer(listener).listen(3000), listener);`,
};

export async function init(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  out: (line: string) => void = console.log,
  node = process.versions.node,
): Promise<number> {
  let database: string;
  let chosen: Framework | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { database: { type: "string" }, framework: { type: "string" } },
    });
    database = values.database ?? positionals[0] ?? env.DATABASE_URL ?? "file:./data/app.sqlite";
    if (values.framework !== undefined && !FRAMEWORKS.includes(values.framework as Framework)) {
      throw new Error(`--framework must be one of ${FRAMEWORKS.join(", ")}, not "${values.framework}"`);
    }
    chosen = values.framework as Framework | undefined;
  } catch (error) {
    out(
      `upkeep init: ${(error as Error).message}\nusage: upkeep init [--database <url> | <url or path>] [--framework ${FRAMEWORKS.join("|")}]`,
    );
    return 2;
  }
  const version = nodeCheck(node);
  if (version.status === "error") {
    out(`✖ ${version.message}\n  fix: ${version.fix}`);
    return 1;
  }
  out(`✔ ${version.message}`);
  const app: AppPackage | null = readPackage(cwd);
  for (const line of ensureModule(cwd, app)) out(line);
  try {
    const parsed = parseDatabaseUrl(database);
    let target = database;
    if (parsed.kind === "sqlite" && parsed.path !== ":memory:") {
      const path = resolve(cwd, parsed.path);
      const folder = dirname(path);
      if (!existsSync(folder)) {
        mkdirSync(folder, { recursive: true });
        out(`✔ created ${folder}`);
      }
      target = `file:${path}`;
    }
    const report = await install({ database: target });
    out(`✔ ${report.created ? "installed" : "refreshed"} the ledger in ${database}`);
    out(
      `  capturing: ${report.tables.join(", ") || "(no tables yet: create your tables, then run upkeep install again)"}`,
    );
  } catch (error) {
    const fix = error instanceof UpkeepError ? `\n  fix: ${error.hint}` : "";
    out(`✖ ${(error as Error).message.split("\n")[0]}${fix}`);
    return 1;
  }
  const detected = chosen ? { framework: chosen, note: "" } : detectFramework(cwd, app);
  const framework = detected.framework;
  out("");
  out("Add to your environment (.env), the same secret for every process of the app:");
  out(`  DATABASE_URL=${database}`);
  out(`  UPKEEP_SECRET=${randomBytes(24).toString("base64url")}`);
  out("");
  out(
    `Add to your app (${framework === "node" ? "node:http" : framework}${detected.note ? `: ${detected.note}` : ""}):`,
  );
  out("");
  for (const line of SNIPPETS[framework].split("\n")) out(`  ${line}`);
  out("");
  out("Then open a page in two browsers and write: both show it. Docs: node_modules/upkeep/docs/README.md");
  return 0;
}
