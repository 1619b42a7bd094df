// What a cell runs against: its database (a temporary SQLite file or a fresh PostgreSQL database), a second
// connection of the test process and a database shell (sqlite3 / psql, another process) to write through, and the
// app's server as a child process that can be killed and started again on the same database and port.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openRaw, type RawConnection } from "../../demo/schema.ts";
import { createTestDatabase } from "../support/postgres.ts";
import type { Settled } from "./app/harness.ts";
import { SETTLE_PATH, WRITE_PATH } from "./app/harness.ts";
import type { AppKit, Dialect, Step } from "./app/kit.ts";
import type { Cell } from "./stack.ts";

const root = new URL("../../", import.meta.url).pathname;
export const SQLITE3 = process.env.UPKEEP_SQLITE3 ?? "/usr/bin/sqlite3";
export const PSQL = process.env.UPKEEP_PSQL ?? "/usr/bin/psql";

export interface CellDatabase {
  readonly dialect: Dialect;
  readonly url: string;
  /** The test process's own connection (not the app's): raw SQL, as another service would write. */
  readonly raw: RawConnection;
  /** Runs a SQL script in the database's shell, a process of its own; rejects with the shell's output on failure. */
  shell(script: string): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function openDatabase(cell: Cell, kit: AppKit): Promise<CellDatabase> {
  let url: string;
  let drop: () => Promise<void>;
  if (cell.capture === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "upkeep-convergence-"));
    url = `file:${join(dir, "app.sqlite")}`;
    drop = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const database = await createTestDatabase("upkeep_convergence");
    if (!database.url) throw new Error(database.reason);
    url = database.url;
    drop = database.drop;
  }
  const dialect: Dialect = cell.capture === "sqlite" ? "sqlite" : "postgres";
  const raw = await openRaw(url);
  await kit.createSchema(raw);
  await kit.resetToSeed(raw);
  return {
    dialect,
    url,
    raw,
    shell: (script) =>
      dialect === "sqlite"
        ? run(SQLITE3, ["-bail", url.slice("file:".length)], `.timeout 10000\n${script}\n`)
        : run(PSQL, ["-X", "-q", "-v", "ON_ERROR_STOP=1", url], `${script}\n`),
    reset: () => kit.resetToSeed(raw),
    async close() {
      await raw.close();
      await drop();
    },
  };
}

/** Runs a program with `input` on its standard input; rejects with what it printed when it fails. */
function run(program: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${program} exited ${code}: ${output}\n--- script:\n${input}`)),
    );
    child.stdin.end(input);
  });
}

// ── HTTP without a connection pool: the server is killed and started again, and pooled sockets would outlive it ──

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export function http(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? "GET", headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
          }
          resolve({ status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

// ── the app's server ─────────────────────────────────────────────────────────────────────────────────────────

export interface AppServer {
  readonly url: string;
  readonly port: number;
  /** Everything the server printed (all its lives), for failure messages. */
  output(): string;
  /** Waits until every committed fact is planned and its renders sent; what each subscription was brought to. */
  settle(): Promise<Settled>;
  /** Runs a step through the app's own POST route. */
  write(step: Step): Promise<void>;
  /** SIGKILL, no clean-up: the crash a restart must survive. */
  kill(): Promise<void>;
  /** Starts it again on the same database and port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startServer(
  cell: Cell,
  database: CellDatabase,
  options: { fault?: string; port?: number } = {},
): Promise<AppServer> {
  const port = options.port ?? (await freePort());
  let output = "";
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const env = {
    ...process.env,
    CONVERGENCE_ADAPTER: cell.adapter,
    DATABASE_URL: database.url,
    CONVERGENCE_FRAMES: cell.rendering === "page" ? "0" : "1",
    ...(cell.capture === "postgres-logical" ? { CONVERGENCE_CAPTURE: "logical" } : {}),
    ...(cell.capture === "postgres-triggers" ? { CONVERGENCE_CAPTURE: "triggers" } : {}),
    ...(options.fault ? { CONVERGENCE_FAULT: options.fault } : {}),
    PORT: String(port),
    NODE_ENV: "test",
  };
  const launch = async () => {
    const started = spawn(process.execPath, [join(root, "test/convergence/app/server.ts")], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    exited = new Promise<void>((resolve) => started.once("exit", () => resolve()));
    output += `--- server started (pid ${started.pid})\n`;
    await new Promise<void>((resolve, reject) => {
      let seen = "";
      started.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        seen += chunk.toString();
        if (/listening on /.test(seen)) resolve();
      });
      started.stderr!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      started.once("exit", (code, signal) =>
        reject(new Error(`the app's server exited (${code ?? signal}) before listening:\n${output.slice(-4000)}`)),
      );
    });
  };
  const end = async (signal: NodeJS.Signals) => {
    const running = child;
    if (running && running.exitCode === null && running.signalCode === null) running.kill(signal);
    await exited;
    child = null;
  };
  await launch();
  const url = `http://127.0.0.1:${port}`;
  const json = async (path: string, init: { method?: string; body?: string } = {}) => {
    const response = await http(url + path, {
      ...init,
      headers: { accept: "application/json", "content-type": "application/json" },
    });
    if (response.status !== 200)
      throw new Error(`${init.method ?? "GET"} ${path} answered ${response.status}: ${response.text.slice(0, 2000)}`);
    return JSON.parse(response.text);
  };
  return {
    url,
    port,
    output: () => output,
    settle: () => json(SETTLE_PATH),
    async write(step) {
      await json(WRITE_PATH, { method: "POST", body: JSON.stringify(step) });
    },
    kill: () => end("SIGKILL"),
    async restart() {
      await end("SIGKILL");
      await launch();
    },
    stop: () => end("SIGTERM"),
  };
}

/** A port nobody listens on right now (the server keeps it across restarts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
