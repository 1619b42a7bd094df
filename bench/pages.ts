// `npm run bench -- pages [--writes 20] [--clients 1,100,1000] [--gets 300]`: live pages against the demo board.
//
// One server child process (so its CPU can be measured apart from the clients) serves, from one SQLite file:
//   - the demo app with Upkeep (live),
//   - the same app without the middleware (plain),
//   - the "broadcast refresh" baseline: the plain app plus a WebSocket that tells every client "refresh" after any
//     write, whereupon each client re-GETs the page (what Turbo's refresh broadcasts do).
// Figures: GET latency live vs plain (ratio); write → every subscriber's patch received for 1/100/1000 WebSocket
// clients (p50/p95); renders per write; baseline p95 latency and server CPU ratios. JSON copy in
// bench/results/pages.json.
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { WebSocket, WebSocketServer } from "ws";
import { prepareDemoDatabase } from "../demo/schema.ts";
import { WIRE } from "../src/constants.ts";
import type { ServerMessage } from "../src/deliver/types.ts";
import { createUpkeep } from "../src/index.ts";

const SECRET = "upkeep-bench-secret-at-least-32-characters-long";
const PAGE = "/boards/1";
const BROADCAST_PATH = "/broadcast";

type ServerRequest = { type: "cpu" } | { type: "stats" };
type ServerReply =
  | { type: "ready"; live: number; plain: number }
  | { type: "cpu"; user: number; system: number }
  | { type: "stats"; renders: number; messages: number; bytes: number };

// ---------------------------------------------------------------------------------------------------------------
// Server child: `pages.ts --server <database url>`
// ---------------------------------------------------------------------------------------------------------------

async function runServer(database: string): Promise<void> {
  const { register } = await import("tsx/esm/api");
  register();
  const { createDemoApp } = await import("../demo/app.tsx");
  const upkeep = await createUpkeep({ database, secret: SECRET, mode: "production", install: true });
  const live = await upkeep.serve(createDemoApp(upkeep), { port: 0, hostname: "127.0.0.1" });

  // The baseline: the plain app, and after every non-GET request a "refresh" to every broadcast client.
  const plainApp = createDemoApp(upkeep, { live: false });
  const broadcast = new WebSocketServer({ noServer: true });
  const plainServer = await new Promise<Server>((resolve) => {
    const s = serve(
      {
        fetch: async (request: Request) => {
          const response = await plainApp.fetch(request);
          if (request.method !== "GET") {
            for (const client of broadcast.clients) client.send("refresh");
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
  const plainPort = (plainServer.address() as { port: number }).port;

  process.on("SIGINT", () => process.exit(0));
  process.on("message", (message: ServerRequest) => {
    if (message.type === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send!({ type: "cpu", user, system } satisfies ServerReply);
    } else if (message.type === "stats") {
      const { renders, messages, bytes } = upkeep.hub.stats;
      process.send!({ type: "stats", renders, messages, bytes } satisfies ServerReply);
    }
  });
  process.send!({ type: "ready", live: live.port, plain: plainPort } satisfies ServerReply);
}

// ---------------------------------------------------------------------------------------------------------------
// Bench driver
// ---------------------------------------------------------------------------------------------------------------

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

class ServerChild {
  readonly child: ChildProcess;
  readonly #waiting = new Map<string, { resolve: (reply: ServerReply) => void; reject: (error: Error) => void }>();
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
      this.#waiting.get(reply.type)?.resolve(reply);
      this.#waiting.delete(reply.type);
    });
    this.child.on("exit", (code) => {
      for (const waiter of this.#waiting.values()) waiter.reject(new Error(`bench server exited (${code})`));
      this.#waiting.clear();
    });
  }
  next<T extends ServerReply["type"]>(type: T): Promise<Extract<ServerReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      this.#waiting.set(type, { resolve: resolve as (reply: ServerReply) => void, reject });
    });
  }
  async ask<T extends ServerRequest["type"]>(type: T): Promise<Extract<ServerReply, { type: T }>> {
    const reply = this.next(type);
    this.child.send({ type });
    return reply;
  }
  async cpuMs(): Promise<number> {
    const { user, system } = await this.ask("cpu");
    return (user + system) / 1000;
  }
  stop(): void {
    // With UPKEEP_BENCH_PROFILE the server must exit normally to write its CPU profile.
    this.child.kill(process.env.UPKEEP_BENCH_PROFILE ? "SIGINT" : "SIGKILL");
  }
}

async function timedGet(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, { headers: { accept: "text/html" } });
  await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return performance.now() - started;
}

/** GET latency of the same page, live and plain, interleaved so both see the same machine conditions. */
async function getLatency(livePort: number, plainPort: number, gets: number) {
  const live: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < 20; i++) {
    await timedGet(`http://127.0.0.1:${livePort}${PAGE}`);
    await timedGet(`http://127.0.0.1:${plainPort}${PAGE}`);
  }
  for (let i = 0; i < gets; i++) {
    live.push(await timedGet(`http://127.0.0.1:${livePort}${PAGE}`));
    plain.push(await timedGet(`http://127.0.0.1:${plainPort}${PAGE}`));
  }
  const p50Live = percentile(live, 50);
  const p50Plain = percentile(plain, 50);
  return {
    gets,
    live: { p50: round(p50Live), p95: round(percentile(live, 95)) },
    plain: { p50: round(p50Plain), p95: round(percentile(plain, 95)) },
    ratioP50: round(p50Live / p50Plain),
  };
}

function markerAttribute(html: string, name: string): string {
  const match = new RegExp(`<${WIRE.streamSourceTag}\\b[^>]*\\b${name}="([^"]*)"`).exec(html);
  if (!match) throw new Error(`no live marker in the page (${WIRE.streamSourceTag})`);
  return match[1]!.replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

interface Client {
  socket: WebSocket;
  /** Resolves at the next patch (or refresh round trip) after `arm()`; the time it arrived. */
  arm(): Promise<number>;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Upkeep subscribers: one WebSocket each, subscribed with the token of one GET of the page. */
async function liveClients(port: number, n: number): Promise<Client[]> {
  const html = await (await fetch(`http://127.0.0.1:${port}${PAGE}`, { headers: { accept: "text/html" } })).text();
  const token = markerAttribute(html, WIRE.tokenAttr);
  const offset = Number(markerAttribute(html, WIRE.offsetAttr));
  const incarnation = markerAttribute(html, WIRE.incarnationAttr);
  const clients: Client[] = [];
  const batch = 50;
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, async () => {
        const socket = await open(`ws://127.0.0.1:${port}${WIRE.socketPath}`);
        let waiter: ((at: number) => void) | null = null;
        const subscribed = new Promise<void>((resolve, reject) => {
          socket.on("message", (data) => {
            const message = JSON.parse(String(data)) as ServerMessage;
            if (message.type === "subscribed") resolve();
            else if (message.type === "patch") {
              waiter?.(performance.now());
              waiter = null;
            } else if (message.type === "error" || message.type === "reload") {
              reject(new Error(`subscriber got ${JSON.stringify(message)}`));
            }
          });
        });
        socket.send(JSON.stringify({ type: WIRE.msg.subscribe, id: "p", token, offset, incarnation }));
        await subscribed;
        return {
          socket,
          arm: () => new Promise<number>((resolve) => (waiter = resolve)),
        } satisfies Client;
      }),
    );
    clients.push(...opened);
  }
  return clients;
}

/** Baseline clients: on "refresh", GET the page again; done when the new page has arrived. */
async function broadcastClients(port: number, n: number): Promise<Client[]> {
  const clients: Client[] = [];
  const batch = 50;
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, async () => {
        const socket = await open(`ws://127.0.0.1:${port}${BROADCAST_PATH}`);
        let waiter: ((at: number) => void) | null = null;
        socket.on("message", async () => {
          await (await fetch(`http://127.0.0.1:${port}${PAGE}`, { headers: { accept: "text/html" } })).text();
          waiter?.(performance.now());
          waiter = null;
        });
        return { socket, arm: () => new Promise<number>((resolve) => (waiter = resolve)) } satisfies Client;
      }),
    );
    clients.push(...opened);
  }
  return clients;
}

let titleCounter = 0;

/** Rename card 1 through the app's form endpoint `writes` times; per write, wait for every client. */
async function writeRound(port: number, clients: Client[], writes: number, server: ServerChild) {
  const latencies: number[] = [];
  const cpuBefore = await server.cpuMs();
  const statsBefore = await server.ask("stats");
  for (let i = 0; i < writes; i++) {
    const arrivals = clients.map((c) => c.arm());
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/cards/1/rename`, {
      method: "POST",
      body: new URLSearchParams({ title: `Bench title ${++titleCounter}` }),
      redirect: "manual",
    });
    await response.text();
    for (const at of await Promise.all(arrivals)) latencies.push(at - started);
  }
  const cpu = (await server.cpuMs()) - cpuBefore;
  const statsAfter = await server.ask("stats");
  return {
    p50: round(percentile(latencies, 50)),
    p95: round(percentile(latencies, 95)),
    serverCpuMsPerWrite: round(cpu / writes),
    rendersPerWrite: round((statsAfter.renders - statsBefore.renders) / writes),
    messagesPerWrite: round((statsAfter.messages - statsBefore.messages) / writes),
    bytesPerMessage: Math.round(
      (statsAfter.bytes - statsBefore.bytes) / Math.max(1, statsAfter.messages - statsBefore.messages),
    ),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      writes: { type: "string", default: "20" },
      clients: { type: "string", default: "1,100,1000" },
      gets: { type: "string", default: "300" },
    },
  });
  const writes = Number(values.writes);
  const counts = values.clients.split(",").map(Number);
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-pages-"));
  const database = `file:${join(dir, "demo.sqlite")}`;
  await prepareDemoDatabase(database);
  const server = new ServerChild(database);
  try {
    const ready = await server.next("ready");
    console.log(`pages bench: server pid ${server.child.pid}, live :${ready.live}, plain :${ready.plain}`);

    const get = await getLatency(ready.live, ready.plain, Number(values.gets));
    console.log(
      `GET ${PAGE}: live p50 ${get.live.p50} ms, plain p50 ${get.plain.p50} ms, ratio ${get.ratioP50}× (aim ≤ 1.15)`,
    );

    const rounds: Record<string, unknown>[] = [];
    for (const n of counts) {
      const live = await liveClients(ready.live, n);
      const upkeep = await writeRound(ready.live, live, writes, server);
      for (const c of live) c.socket.close();
      const refresh = await broadcastClients(ready.plain, n);
      const baseline = await writeRound(ready.plain, refresh, writes, server);
      for (const c of refresh) c.socket.close();
      const round_ = {
        clients: n,
        upkeep,
        broadcastRefresh: { p50: baseline.p50, p95: baseline.p95, serverCpuMsPerWrite: baseline.serverCpuMsPerWrite },
        p95Ratio: round(baseline.p95 / upkeep.p95),
        cpuRatio: round(baseline.serverCpuMsPerWrite / Math.max(upkeep.serverCpuMsPerWrite, 0.001)),
      };
      rounds.push(round_);
      console.log(
        `${String(n).padStart(5)} clients: Upkeep p50 ${upkeep.p50} ms p95 ${upkeep.p95} ms, ` +
          `${upkeep.rendersPerWrite} renders/write, ${upkeep.bytesPerMessage} B/message, ${upkeep.serverCpuMsPerWrite} ms CPU/write | ` +
          `refresh p95 ${baseline.p95} ms, ${baseline.serverCpuMsPerWrite} ms CPU/write | ` +
          `latency ${round_.p95Ratio}× (aim ≥ 5), CPU ${round_.cpuRatio}× (aim ≥ 20)`,
      );
    }

    const results = { page: PAGE, writes, date: new Date().toISOString(), node: process.version, get, rounds };
    // Only the standard run is the recorded one; runs with other options say so and keep their figures here.
    const standard = process.argv.slice(2).length === 0;
    const out = standard ? new URL("./results/", import.meta.url).pathname : dir;
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "pages.json"), `${JSON.stringify(results, null, 2)}\n`);
    if (standard) console.log(`wrote ${join(out, "pages.json")}`);
    else console.log("custom options: bench/results/pages.json left as it was");
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--server") await runServer(process.argv[3]!);
else await main();
