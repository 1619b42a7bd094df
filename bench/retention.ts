// `npm run bench -- retention [--rows 2000] [--updates 4]`: what each retention policy keeps of one table's facts,
// on SQLite and on PostgreSQL (trigger capture; retention does not depend on the capture mode).
//
// For each policy a fresh database with one captured table, `cards` (id, board_id, title of ~30 characters, body of
// ~200), gets `rows` inserts and `updates` bulk updates of every row: the inserts and the first half of the updates
// are dated eight days ago (their facts' commit times moved back), the rest are written now. Then one prune pass runs
// with `cards` under the policy and every process caught up (no hold below the head), and the facts table is measured
// after VACUUM: its rows, its size on disk (SQLite: its pages, from dbstat; PostgreSQL: pg_total_relation_size, with
// its indexes and TOAST) and what the readers can still do (history of one card, rowAt before its first fact).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import pg from "pg";
import { LEDGER } from "../src/constants.ts";
import { history, install, type Ledger, openLedger, type RetentionPolicy, rowAt } from "../src/ledger/index.ts";
import { createTestDatabase } from "../test/support/postgres.ts";

const DAY = 86_400_000;
const POLICIES: { name: string; policy: RetentionPolicy }[] = [
  { name: "forever", policy: "forever" },
  { name: "window 7 days", policy: { windowMs: 7 * DAY } },
  { name: "minimal", policy: "minimal" },
];

interface Figures {
  dialect: string;
  policy: string;
  factsWritten: number;
  factsKept: number;
  factsTableBytes: number;
  bytesPerFactKept: number | null;
  cardsTableBytes: number;
  pruneMs: number;
  historyOfOneCard: number;
  historyHorizon: number;
  rowAtBeforeFirstFact: string;
}

interface Db {
  exec(sql: string): Promise<void>;
  /** Facts table and cards table sizes in bytes, after VACUUM. */
  sizes(): Promise<{ facts: number; cards: number; kept: number }>;
  close(): Promise<void>;
}

const body = (i: number, round: number) => `card ${i} revision ${round} `.padEnd(200, "lorem ipsum dolor sit amet ");

async function workload(db: Db, ledger: Ledger, rows: number, updates: number): Promise<number> {
  const values = Array.from(
    { length: rows },
    (_, i) => `(${i + 1}, ${i % 20}, 'card ${i + 1} title here', '${body(i, 0)}')`,
  );
  for (let i = 0; i < values.length; i += 500) {
    await db.exec(`INSERT INTO cards (id, board_id, title, body) VALUES ${values.slice(i, i + 500).join(", ")}`);
  }
  const update = (round: number) =>
    db.exec(`UPDATE cards SET title = 'card ' || id || ' title ${round}', body = '${body(0, round)}'`);
  const old = Math.floor(updates / 2);
  for (let round = 1; round <= old; round++) await update(round);
  await ledger.sync();
  // Everything so far was written eight days ago.
  await db.exec(
    ledger.kind === "sqlite"
      ? `UPDATE ${LEDGER.factsTable} SET at = at - ${(8 * DAY) / 1000}`
      : `UPDATE ${LEDGER.factsTable} SET committed_at = committed_at - interval '8 days'`,
  );
  for (let round = old + 1; round <= updates; round++) await update(round);
  return ledger.sync();
}

async function measure(
  dialect: string,
  open: () => Promise<{ url: string; db: Db }>,
  rows: number,
  updates: number,
): Promise<Figures[]> {
  const out: Figures[] = [];
  for (const { name, policy } of POLICIES) {
    const { url, db } = await open();
    try {
      await db.exec("CREATE TABLE cards (id integer PRIMARY KEY, board_id integer, title text, body text)");
      await install({ database: url, capture: dialect === "sqlite" ? undefined : "triggers" });
      const ledger = await openLedger({ database: url });
      try {
        const head = await workload(db, ledger, rows, updates);
        const started = performance.now();
        await ledger.prune({ retention: { default: "forever", tables: { cards: policy } }, atOrBelow: head });
        const pruneMs = performance.now() - started;
        const card = await history(ledger, "cards", { id: 1 });
        const before = await rowAt(ledger, "cards", { id: 1 }, 0).then(
          (r) => JSON.stringify(r),
          (e) => (e as { code: string }).code,
        );
        const sizes = await db.sizes();
        out.push({
          dialect,
          policy: name,
          factsWritten: head,
          factsKept: sizes.kept,
          factsTableBytes: sizes.facts,
          bytesPerFactKept: sizes.kept > 0 ? Math.round(sizes.facts / sizes.kept) : null,
          cardsTableBytes: sizes.cards,
          pruneMs: Math.round(pruneMs * 10) / 10,
          historyOfOneCard: card.facts.length,
          historyHorizon: card.horizon,
          rowAtBeforeFirstFact: before,
        });
      } finally {
        await ledger.close();
      }
    } finally {
      await db.close();
    }
  }
  return out;
}

async function openSqlite(): Promise<{ url: string; db: Db }> {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-retention-"));
  const path = join(dir, "app.sqlite");
  const raw = new DatabaseSync(path);
  raw.exec("PRAGMA busy_timeout = 5000");
  const size = (name: string) =>
    Number((raw.prepare("SELECT sum(pgsize) AS n FROM dbstat WHERE name = ?").get(name) as { n: number }).n ?? 0);
  return {
    url: `file:${path}`,
    db: {
      exec: async (sql) => raw.exec(sql),
      async sizes() {
        raw.exec("VACUUM");
        const kept = (raw.prepare(`SELECT count(*) AS n FROM ${LEDGER.factsTable}`).get() as { n: number }).n;
        return { facts: size(LEDGER.factsTable), cards: size("cards"), kept: Number(kept) };
      },
      close: async () => {
        raw.close();
        rmSync(dir, { recursive: true, force: true });
      },
    },
  };
}

async function openPostgres(): Promise<{ url: string; db: Db }> {
  const created = await createTestDatabase("upkeep_bench_retention");
  if (!created.url) throw new Error(created.reason);
  const raw = new pg.Client({ connectionString: created.url });
  await raw.connect();
  const size = async (name: string) =>
    Number((await raw.query<{ n: string }>("SELECT pg_total_relation_size($1) AS n", [name])).rows[0]?.n ?? 0);
  return {
    url: created.url,
    db: {
      exec: async (sql) => {
        await raw.query(sql);
      },
      async sizes() {
        await raw.query(`VACUUM FULL ${LEDGER.factsTable}`);
        await raw.query("VACUUM FULL cards");
        const kept = (await raw.query<{ n: string }>(`SELECT count(*) AS n FROM ${LEDGER.factsTable}`)).rows[0]?.n;
        return { facts: await size(LEDGER.factsTable), cards: await size("cards"), kept: Number(kept) };
      },
      close: async () => {
        await raw.end();
        await created.drop();
      },
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rows: { type: "string", default: "2000" }, updates: { type: "string", default: "4" } },
  });
  const rows = Number(values.rows);
  const updates = Number(values.updates);
  const figures = [...(await measure("sqlite", openSqlite, rows, updates))];
  try {
    figures.push(...(await measure("postgres", openPostgres, rows, updates)));
  } catch (error) {
    console.log(`# PostgreSQL skipped: ${(error as Error).message}`);
  }
  console.log(
    `# ${rows} cards, ${updates} bulk updates each (${rows * (updates + 1)} facts; the inserts and ` +
      `${Math.floor(updates / 2)} updates eight days old); one prune pass, every process caught up\n`,
  );
  console.log(
    "| dialect | policy | facts kept | facts table | per fact | cards table | prune pass | history(card 1) | rowAt(card 1, 0) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const f of figures) {
    console.log(
      `| ${f.dialect} | ${f.policy} | ${f.factsKept.toLocaleString("en")} of ${f.factsWritten.toLocaleString("en")} | ` +
        `${(f.factsTableBytes / 1024).toFixed(0)} KiB | ${f.bytesPerFactKept ?? "—"} B | ${(f.cardsTableBytes / 1024).toFixed(0)} KiB | ` +
        `${f.pruneMs} ms | ${f.historyOfOneCard} facts, complete after ${f.historyHorizon} | ${f.rowAtBeforeFirstFact} |`,
    );
  }
  const file = new URL("results/retention.json", import.meta.url).pathname;
  writeFileSync(file, `${JSON.stringify({ rows, updates, at: new Date().toISOString(), figures }, null, 2)}\n`);
}

await main();
