// `npm run check` step: the pipeline folders under src/ form layers, so no folder may import (directly or through
// others) a folder that imports it back. dependency-cruiser reads the imports (and its own rules forbid cycles
// between modules); this script collapses the module graph to folders and reports every cycle between them.
import { execFileSync } from "node:child_process";

interface CruiseResult {
  modules: { source: string; dependencies: { resolved: string }[] }[];
  summary: { error: number; violations: { rule: { name: string }; from: string; to: string }[] };
}

const root = new URL("..", import.meta.url).pathname;
const bin = `${root}node_modules/dependency-cruiser/bin/dependency-cruiser.mjs`;
const out = execFileSync(
  process.execPath,
  [bin, "src", "--config", ".dependency-cruiser.cjs", "--output-type", "json"],
  {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  },
);
const result = JSON.parse(out) as CruiseResult;

const folderOf = (path: string): string | null => /^src\/([^/]+)\//.exec(path)?.[1] ?? null;
const edges = new Map<string, Map<string, string>>(); // folder → folder → one module edge that proves it
for (const module of result.modules) {
  const from = folderOf(module.source);
  if (from === null) continue;
  for (const dependency of module.dependencies) {
    const to = folderOf(dependency.resolved);
    if (to === null || to === from) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    edges.get(from)?.set(to, `${module.source} → ${dependency.resolved}`);
  }
}

// Every folder-level cycle, found by a depth-first search from each folder (the graph has ~12 nodes).
const cycles = new Set<string>();
const problems: string[] = [];
function visit(start: string, at: string, path: string[]): void {
  for (const next of edges.get(at)?.keys() ?? []) {
    if (next === start) {
      const cycle = [...path, start];
      const key = [...cycle.slice(0, -1)].sort().join(",");
      if (cycles.has(key)) continue;
      cycles.add(key);
      const proof = cycle.slice(0, -1).map((folder, i) => `    ${edges.get(folder)?.get(cycle[i + 1] as string)}`);
      problems.push(`  ${cycle.join(" → ")}\n${proof.join("\n")}`);
    } else if (!path.includes(next)) visit(start, next, [...path, next]);
  }
}
for (const folder of edges.keys()) visit(folder, folder, [folder]);

for (const violation of result.summary.violations) {
  problems.push(`  ${violation.rule.name}: ${violation.from} → ${violation.to}`);
}
if (problems.length > 0) {
  console.error(
    `Import cycles between src/ folders (layers must be acyclic; move the shared type down a layer):\n${problems.join("\n")}`,
  );
  process.exit(1);
}
console.log(`layers: ${edges.size} folders, no import cycles`);
