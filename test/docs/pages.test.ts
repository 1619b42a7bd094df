// The documentation holds together: docs/README.md lists every page under docs/; every relative link of the README,
// CONTRIBUTING.md and the docs reaches a file (and, with a #fragment, a heading of it); every repository path a page
// names in a code span (`src/…`, `test/…`, `docs/…` …) exists, so a moved file cannot leave a page pointing nowhere.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";

const root = new URL("../../", import.meta.url).pathname;

function markdownUnder(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return markdownUnder(path);
    return name.endsWith(".md") ? [path] : [];
  });
}

const docs = markdownUnder("docs");
const pages = ["README.md", "CONTRIBUTING.md", ...docs];
const text = (path: string) => readFileSync(join(root, path), "utf8");
/** A page's prose: fenced code blocks left out (a sample's `](…)` or path is not a link of the page). */
const prose = (path: string) => text(path).replace(/^```[\s\S]*?^```/gm, "");

/** GitHub's anchor for a heading: lower case, punctuation and symbols dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(path: string): Set<string> {
  return new Set([...prose(path).matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
}

test("docs/README.md lists every page under docs/", () => {
  const index = prose("docs/README.md");
  const listed = new Set([...index.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => join("docs", m[1] as string)));
  const missing = docs.filter((page) => page !== "docs/README.md" && !listed.has(page));
  assert.deepEqual(missing, [], "add each page to docs/README.md, where it belongs in reading order");
});

test("every relative link reaches a file, and a #fragment a heading of it", () => {
  const broken: string[] = [];
  for (const page of pages) {
    for (const match of prose(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1] as string;
      if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
      const [file, fragment] = target.split("#") as [string, string | undefined];
      const path = file === "" ? page : relative(root, join(root, dirname(page), file));
      if (!existsSync(join(root, path))) broken.push(`${page}: ${target} (no file ${path})`);
      else if (fragment !== undefined && path.endsWith(".md") && !anchors(path).has(fragment)) {
        broken.push(`${page}: ${target} (no heading #${fragment} in ${path})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test("every repository path a page names exists", () => {
  const missing: string[] = [];
  for (const page of pages) {
    for (const match of prose(page).matchAll(/`((?:src|test|docs|bench|scripts|demo|examples|bin|\.ci)\/[^`\s]*)`/g)) {
      const path = (match[1] as string).replace(/[*<].*$/, ""); // a glob or a placeholder: its folder must exist
      if (!existsSync(join(root, path))) missing.push(`${page}: ${match[1]}`);
    }
  }
  assert.deepEqual(missing, [], "update each path to the file that holds the code today");
});
