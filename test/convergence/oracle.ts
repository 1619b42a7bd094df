// The convergence oracle, on every stack (DESIGN.md, "Invariants the tests must prove"): for one cell — an adapter, a
// capture and a rendering (stack.ts) — the app (app/) runs as a real server child process that lives through many
// sequences and is killed and started again at least once per run; each seeded sequence opens pages as viewers'
// browsers (real WebSockets, some SSE streams; Chromium for a sample), writes through every path (the app's POST
// route, another connection, a database shell; transactions, rollbacks, bulk statements, upserts, REPLACE / MERGE,
// TRUNCATE), drops and resumes connections, navigates, and after the app's settle point compares every page with a
// fresh request by the same viewer. Isolation: no page ever receives another viewer's marker text.
//
// A sequence starts from the seed data with every page closed, so `--seed <its seed> --runs 1` runs it again; the
// process's history before it (other sequences, the restart) is replayed by running the cell from the run's base
// seed with as many runs as it took to fail.
import type { Settled } from "./app/harness.ts";
import { type AppKit, kitOf, runStepRaw, type Step, stepScript, type Via } from "./app/kit.ts";
import type { BrowserPage, ChromiumSample } from "./chromium.ts";
import { Browser, LivePage, type PageEvent, type PageSpec, type Transport } from "./clients.ts";
import { Random } from "./generate.ts";
import { appOf, type Cell, cellName } from "./stack.ts";
import { type AppServer, type CellDatabase, openDatabase, startServer } from "./world.ts";

/** Errors after which a write is made again: the database rolled it back (a deadlock, a busy SQLite file). */
const RETRYABLE = /deadlock detected|database is locked|SQLITE_BUSY|could not serialize/i;
/** Errors of a write the database refused, as it does an application's: steps generated from one state and made at
 *  once may conflict (a card inserted into a board another step deleted). Nothing was committed; the sequence goes on. */
const REFUSED = /violates foreign key constraint|FOREIGN KEY constraint failed/i;

export interface Failure {
  cell: string;
  /** The run's base seed and this sequence's index in the run (its seed is base + index). */
  base: number;
  index: number;
  seed: number;
  page: string;
  transport: string;
  steps: Step[];
  expected: string;
  actual: string;
  events: PageEvent[];
  messages: unknown[];
  error?: string;
  log?: string;
}

export interface CellRun {
  cell: Cell;
  sequences: number;
  failures: Failure[];
  restarts: number;
  /** Pages compared (Node clients and Chromium pages). */
  pages: number;
  browserPages: number;
  /** Patches, props and values the Node clients applied. */
  applied: number;
  /** upkeep.stats() of each server life, as its last settle point saw them. */
  lives: Settled["stats"][];
  seconds: number;
}

export interface RunOptions {
  runs: number;
  seed: number;
  /** Sequences with Chromium pages (their indexes); none when Chromium is not wanted. */
  chromium?: (index: number) => boolean;
  /** Stop after this many failing pages. */
  maxFailures?: number;
  /** A deliberately broken replay path of the app (app/faults.ts). */
  fault?: string;
  onSequence?: (index: number, failures: number) => void;
}

/** Runs `runs` sequences of one cell against a fresh database and one app server, restarted in the middle. */
export async function runCell(cell: Cell, options: RunOptions): Promise<CellRun> {
  const started = Date.now();
  const kit = await kitOf(appOf(cell));
  const database = await openDatabase(cell, kit);
  let server: AppServer | null = null;
  let chromium: ChromiumSample | null = null;
  const failures: Failure[] = [];
  const result: CellRun = {
    cell,
    sequences: 0,
    failures,
    restarts: 0,
    pages: 0,
    browserPages: 0,
    applied: 0,
    lives: [],
    seconds: 0,
  };
  try {
    server = await startServer(cell, database, { fault: options.fault });
    // The restart: in the middle of the run (and of a sequence), and before the first sequence's end in a short run.
    const restartAt = Math.floor(options.runs / 2);
    let last: Settled["stats"] | null = null;
    for (let index = 0; index < options.runs; index++) {
      const seed = options.seed + index;
      const withChromium = options.chromium?.(index) ?? false;
      if (withChromium && !chromium) chromium = await (await import("./chromium.ts")).launchChromium();
      const found = await sequence({
        cell,
        kit,
        database,
        server,
        seed,
        base: options.seed,
        index,
        restart: index === restartAt,
        chromium: withChromium ? chromium : null,
        result,
        get last() {
          return last;
        },
        set last(value) {
          last = value;
        },
      });
      failures.push(...found);
      result.sequences++;
      options.onSequence?.(index, failures.length);
      if (failures.length >= (options.maxFailures ?? 3)) break;
    }
    if (last) result.lives.push(last);
  } finally {
    if (failures.length > 0 && server) for (const f of failures) f.log ??= server.output().slice(-6000);
    await chromium?.close();
    await server?.stop();
    await database.close();
    result.seconds = (Date.now() - started) / 1000;
  }
  return result;
}

interface SequenceContext {
  cell: Cell;
  kit: AppKit;
  database: CellDatabase;
  server: AppServer;
  seed: number;
  base: number;
  index: number;
  restart: boolean;
  chromium: ChromiumSample | null;
  result: CellRun;
  /** The stats of the server's current life at its last settle point. */
  last: Settled["stats"] | null;
}

async function sequence(context: SequenceContext): Promise<Failure[]> {
  const { cell, kit, database, server, seed } = context;
  // Back to the event loop between sequences: happy-dom keeps what a job made alive until the job ends.
  await new Promise((resolve) => setImmediate(resolve));
  const r = new Random(seed);
  await database.reset();
  await server.settle();
  const pool = kit.pool(cell.rendering);
  const browsers = new Map<string, Browser>();
  const browserOf = (viewer: string | null) => {
    const key = viewer ?? "";
    let browser = browsers.get(key);
    if (!browser) {
      browser = new Browser(server.url, viewer, kit.foreign(viewer));
      browsers.set(key, browser);
    }
    return browser;
  };
  const pages: LivePage[] = [];
  const steps: Step[] = [];
  const failures: Failure[] = [];
  const fail = (page: string, transport: string, detail: Partial<Failure>) =>
    failures.push({
      cell: cellName(cell),
      base: context.base,
      index: context.index,
      seed,
      page,
      transport,
      steps,
      expected: "",
      actual: "",
      events: [],
      messages: [],
      ...detail,
    });
  const open = async (spec: PageSpec) => {
    const transport: Transport = r.chance(0.25) ? "sse" : "websocket";
    const page = new LivePage(browserOf(spec.viewer), spec, transport);
    pages.push(page);
    await page.open();
  };
  const vias: Via[] = ["post", "raw", "shell"];
  const write = async (step: Step, down = false) => {
    steps.push(step);
    // Concurrent writers may deadlock (PostgreSQL) or find the database locked (SQLite): the database rolled the
    // attempt back, and it is made again, as an application retries.
    for (let attempt = 0; ; attempt++) {
      try {
        if (step.via === "post" && !down) return await server.write(step);
        if (step.via === "shell") return await database.shell(stepScript(kit, database.dialect, step));
        return await runStepRaw(kit, database.raw, database.dialect, step);
      } catch (error) {
        const message = String((error as Error)?.message ?? error);
        if (REFUSED.test(message)) {
          step.refused = true;
          return;
        }
        if (attempt >= 10 || !RETRYABLE.test(message)) throw error;
      }
    }
  };
  let bursts = 0;
  const generator = kit.sequence();
  const nextStep = (allowed: readonly Via[]) => generator.next(database.raw, r, allowed);
  // Chromium follows HTML pages (the data cells' Inertia pages need an app's client bundle: test/e2e/inertia).
  const htmlPool = pool.filter((p) => p.kind === "html");
  const chromiumSpecs = context.chromium && htmlPool.length > 0 ? [r.pick(htmlPool), r.pick(htmlPool)] : [];
  let chromiumPages: BrowserPage[] = [];
  try {
    if (context.chromium && chromiumSpecs.length > 0)
      chromiumPages = await context.chromium.open(server.url, chromiumSpecs, kit.foreign);
    for (let n = r.int(3, 7); n > 0; n--) await open(r.pick(pool));
    const count = r.int(3, 12);
    const restartStep = context.restart ? r.int(0, count - 1) : -1;
    let dropped: Browser | LivePage | null = null;
    for (let i = 0; i < count; i++) {
      if (i === restartStep) {
        // A crash: the server is killed; writes go on from other processes; it starts again on the same database
        // and port, and every page resumes from the offset it shows.
        if (context.last) context.result.lives.push(context.last);
        context.last = null;
        await server.kill();
        for (let j = r.int(0, 2); j > 0; j--) await write(await nextStep(["raw", "shell"]), true);
        await server.restart();
        context.result.restarts++;
        for (const browser of browsers.values()) await browser.resume();
        for (const page of pages) if (page.transport === "sse") await page.subscribe();
        await context.chromium?.wake();
        dropped = null;
      }
      if (r.chance(0.25)) {
        // A burst: writes from two or three processes and page GETs at the same time, so registrations, catch-ups
        // and frame renders race the planner.
        const burst = ++bursts;
        const channels = vias.filter(() => r.chance(0.7));
        const made: Step[] = [];
        for (const via of channels.length > 0 ? channels : ["raw" as const])
          made.push({ ...(await nextStep([via])), burst });
        const opening = Array.from({ length: r.int(0, 2) }, () => r.pick(pool));
        await Promise.all([...made.map((step) => write(step)), ...opening.map((spec) => open(spec))]);
      } else await write(await nextStep(vias));
      if (dropped) {
        // The connection dropped before the last write comes back, resuming from the offset its pages show.
        if (dropped instanceof Browser) await dropped.resume();
        else await dropped.subscribe();
        dropped = null;
      }
      const action = r.weighted([
        [40, "none"],
        [30, "settle"],
        [14, "open"],
        [8, "navigate"],
        [10, "drop"],
      ] as const);
      if (action === "settle") await server.settle();
      else if (action === "open") await open(r.pick(pool));
      else if (action === "navigate" && pages.some((p) => !p.left)) {
        // A browser leaves a page and GETs another one (on the same socket).
        const leaving = r.pick(pages.filter((p) => !p.left));
        leaving.close();
        await open({ ...r.pick(pool.filter((p) => p.kind === leaving.spec.kind)), viewer: leaving.spec.viewer });
      } else if (action === "drop") {
        const live = pages.filter((p) => !p.left);
        if (live.length > 0) {
          const page = r.pick(live);
          if (page.transport === "websocket") {
            page.browser.drop();
            dropped = page.browser;
          } else {
            page.dropStream();
            dropped = page;
          }
        }
      }
    }
    if (dropped) {
      if (dropped instanceof Browser) await dropped.resume();
      else await dropped.subscribe();
    }
    const settled = await server.settle();
    context.last = settled.stats;
    for (const browser of browsers.values()) await browser.barrier();
    for (const page of pages) {
      if (page.left) continue;
      await page.idle();
      let actual = page.actual();
      const expected = await page.expected();
      // An SSE stream's messages are not ordered with the settle point's answer: a page behind the offset the server
      // brought its subscription to may still have a message on its way.
      for (
        let wait = 0;
        actual !== expected && page.offset < (settled.subscribers[page.id] ?? 0) && wait < 50;
        wait++
      ) {
        await page.nextMessage(200);
        await page.idle();
        actual = page.actual();
      }
      // A page still open is still followed: the server holds its subscription.
      if (!(page.id in settled.subscribers) && page.events.length === 0) {
        page.events.push({ kind: "open", detail: `the server holds no subscription ${page.id} for the page` });
      }
      context.result.pages++;
      context.result.applied += page.messages.filter(
        (m) => m.type === "patch" || m.type === "props" || m.type === "value",
      ).length;
      if (actual !== expected || page.events.length > 0) {
        fail(`${page.spec.url} (${page.spec.kind}, viewer ${page.spec.viewer ?? "guest"})`, page.transport, {
          expected,
          actual,
          events: page.events,
          messages: page.messages,
        });
      }
    }
    for (const sample of chromiumPages) {
      context.result.browserPages++;
      const outcome = await sample.converge();
      if (!outcome.ok) {
        fail(`${sample.spec.url} (Chromium, viewer ${sample.spec.viewer ?? "guest"})`, "chromium", {
          expected: outcome.expected,
          actual: outcome.actual,
          events: outcome.events,
        });
      }
    }
    // Every page is left now: the server must end each subscription (it learns of a closed socket or stream
    // asynchronously, so this waits within a bound before it fails).
    for (const browser of browsers.values()) browser.close();
    for (const sample of chromiumPages) await sample.close();
    let left = Object.keys((await server.settle()).subscribers);
    for (let wait = 0; left.length > 0 && wait < 100; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = Object.keys((await server.settle()).subscribers);
    }
    if (left.length > 0) {
      fail("(subscriptions)", "", { error: `subscriptions still open after every page was left: ${left.join(", ")}` });
    }
  } catch (error) {
    fail("(sequence)", "", { error: (error as Error).stack ?? String(error) });
  } finally {
    for (const browser of browsers.values()) browser.close();
    for (const sample of chromiumPages) await sample.close();
  }
  return failures;
}

/** A readable account of a failure: the replay commands, the steps, and where the two renderings first differ. */
export function describeFailure(f: Failure): string {
  const lines = [
    `convergence failure in ${f.cell}, sequence ${f.index} of the run from seed ${f.base} (sequence seed ${f.seed})`,
    `  replay the sequence: npm run convergence -- --stack ${f.cell} --seed ${f.seed} --runs 1`,
    `  replay the run up to it: npm run convergence -- --stack ${f.cell} --seed ${f.base} --runs ${f.index + 1}`,
    `  page: ${f.page} over ${f.transport}`,
    `  steps: ${JSON.stringify(f.steps)}`,
  ];
  if (f.error) lines.push(`  error: ${f.error}`);
  for (const event of f.events) lines.push(`  ${event.kind}: ${event.detail}`);
  if (f.expected !== f.actual) {
    let i = 0;
    while (i < f.expected.length && f.expected[i] === f.actual[i]) i++;
    lines.push(`  first difference at ${i}:`);
    lines.push(`    fresh GET: …${f.expected.slice(Math.max(0, i - 160), i + 240)}`);
    lines.push(`    live page: …${f.actual.slice(Math.max(0, i - 160), i + 240)}`);
  }
  if (f.messages.length > 0) {
    const all = JSON.stringify(f.messages);
    lines.push(`  messages: ${all.length <= 6000 ? all : `${all.slice(0, 2000)} … ${all.slice(-4000)}`}`);
  }
  if (f.log) lines.push(`  server output (last lines):\n${f.log}`);
  return lines.join("\n");
}
