// `upkeep init` in a fresh app folder: the data folder is created, the ledger installed, and the lines printed are
// the framework's (from package.json) with a usable secret; a database it cannot open is an error with its fix.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { init } from "../../src/ledger/init.ts";

function app(dependencies: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-init-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ dependencies }));
  return dir;
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

test("a database init cannot use is an error naming the fix", async () => {
  const lines: string[] = [];
  const code = await init(["mysql://nope"], {}, app({}), (l) => lines.push(l));
  assert.equal(code, 1);
  assert.match(lines.join("\n"), /✖ .*\n {2}fix: /);
});
