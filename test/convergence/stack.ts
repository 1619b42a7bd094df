// The cells of the convergence oracle: every adapter × capture × rendering the library offers, and how a command line
// names a selection of them ("all", "express/postgres-logical/frames", globs such as "*/sqlite/*", comma lists).

/** The web adapters the desk app (app/) is mounted on, and "demo": the demo's own Hono app (demo/app.tsx, demo/spa). */
export const ADAPTERS = ["hono", "express", "fastify", "node", "demo"] as const;
export const CAPTURES = ["sqlite", "postgres-triggers", "postgres-logical"] as const;
export const RENDERINGS = ["frames", "page", "data"] as const;

export type Adapter = (typeof ADAPTERS)[number];
export type Capture = (typeof CAPTURES)[number];
export type Rendering = (typeof RENDERINGS)[number];

/**
 * Adapters with data mode (upkeep/inertia's Inertia pages) today. An adapter joins the data cells by being added
 * here once upkeep/inertia runs on it (and its routes file mounts the Inertia pages, as app/hono.ts does).
 */
export const DATA_ADAPTERS: readonly Adapter[] = ["hono", "demo"];

export interface Cell {
  /** A web adapter running the desk app, or the demo app (on Hono). */
  adapter: Adapter;
  capture: Capture;
  /** frames: partials and collections rendered on their own; page: createUpkeep({ frames: false }), whole-page
   *  replays; data: Inertia props and live JSON resources. */
  rendering: Rendering;
}

export const cellName = (cell: Cell): string => `${cell.adapter}/${cell.capture}/${cell.rendering}`;

/** The app a cell runs: the demo's, or the desk written for the oracle. */
export const appOf = (cell: Cell): "demo" | "desk" => (cell.adapter === "demo" ? "demo" : "desk");

export function allCells(): Cell[] {
  const cells: Cell[] = [];
  for (const adapter of ADAPTERS) {
    for (const capture of CAPTURES) {
      for (const rendering of RENDERINGS) {
        if (rendering === "data" && !DATA_ADAPTERS.includes(adapter)) continue;
        cells.push({ adapter, capture, rendering });
      }
    }
  }
  return cells;
}

function glob(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, "[^/]*")
    .replace(/\?/g, "[^/]");
  return new RegExp(`^${escaped}$`);
}

/**
 * The cells a selection names: "all", or comma-separated patterns of adapter/capture/rendering where each part may be
 * a glob and missing trailing parts mean every value ("express" is every Express cell, "*\/sqlite" every SQLite one).
 * A pattern that names no cell is an error, so that a typo is never a run of nothing.
 */
export function selectCells(selection: string): Cell[] {
  const cells = allCells();
  if (selection === "all") return cells;
  const chosen = new Set<string>();
  for (const raw of selection
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    const parts = raw.split("/");
    while (parts.length < 3) parts.push("*");
    const pattern = glob(parts.join("/"));
    const matched = cells.filter((c) => pattern.test(cellName(c)));
    if (matched.length === 0) {
      throw new Error(
        `--stack ${raw} names no cell; cells are adapter/capture/rendering with adapters ${ADAPTERS.join(", ")}, captures ${CAPTURES.join(", ")}, renderings ${RENDERINGS.join(", ")} (data on ${DATA_ADAPTERS.join(", ")})`,
      );
    }
    for (const c of matched) chosen.add(cellName(c));
  }
  return cells.filter((c) => chosen.has(cellName(c)));
}
