// `npm run package-check`: the package as a user gets it. `npm pack`, then a fresh project installs the tarball from
// the npm registry's dependencies; npm's output must hold no install-script warning; then, on Node 24 (this
// project's) and on Node 22 (installed from the npm registry's `node@22` package into a scratch folder), a script
// imports every server-side subpath export, serves a live page on SQLite through upkeep/hono and checks its marker.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const dir = mkdtempSync(join(tmpdir(), "upkeep-package-"));
const BROWSER_SUBPATHS = [
  "./client",
  "./inertia/react",
  "./inertia/svelte",
  "./inertia/vue",
  "./react",
  "./inertia/client",
];
let failed = false;
const fail = (message: string) => {
  failed = true;
  console.error(`✖ ${message}`);
};

try {
  execFileSync(npm, ["pack", "--silent", "--pack-destination", dir], { cwd: root, stdio: "pipe" });
  const tarball = join(dir, readdirSync(dir).find((f) => f.endsWith(".tgz")) as string);
  const project = join(dir, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "fresh-app", version: "1.0.0", type: "module" }));
  // hono for the page below; happy-dom because upkeep/testing (imported below) needs it (an optional peer).
  const install = spawnSync(npm, ["install", "--no-audit", "--no-fund", tarball, "hono", "happy-dom"], {
    cwd: project,
    encoding: "utf8",
  });
  const output = `${install.stdout}\n${install.stderr}`;
  if (install.status !== 0) fail(`npm install of the tarball failed:\n${output}`);
  else if (/install-scripts|install script/i.test(output)) fail(`npm warned about install scripts:\n${output}`);
  else console.log("✔ the tarball installs into a fresh project with no install-script warning");

  const { exports } = JSON.parse(execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" }));
  const subpaths = Object.keys(exports).filter((s) => !BROWSER_SUBPATHS.includes(s));
  writeFileSync(
    join(project, "check.mjs"),
    `import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
for (const subpath of ${JSON.stringify(subpaths)}) {
  const loaded = await import(subpath === "." ? "upkeep" : "upkeep" + subpath.slice(1));
  if (Object.keys(loaded).length === 0) throw new Error("empty export " + subpath);
}
const { createUpkeep } = await import("upkeep");
const { upkeepMiddleware } = await import("upkeep/hono");
const { Hono } = await import("hono");
const { DatabaseSync } = await import("node:sqlite");
const path = join(mkdtempSync(join(tmpdir(), "fresh-")), "app.sqlite");
const db = new DatabaseSync(path);
db.exec("create table notes (id integer primary key, body text not null)");
db.close();
const upkeep = await createUpkeep({ database: "file:" + path, secret: "a-secret-of-at-least-32-characters!!", install: true, mode: "test" });
const app = new Hono();
app.use(upkeepMiddleware(upkeep));
app.get("/", async (c) => c.html("<html><body>" + (await upkeep.db().selectFrom("notes").selectAll().execute()).length + "</body></html>"));
const html = await (await app.fetch(new Request("http://localhost/", { headers: { accept: "text/html" } }))).text();
await upkeep.close();
if (!html.includes("upkeep-stream-source")) throw new Error("the page is not live: " + html);
console.log(process.version);
`,
  );
  const node22 = join(dir, "node22");
  mkdirSync(node22);
  writeFileSync(join(node22, "package.json"), "{}");
  execFileSync(npm, ["install", "--no-audit", "--no-fund", "node@22"], { cwd: node22, stdio: "pipe" });
  for (const [name, binary] of [
    ["Node 24", join(root, "node_modules", ".bin", "node")],
    ["Node 22", join(node22, "node_modules", ".bin", "node")],
  ] as const) {
    const run = spawnSync(binary, ["--no-warnings", "check.mjs"], { cwd: project, encoding: "utf8" });
    if (run.status !== 0) fail(`${name}: ${run.stderr || run.stdout}`);
    else
      console.log(
        `✔ ${name} (${run.stdout.trim()}): every server subpath imports (${subpaths.join(", ")}), and a page is live`,
      );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
