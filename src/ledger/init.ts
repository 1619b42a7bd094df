// `npx upkeep init [database]`: set Upkeep up in an existing app. Finds the database (the argument, --database,
// DATABASE_URL, or a SQLite file under ./data), checks the Node version, creates a SQLite file's folder, installs the
// ledger, and prints the lines to add to the app for the framework its package.json uses, with a fresh secret.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UpkeepError } from "../errors.ts";
import { install } from "./index.ts";
import { parseDatabaseUrl } from "./url.ts";

/** The Node version Upkeep needs. */
const NODE_MAJOR = 22;
const NODE_MINOR = 18;

type Framework = "hono" | "express" | "fastify" | "node";

function detectFramework(cwd: string): Framework {
  try {
    const pkg = JSON.parse(readFileSync(join(cwd, "package.json"), "utf8"));
    const deps = { ...pkg.dependencies, ...pkg.devDependencies } as Record<string, string>;
    if (deps.hono) return "hono";
    if (deps.express) return "express";
    if (deps.fastify) return "fastify";
  } catch {
    // no package.json: the node:http lines
  }
  return "node";
}

const SNIPPETS: Record<Framework, string> = {
  hono: `import { createUpkeep } from "upkeep";
import { upkeepMiddleware } from "upkeep/hono";

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
app.use(upkeepMiddleware(upkeep));             // first, before middleware that reads cookies or headers
await upkeep.serve(app, { port: 3000 });       // or upkeep.attach(server, app) on your own server`,
  express: `import { createUpkeep } from "upkeep";
import { upkeepExpress } from "upkeep/express";

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
app.use(upkeepExpress(upkeep));                // first, before middleware that reads cookies or headers
upkeep.attach(app.listen(3000), app);          // the WebSocket endpoint; replays run through the app`,
  fastify: `import { createUpkeep } from "upkeep";
import { upkeepFastify } from "upkeep/fastify";

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const db = upkeep.db<Database>();              // your Kysely instance: reads in a GET are captured
await app.register(upkeepFastify, { upkeep }); // before the routes`,
  node: `import { createServer } from "node:http";
import { createUpkeep } from "upkeep";
import { live } from "upkeep/node";

const upkeep = await createUpkeep({ database: process.env.DATABASE_URL!, secret: process.env.UPKEEP_SECRET! });
const listener = live(upkeep, yourRequestListener);
upkeep.attach(createServer(listener).listen(3000), listener);`,
};

export async function init(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  out: (line: string) => void = console.log,
): Promise<number> {
  let database: string;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { database: { type: "string" } },
    });
    database = values.database ?? positionals[0] ?? env.DATABASE_URL ?? "file:./data/app.sqlite";
  } catch (error) {
    out(`upkeep init: ${(error as Error).message}\nusage: upkeep init [--database <url> | <url or path>]`);
    return 2;
  }
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major < NODE_MAJOR || (major === NODE_MAJOR && minor < NODE_MINOR)) {
    out(
      `✖ Node ${process.versions.node}: Upkeep needs Node ${NODE_MAJOR}.${NODE_MINOR} or later (24 LTS recommended).\n  fix: install Node 24 (or add the \`node\` package as a development dependency, which npm scripts then use)`,
    );
    return 1;
  }
  out(`✔ Node ${process.versions.node}`);
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
  const framework = detectFramework(cwd);
  out("");
  out("Add to your environment (.env), the same secret for every process of the app:");
  out(`  DATABASE_URL=${database}`);
  out(`  UPKEEP_SECRET=${randomBytes(24).toString("base64url")}`);
  out("");
  out(`Add to your app (${framework === "node" ? "node:http" : framework}):`);
  out("");
  for (const line of SNIPPETS[framework].split("\n")) out(`  ${line}`);
  out("");
  out("Then open a page in two browsers and write: both show it. Docs: node_modules/upkeep/docs/README.md");
  return 0;
}
