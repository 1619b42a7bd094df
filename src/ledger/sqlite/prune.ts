// Pruning the SQLite ledger by retention policy (ledger/retention.ts), inside one write transaction: the facts
// removed and the horizons that say so commit together.
import type { DatabaseSync } from "node:sqlite";
import { LEDGER } from "../../constants.ts";
import { FLOOR_KEY, horizonOf, parseHorizons, TABLE_HORIZON_PREFIX } from "../core.ts";
import { coversEveryTable, cutOf, type PruneStep, prunePolicies, pruneSteps, windowsOf } from "../retention.ts";
import type { Horizons, PruneOptions } from "../types.ts";
import { all, get, setMeta, tableExists } from "./install.ts";

const FACTS = LEDGER.factsTable;
const META = LEDGER.metaTable;
const HOLDS = LEDGER.holdsTable;

/** The floor and per-table horizons stored in the meta table. */
export function readHorizons(db: DatabaseSync): Horizons {
  return parseHorizons(
    all<{ key: string; value: string }>(
      db,
      `SELECT key, value FROM ${META} WHERE key = ? OR substr(key, 1, ?) = ?`,
      FLOOR_KEY,
      TABLE_HORIZON_PREFIX.length,
      TABLE_HORIZON_PREFIX,
    ),
  );
}

/** One prune pass; the caller runs it in an IMMEDIATE transaction with `pruning` set (the guard trigger's flag). */
export function pruneSqlite(
  db: DatabaseSync,
  head: number,
  options: PruneOptions,
): { pruned: number; horizon: number } {
  const retention = prunePolicies(options);
  const now = Date.now();
  // A live hold: some process still needs every fact after its position.
  const held = tableExists(db, HOLDS)
    ? get<{ p: number | null }>(db, `SELECT min(position) AS p FROM ${HOLDS} WHERE expires > ?`, now / 1000)?.p
    : null;
  const limit = Math.min(head, options.atOrBelow ?? head, held ?? head);
  const firstRecent = new Map<number, number | undefined>();
  for (const windowMs of windowsOf(retention)) {
    const cutoff = (now - windowMs) / 1000; // `at` is seconds since the epoch
    firstRecent.set(
      windowMs,
      get<{ id: number }>(db, `SELECT id FROM ${FACTS} WHERE at >= ? ORDER BY id LIMIT 1`, cutoff)?.id,
    );
  }
  let pruned = 0;
  for (const step of pruneSteps(retention, (policy) => cutOf(policy, limit, firstRecent))) {
    pruned += coversEveryTable(step) ? prunePrefix(db, step.cut) : pruneTables(db, step);
  }
  return { pruned, horizon: horizonOf(readHorizons(db)).horizon };
}

/** Every table's facts at or below `cut`: the floor rises to it. */
function prunePrefix(db: DatabaseSync, cut: number): number {
  const floor = readHorizons(db).floor;
  const { changes } = db.prepare(`DELETE FROM ${FACTS} WHERE id <= ?`).run(cut);
  setMeta(db, FLOOR_KEY, String(Math.max(floor, cut)));
  return Number(changes);
}

/** Some tables' facts at or below the step's cut: each table that lost facts gets its horizon raised to the highest
 *  offset removed (above it, its facts are complete). */
function pruneTables(db: DatabaseSync, step: PruneStep): number {
  const tables = "only" in step ? step.only : step.except;
  const where = `id <= ? AND tbl ${"only" in step ? "IN" : "NOT IN"} (${tables.map(() => "?").join(", ")})`;
  const params = [step.cut, ...tables];
  const removed = all<{ tbl: string; last: number }>(
    db,
    `SELECT tbl, max(id) AS last FROM ${FACTS} WHERE ${where} GROUP BY tbl`,
    ...params,
  );
  if (removed.length === 0) return 0;
  const { changes } = db.prepare(`DELETE FROM ${FACTS} WHERE ${where}`).run(...params);
  const raise = db.prepare(
    `INSERT INTO ${META}(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)`,
  );
  for (const { tbl, last } of removed) raise.run(`${TABLE_HORIZON_PREFIX}${tbl}`, String(last));
  return Number(changes);
}
