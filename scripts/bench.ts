// `npm run bench -- <name> [args]` runs bench/<name>.ts, which prints its figures and writes a JSON copy to
// bench/results/<name>.json.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const [name, ...rest] = process.argv.slice(2);
const dir = new URL("../bench/", import.meta.url).pathname;
const available = readdirSync(dir)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.replace(/\.ts$/, ""));
if (!name || !existsSync(`${dir}${name}.ts`)) {
  console.error(`usage: npm run bench -- <name>   (available: ${available.join(", ") || "none"})`);
  process.exit(2);
}
const r = spawnSync(process.execPath, ["--import", "tsx", `${dir}${name}.ts`, ...rest], { stdio: "inherit" });
process.exit(r.status ?? 1);
