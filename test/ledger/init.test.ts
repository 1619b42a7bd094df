// `upkeep init` in a fresh app folder: the data folder is created, the ledger installed, and the lines printed are
// the framework's (the app's own dependencies and imports, Express and Fastify before Hono) with a usable secret; an
// old Node is told to install the target LTS line; a CommonJS project is made (new) or told (with code) to be an ES
// module project; a database it cannot open is an error with its fix.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { NODE_VERSIONS } from "../../src/constants.ts";
import { init } from "../../src/ledger/init.ts";

function app(dependencies: Record<string, string>, extra: Record<string, unknown> = { type: "module" }): string {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-init-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ ...extra, dependencies }));
  return dir;
}

async function run(dir: string, argv: string[] = ["file:./db/x.sqlite"], node?: string) {
  const lines: string[] = [];
  const code = await init(argv, {}, dir, (line) => lines.push(line), node);
  return { code, output: lines.join("\n") };
}

test("init creates the data folder, installs the ledger and prints the app's framework lines with a secret", async () => {
  const dir = app({ hono: "^4" });
  const lines: string[] = [];
  const code = await init([], {}, dir, (line) => lines.push(line));
  const output = lines.join("\n");
  assert.equal(code, 0, output);
  assert.ok(existsSync(join(dir, "data", "app.sqlite")));
  const db = new DatabaseSync(join(dir, "data", "app.sqlite"));
  assert.ok(db.prepare("select 1 from sqlite_master where name = 'upkeep_facts'").get(), "the ledger is installed");
  db.close();
  assert.match(output, /upkeepMiddleware\(upkeep\)/);
  assert.match(output, /DATABASE_URL=file:\.\/data\/app\.sqlite/);
  const secret = /UPKEEP_SECRET=(\S+)/.exec(output)?.[1] ?? "";
  assert.ok(secret.length >= 32, secret);
});

test("the framework comes from package.json: Express and Fastify get their own lines", async () => {
  for (const [dependency, expected] of [
    ["express", /upkeepExpress\(upkeep\)/],
    ["fastify", /register\(upkeepFastify/],
  ] as const) {
    const lines: string[] = [];
    assert.equal(await init(["file:./db/x.sqlite"], {}, app({ [dependency]: "^5" }), (l) => lines.push(l)), 0);
    assert.match(lines.join("\n"), expected);
  }
});

test("an app that lists hono besides Express or Fastify gets Express's or Fastify's lines, not Hono's", async () => {
  for (const [framework, expected] of [
    ["express", /upkeepExpress\(upkeep\)/],
    ["fastify", /register\(upkeepFastify/],
  ] as const) {
    const { code, output } = await run(app({ hono: "^4", [framework]: "^5", upkeep: "^0.1" }));
    assert.equal(code, 0, output);
    assert.match(output, expected);
    assert.doesNotMatch(output, /upkeepMiddleware/);
    assert.match(output, /--framework hono/, "says how to get the other lines");
  }
});

test("with several frameworks listed, the one the app's code imports decides; --framework overrides", async () => {
  const dir = app({ express: "^5", hono: "^4" });
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "server.ts"), 'import { Hono } from "hono";\nimport { html } from "hono/html";\n');
  const imported = await run(dir);
  assert.match(imported.output, /upkeepMiddleware\(upkeep\)/, imported.output);
  const forced = await run(dir, ["file:./db/x.sqlite", "--framework", "express"]);
  assert.match(forced.output, /upkeepExpress\(upkeep\)/, forced.output);
  const wrong = await run(dir, ["--framework", "koa"]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.output, /--framework must be one of express, fastify, hono, node/);
});

test(`on an old Node, the fix installs Node ${NODE_VERSIONS.target} (the target LTS), not the registry's newest`, async () => {
  const { code, output } = await run(app({ express: "^5" }), [], "20.19.0");
  assert.equal(code, 1, output);
  assert.match(output, /✖ Node 20\.19\.0: Upkeep needs Node 22\.18 or later/);
  assert.ok(output.includes(`npm install --save-dev node@${NODE_VERSIONS.target}\``), output);
  assert.doesNotMatch(output, /`node` package/);
});

test("a new CommonJS project (npm init -y, no code yet) is made an ES module project", async () => {
  const dir = app({ express: "^5" }, { name: "fresh", version: "1.0.0", main: "index.js" });
  const { code, output } = await run(dir);
  assert.equal(code, 0, output);
  assert.match(output, /✔ set "type": "module" in package\.json/);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  assert.equal(pkg.type, "module");
  assert.equal(pkg.name, "fresh");
  assert.deepEqual(pkg.dependencies, { express: "^5" });
});

test("a CommonJS project with code is told exactly what it needs, and its package.json is left alone", async () => {
  const dir = app({ express: "^5" }, { name: "old", version: "1.0.0" });
  writeFileSync(join(dir, "index.js"), 'const express = require("express");\n');
  const before = readFileSync(join(dir, "package.json"), "utf8");
  const { code, output } = await run(dir);
  assert.equal(code, 0, output);
  assert.match(output, /! package\.json has no "type": "module"/);
  assert.match(output, /fix: run `npm pkg set type=module`/);
  assert.equal(readFileSync(join(dir, "package.json"), "utf8"), before);
});

test("a database init cannot use is an error naming the fix", async () => {
  const lines: string[] = [];
  const code = await init(["mysql://nope"], {}, app({}), (l) => lines.push(l));
  assert.equal(code, 1);
  assert.match(lines.join("\n"), /✖ .*\n {2}fix: /);
});
