// What `upkeep init` learns about the app it runs in, from the app's own files: its package.json (the
// dependencies its author added — Upkeep's own dependencies, hono among them, are not the app's), the frameworks its
// code imports, and whether it is an ES module project. A new project without code is made one; an existing one is
// told the exact change, since it would change how Node loads the app's own .js files.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { extname, join } from "node:path";

export const FRAMEWORKS = ["express", "fastify", "hono", "node"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** The app's package.json: parsed, with the text it was read from (to keep its indentation when written). */
export interface AppPackage {
  json: Record<string, unknown>;
  text: string;
}

export function readPackage(cwd: string): AppPackage | null {
  try {
    const text = readFileSync(join(cwd, "package.json"), "utf8");
    const json = JSON.parse(text);
    return typeof json === "object" && json !== null && !Array.isArray(json) ? { json, text } : null;
  } catch {
    return null;
  }
}

const CODE = new Set([".js", ".cjs", ".mjs", ".jsx", ".ts", ".cts", ".mts", ".tsx"]);
const SKIP = new Set(["node_modules", "dist", "build", "coverage", "data"]);
/** How far and how much of the app's folder is looked through (its own code, not a monorepo's). */
const SCAN = { depth: 4, files: 400, bytes: 512 * 1024 };

/** The app's own code files (not node_modules, build output or dot-folders), at most SCAN.files of them. */
export function codeFiles(cwd: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (found.length >= SCAN.files) return;
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth < SCAN.depth && !SKIP.has(entry.name)) walk(path, depth + 1);
      } else if (entry.isFile() && CODE.has(extname(entry.name))) found.push(path);
    }
  };
  walk(cwd, 1);
  return found;
}

/** The frameworks the app's code imports (a bare `express`, `fastify` or `hono`; helpers such as hono/html aside). */
function importedFrameworks(files: string[]): Set<Framework> {
  const imported = new Set<Framework>();
  const pattern = /(?:from\s*|import\s*\(\s*|require\s*\(\s*|import\s+)["'](express|fastify|hono)["']/g;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    if (text.length > SCAN.bytes) continue;
    for (const match of text.matchAll(pattern)) imported.add(match[1] as Framework);
  }
  return imported;
}

/**
 * The framework whose lines `init` prints. Only the app's own dependencies count. When it depends on several, the
 * ones its code imports decide; Express and Fastify come before Hono, which an app may depend on for its html``
 * helper alone (earlier versions of the guide installed it in every app).
 */
export function detectFramework(cwd: string, app: AppPackage | null): { framework: Framework; note: string } {
  const deps = {
    ...(app?.json.dependencies as Record<string, string> | undefined),
    ...(app?.json.devDependencies as Record<string, string> | undefined),
  };
  const listed = (["express", "fastify", "hono"] as const).filter((name) => typeof deps[name] === "string");
  if (listed.length === 0) return { framework: "node", note: "" };
  if (listed.length === 1) return { framework: listed[0] as Framework, note: "" };
  const imported = importedFrameworks(codeFiles(cwd));
  const used = listed.filter((name) => imported.has(name));
  const framework = (used[0] ?? listed[0]) as Framework;
  const others = listed.filter((name) => name !== framework);
  return {
    framework,
    note: `package.json lists ${listed.join(" and ")}${used.length > 0 ? `, the code imports ${used.join(" and ")}` : ""}; for the other lines pass ${others.map((o) => `--framework ${o}`).join(" or ")}`,
  };
}

/**
 * The lines Upkeep prints are ES modules (import, top-level await), which a CommonJS project (npm init's default)
 * cannot run. A project with no code yet is made an ES module project; an existing one is told how, because
 * "type": "module" changes how Node loads every .js file it already has.
 */
export function ensureModule(cwd: string, app: AppPackage | null): string[] {
  const why =
    'the lines below are ES modules (import, top-level await): Node runs them when package.json says "type": "module"';
  if (!app) return [`! no package.json here: ${why}`, "  fix: run `npm init -y && npm pkg set type=module`"];
  if (app.json.type === "module") return ['✔ package.json: "type": "module"'];
  if (codeFiles(cwd).length === 0) {
    const indent = /^[ \t]+(?=")/m.exec(app.text)?.[0] ?? "  ";
    writeFileSync(join(cwd, "package.json"), `${JSON.stringify({ ...app.json, type: "module" }, null, indent)}\n`);
    app.json.type = "module";
    return ['✔ set "type": "module" in package.json (an ES module project: the lines below need it)'];
  }
  return [
    `! package.json has no "type": "module", so Node loads this app's .js and .ts files as CommonJS; ${why}`,
    "  fix: run `npm pkg set type=module` (rename CommonJS files that use require() to .cjs), or put the lines in .mts files",
  ];
}
