// `npm run bench -- changefeed [--facts 50000] [--consumers 100]`: the changefeed's throughput over SSE, to one
// consumer and to many at once, and the server's memory per connected consumer.
//
// A server child process (Hono + Upkeep with the changefeed on, SQLite) and, in this process, consumers reading
// `GET /upkeep/changes` as Server-Sent Events over loopback from the same cursor until they have every fact of a bulk
// insert. Facts/s is facts delivered to all consumers divided by the time until the last one has them.
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { upkeepMiddleware } from "../src/hono/index.ts";
import { createUpkeep } from "../src/index.ts";

const SECRET = "upkeep-bench-secret-at-least-32-characters-long";

type Reply = { type: "ready"; port: number; head: number } | { type: "memory"; rss: number; heapUsed: number };

async function runServer(database: string): Promise<void> {
  const upkeep = await createUpkeep({
    database,
    secret: SECRET,
    mode: "production",
    install: true,
    retentionMs: 0,
    changefeed: { authorize: () => ({ tables: "*" }), batchFacts: 1000 },
  });
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  const served = await upkeep.serve(app, { port: 0 });
  process.on("message", (message: { type: string }) => {
    if (message.type === "memory") {
      for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
      const { rss, heapUsed } = process.memoryUsage();
      process.send!({ type: "memory", rss, heapUsed } satisfies Reply);
    }
  });
  process.send!({ type: "ready", port: served.port, head: await upkeep.ledger.head() } satisfies Reply);
}

/** Reads the stream until `count` facts have arrived; resolves with the time the last one did. */
async function consume(url: string, count: number, onOpen?: () => void): Promise<number> {
  const response = await fetch(url, { headers: { accept: "text/event-stream" } });
  if (!response.ok || !response.body) throw new Error(`changefeed answered ${response.status}`);
  onOpen?.();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let seen = 0;
  let tail = "";
  while (seen < count) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended after ${seen} of ${count} facts`);
    const text = tail + decoder.decode(value, { stream: true });
    let at = text.indexOf("event: fact\n");
    let last = 0;
    while (at >= 0) {
      seen++;
      last = at + 12;
      at = text.indexOf("event: fact\n", last);
    }
    tail = text.slice(Math.max(last, text.length - 16));
  }
  const at = performance.now();
  await reader.cancel();
  return at;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { facts: { type: "string", default: "50000" }, consumers: { type: "string", default: "100" } },
  });
  const facts = Number(values.facts);
  const consumers = Number(values.consumers);
  const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-changefeed-"));
  const path = join(dir, "feed.sqlite");
  const db = new DatabaseSync(path);
  db.exec("create table events (id integer primary key, kind text not null, payload text not null)");
  db.close();
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ["--server", `file:${path}`], {
    execArgv: ["--expose-gc", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = <T extends Reply["type"]>(type: T) =>
    new Promise<Extract<Reply, { type: T }>>((resolve) => {
      const on = (reply: Reply) => {
        if (reply.type !== type) return;
        child.off("message", on);
        resolve(reply as Extract<Reply, { type: T }>);
      };
      child.on("message", on);
    });
  const ready = await next("ready");
  try {
    // The facts: one bulk insert, written by another connection as a service would.
    const writer = new DatabaseSync(path);
    writer.exec("pragma busy_timeout = 5000");
    writer.exec(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < ${facts}) insert into events (kind, payload) select 'tick', 'payload ' || i from n`,
    );
    writer.close();
    const base = `http://127.0.0.1:${ready.port}/upkeep/changes?tables=events&after=${ready.head}`;
    const run = async (n: number) => {
      const started = performance.now();
      const ends = await Promise.all(Array.from({ length: n }, () => consume(base, facts)));
      const seconds = (Math.max(...ends) - started) / 1000;
      return { consumers: n, seconds: Number(seconds.toFixed(3)), factsPerSecond: Math.round((facts * n) / seconds) };
    };
    const one = await run(1);
    const many = await run(consumers);
    // Memory: `consumers` open streams, caught up and idle, against none.
    const before = await (async () => {
      child.send({ type: "memory" });
      return next("memory");
    })();
    const idle: AbortController[] = [];
    await Promise.all(
      Array.from({ length: consumers }, async () => {
        const controller = new AbortController();
        idle.push(controller);
        const response = await fetch(base.replace(`after=${ready.head}`, `after=${ready.head + facts}`), {
          headers: { accept: "text/event-stream" },
          signal: controller.signal,
        });
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        await reader.read(); // the greeting: the stream is open
        void reader.read().catch(() => {});
      }),
    );
    child.send({ type: "memory" });
    const after = await next("memory");
    for (const c of idle) c.abort();
    const perConsumer = {
      rssBytes: Math.round((after.rss - before.rss) / consumers),
      heapBytes: Math.round((after.heapUsed - before.heapUsed) / consumers),
    };
    console.log(`changefeed bench: ${facts} facts of one bulk insert, SSE over loopback`);
    console.log(`  1 consumer:    ${one.factsPerSecond} facts/s (${one.seconds} s)`);
    console.log(
      `  ${consumers} consumers: ${many.factsPerSecond} facts/s delivered in all, ${Math.round(many.factsPerSecond / consumers)} per consumer (${many.seconds} s)`,
    );
    console.log(`  memory per idle consumer: ${perConsumer.rssBytes} B RSS, ${perConsumer.heapBytes} B heap`);
    const results = { facts, date: new Date().toISOString(), node: process.version, one, many, perConsumer };
    const standard = process.argv.slice(2).length === 0;
    const out = standard ? new URL("./results/", import.meta.url).pathname : dir;
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "changefeed.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      standard
        ? `wrote ${join(out, "changefeed.json")}`
        : "custom options: bench/results/changefeed.json left as it was",
    );
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--server") await runServer(process.argv[3] as string);
else await main();
