// Change-ledger benchmark: `npm run bench -- ledger`. SQLite, and PostgreSQL with trigger capture and with
// logical capture, in one run; write costs are compared with the same workload on an identical table that is not
// captured (excluded at install). Prints a table and writes bench/results/ledger.json.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Kysely } from "kysely";
import pg from "pg";
import { createDialect, type Fact, install, type Ledger, openLedger, uninstall } from "../src/ledger/index.ts";
import { ADMIN_URL } from "../test/support/postgres.ts";

const SINGLE = Number(process.env.BENCH_SINGLE ?? 500);
const MANY = 10_000;
const BULK = 10_000;
const LATENCY_SAMPLES = 200;
const EXTERNAL_SAMPLES = 100;
const READ_FACTS = 50_000;
const APPEND_FACTS = Number(process.env.BENCH_APPEND ?? 100_000);

interface Ratio {
  without: number;
  with: number;
  ratio: number;
}
interface Figures {
  dialect: string;
  singleRowCommitMs: Ratio;
  manyRowsOneTransactionMs: Ratio;
  insertSelectMs: Ratio;
  bulkUpdateMs: Ratio;
  inProcessLatencyMs: { p50: number; p95: number };
  externalLatencyMs: { p50: number; p95: number };
  factsReadPerSecond: number;
  /** PostgreSQL: facts made readable per second from a backlog (staged facts numbered, or the slot decoded and
   *  appended), with no process reading the ledger while the backlog was written. */
  factsAppendedPerSecond?: number;
  /** Logical capture: the same write costs measured while no process consumed the slot (the writer's own cost:
   *  WAL, with the old rows REPLICA IDENTITY FULL adds), next to the ones above (leader decoding alongside). */
  writerOnly?: Pick<Figures, "singleRowCommitMs" | "manyRowsOneTransactionMs" | "insertSelectMs" | "bulkUpdateMs">;
}

const now = () => performance.timeOrigin + performance.now();
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const ratio = (without: number, withTriggers: number): Ratio => ({
  without: round(without, 3),
  with: round(withTriggers, 3),
  ratio: round(withTriggers / without),
});
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number, 3);
}

interface Raw {
  exec(sql: string): Promise<void>;
  /** One autocommitted single-row insert, parameterized. */
  insertOne(table: string, id: number): Promise<void>;
  close(): Promise<void>;
}

const TABLES = (t: string) =>
  `CREATE TABLE ${t} (id integer PRIMARY KEY, title text NOT NULL, n integer NOT NULL, at text)`;

async function timeIt(body: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await body();
  return performance.now() - t0;
}

async function writeCosts(raw: Raw, kind: "sqlite" | "postgres", suffix = "") {
  const names = { plain: `plain${suffix}`, live: `live${suffix}` };
  const series =
    kind === "sqlite"
      ? (n: number, from: number) =>
          `WITH RECURSIVE g(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM g WHERE i < ${from + n - 1}) SELECT i, 'title ' || i, i, NULL FROM g`
      : (n: number, from: number) =>
          `SELECT i, 'title ' || i, i, NULL FROM generate_series(${from}, ${from + n - 1}) i`;
  const single: Record<string, number> = {};
  const many: Record<string, number> = {};
  const insertSelect: Record<string, number> = {};
  const bulk: Record<string, number> = {};
  // Alternate the two tables in small chunks so both see the same machine conditions; warm up first.
  for (const t of ["plain", "live"] as const) for (let i = 0; i < 20; i++) await raw.insertOne(names[t], 1_000_000 + i);
  const chunk = 25;
  for (let from = 0; from < SINGLE; from += chunk) {
    for (const t of ["plain", "live"] as const) {
      const ms = await timeIt(async () => {
        for (let i = from; i < from + chunk; i++) await raw.insertOne(names[t], 2_000_000 + i);
      });
      single[t] = (single[t] ?? 0) + ms;
    }
  }
  for (const t of ["plain", "live"] as const) {
    many[t] = await timeIt(async () => {
      await raw.exec("BEGIN");
      for (let i = 0; i < MANY; i++) await raw.insertOne(names[t], 6_000_000 + i);
      await raw.exec("COMMIT");
    });
  }
  for (const t of ["plain", "live"] as const) {
    insertSelect[t] = await timeIt(async () => {
      await raw.exec(`INSERT INTO ${names[t]} ${series(MANY, 1)}`);
    });
  }
  for (const t of ["plain", "live"] as const) {
    bulk[t] = await timeIt(async () => {
      await raw.exec(`UPDATE ${names[t]} SET n = n + 1 WHERE id <= ${BULK}`);
    });
  }
  return {
    singleRowCommitMs: ratio((single.plain as number) / SINGLE, (single.live as number) / SINGLE),
    manyRowsOneTransactionMs: ratio(many.plain as number, many.live as number),
    insertSelectMs: ratio(insertSelect.plain as number, insertSelect.live as number),
    bulkUpdateMs: ratio(bulk.plain as number, bulk.live as number),
  };
}

async function inProcessLatency(url: string, ledger: Ledger): Promise<number[]> {
  const db = new Kysely<{ live: { id: number; title: string; n: number; at: string | null } }>({
    dialect: createDialect(url, { onCommit: () => ledger.poke() }),
  });
  const samples: number[] = [];
  let cursor = await ledger.sync();
  const abort = new AbortController();
  const iterator = ledger.follow(cursor, { signal: abort.signal })[Symbol.asyncIterator]();
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const next = iterator.next();
    const t0 = now();
    await db
      .insertInto("live")
      .values({ id: 3_000_000 + i, title: "x", n: i, at: null })
      .execute();
    const batch = (await next).value as Fact[];
    // Commit → follower, bounded from above: from the start of the write call (the commit happens inside it) to
    // the follower holding the fact. The write itself is included, so the true latency is lower.
    samples.push(now() - t0);
    cursor = (batch[batch.length - 1] as Fact).offset;
  }
  abort.abort();
  await iterator.next();
  await db.destroy();
  return samples;
}

async function externalLatency(url: string, kind: "sqlite" | "postgres", ledger: Ledger): Promise<number[]> {
  // Another process commits rows stamped with its clock right after each commit; we stamp receipt here.
  const script =
    kind === "sqlite"
      ? `import { DatabaseSync } from "node:sqlite"; const db = new DatabaseSync(${JSON.stringify(url.replace(/^file:/, ""))});
         db.exec("PRAGMA busy_timeout = 5000"); const s = db.prepare("INSERT INTO live VALUES (?, 'x', 0, NULL)");
         const u = db.prepare("UPDATE live SET at = ? WHERE id = ?");
         for (let i = 0; i < ${EXTERNAL_SAMPLES}; i++) { s.run(4000000 + i); const t = performance.timeOrigin + performance.now(); process.stdout.write(t + "\\n"); await new Promise(r => setTimeout(r, 15)); }`
      : `import pg from "pg"; const c = new pg.Client({ connectionString: ${JSON.stringify(url)} }); await c.connect();
         for (let i = 0; i < ${EXTERNAL_SAMPLES}; i++) { await c.query("INSERT INTO live VALUES ($1, 'x', 0, NULL)", [4000000 + i]); const t = performance.timeOrigin + performance.now(); process.stdout.write(t + "\\n"); await new Promise(r => setTimeout(r, 15)); }
         await c.end();`;
  const received = new Map<number, number>();
  const committed: number[] = [];
  const start = await ledger.sync();
  const abort = new AbortController();
  const following = (async () => {
    for await (const batch of ledger.follow(start, { signal: abort.signal })) {
      const t = now();
      for (const f of batch) if (f.op === "insert") received.set(Number(f.key.id) - 4_000_000, t);
      if (received.size >= EXTERNAL_SAMPLES) break;
    }
  })();
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: join(import.meta.dirname, ".."),
  });
  let buffer = "";
  child.stdout.on("data", (d) => {
    buffer += d;
  });
  await new Promise((resolve) => child.on("exit", resolve));
  for (const line of buffer.split("\n").filter(Boolean)) committed.push(Number(line));
  await following;
  abort.abort();
  return committed.map((t, i) => Math.max(0, (received.get(i) as number) - t));
}

async function readThroughput(raw: Raw, kind: "sqlite" | "postgres", ledger: Ledger): Promise<number> {
  const from = await ledger.sync();
  const series =
    kind === "sqlite"
      ? `WITH RECURSIVE g(i) AS (SELECT 5000000 UNION ALL SELECT i + 1 FROM g WHERE i < ${5_000_000 + READ_FACTS - 1}) SELECT i, 'a title of some length ' || i, i, '2024-05-01T12:00:00Z' FROM g`
      : `SELECT i, 'a title of some length ' || i, i, '2024-05-01T12:00:00Z' FROM generate_series(5000000, ${5_000_000 + READ_FACTS - 1}) i`;
  await raw.exec(`INSERT INTO live ${series}`);
  await ledger.sync();
  const t0 = performance.now();
  let cursor = from;
  let count = 0;
  for (;;) {
    const batch = await ledger.read(cursor);
    if (batch.length === 0) break;
    count += batch.length;
    cursor = (batch[batch.length - 1] as Fact).offset;
  }
  return Math.round(count / ((performance.now() - t0) / 1000));
}

/** A backlog written while no ledger is open, then the time one ledger takes to make it readable. */
async function appendThroughput(url: string, raw: Raw): Promise<number> {
  const chunk = 10_000;
  for (let from = 7_000_000; from < 7_000_000 + APPEND_FACTS; from += chunk) {
    await raw.exec(
      `INSERT INTO live SELECT i, 'a title of some length ' || i, i, NULL FROM generate_series(${from}, ${from + chunk - 1}) i`,
    );
  }
  const t0 = performance.now();
  const ledger = await openLedger({ database: url });
  try {
    await ledger.sync();
    return Math.round(APPEND_FACTS / ((performance.now() - t0) / 1000));
  } finally {
    await ledger.close();
  }
}

async function run(
  kind: "sqlite" | "postgres",
  url: string,
  raw: Raw,
  capture?: "triggers" | "logical",
): Promise<Figures> {
  await raw.exec(`${TABLES("plain")}; ${TABLES("live")}; ${TABLES("plain_idle")}; ${TABLES("live_idle")}`);
  await install({ database: url, exclude: ["plain", "plain_idle"], capture });
  let ledger = await openLedger({ database: url });
  try {
    const costs = await writeCosts(raw, kind);
    let writerOnly: Figures["writerOnly"];
    if (capture === "logical") {
      await ledger.close();
      writerOnly = await writeCosts(raw, kind, "_idle");
      ledger = await openLedger({ database: url });
      await ledger.sync();
    }
    const inProcess = await inProcessLatency(url, ledger);
    const external = await externalLatency(url, kind, ledger);
    const read = await readThroughput(raw, kind, ledger);
    let appended: number | undefined;
    if (kind === "postgres") {
      await ledger.close();
      appended = await appendThroughput(url, raw);
      ledger = await openLedger({ database: url });
    }
    return {
      dialect: capture ? `${kind} (${capture})` : kind,
      factsAppendedPerSecond: appended,
      writerOnly,
      ...costs,
      inProcessLatencyMs: { p50: percentile(inProcess, 50), p95: percentile(inProcess, 95) },
      externalLatencyMs: { p50: percentile(external, 50), p95: percentile(external, 95) },
      factsReadPerSecond: read,
    };
  } finally {
    await ledger.close();
  }
}

async function sqlite(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-"));
  const path = join(dir, "bench.sqlite");
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000");
  const statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  const raw: Raw = {
    exec: async (sql) => db.exec(sql),
    insertOne: async (table, id) => {
      let s = statements.get(table);
      if (!s) {
        s = db.prepare(`INSERT INTO ${table} VALUES (?, 'title', 1, NULL)`);
        statements.set(table, s);
      }
      s.run(id);
    },
    close: async () => db.close(),
  };
  try {
    return await run("sqlite", `file:${path}`, raw);
  } finally {
    await raw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgres(capture: "triggers" | "logical"): Promise<Figures | { dialect: string; skipped: string }> {
  const name = `upkeep_bench_${capture}_${process.pid}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await admin.connect();
  } catch (error) {
    return { dialect: `postgres (${capture})`, skipped: `no server at ${ADMIN_URL}: ${(error as Error).message}` };
  }
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const raw: Raw = {
    exec: async (sql) => {
      await client.query(sql);
    },
    insertOne: async (table, id) => {
      await client.query({
        name: `ins_${table}`,
        text: `INSERT INTO ${table} VALUES ($1, 'title', 1, NULL)`,
        values: [id],
      });
    },
    close: async () => client.end(),
  };
  try {
    return await run("postgres", url.toString(), raw, capture);
  } catch (error) {
    return { dialect: `postgres (${capture})`, skipped: (error as Error).message.split("\n")[0] as string };
  } finally {
    await raw.close();
    await uninstall({ database: url.toString() }).catch(() => {}); // drops the replication slot
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

const only = process.argv.slice(2);
const results = [
  ...(only.length === 0 || only.includes("sqlite") ? [await sqlite()] : []),
  ...(only.length === 0 || only.includes("triggers") ? [await postgres("triggers")] : []),
  ...(only.length === 0 || only.includes("logical") ? [await postgres("logical")] : []),
];
const rows: string[][] = [["figure", ...results.map((r) => r.dialect), "aim"]];
const cell = (r: (typeof results)[number], f: (x: Figures) => string) => ("skipped" in r ? "skipped" : f(r));
const line = (label: string, aim: string, f: (x: Figures) => string) =>
  rows.push([label, ...results.map((r) => cell(r, f)), aim]);
const r3 = (r: Ratio) => `${r.with} ms vs ${r.without} ms = ${r.ratio}×`;
line(`single-row commit (${SINGLE}), per commit`, "≤ 1.25× (logical ≤ 1.10×)", (x) => r3(x.singleRowCommitMs));
line(`${MANY} single-row INSERTs in one transaction`, "≤ 3× (logical ≤ 1.10×)", (x) => r3(x.manyRowsOneTransactionMs));
line(`one INSERT … SELECT of ${MANY} rows`, "≤ 3× (logical ≤ 1.10×)", (x) => r3(x.insertSelectMs));
line(`bulk UPDATE of ${BULK} rows`, "≤ 3× (logical ≤ 1.10×)", (x) => r3(x.bulkUpdateMs));
const idle = (f: (w: NonNullable<Figures["writerOnly"]>) => Ratio) => (x: Figures) =>
  x.writerOnly ? r3(f(x.writerOnly)) : "—";
line(
  "  same, no process consuming: single-row commit",
  "≤ 1.10×",
  idle((w) => w.singleRowCommitMs),
);
line(
  "  same, no process consuming: 10000 INSERTs in one tx",
  "≤ 1.10×",
  idle((w) => w.manyRowsOneTransactionMs),
);
line(
  "  same, no process consuming: INSERT … SELECT",
  "≤ 1.10×",
  idle((w) => w.insertSelectMs),
);
line(
  "  same, no process consuming: bulk UPDATE",
  "≤ 1.10×",
  idle((w) => w.bulkUpdateMs),
);
line(
  "commit→follower, in-process p50/p95",
  "p95 ≤ 5 ms",
  (x) => `${x.inProcessLatencyMs.p50} / ${x.inProcessLatencyMs.p95} ms`,
);
line(
  "commit→follower, external p50/p95",
  "p95 ≤ 60 ms (logical ≤ 10 ms)",
  (x) => `${x.externalLatencyMs.p50} / ${x.externalLatencyMs.p95} ms`,
);
line("facts read and decoded per second", "≥ 50,000", (x) => x.factsReadPerSecond.toLocaleString("en-US"));
line(`facts made readable per second from a ${APPEND_FACTS.toLocaleString("en-US")}-fact backlog`, "≥ 50,000", (x) =>
  x.factsAppendedPerSecond === undefined ? "—" : x.factsAppendedPerSecond.toLocaleString("en-US"),
);
const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length))) as number[];
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => c.padEnd(widths[j] as number)).join(" | "));
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
}
const out = new URL("./results/ledger.json", import.meta.url).pathname;
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, results }, null, 2)}\n`);
console.log(`\nwrote ${out}`);
