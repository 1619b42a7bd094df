// `npm run bench -- props [--clients 100] [--writes 30] [--debounce 300]`: live Inertia props against the SPA demo
// board (demo/spa/app.ts), whose columns are props of their own and whose shared `viewer` prop reads each viewer's
// cookie (so every client is its own page group).
//
// One server child process (so its CPU is measured apart from the clients) serves, on one SQLite file:
//   - upkeep: the Inertia app with Upkeep; every write pushes the changed props to the clients that show them;
//   - identifier broadcast (the design Upkeep replaces): the plain Inertia app; after every form post the server
//     broadcasts the board's identifier ("Board:1/cards") to every client over a WebSocket; each client debounces it
//     (--debounce ms, 300 as in that design) and then makes one partial reload (`only: todo, doing, done`) with its
//     own cookie, as `router.reload({ only })` does.
// Per mode, for `clients` clients and `writes` renames of card 1: write → every client holds the new value (p50/p95),
// server CPU per write, prop values sent per write and bytes per write. The same run also measures the broadcast
// design without its debounce, to show what the debounce alone costs in latency. JSON copy in bench/results/props.json.
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { WebSocket, WebSocketServer } from "ws";
import { prepareDemoDatabase } from "../demo/schema.ts";
import { createSpaApp, SPA_PREFIX } from "../demo/spa/app.ts";
import { WIRE } from "../src/constants.ts";
import type { ServerMessage } from "../src/deliver/types.ts";
import { upkeepMiddleware } from "../src/hono/index.ts";
import { createUpkeep } from "../src/index.ts";
import { percentile, round } from "./support/stats.ts";

const SECRET = "upkeep-bench-secret-at-least-32-characters-long";
const PAGE = `${SPA_PREFIX}/boards/1`;
const BROADCAST_PATH = "/broadcast";
const RELOADED = ["todo", "doing", "done"];

type ServerRequest = { type: "cpu" } | { type: "stats" } | { type: "reset" };
type ServerReply =
  | { type: "ready"; live: number; plain: number }
  | { type: "cpu"; user: number; system: number }
  | { type: "stats"; messages: number; bytes: number; pushed: number; plainBytes: number; plainReloads: number }
  | { type: "reset" };

async function runServer(database: string): Promise<void> {
  const upkeep = await createUpkeep({ database, secret: SECRET, mode: "production", install: true });
  const live = new Hono();
  live.use(upkeepMiddleware(upkeep));
  live.route(SPA_PREFIX, createSpaApp(upkeep).app);
  const served = await upkeep.serve(live, { port: 0, hostname: "127.0.0.1" });

  // The identifier-broadcast design: the plain Inertia app, an identifier to every client after every form post.
  const plain = new Hono();
  plain.route(SPA_PREFIX, createSpaApp(upkeep).app);
  const broadcast = new WebSocketServer({ noServer: true });
  let plainBytes = 0;
  let plainReloads = 0;
  const plainServer = await new Promise<Server>((resolve) => {
    const s = serve(
      {
        fetch: async (request: Request) => {
          const response = await plain.fetch(request);
          if (request.method !== "GET") {
            for (const client of broadcast.clients) client.send("Board:1/cards");
          } else if (request.headers.get("x-inertia-partial-data")) {
            const body = await response.text();
            plainBytes += Buffer.byteLength(body);
            plainReloads++;
            return new Response(body, response);
          }
          return response;
        },
        port: 0,
        hostname: "127.0.0.1",
      },
      () => resolve(s as Server),
    ) as Server;
  });
  plainServer.on("upgrade", (request, socket, head) => {
    if (request.url !== BROADCAST_PATH) return socket.destroy();
    broadcast.handleUpgrade(request, socket, head, (ws) => broadcast.emit("connection", ws));
  });
  process.on("SIGINT", () => process.exit(0));
  process.on("message", (message: ServerRequest) => {
    if (message.type === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send!({ type: "cpu", user, system } satisfies ServerReply);
    } else if (message.type === "stats") {
      const { messages, bytes, propsPushed } = upkeep.hub.stats;
      process.send!({
        type: "stats",
        messages,
        bytes,
        pushed: propsPushed,
        plainBytes,
        plainReloads,
      } satisfies ServerReply);
    }
  });
  process.send!({
    type: "ready",
    live: served.port,
    plain: (plainServer.address() as { port: number }).port,
  } satisfies ServerReply);
}

class ServerChild {
  readonly child: ChildProcess;
  readonly #waiting = new Map<string, (reply: ServerReply) => void>();
  constructor(database: string) {
    this.child = fork(new URL(import.meta.url).pathname, ["--server", database], {
      execArgv: [
        "--import",
        "tsx",
        ...(process.env.UPKEEP_BENCH_PROFILE
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.UPKEEP_BENCH_PROFILE}`]
          : []),
      ],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (reply: ServerReply) => {
      this.#waiting.get(reply.type)?.(reply);
      this.#waiting.delete(reply.type);
    });
  }
  next<T extends ServerReply["type"]>(type: T): Promise<Extract<ServerReply, { type: T }>> {
    return new Promise((resolve) => this.#waiting.set(type, resolve as (reply: ServerReply) => void));
  }
  ask<T extends ServerRequest["type"]>(type: T): Promise<Extract<ServerReply, { type: T }>> {
    const reply = this.next(type);
    this.child.send({ type });
    return reply as Promise<Extract<ServerReply, { type: T }>>;
  }
  async cpuMs(): Promise<number> {
    const { user, system } = await this.ask("cpu");
    return (user + system) / 1000;
  }
}

interface Client {
  socket: WebSocket;
  /** Resolves when the client holds the value written after `arm()` (the time it did). */
  arm(title: string): Promise<number>;
}

function open(url: string, cookie: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { cookie } });
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
  });
}

const cookieOf = (i: number) => `viewer=v${i}`;
const inertiaHeaders = (cookie: string) => ({
  accept: "text/html",
  "x-inertia": "true",
  "x-inertia-version": "1",
  cookie,
});

/** Upkeep clients: each visits the board (X-Inertia) with its own cookie and subscribes with the page's token. */
async function liveClients(port: number, n: number): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const cookie = cookieOf(i);
      const page = (await (
        await fetch(`http://127.0.0.1:${port}${PAGE}`, { headers: inertiaHeaders(cookie) })
      ).json()) as {
        props: Record<string, unknown>;
        upkeep: { token: string; offset: number; incarnation: string };
      };
      const socket = await open(`ws://127.0.0.1:${port}${WIRE.socketPath}`, cookie);
      let want: { title: string; resolve: (at: number) => void } | null = null;
      let todo = JSON.stringify(page.props.todo);
      await new Promise<void>((resolve, reject) => {
        socket.on("message", (data) => {
          const message = JSON.parse(String(data)) as ServerMessage;
          if (message.type === "subscribed") resolve();
          else if (message.type === "props") {
            // The value (or patch) lands in the props: the new title is there once applied.
            todo = JSON.stringify(message.props?.todo ?? message.patches?.todo ?? todo);
            if (want && todo.includes(want.title)) {
              want.resolve(performance.now());
              want = null;
            }
          } else if (message.type === "error" || message.type === "reload") reject(new Error(JSON.stringify(message)));
        });
        socket.send(JSON.stringify({ type: WIRE.msg.subscribe, id: "p", ...page.upkeep }));
      });
      return { socket, arm: (title) => new Promise<number>((resolve) => (want = { title, resolve })) } satisfies Client;
    }),
  );
}

/** Identifier-broadcast clients: on an identifier, debounce, then one partial reload of the columns. */
async function broadcastClients(port: number, n: number, debounceMs: number): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const cookie = cookieOf(i);
      const socket = await open(`ws://127.0.0.1:${port}${BROADCAST_PATH}`, cookie);
      let want: { title: string; resolve: (at: number) => void } | null = null;
      let timer: NodeJS.Timeout | null = null;
      const reload = async () => {
        timer = null;
        const response = await fetch(`http://127.0.0.1:${port}${PAGE}`, {
          headers: {
            ...inertiaHeaders(cookie),
            "x-inertia-partial-component": "Board",
            "x-inertia-partial-data": RELOADED.join(","),
          },
        });
        const text = await response.text();
        if (want && text.includes(want.title)) {
          want.resolve(performance.now());
          want = null;
        }
      };
      socket.on("message", () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void reload(), debounceMs);
      });
      return { socket, arm: (title) => new Promise<number>((resolve) => (want = { title, resolve })) } satisfies Client;
    }),
  );
}

let counter = 0;

async function writeRound(port: number, clients: Client[], writes: number, server: ServerChild, plain: boolean) {
  const latencies: number[] = [];
  const cpuBefore = await server.cpuMs();
  const before = await server.ask("stats");
  for (let i = 0; i < writes; i++) {
    const title = `Bench title ${++counter}`;
    const arrivals = clients.map((c) => c.arm(title));
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}${SPA_PREFIX}/cards/1/rename`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-inertia": "true" },
      body: JSON.stringify({ title }),
      redirect: "manual",
    });
    await response.text();
    for (const at of await Promise.all(arrivals)) latencies.push(at - started);
  }
  const cpu = (await server.cpuMs()) - cpuBefore;
  const after = await server.ask("stats");
  return {
    p50: round(percentile(latencies, 50)),
    p95: round(percentile(latencies, 95)),
    serverCpuMsPerWrite: round(cpu / writes),
    valuesPerWrite: plain
      ? round(((after.plainReloads - before.plainReloads) * RELOADED.length) / writes)
      : round((after.pushed - before.pushed) / writes),
    bytesPerWrite: plain
      ? Math.round((after.plainBytes - before.plainBytes) / writes)
      : Math.round((after.bytes - before.bytes) / writes),
  };
}

const closeAll = (clients: Client[]) =>
  Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.socket.once("close", () => resolve());
          c.socket.close();
        }),
    ),
  );

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: "string", default: "100" },
      writes: { type: "string", default: "30" },
      debounce: { type: "string", default: "300" },
      modes: { type: "string", default: "upkeep,broadcast" },
    },
  });
  const n = Number(values.clients);
  const writes = Number(values.writes);
  const debounce = Number(values.debounce);
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-props-"));
  const database = `file:${join(dir, "demo.sqlite")}`;
  await prepareDemoDatabase(database);
  const server = new ServerChild(database);
  const ready = await server.next("ready");
  try {
    console.log(`props bench: ${n} clients (one viewer each), ${writes} renames of card 1 per mode`);
    const run = async (mode: "upkeep" | "broadcast", debounceMs = 0) => {
      const clients =
        mode === "upkeep" ? await liveClients(ready.live, n) : await broadcastClients(ready.plain, n, debounceMs);
      await writeRound(mode === "upkeep" ? ready.live : ready.plain, clients, 3, server, mode === "broadcast"); // warm-up
      const result = await writeRound(
        mode === "upkeep" ? ready.live : ready.plain,
        clients,
        writes,
        server,
        mode === "broadcast",
      );
      await closeAll(clients);
      return result;
    };
    const modes = new Set(values.modes.split(","));
    const skipped = { p50: 0, p95: 0, serverCpuMsPerWrite: 0, valuesPerWrite: 0, bytesPerWrite: 0 };
    const upkeep = modes.has("upkeep") ? await run("upkeep") : skipped;
    const broadcast = modes.has("broadcast") ? await run("broadcast", debounce) : skipped;
    const undebounced = modes.has("broadcast") ? await run("broadcast", 0) : skipped;
    const line = (name: string, r: typeof upkeep) =>
      `  ${name.padEnd(30)} p50 ${String(r.p50).padStart(7)} ms  p95 ${String(r.p95).padStart(7)} ms  CPU/write ${String(r.serverCpuMsPerWrite).padStart(7)} ms  values/write ${String(r.valuesPerWrite).padStart(6)}  bytes/write ${r.bytesPerWrite}`;
    console.log(line("upkeep (pushed props)", upkeep));
    console.log(line(`identifier broadcast (${debounce} ms)`, broadcast));
    console.log(line("identifier broadcast (no debounce)", undebounced));
    const vs = {
      p95Lower: round(broadcast.p95 / upkeep.p95),
      cpuLess: round(broadcast.serverCpuMsPerWrite / Math.max(upkeep.serverCpuMsPerWrite, 0.001)),
      p95LowerNoDebounce: round(undebounced.p95 / upkeep.p95),
      cpuLessNoDebounce: round(undebounced.serverCpuMsPerWrite / Math.max(upkeep.serverCpuMsPerWrite, 0.001)),
    };
    console.log(
      `upkeep vs identifier broadcast: p95 ${vs.p95Lower}× lower (aim ≥ 5), server CPU ${vs.cpuLess}× less (aim ≥ 10); without the debounce: p95 ${vs.p95LowerNoDebounce}×, CPU ${vs.cpuLessNoDebounce}×`,
    );
    const results = {
      page: PAGE,
      clients: n,
      writes,
      debounce,
      date: new Date().toISOString(),
      node: process.version,
      upkeep,
      broadcast,
      undebounced,
      vs,
    };
    const standard = process.argv.slice(2).length === 0;
    const out = standard ? new URL("./results/", import.meta.url).pathname : dir;
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "props.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      standard ? `wrote ${join(out, "props.json")}` : "custom options: bench/results/props.json left as it was",
    );
  } finally {
    // With UPKEEP_BENCH_PROFILE the server must exit normally to write its CPU profile.
    server.child.kill(process.env.UPKEEP_BENCH_PROFILE ? "SIGINT" : "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--server") await runServer(process.argv[3]!);
else await main();
