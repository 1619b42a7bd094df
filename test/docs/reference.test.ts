// docs/reference.md names every public export. Each subpath of package.json "exports" is mapped to the src/ module it
// is built from (exports.ts); that module is imported, and each of its runtime exports — and each public member of an
// exported class — must be named in a code span of the page's section for that subpath. Every option of
// UpkeepOptions must be a row of the createUpkeep options table.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { registerHooks } from "node:module";
import { test } from "node:test";
import { Window } from "happy-dom";
import { sourceUrl, subpathExports } from "./exports.ts";

const page = readFileSync(new URL("../../docs/reference.md", import.meta.url), "utf8");

// The browser subpaths need a DOM to load (the client defines a custom element and listens on the window) …
const window = new Window({ url: "http://localhost/" });
for (const name of ["window", "document", "HTMLElement", "customElements", "location", "navigator"] as const) {
  if (!(name in globalThis)) Object.assign(globalThis, { [name]: name === "window" ? window : window[name] });
}
Object.assign(globalThis, {
  addEventListener: window.addEventListener.bind(window),
  removeEventListener: window.removeEventListener.bind(window),
});
// … and @inertiajs/svelte's package exports only a "svelte" condition, whose modules are Svelte components Node cannot
// load. Its `router`, the one thing upkeep/inertia/svelte imports, is @inertiajs/core's (the package re-exports it).
registerHooks({
  resolve: (specifier, context, next) =>
    next(specifier === "@inertiajs/svelte" ? "@inertiajs/core" : specifier, context),
});

/** The text under the `## ` heading that names `specifier` in a code span, up to the next `## ` heading. */
function section(specifier: string): string {
  const lines = page.split("\n");
  const start = lines.findIndex((line) => line.startsWith("## ") && line.includes(`\`${specifier}\``));
  assert.ok(start >= 0, `docs/reference.md has no "## … \`${specifier}\`" section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith("## "));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

function codeSpans(text: string): string[] {
  return [...text.matchAll(/(`+)([\s\S]+?)\1/g)].map((m) => m[2] as string);
}

function named(spans: string[], name: string): boolean {
  const word = new RegExp(`(^|[^\\w$])${name.replace(/\$/g, "\\$")}([^\\w$]|$)`);
  return spans.some((span) => word.test(span));
}

/** A class's own public members: its prototype's methods and accessors (ES private members are not listed). */
function members(value: unknown): string[] {
  if (typeof value !== "function" || !/^class\b/.test(Function.prototype.toString.call(value))) return [];
  return Object.getOwnPropertyNames((value as { prototype: object }).prototype).filter((n) => n !== "constructor");
}

for (const { subpath, specifier, source } of subpathExports()) {
  test(`docs/reference.md names every runtime export of ${specifier} (${source})`, async () => {
    const module = (await import(sourceUrl(source))) as Record<string, unknown>;
    const spans = codeSpans(section(specifier));
    const missing: string[] = [];
    for (const [name, value] of Object.entries(module)) {
      if (!named(spans, name)) missing.push(name);
      for (const member of members(value)) if (!named(spans, member)) missing.push(`${name}.${member}`);
    }
    assert.ok(Object.keys(module).length > 0, `${subpath} exports nothing`);
    assert.deepEqual(missing, [], `docs/reference.md, section \`${specifier}\`: name each of these with its meaning`);
  });
}

test("every createUpkeep option is a row of the options table", () => {
  const source = readFileSync(new URL("../../src/upkeep.ts", import.meta.url), "utf8");
  const body = /export interface UpkeepOptions \{([\s\S]*?)\n\}/.exec(source)?.[1];
  assert.ok(body, "src/upkeep.ts has no UpkeepOptions");
  const options = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1] as string);
  assert.ok(options.length >= 20, `only ${options.length} options found`);
  const table = section("upkeep")
    .split("\n### ")
    .find((part) => part.startsWith("`createUpkeep(options)`"));
  assert.ok(table, 'docs/reference.md has no "### `createUpkeep(options)`" table');
  const rows = new Set([...table.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]));
  assert.deepEqual(
    options.filter((option) => !rows.has(option)),
    [],
    "docs/reference.md: add a row to the createUpkeep options table for each of these",
  );
});
