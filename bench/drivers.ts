// `npm run bench -- drivers [--statements 20000] [--gets 2000] [--rounds 3] [--drivers node:sqlite,better-sqlite3,pg]`: what capture at the driver costs, per
// driver (node:sqlite, better-sqlite3, pg), against the same app without Upkeep, in the same run.
//
// Each round runs in a child process of its own (a driver module, once captured, stays captured), with Upkeep
// running in it throughout; the plain figures are taken before the driver is captured; the median round is reported:
//   - plain: the statement through the bare driver (and plain in a render: the same inside a live render's async
//     context, the driver not captured, which is what a live render costs without capture at the driver);
//   - outside: the same after upkeep.capture(driver), outside any live render (what every POST, job and script pays);
//   - inside: the same inside a live render's capture (parse cached, analysis, recording), ten statements a page;
//   - get plain / get live: GET of a page reading 50 rows through the driver, served by the app without Upkeep and
//     by the app with Upkeep's middleware and the driver captured (a live GET: capture, registration, live marker).
//   - the capture path alone: recording a statement seen before (parsed and analysed once), on its 50 rows;
//   - the same page read through upkeep.db() (Kysely), plain and live: the live GET's cost without any driver capture.
// The capture cost per statement is inside − plain in a render; a live GET's cost is get live / get plain.
import { fork } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sqlite from "node:sqlite";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { Hono } from "hono";
import { html } from "hono/html";
import { Kysely } from "kysely";
import pg from "pg";
import { createCapture, runWithCapture } from "../src/capture/context.ts";
import { hostFor, recordSync } from "../src/capture/drivers/host.ts";
import { upkeepMiddleware } from "../src/hono/index.ts";
import { createUpkeep } from "../src/index.ts";
import { createDialect } from "../src/ledger/dialect.ts";
import { createTestDatabase } from "../test/support/postgres.ts";
import { round } from "./support/stats.ts";

const SECRET = "upkeep-bench-secret-at-least-32-characters-long";
const MODES = [
  "plain",
  "plain-in-render",
  "outside",
  "inside",
  "record",
  "get-plain",
  "get-live",
  "get-kysely-plain",
  "get-kysely-live",
] as const;
type Mode = (typeof MODES)[number];
type DriverName = "node:sqlite" | "better-sqlite3" | "pg";

const { values: args } = parseArgs({
  options: {
    statements: { type: "string", default: "20000" },
    gets: { type: "string", default: "2000" },
    rounds: { type: "string", default: "3" },
    drivers: { type: "string", default: "node:sqlite,better-sqlite3,pg" },
    child: { type: "string" },
    database: { type: "string" },
  },
});

interface Sender {
  module: unknown;
  all(sql: string, params: unknown[]): Promise<unknown[]>;
  close(): Promise<void>;
}

function open(driver: DriverName, database: string): Sender {
  if (driver === "pg") {
    const pool = new pg.Pool({ connectionString: database, max: 1 });
    const text = (sql: string) => {
      let i = 0;
      return sql.replace(/\?/g, () => `$${++i}`);
    };
    return {
      module: pg,
      all: async (sql, params) => (await pool.query(text(sql), params)).rows,
      close: () => pool.end(),
    };
  }
  const path = database.slice("file:".length);
  if (driver === "node:sqlite") {
    const db = new sqlite.DatabaseSync(path);
    return {
      module: sqlite,
      all: async (sql, params) => db.prepare(sql).all(...(params as never[])),
      close: async () => db.close(),
    };
  }
  const db = new Database(path);
  return {
    module: Database,
    all: async (sql, params) => db.prepare(sql).all(...params),
    close: async () => {
      db.close();
    },
  };
}

const READ = "select id, title from items where list = ? order by pos, id";

/**
 * One round in one process, with Upkeep running throughout (its follower and ledger are background work of every
 * mode alike): the plain figures before the driver is captured, then the captured ones.
 */
async function child(driver: DriverName, database: string): Promise<Record<Mode, number>> {
  const send = open(driver, database);
  const upkeep = await createUpkeep({ database, secret: SECRET, mode: "production" });
  const statements = Number(args.statements);
  const gets = Number(args.gets);
  const page = async (inside: boolean) => {
    const ten = async () => {
      for (let j = 0; j < 10; j++) await send.all(READ, ["a"]);
    };
    if (inside) await runWithCapture(createCapture("/bench"), ten);
    else await ten();
  };
  const perStatement = async (inside: boolean) => {
    for (let i = 0; i < Math.min(2000, statements); i += 10) await page(inside); // warm: caches, JIT
    const start = process.hrtime.bigint();
    for (let i = 0; i < statements; i += 10) await page(inside);
    return Number(process.hrtime.bigint() - start) / 1000 / statements;
  };
  const plainKysely = new Kysely<any>({ dialect: createDialect(database) });
  const app = (live: boolean, kysely = false) => {
    const hono = new Hono();
    if (live) hono.use(upkeepMiddleware(upkeep));
    const through = live ? upkeep.db<any>() : plainKysely;
    hono.get("/lists/:list", async (c) => {
      const rows = kysely
        ? await through
            .selectFrom("items")
            .select(["id", "title"])
            .where("list", "=", c.req.param("list"))
            .orderBy("pos")
            .orderBy("id")
            .execute()
        : ((await send.all(READ, [c.req.param("list")])) as { id: number; title: string }[]);
      return c.html(
        html`<!doctype html><html><body><ul id="items">${rows.map((r) => html`<li id="item_${r.id}">${r.title}</li>`)}</ul></body></html>`,
      );
    });
    return hono;
  };
  const perGet = async (live: boolean, kysely = false) => {
    const hono = app(live, kysely);
    const get = async () => {
      const response = await hono.fetch(new Request("http://localhost/lists/a", { headers: { accept: "text/html" } }));
      await response.text();
    };
    for (let i = 0; i < Math.min(200, gets); i++) await get();
    const start = process.hrtime.bigint();
    for (let i = 0; i < gets; i++) await get();
    return Number(process.hrtime.bigint() - start) / 1000 / gets;
  };
  try {
    const plain = await perStatement(false);
    const plainInRender = await perStatement(true);
    const getPlain = await perGet(false);
    const getKyselyPlain = await perGet(false, true);
    const getKyselyLive = await perGet(true, true);
    upkeep.capture(send.module);
    const outside = await perStatement(false);
    const inside = await perStatement(true);
    const getLive = await perGet(true);
    return {
      plain,
      "plain-in-render": plainInRender,
      outside,
      inside,
      record: recordPath(driver, send),
      "get-plain": getPlain,
      "get-live": getLive,
      "get-kysely-plain": getKyselyPlain,
      "get-kysely-live": getKyselyLive,
    };
  } finally {
    await plainKysely.destroy();
    await upkeep.close();
    await send.close();
  }
}

/**
 * The capture path alone, for a statement seen before (parse and dependency cached): what a captured read adds to
 * the driver's own work, without the driver's time and its noise. Measured on the rows the page's read returns.
 */
function recordPath(driver: DriverName, _send: Sender): number {
  const host = hostFor(driver === "pg" ? "postgres" : "sqlite");
  if (!host) return Number.NaN;
  const rows = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, title: `item ${i}` }));
  const statement = {
    sql: driver === "pg" ? "select id, title from items where list = $1 order by pos, id" : READ,
    params: ["a"],
    rows,
  };
  const n = 50_000;
  let capture = createCapture("/bench");
  for (let i = 0; i < 5_000; i++) recordSync(capture.root, host, statement); // warm
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) capture = createCapture("/bench");
    recordSync(capture.root, host, statement);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / n;
}

function runChild(driver: DriverName, database: string): Promise<Record<Mode, number>> {
  return new Promise((resolve, reject) => {
    const argv = ["--child", driver, "--database", database];
    argv.push("--statements", String(args.statements), "--gets", String(args.gets));
    const p = fork(new URL(import.meta.url).pathname, argv, { execArgv: ["--import", "tsx"] });
    p.on("message", (m) => resolve(m as Record<Mode, number>));
    p.on("exit", (code) => (code === 0 ? undefined : reject(new Error(`${driver} exited ${code}`))));
  });
}

async function prepare(driver: DriverName): Promise<{ database: string; drop(): Promise<void> } | null> {
  const rows = Array.from({ length: 50 }, (_, i) => `('a', 'item ${i}', ${i})`).join(", ");
  if (driver === "pg") {
    const created = await createTestDatabase("upkeep_bench_drivers");
    if (!created.url) return null;
    const client = new pg.Client({ connectionString: created.url });
    await client.connect();
    await client.query(
      "create table items (id serial primary key, list text not null, title text not null, pos integer not null)",
    );
    await client.query(`insert into items (list, title, pos) values ${rows}`);
    await client.end();
    const upkeep = await createUpkeep({
      database: created.url,
      secret: SECRET,
      mode: "production",
      install: true,
      capture: "triggers",
    });
    await upkeep.close();
    return { database: created.url, drop: () => created.drop() };
  }
  const path = join(mkdtempSync(join(tmpdir(), "upkeep-bench-drivers-")), "app.sqlite");
  const db = new sqlite.DatabaseSync(path);
  db.exec(
    "pragma journal_mode = wal; create table items (id integer primary key, list text not null, title text not null, pos integer not null)",
  );
  db.exec(`insert into items (list, title, pos) values ${rows}`);
  db.close();
  const upkeep = await createUpkeep({ database: `file:${path}`, secret: SECRET, mode: "production", install: true });
  await upkeep.close();
  return { database: `file:${path}`, drop: async () => {} };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  if (args.child) {
    process.send?.(await child(args.child as DriverName, args.database as string));
    return;
  }
  const results: Record<string, unknown>[] = [];
  for (const driver of String(args.drivers).split(",") as DriverName[]) {
    const db = await prepare(driver);
    if (!db) {
      console.log(`${driver}: skipped (no PostgreSQL)`);
      continue;
    }
    const samples = Object.fromEntries(MODES.map((mode) => [mode, [] as number[]])) as Record<Mode, number[]>;
    for (let r = 0; r < Number(args.rounds); r++) {
      const round = await runChild(driver, db.database);
      for (const mode of MODES) samples[mode].push(round[mode]);
    }
    await db.drop();
    const m = Object.fromEntries(MODES.map((mode) => [mode, median(samples[mode])])) as Record<Mode, number>;
    const row = {
      driver,
      statementUs: round(m.plain),
      outsideOverheadUs: round(m.outside - m.plain),
      captureCostUs: round(m.inside - m["plain-in-render"]),
      recordPathUs: round(m.record),
      getPlainUs: round(m["get-plain"], 1),
      getLiveUs: round(m["get-live"], 1),
      getRatio: round(m["get-live"] / m["get-plain"], 3),
      kyselyGetPlainUs: round(m["get-kysely-plain"], 1),
      kyselyGetLiveUs: round(m["get-kysely-live"], 1),
      kyselyGetRatio: round(m["get-kysely-live"] / m["get-kysely-plain"], 3),
    };
    results.push(row);
    console.log(
      `${driver}: statement ${row.statementUs} µs; captured, outside a render +${row.outsideOverheadUs} µs; inside a live render +${row.captureCostUs} µs (the capture path alone ${row.recordPathUs} µs); GET plain ${row.getPlainUs} µs, live ${row.getLiveUs} µs (×${row.getRatio}); through upkeep.db(): plain ${row.kyselyGetPlainUs} µs, live ${row.kyselyGetLiveUs} µs (×${row.kyselyGetRatio})`,
    );
  }
  const dir = new URL("./results/", import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "drivers.json"), `${JSON.stringify({ args, results }, null, 2)}\n`);
}

await main();
