// What a statement's text does to a connection, told from its first words without parsing: the capture at the
// driver runs this on every statement, inside a render or not, so it must cost next to nothing. A read is then
// parsed exactly (analysis/sql); everything else only decides when the ledger is woken.

/**
 * - `read`: select, values, table, show, pragma, explain;
 * - `begin` / `commit` / `rollback`: transaction control (`rollback to savepoint` and `release` are `control`);
 * - `unknown`: `with …` (a read, or a write in a data-modifying CTE: the parse tells) and anything unrecognised;
 * - `write`: insert, update, delete, merge, replace, upsert, copy;
 * - `control`: schema and session statements (create, drop, alter, truncate, set, vacuum …).
 */
export type TextEffect = "read" | "write" | "begin" | "commit" | "rollback" | "control" | "unknown";

const FIRST_WORD = /^[\s(]*(?:--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*([A-Za-z]+)/;
const EFFECTS: Record<string, TextEffect> = {
  select: "read",
  values: "read",
  table: "read",
  show: "read",
  pragma: "read",
  explain: "read",
  insert: "write",
  update: "write",
  delete: "write",
  merge: "write",
  replace: "write",
  upsert: "write",
  copy: "write",
  begin: "begin",
  start: "begin",
  commit: "commit",
  end: "commit",
  rollback: "rollback",
  abort: "rollback",
  with: "unknown",
};

export function transactionEffect(sql: string): TextEffect {
  const word = FIRST_WORD.exec(sql)?.[1]?.toLowerCase();
  if (word === undefined) return "unknown";
  const effect = EFFECTS[word];
  if (effect === "rollback" && /^\s*rollback\s+(?:work\s+|transaction\s+)?to\b/i.test(sql)) return "control";
  if (effect === "begin" && word === "start" && !/^\s*start\s+transaction\b/i.test(sql)) return "control";
  return effect ?? "control";
}
