// The published package: `npm pack` (which builds dist/), unpacked into a node_modules folder, imported by plain
// Node. Node does not strip types under node_modules, so this fails if an export points at TypeScript source.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const root = new URL("..", import.meta.url).pathname;
/** Subpath exports that run only in a browser (they need a DOM, or a bundler for their framework's imports). */
const BROWSER_SUBPATHS = ["./client", "./inertia/react", "./inertia/svelte", "./inertia/vue", "./react"];

test("the packed package imports and runs from node_modules without TypeScript", { timeout: 120_000 }, () => {
  // Inside the project's node_modules, so that the package's own dependencies resolve as they would for a user.
  const base = join(root, "node_modules", ".cache");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, "upkeep-package-"));
  try {
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    execFileSync(npm, ["pack", "--silent", "--pack-destination", dir], { cwd: root, stdio: "pipe" });
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"))!;
    const installed = join(dir, "node_modules", "upkeep");
    mkdirSync(installed, { recursive: true });
    execFileSync("tar", ["-xzf", join(dir, tarball), "-C", installed, "--strip-components=1"]);
    const files = readdirSync(installed);
    assert.ok(files.includes("dist") && !files.includes("src") && !files.includes("test"), files.join(", "));
    writeFileSync(
      join(dir, "check.mjs"),
      `import { createUpkeep, RefusedBoundaryError, WIRE } from "upkeep";
       import { upkeepMiddleware, cookie } from "upkeep/hono";
       import { openLedger, install } from "upkeep/ledger";
       import { openLivePage, openLiveProps } from "upkeep/testing";
       import { createInertia, defer } from "upkeep/inertia";
       for (const f of [createUpkeep, upkeepMiddleware, cookie, openLedger, install, openLivePage, openLiveProps, createInertia, defer]) {
         if (typeof f !== "function") throw new Error("missing export");
       }
       // Every server-side subpath export loads under plain Node (browser modules need a DOM or a bundler).
       const { exports } = JSON.parse(await (await import("node:fs/promises")).readFile(new URL("./node_modules/upkeep/package.json", import.meta.url), "utf8"));
       for (const subpath of Object.keys(exports)) {
         if (${JSON.stringify(BROWSER_SUBPATHS)}.includes(subpath)) continue;
         const loaded = await import(subpath === "." ? "upkeep" : "upkeep" + subpath.slice(1));
         if (Object.keys(loaded).length === 0) throw new Error("empty export " + subpath);
       }
       if (!(new RefusedBoundaryError("raw_query", "select 1", "d", "r") instanceof Error)) throw new Error("errors");
       console.log(WIRE.socketPath);`,
    );
    const run = spawnSync(process.execPath, ["--no-experimental-strip-types", join(dir, "check.mjs")], {
      encoding: "utf8",
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "/upkeep/socket");
    const cli = spawnSync(process.execPath, [join(installed, "bin", "upkeep.js")], { encoding: "utf8" });
    assert.equal(cli.status, 2, cli.stderr);
    assert.match(cli.stderr, /usage:/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
