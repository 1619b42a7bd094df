// `npm run bench -- pages [--writes 20] [--scenarios 1x1000,100x10,1000x1] [--gets 300] [--big 10000]
// [--modes frames,page-level,refresh]`: live pages
// against the demo board, whose page greets each viewer by name (so every viewer's page is its own page group) and
// shows the shared board as frames (columns are collections of cards, counts are fragments).
//
// Server child processes (so their CPU is measured apart from the clients), on one SQLite file:
//   - frames: the demo app with Upkeep, frames rendered on their own (the default);
//   - page-level: the same with `frames: false`, every affecting write replays each page group;
//   - broadcast refresh (the baseline): the plain app plus a WebSocket that tells every client "refresh" after any
//     write, whereupon each client re-GETs the page with its own cookie (what Turbo's refresh broadcasts do).
// For each scenario "V×C" (V viewers, C clients each) and mode: write → every client's patch received (p50/p95),
// server CPU per write, renders per write and bytes per message. Then: GET latency live vs plain; what one replay
// costs against a plain GET; and one public page with many subscribers (p95, server memory per subscriber).
// JSON copy in bench/results/pages.json.
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
import { percentile, round } from "./support/stats.ts";

const SECRET = "upkeep-bench-secret-at-least-32-characters-long";
const PAGE = "/boards/1";
const BROADCAST_PATH = "/broadcast";

type ServerRequest = { type: "cpu" } | { type: "stats" } | { type: "memory" };
type ServerReply =
  | { type: "ready"; live: number; plain: number }
  | { type: "cpu"; user: number; system: number }
  | { type: "stats"; renders: number; frameRenders: number; messages: number; bytes: number }
  | { type: "memory"; rss: number; heapUsed: number };

// ---------------------------------------------------------------------------------------------------------------
// Server child: `pages.ts --server <database url>`
// ---------------------------------------------------------------------------------------------------------------

async function runServer(database: string, frames: boolean): Promise<void> {
  const { register } = await import("tsx/esm/api");
  register();
  const { createDemoApp } = await import("../demo/app.tsx");
  const upkeep = await createUpkeep({ database, secret: SECRET, mode: "production", install: true, frames });
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
      const { renders, frameRenders, messages, bytes } = upkeep.hub.stats;
      process.send!({ type: "stats", renders, frameRenders, messages, bytes } satisfies ServerReply);
    } else if (message.type === "memory") {
      for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
      const { rss, heapUsed } = process.memoryUsage();
      process.send!({ type: "memory", rss, heapUsed } satisfies ServerReply);
    }
  });
  process.send!({ type: "ready", live: live.port, plain: plainPort } satisfies ServerReply);
}

// ---------------------------------------------------------------------------------------------------------------
// Bench driver
// ---------------------------------------------------------------------------------------------------------------

class ServerChild {
  readonly child: ChildProcess;
  readonly #waiting = new Map<string, { resolve: (reply: ServerReply) => void; reject: (error: Error) => void }>();
  constructor(database: string, frames: boolean) {
    this.child = fork(new URL(import.meta.url).pathname, ["--server", database, frames ? "frames" : "page-level"], {
      execArgv: [
        "--expose-gc",
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

async function timedGet(url: string, cookie = ""): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, { headers: { accept: "text/html", cookie } });
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

function open(url: string, cookie?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, cookie ? { headers: { cookie } } : {});
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
  });
}

const cookieOf = (viewer: number) => `viewer=v${viewer}`;

/** Upkeep subscribers: `perViewer` WebSockets for each of `viewers` viewers, each subscribed with the token of its
 *  viewer's GET and sending its viewer's cookie (the identity signature is re-derived from it). */
async function liveClients(port: number, viewers: number, perViewer: number): Promise<Client[]> {
  const clients: Client[] = [];
  for (let v = 0; v < viewers; v++) {
    const cookie = cookieOf(v);
    const html = await (
      await fetch(`http://127.0.0.1:${port}${PAGE}`, { headers: { accept: "text/html", cookie } })
    ).text();
    const token = markerAttribute(html, WIRE.tokenAttr);
    const offset = Number(markerAttribute(html, WIRE.offsetAttr));
    const incarnation = markerAttribute(html, WIRE.incarnationAttr);
    const batch = 50;
    for (let i = 0; i < perViewer; i += batch) {
      const opened = await Promise.all(
        Array.from({ length: Math.min(batch, perViewer - i) }, async () => {
          const socket = await open(`ws://127.0.0.1:${port}${WIRE.socketPath}`, cookie);
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
          return { socket, arm: () => new Promise<number>((resolve) => (waiter = resolve)) } satisfies Client;
        }),
      );
      clients.push(...opened);
    }
  }
  return clients;
}

/** Baseline clients: on "refresh", GET the page again with the viewer's cookie; done when it has arrived. */
async function broadcastClients(port: number, viewers: number, perViewer: number): Promise<Client[]> {
  const clients: Client[] = [];
  const all = Array.from({ length: viewers * perViewer }, (_, i) => Math.floor(i / perViewer));
  for (let i = 0; i < all.length; i += 50) {
    const opened = await Promise.all(
      all.slice(i, i + 50).map(async (viewer) => {
        const socket = await open(`ws://127.0.0.1:${port}${BROADCAST_PATH}`);
        let waiter: ((at: number) => void) | null = null;
        socket.on("message", async () => {
          await (
            await fetch(`http://127.0.0.1:${port}${PAGE}`, {
              headers: { accept: "text/html", cookie: cookieOf(viewer) },
            })
          ).text();
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
  const messages = statsAfter.messages - statsBefore.messages;
  return {
    p50: round(percentile(latencies, 50)),
    p95: round(percentile(latencies, 95)),
    serverCpuMsPerWrite: round(cpu / writes),
    pageRendersPerWrite: round((statsAfter.renders - statsBefore.renders) / writes),
    frameRendersPerWrite: round((statsAfter.frameRenders - statsBefore.frameRenders) / writes),
    messagesPerWrite: round(messages / writes),
    bytesPerMessage: Math.round((statsAfter.bytes - statsBefore.bytes) / Math.max(1, messages)),
  };
}

/** Server CPU of `n` plain GETs (per GET) and of `writes` renames with nobody watching (per write). */
async function plainCosts(port: number, server: ServerChild, n: number, writes: number) {
  let before = await server.cpuMs();
  for (let i = 0; i < n; i++) await timedGet(`http://127.0.0.1:${port}${PAGE}`, cookieOf(0));
  const get = ((await server.cpuMs()) - before) / n;
  before = await server.cpuMs();
  await writeRound(port, [], writes, server);
  const write = ((await server.cpuMs()) - before) / writes;
  return { getCpuMs: round(get, 3), writeCpuMs: round(write, 3) };
}

const closeAll = async (clients: Client[]) => {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.socket.once("close", () => resolve());
          c.socket.close();
        }),
    ),
  );
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      writes: { type: "string", default: "20" },
      scenarios: { type: "string", default: "1x1000,100x10,1000x1" },
      gets: { type: "string", default: "300" },
      big: { type: "string", default: "10000" },
      modes: { type: "string", default: "frames,page-level,refresh" },
    },
  });
  const modes = new Set(values.modes.split(","));
  const writes = Number(values.writes);
  const scenarios = values.scenarios.split(",").map((s) => s.split("x").map(Number) as [number, number]);
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-pages-"));
  const database = `file:${join(dir, "demo.sqlite")}`;
  await prepareDemoDatabase(database);
  const frames = new ServerChild(database, true);
  const framesReady = await frames.next("ready");
  const pageLevel = new ServerChild(database, false);
  const pageLevelReady = await pageLevel.next("ready");
  try {
    console.log(
      `pages bench: frames server :${framesReady.live}, page-level server :${pageLevelReady.live}, plain :${framesReady.plain}`,
    );
    const get = await getLatency(framesReady.live, framesReady.plain, Number(values.gets));
    console.log(
      `GET ${PAGE}: live p50 ${get.live.p50} ms, plain p50 ${get.plain.p50} ms, ratio ${get.ratioP50}× (aim ≤ 1.15)`,
    );

    const rounds: Record<string, unknown>[] = [];
    const line = (name: string, r: Awaited<ReturnType<typeof writeRound>>) =>
      `  ${name.padEnd(18)} p50 ${String(r.p50).padStart(7)} ms  p95 ${String(r.p95).padStart(7)} ms  CPU/write ${String(r.serverCpuMsPerWrite).padStart(8)} ms  ` +
      `page renders ${r.pageRendersPerWrite}, frame renders ${r.frameRendersPerWrite}, ${r.bytesPerMessage} B/message`;
    for (const [viewers, perViewer] of scenarios) {
      const run = async (server: ServerChild, port: number, mode: "live" | "refresh") => {
        const clients =
          mode === "live"
            ? await liveClients(port, viewers, perViewer)
            : await broadcastClients(port, viewers, perViewer);
        const result = await writeRound(port, clients, writes, server);
        await closeAll(clients);
        return result;
      };
      const skipped = {
        p50: 0,
        p95: 0,
        serverCpuMsPerWrite: 0,
        pageRendersPerWrite: 0,
        frameRendersPerWrite: 0,
        messagesPerWrite: 0,
        bytesPerMessage: 0,
      };
      const withFrames = modes.has("frames") ? await run(frames, framesReady.live, "live") : skipped;
      const pageLevelRound = modes.has("page-level") ? await run(pageLevel, pageLevelReady.live, "live") : skipped;
      const refresh = modes.has("refresh") ? await run(frames, framesReady.plain, "refresh") : skipped;
      const result = {
        viewers,
        clientsPerViewer: perViewer,
        frames: withFrames,
        pageLevel: pageLevelRound,
        broadcastRefresh: refresh,
        framesCpuVsRefresh: round(refresh.serverCpuMsPerWrite / Math.max(withFrames.serverCpuMsPerWrite, 0.001)),
        framesP95VsRefresh: round(refresh.p95 / withFrames.p95),
        pageLevelCpuVsRefresh: round(refresh.serverCpuMsPerWrite / Math.max(pageLevelRound.serverCpuMsPerWrite, 0.001)),
      };
      rounds.push(result);
      console.log(`${viewers} viewers × ${perViewer} clients:`);
      console.log(line("frames", withFrames));
      console.log(line("page-level", pageLevelRound));
      console.log(line("broadcast refresh", refresh));
      console.log(
        `  frames vs refresh: CPU ${result.framesCpuVsRefresh}× less, p95 ${result.framesP95VsRefresh}× lower; page-level vs refresh: CPU ${result.pageLevelCpuVsRefresh}×`,
      );
    }

    // What one replay costs, against a plain GET of the same page: one page-level subscriber, minus the write.
    const plain = await plainCosts(framesReady.plain, frames, Number(values.gets), writes);
    const oneFrames = await (async () => {
      const clients = await liveClients(framesReady.live, 1, 1);
      const r = await writeRound(framesReady.live, clients, writes * 2, frames);
      await closeAll(clients);
      return r;
    })();
    const onePage = await (async () => {
      const clients = await liveClients(pageLevelReady.live, 1, 1);
      const r = await writeRound(pageLevelReady.live, clients, writes * 2, pageLevel);
      await closeAll(clients);
      return r;
    })();
    const replay = {
      plainGetCpuMs: plain.getCpuMs,
      plainWriteCpuMs: plain.writeCpuMs,
      pageReplayCpuMs: round(onePage.serverCpuMsPerWrite - plain.writeCpuMs, 3),
      frameRenderCpuMs: round(oneFrames.serverCpuMsPerWrite - plain.writeCpuMs, 3),
    };
    const replayRatio = round(replay.pageReplayCpuMs / plain.getCpuMs);
    const frameRatio = round(replay.frameRenderCpuMs / plain.getCpuMs);
    console.log(
      `one write, one subscriber, write itself (${plain.writeCpuMs} ms) subtracted: page replay + narrowing + send ${replay.pageReplayCpuMs} ms = ${replayRatio}× a plain GET (${plain.getCpuMs} ms; aim ≤ 1.5), frames ${replay.frameRenderCpuMs} ms = ${frameRatio}×`,
    );

    // One public page, many subscribers: p95 and server memory per subscriber.
    let big: Record<string, number> | null = null;
    const bigCount = Number(values.big);
    if (bigCount > 0) {
      const before = await frames.ask("memory");
      const clients = await liveClients(framesReady.live, 1, bigCount);
      const after = await frames.ask("memory");
      const r = await writeRound(framesReady.live, clients, Math.max(5, Math.floor(writes / 2)), frames);
      await closeAll(clients);
      big = {
        subscribers: bigCount,
        p50: r.p50,
        p95: r.p95,
        serverCpuMsPerWrite: r.serverCpuMsPerWrite,
        rssBytesPerSubscriber: Math.round((after.rss - before.rss) / bigCount),
        heapBytesPerSubscriber: Math.round((after.heapUsed - before.heapUsed) / bigCount),
      };
      console.log(
        `${bigCount} subscribers of one page: p50 ${r.p50} ms, p95 ${r.p95} ms, ${r.serverCpuMsPerWrite} ms CPU/write, server memory per subscriber ${big.rssBytesPerSubscriber} B RSS, ${big.heapBytesPerSubscriber} B heap (aim ≤ 2 KB)`,
      );
    }

    const results = {
      page: PAGE,
      writes,
      date: new Date().toISOString(),
      node: process.version,
      get,
      rounds,
      replay: { ...replay, pageReplayVsGet: replayRatio, frameRenderVsGet: frameRatio },
      big,
    };
    // Only the standard run is the recorded one; runs with other options say so and keep their figures here.
    const standard = process.argv.slice(2).length === 0;
    const out = standard ? new URL("./results/", import.meta.url).pathname : dir;
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "pages.json"), `${JSON.stringify(results, null, 2)}\n`);
    if (standard) console.log(`wrote ${join(out, "pages.json")}`);
    else console.log("custom options: bench/results/pages.json left as it was");
  } finally {
    frames.stop();
    pageLevel.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--server") await runServer(process.argv[3]!, process.argv[4] !== "page-level");
else await main();
