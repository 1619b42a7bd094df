// Browser end-to-end support: Debian's Chromium driven by playwright-core, and the demo server as a child process
// (so a test can SIGKILL it and start it again on the same port).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page, type WebSocket as PwWebSocket } from "playwright-core";
import { WIRE } from "../../src/constants.ts";

export const CHROMIUM_PATH = process.env.UPKEEP_CHROMIUM ?? "/usr/bin/chromium";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const root = new URL("../../", import.meta.url).pathname;

/**
 * Why browser suites must skip, or false to run them. With CI=true a missing browser is never a skip: the suite
 * runs and fails at launch.
 */
export function browserSkip(): string | false {
  if (existsSync(CHROMIUM_PATH) || process.env.CI === "true") return false;
  return `Chromium not found at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install chromium) or set UPKEEP_CHROMIUM`;
}

export interface Browser {
  /** One browser profile: its pages are tabs of one browser, which share one Upkeep connection. */
  context: BrowserContext;
  /** A new tab in `context`. */
  newPage(): Promise<Page>;
  /**
   * A page in a profile of its own that starts with `context`'s cookies: another browser of the same viewer, with
   * a connection of its own (closing the page closes its profile).
   */
  newWindow(): Promise<Page>;
  close(): Promise<void>;
}

/** A headless Chromium with one default profile (see Browser). */
export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  const context = await browser.newContext();
  return {
    context,
    newPage: () => context.newPage(),
    async newWindow() {
      const own = await browser.newContext({ storageState: await context.storageState() });
      const page = await own.newPage();
      page.once("close", () => void own.close().catch(() => {}));
      return page;
    },
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** Frames a page's Upkeep WebSocket received, parsed, in arrival order. */
export interface SocketLog {
  frames: Array<{ type: string; [key: string]: unknown }>;
  count(type: string): number;
  /** Resolves when at least `n` frames of `type` arrived (the test's own timeout bounds the wait). */
  waitFor(type: string, n?: number): Promise<void>;
}

/** Record every frame the page receives on Upkeep's socket (call before navigating). */
export function recordSocketFrames(page: Page): SocketLog {
  const frames: SocketLog["frames"] = [];
  const waiters = new Set<() => void>();
  page.on("websocket", (socket: PwWebSocket) => {
    if (!new URL(socket.url()).pathname.startsWith(WIRE.socketPath)) return;
    socket.on("framereceived", ({ payload }) => {
      try {
        frames.push(JSON.parse(String(payload)));
      } catch {
        frames.push({ type: "unparsed", payload: String(payload) });
      }
      for (const wake of waiters) wake();
    });
  });
  const count = (type: string) => frames.filter((f) => f.type === type).length;
  return {
    frames,
    count,
    waitFor(type, n = 1) {
      return new Promise((resolve) => {
        const check = () => {
          if (count(type) >= n) {
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

export interface DemoServer {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the server printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGKILL, no clean-up: the crash a restart must survive. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

/** Start `node demo/server.ts` on `port` against `databaseUrl`, resolving once it listens. */
export async function startDemoServer(options: {
  port: number;
  databaseUrl: string;
  env?: Record<string, string>;
}): Promise<DemoServer> {
  const child = spawn(process.execPath, [join(root, "demo/server.ts")], {
    cwd: root,
    env: {
      ...process.env,
      ...options.env,
      PORT: String(options.port),
      HOST: "127.0.0.1",
      DATABASE_URL: options.databaseUrl,
      NODE_ENV: "test",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/listening on /.test(output)) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`demo server exited (${code ?? signal}) before listening:\n${output}`)),
    );
  });
  const url = `http://127.0.0.1:${options.port}`;
  return {
    url,
    port: options.port,
    child,
    output: () => output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
