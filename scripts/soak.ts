// `npm run soak -- --minutes 10 [--dialect sqlite|postgres]`: the fault model under load, on loopback only.
//
// Four writers hit one database: the app process (its own writes through Upkeep), the system shell (`sqlite3` or
// `psql`), another service with its own driver (this process, through node:sqlite or pg), and bulk statements from
// the shell. The app is killed with SIGKILL every `--kill-every` seconds and restarted; it prunes the ledger every
// few seconds (short retention). Live clients (real WebSockets applying patches to the DOM oracle) resume after
// each restart. Every `--check-every` seconds the writers pause and every client's DOM is compared with a fresh GET:
//   stalls       — a client that had not converged 2 s after the writers paused (the app up);
//   lost updates — a client that had not converged after 10 s (its page stays wrong);
//   failed writes — a writer's statement that failed (other than the app's own in-flight writes when it is killed).
// Each must be 0; the run exits non-zero otherwise.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import pg from "pg";
import { WebSocket } from "ws";
import { WIRE } from "../src/constants.ts";
import { normalizeBody, PatchedDocument } from "../src/testing/index.ts";
import { createTestDatabase } from "../test/support/postgres.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    dialect: { type: "string", default: "sqlite" },
    port: { type: "string", default: "3917" },
    "kill-every": { type: "string", default: "20" },
    "check-every": { type: "string", default: "15" },
  },
});
const minutes = Number(values.minutes);
const dialect = values.dialect === "postgres" ? "postgres" : "sqlite";
const port = Number(values.port);
const killEveryMs = Number(values["kill-every"]) * 1000;
const checkEveryMs = Number(values["check-every"]) * 1000;
const RETENTION_MS = 3000;
const BOARDS = ["a", "b", "c", "d"];
const base = `http://127.0.0.1:${port}`;
const root = new URL("..", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const totals = {
  writes: { app: 0, shell: 0, service: 0, bulk: 0 },
  failedWrites: 0,
  restarts: 0,
  patches: 0,
  reloads: 0,
  resumes: 0,
  checks: 0,
  stalls: 0,
  lost: 0,
  slowestConvergeMs: 0,
};
const failures: string[] = [];

// ── the database ───────────────────────────────────────────────────────────────────────────────────────────

const SCHEMA =
  "create table cards (id integer primary key, board text not null, title text not null, pos integer not null)";
let url: string;
let cleanup: () => Promise<void>;
let service: { exec(sql: string, params: unknown[]): Promise<void>; close(): Promise<void> };
let shellCommand: (sql: string) => [string, string[]];

if (dialect === "sqlite") {
  const dir = mkdtempSync(join(tmpdir(), "upkeep-soak-"));
  const path = join(dir, "soak.sqlite");
  url = `file:${path}`;
  const db = new DatabaseSync(path);
  db.exec("pragma busy_timeout = 10000; pragma journal_mode = wal");
  db.exec(SCHEMA);
  service = {
    exec: async (sql, params) => {
      db.prepare(sql).run(...(params as never[]));
    },
    close: async () => db.close(),
  };
  shellCommand = (sql) => ["/usr/bin/sqlite3", ["-cmd", ".timeout 10000", path, sql]];
  cleanup = async () => rmSync(dir, { recursive: true, force: true });
} else {
  const database = await createTestDatabase("upkeep_soak");
  if (!database.url) throw new Error(`PostgreSQL is not reachable: ${database.reason}`);
  url = database.url;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(SCHEMA);
  service = {
    exec: async (sql, params) => {
      let i = 0;
      await client.query(
        sql.replace(/\?/g, () => `$${++i}`),
        params,
      );
    },
    close: () => client.end(),
  };
  shellCommand = (sql) => ["psql", ["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]];
  cleanup = () => database.drop();
}
for (let id = 1; id <= 40; id++) {
  await service.exec("insert into cards (id, board, title, pos) values (?, ?, ?, ?)", [
    id,
    BOARDS[id % BOARDS.length],
    `card-${id}`,
    id % 7,
  ]);
}

// ── the app process ────────────────────────────────────────────────────────────────────────────────────────

let app: ChildProcess | null = null;
let appUp = false;

async function startApp(): Promise<void> {
  const child = spawn(process.execPath, [join(root, "scripts/soak/app.ts"), url, String(port), String(RETENTION_MS)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  app = child;
  await new Promise<void>((resolve, reject) => {
    let buffer = "";
    child.stdout?.on("data", (chunk) => {
      buffer += String(chunk);
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
        try {
          const message = JSON.parse(line);
          if (message.ready) resolve();
          if (message.writeFailed) {
            totals.failedWrites++;
            failures.push(`app write failed: ${message.writeFailed}`);
          }
        } catch {
          // a log line
        }
      }
    });
    child.once("exit", (code, signal) => {
      if (app === child) appUp = false;
      reject(new Error(`app exited (${code ?? signal}) before it was ready`));
    });
  });
  appUp = true;
}

async function killApp(): Promise<void> {
  const child = app;
  if (!child) return;
  appUp = false;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
  totals.restarts++;
}

// ── writers ────────────────────────────────────────────────────────────────────────────────────────────────

let paused = false;
let running = true;
let inFlight = 0;
let nextId = 1000;
const random = (n: number) => Math.floor(Math.random() * n);

async function serviceWriter(): Promise<void> {
  while (running) {
    if (!paused) {
      inFlight++;
      try {
        const roll = random(10);
        if (roll < 6) {
          await service.exec("update cards set title = ?, pos = ? where id = ?", [
            `svc-${random(1e6)}`,
            random(9),
            1 + random(40),
          ]);
        } else if (roll < 8) {
          await service.exec("update cards set board = ? where id = ?", [BOARDS[random(4)], 1 + random(40)]);
        } else if (roll < 9) {
          await service.exec("insert into cards (id, board, title, pos) values (?, ?, ?, ?)", [
            nextId++,
            BOARDS[random(4)],
            "new",
            random(9),
          ]);
        } else {
          // One row at a time: two multi-row statements locking rows in different orders deadlock with or
          // without Upkeep, and this run counts only failures Upkeep could cause.
          await service.exec("delete from cards where id = ?", [nextId - 1 - random(5)]);
        }
        totals.writes.service++;
      } catch (error) {
        totals.failedWrites++;
        failures.push(`service write failed: ${(error as Error).message}`);
      } finally {
        inFlight--;
      }
    }
    await sleep(25);
  }
}

function shell(sql: string): Promise<void> {
  const [command, args] = shellCommand(sql);
  return new Promise((resolve) => {
    inFlight++;
    execFile(command, args, { timeout: 30_000 }, (error, _stdout, stderr) => {
      inFlight--;
      if (error) {
        totals.failedWrites++;
        failures.push(`shell write failed: ${stderr || error.message}`);
      }
      resolve();
    });
  });
}

async function shellWriter(): Promise<void> {
  while (running) {
    if (!paused) {
      const id = 1 + random(40);
      if (random(4) === 0) {
        // A bulk statement: one fact per row.
        await shell(`update cards set pos = (pos + 1) % 9 where board = '${BOARDS[random(4)]}'`);
        totals.writes.bulk++;
      } else {
        await shell(`update cards set title = 'sh-${random(1e6)}' where id = ${id}`);
        totals.writes.shell++;
      }
    }
    await sleep(200);
  }
}

// ── live clients ───────────────────────────────────────────────────────────────────────────────────────────

const attribute = (html: string, name: string) => new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] ?? "";

class Client {
  readonly board: string;
  /** "boards" (the page replayed whole) or "framed" (the same cards as a collection and a count fragment). */
  readonly path: string;
  readonly id: string;
  doc: PatchedDocument | null = null;
  #token = "";
  #incarnation = "";
  #offset = 0;
  #ws: WebSocket | null = null;
  #loading = false;

  constructor(board: string, n: number) {
    this.board = board;
    this.path = n % 2 === 0 ? "framed" : "boards";
    this.id = `${this.path}/${board}-${n}`;
  }

  /** A fresh GET: the page a browser loads (at start, and after a reload message). */
  async load(): Promise<void> {
    if (this.#loading) return;
    this.#loading = true;
    try {
      for (;;) {
        try {
          const response = await fetch(`${base}/${this.path}/${this.board}`, { headers: { accept: "text/html" } });
          const html = await response.text();
          if (response.status !== 200) throw new Error(`status ${response.status}`);
          this.doc = new PatchedDocument(html);
          this.#token = attribute(html, WIRE.tokenAttr);
          this.#offset = Number(attribute(html, WIRE.offsetAttr));
          this.#incarnation = attribute(html, WIRE.incarnationAttr);
          break;
        } catch {
          await sleep(200); // the app is down: retry
        }
      }
    } finally {
      this.#loading = false;
    }
    this.#connect();
  }

  #connect(): void {
    this.#drop();
    const ws = new WebSocket(`ws://127.0.0.1:${port}${WIRE.socketPath}`);
    this.#ws = ws;
    ws.on("open", () => {
      ws.send(
        JSON.stringify({
          type: WIRE.msg.subscribe,
          id: this.id,
          token: this.#token,
          offset: this.#offset,
          incarnation: this.#incarnation,
        }),
      );
    });
    ws.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.type === WIRE.msg.patch) {
        this.doc?.apply(message.html);
        this.#offset = message.offset;
        totals.patches++;
      } else if (message.type === WIRE.msg.reload) {
        totals.reloads++;
        void this.load();
      } else if (message.type === WIRE.msg.error) {
        failures.push(`client ${this.id} error: ${message.code} ${message.message}`);
      }
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      if (this.#ws !== ws || !running) return;
      // The app went away: resume from the last applied offset once it is back.
      totals.resumes++;
      setTimeout(() => {
        if (this.#ws === ws && running) this.#connect();
      }, 200 + random(300));
    });
  }

  close(): void {
    this.#drop();
  }

  #drop(): void {
    const ws = this.#ws;
    if (!ws) return;
    ws.removeAllListeners();
    ws.on("error", () => {}); // terminating a socket still connecting emits one
    ws.terminate();
  }
}

// ── checks ─────────────────────────────────────────────────────────────────────────────────────────────────

async function freshBody(page: string): Promise<string | null> {
  try {
    const response = await fetch(`${base}/${page}`, { headers: { accept: "text/html" } });
    return response.status === 200 ? normalizeBody(await response.text()) : null;
  } catch {
    return null;
  }
}

async function check(clients: Client[]): Promise<void> {
  paused = true;
  while (inFlight > 0) await sleep(10);
  while (!appUp) await sleep(50);
  const start = Date.now();
  let pending = clients;
  while (pending.length > 0 && Date.now() - start < 10_000) {
    const fresh = new Map<string, string | null>();
    for (const c of pending) {
      const page = `${c.path}/${c.board}`;
      if (!fresh.has(page)) fresh.set(page, await freshBody(page));
    }
    pending = pending.filter((c) => !c.doc || c.doc.body() !== fresh.get(`${c.path}/${c.board}`));
    if (pending.length > 0) await sleep(100);
  }
  const took = Date.now() - start;
  totals.checks++;
  totals.slowestConvergeMs = Math.max(totals.slowestConvergeMs, pending.length === 0 ? took : 10_000);
  if (took > 2000) totals.stalls++;
  if (pending.length > 0) {
    totals.lost += pending.length;
    for (const c of pending) failures.push(`client ${c.id} did not converge within 10 s`);
  }
  paused = false;
}

// ── the run ────────────────────────────────────────────────────────────────────────────────────────────────

const startedAt = Date.now();
const endAt = startedAt + minutes * 60_000;
await startApp();
const clients = BOARDS.flatMap((board) => [new Client(board, 1), new Client(board, 2)]);
await Promise.all(clients.map((c) => c.load()));
const writers = [serviceWriter(), shellWriter()];
let nextKill = Date.now() + killEveryMs;
let nextCheck = Date.now() + checkEveryMs;
console.log(
  `soak: ${dialect}, ${minutes} min, app killed every ${killEveryMs / 1000} s, checks every ${checkEveryMs / 1000} s`,
);
while (Date.now() < endAt) {
  await sleep(100);
  if (Date.now() >= nextKill) {
    await killApp();
    await sleep(300 + random(700));
    await startApp();
    nextKill = Date.now() + killEveryMs;
  }
  if (Date.now() >= nextCheck) {
    await check(clients);
    nextCheck = Date.now() + checkEveryMs;
  }
}
await check(clients);
running = false;
await Promise.all(writers);
for (const c of clients) c.close();
await killApp();
await service.close();
await cleanup();

totals.writes.app = -1; // counted inside the app process; not reported across restarts
console.log(
  JSON.stringify(
    {
      dialect,
      minutes,
      writes: { service: totals.writes.service, shell: totals.writes.shell, bulk: totals.writes.bulk },
      restarts: totals.restarts,
      checks: totals.checks,
      patches: totals.patches,
      reloads: totals.reloads,
      resumes: totals.resumes,
      slowestConvergeMs: totals.slowestConvergeMs,
    },
    null,
    2,
  ),
);
console.log(`lost updates: ${totals.lost}`);
console.log(`stalls longer than 2 s: ${totals.stalls}`);
console.log(`failed user writes: ${totals.failedWrites}`);
for (const failure of failures.slice(0, 20)) console.log(`  ${failure}`);
process.exit(totals.lost + totals.stalls + totals.failedWrites === 0 ? 0 : 1);
