// The convergence oracle: seeded random write sequences on the demo schema against several live pages; after
// settling, every page's patched DOM must equal a fresh GET of the same URL by the same viewer.
//
// A sequence is fully determined by its seed and the seed data it starts from (every sequence starts from
// resetToSeed, and identity values restart at the same point), so `--seed <sequence seed> --runs 1` replays a
// failure exactly.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Kysely, Transaction } from "kysely";
import { register } from "tsx/esm/api";
import {
  type CardStatus,
  createSchema,
  type Database,
  openRaw,
  type RawConnection,
  resetToSeed,
  STATUSES,
} from "../../demo/schema.ts";
import { createSpaApp } from "../../demo/spa/app.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import {
  freshBody,
  freshJson,
  freshProps,
  openLivePage,
  openLiveProps,
  openLiveResource,
} from "../../src/testing/index.ts";
import { createLabApp } from "./lab.ts";

export type Dialect = "sqlite" | "postgres";

/** mulberry32: small, fast, and the same on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const WORDS = [
  "alpha",
  "bravo",
  "copy",
  "deploy",
  "email",
  "fix",
  "graph",
  "hiring",
  "icons",
  "jobs",
  "<b>&amp;",
  "ünï",
];

/** The pages each sequence may watch: URL and viewer headers (cookies partition the board list). */
/** What a page is: HTML (the DOM oracle), an Inertia page (its props), a live JSON resource (its value). */
type PageKind = "html" | "props" | "json";

const PAGE_POOL: ReadonlyArray<{ url: string; headers: Record<string, string>; kind?: PageKind }> = [
  { url: "/", headers: {} },
  { url: "/", headers: { cookie: "viewer=alice" } },
  { url: "/", headers: { cookie: "viewer=bob" } },
  { url: "/boards/1", headers: {} },
  { url: "/boards/1", headers: { cookie: "viewer=alice" } },
  { url: "/boards/2", headers: { cookie: "viewer=bob" } },
  { url: "/boards/3", headers: {} },
  // Frame shapes the demo lacks (lab.ts): a LIMIT window, a join, nested fragments, a per-viewer fragment.
  { url: "/lab/1", headers: { cookie: "viewer=alice" } },
  { url: "/lab/1", headers: { cookie: "viewer=bob" } },
  { url: "/lab/2", headers: {} },
  // Data mode: the board as an Inertia app (demo/spa/app.ts: a prop per column, a shared prop reading the cookie)
  // and a live JSON resource.
  { url: "/spa/boards/1", headers: { cookie: "viewer=alice" }, kind: "props" },
  { url: "/spa/boards/1", headers: { cookie: "viewer=bob" }, kind: "props" },
  { url: "/spa/boards/2", headers: {}, kind: "props" },
  { url: "/spa", headers: { cookie: "viewer=carol" }, kind: "props" },
  { url: "/lab/api/1", headers: {}, kind: "json" },
  { url: "/lab/api/3", headers: { cookie: "viewer=alice" }, kind: "json" },
];

/** JSON with sorted keys: two values print equal exactly when they are deeply equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v as object)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

/** A followed page of any kind, as the oracle compares it. */
interface Followed {
  readonly messages: unknown[];
  readonly reloaded: boolean;
  /** What the browser shows now, and what a fresh request by the same viewer shows. */
  actual(): Promise<string>;
  expected(): Promise<string>;
  close(): void;
}

async function follow(
  upkeep: Upkeep,
  app: FetchApp,
  spec: { url: string; headers: Record<string, string>; kind?: PageKind },
): Promise<Followed> {
  if (spec.kind === "props") {
    const page = await openLiveProps(upkeep, app, spec.url, spec);
    return {
      messages: page.messages,
      get reloaded() {
        return page.reloaded;
      },
      actual: async () => {
        await page.idle();
        return canonical(page.current());
      },
      expected: async () => canonical(await freshProps(app, spec.url, spec.headers)),
      close: page.close,
    };
  }
  if (spec.kind === "json") {
    const resource = await openLiveResource(upkeep, app, spec.url, spec);
    return {
      messages: resource.messages,
      get reloaded() {
        return resource.reloaded;
      },
      actual: async () => canonical(resource.current()),
      expected: async () => canonical(await freshJson(app, spec.url, spec.headers)),
      close: resource.close,
    };
  }
  const page = await openLivePage(upkeep, app, spec.url, spec);
  return {
    messages: page.messages,
    get reloaded() {
      return page.reloaded;
    },
    actual: async () => page.body(),
    expected: () => freshBody(app, spec.url, spec.headers),
    close: page.close,
  };
}

/** Boards the pages show; they are never deleted (a deleted board's page is a 404, not a live page). */
const WATCHED_BOARDS = [1, 2, 3];

type Via = "kysely" | "raw";

/** One write, described as data so a failing sequence can be printed. */
export type Op =
  | { kind: "insertCard"; board: number; status: CardStatus; title: string; position: number }
  | { kind: "rename"; id: number; title: string }
  | { kind: "noopRename"; id: number }
  | { kind: "move"; id: number; status: CardStatus; position: number }
  | { kind: "moveBoard"; id: number; board: number }
  | { kind: "swap"; a: number; b: number }
  | { kind: "deleteCard"; id: number }
  | { kind: "bulkStatus"; board: number; from: CardStatus; to: CardStatus }
  | { kind: "bulkShift"; board: number; by: number }
  | { kind: "bulkDelete"; board: number; status: CardStatus }
  | { kind: "insertBoard"; name: string }
  | { kind: "renameBoard"; id: number; name: string }
  | { kind: "deleteBoard"; id: number };

export interface Step {
  via: Via;
  /** Several ops in one transaction; `rollback` aborts it after running them. */
  ops: Op[];
  transaction: boolean;
  rollback: boolean;
}

interface State {
  cards: { id: number; board_id: number; status: CardStatus; position: number }[];
  boards: number[];
}

async function readState(raw: RawConnection): Promise<State> {
  const cards = await raw.query<State["cards"][number]>("select id, board_id, status, position from cards order by id");
  const boards = (await raw.query<{ id: number }>("select id from boards order by id")).map((b) => Number(b.id));
  return { cards: cards.map((c) => ({ ...c, id: Number(c.id), board_id: Number(c.board_id) })), boards };
}

function genOp(r: Random, s: State): Op {
  const card = () => (s.cards.length ? r.pick(s.cards).id : 1_000_000); // a missing id is a write that matches nothing
  const title = () => `${r.pick(WORDS)} ${r.int(0, 99)}`;
  const board = () => r.pick(s.boards);
  const roll = r.int(0, 99);
  if (roll < 18)
    return { kind: "insertCard", board: board(), status: r.pick(STATUSES), title: title(), position: r.int(0, 6) };
  if (roll < 32) return { kind: "rename", id: card(), title: title() };
  if (roll < 35) return { kind: "noopRename", id: card() };
  if (roll < 50) return { kind: "move", id: card(), status: r.pick(STATUSES), position: r.int(0, 6) };
  if (roll < 58) return { kind: "moveBoard", id: card(), board: board() };
  if (roll < 68) return { kind: "swap", a: card(), b: card() };
  if (roll < 76) return { kind: "deleteCard", id: card() };
  if (roll < 81) return { kind: "bulkStatus", board: board(), from: r.pick(STATUSES), to: r.pick(STATUSES) };
  if (roll < 85) return { kind: "bulkShift", board: board(), by: r.pick([-2, -1, 1, 3]) };
  if (roll < 88) return { kind: "bulkDelete", board: board(), status: r.pick(STATUSES) };
  if (roll < 93) return { kind: "insertBoard", name: `Board ${title()}` };
  const extra = s.boards.filter((b) => !WATCHED_BOARDS.includes(b));
  if (roll < 97 || extra.length === 0) return { kind: "renameBoard", id: board(), name: `Board ${title()}` };
  return { kind: "deleteBoard", id: r.pick(extra) };
}

/** Keep the generator's picture of the state close enough to pick existing ids for later ops of a transaction. */
function project(s: State, op: Op): void {
  if (op.kind === "deleteCard") s.cards = s.cards.filter((c) => c.id !== op.id);
  if (op.kind === "bulkDelete") s.cards = s.cards.filter((c) => c.board_id !== op.board || c.status !== op.status);
  if (op.kind === "deleteBoard") {
    s.cards = s.cards.filter((c) => c.board_id !== op.id);
    s.boards = s.boards.filter((b) => b !== op.id);
  }
  if (op.kind === "moveBoard") for (const c of s.cards) if (c.id === op.id) c.board_id = op.board;
}

/** One step: a single write, or 2–4 writes in one transaction (sometimes rolled back). */
function generateStep(r: Random, s: State): Step {
  const transaction = r.chance(0.3);
  const ops: Op[] = [];
  const count = transaction ? r.int(2, 4) : 1;
  for (let j = 0; j < count; j++) {
    const op = genOp(r, s);
    ops.push(op);
    project(s, op);
  }
  return { via: r.chance(0.5) ? "kysely" : "raw", ops, transaction, rollback: transaction && r.chance(0.15) };
}

class Rollback extends Error {}

async function runRaw(raw: RawConnection, op: Op): Promise<void> {
  switch (op.kind) {
    case "insertCard":
      return raw.exec("insert into cards (board_id, title, status, position) values (?, ?, ?, ?)", [
        op.board,
        op.title,
        op.status,
        op.position,
      ]);
    case "rename":
      return raw.exec("update cards set title = ? where id = ?", [op.title, op.id]);
    case "noopRename":
      return raw.exec("update cards set title = title where id = ?", [op.id]);
    case "move":
      return raw.exec("update cards set status = ?, position = ? where id = ?", [op.status, op.position, op.id]);
    case "moveBoard":
      return raw.exec("update cards set board_id = ? where id = ?", [op.board, op.id]);
    case "swap": {
      const rows = await raw.query<{ id: number; position: number }>(
        "select id, position from cards where id in (?, ?)",
        [op.a, op.b],
      );
      const a = rows.find((x) => Number(x.id) === op.a);
      const b = rows.find((x) => Number(x.id) === op.b);
      if (!a || !b) return;
      await raw.exec("update cards set position = ? where id = ?", [b.position, op.a]);
      return raw.exec("update cards set position = ? where id = ?", [a.position, op.b]);
    }
    case "deleteCard":
      return raw.exec("delete from cards where id = ?", [op.id]);
    case "bulkStatus":
      return raw.exec("update cards set status = ? where board_id = ? and status = ?", [op.to, op.board, op.from]);
    case "bulkShift":
      return raw.exec("update cards set position = position + ? where board_id = ?", [op.by, op.board]);
    case "bulkDelete":
      return raw.exec("delete from cards where board_id = ? and status = ?", [op.board, op.status]);
    case "insertBoard":
      return raw.exec("insert into boards (name) values (?)", [op.name]);
    case "renameBoard":
      return raw.exec("update boards set name = ? where id = ?", [op.name, op.id]);
    case "deleteBoard":
      await raw.exec("delete from cards where board_id = ?", [op.id]);
      return raw.exec("delete from boards where id = ?", [op.id]);
  }
}

async function runKysely(db: Kysely<Database> | Transaction<Database>, op: Op): Promise<void> {
  switch (op.kind) {
    case "insertCard":
      await db
        .insertInto("cards")
        .values({ board_id: op.board, title: op.title, status: op.status, position: op.position })
        .execute();
      return;
    case "rename":
      await db.updateTable("cards").set({ title: op.title }).where("id", "=", op.id).execute();
      return;
    case "noopRename":
      await db
        .updateTable("cards")
        .set((eb) => ({ title: eb.ref("title") }))
        .where("id", "=", op.id)
        .execute();
      return;
    case "move":
      await db.updateTable("cards").set({ status: op.status, position: op.position }).where("id", "=", op.id).execute();
      return;
    case "moveBoard":
      await db.updateTable("cards").set({ board_id: op.board }).where("id", "=", op.id).execute();
      return;
    case "swap": {
      const rows = await db.selectFrom("cards").select(["id", "position"]).where("id", "in", [op.a, op.b]).execute();
      const a = rows.find((x) => x.id === op.a);
      const b = rows.find((x) => x.id === op.b);
      if (!a || !b) return;
      await db.updateTable("cards").set({ position: b.position }).where("id", "=", op.a).execute();
      await db.updateTable("cards").set({ position: a.position }).where("id", "=", op.b).execute();
      return;
    }
    case "deleteCard":
      await db.deleteFrom("cards").where("id", "=", op.id).execute();
      return;
    case "bulkStatus":
      await db
        .updateTable("cards")
        .set({ status: op.to })
        .where("board_id", "=", op.board)
        .where("status", "=", op.from)
        .execute();
      return;
    case "bulkShift":
      await db
        .updateTable("cards")
        .set((eb) => ({ position: eb("position", "+", op.by) }))
        .where("board_id", "=", op.board)
        .execute();
      return;
    case "bulkDelete":
      await db.deleteFrom("cards").where("board_id", "=", op.board).where("status", "=", op.status).execute();
      return;
    case "insertBoard":
      await db.insertInto("boards").values({ name: op.name }).execute();
      return;
    case "renameBoard":
      await db.updateTable("boards").set({ name: op.name }).where("id", "=", op.id).execute();
      return;
    case "deleteBoard":
      await db.deleteFrom("cards").where("board_id", "=", op.id).execute();
      await db.deleteFrom("boards").where("id", "=", op.id).execute();
      return;
  }
}

async function runStep(db: Kysely<Database>, raw: RawConnection, step: Step): Promise<void> {
  try {
    if (step.via === "raw") {
      if (!step.transaction) return await runRaw(raw, step.ops[0]!);
      await raw.transaction(async () => {
        for (const op of step.ops) await runRaw(raw, op);
        if (step.rollback) throw new Rollback();
      });
    } else {
      if (!step.transaction) return await runKysely(db, step.ops[0]!);
      await db.transaction().execute(async (trx) => {
        for (const op of step.ops) await runKysely(trx, op);
        if (step.rollback) throw new Rollback();
      });
    }
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
}

/** The demo's views are JSX: load them through tsx, registering it when this process runs without it. */
export async function importDemoApp(): Promise<typeof import("../../demo/app.tsx")> {
  try {
    return await import("../../demo/app.tsx");
  } catch (error) {
    if ((error as { code?: string }).code !== "ERR_UNKNOWN_FILE_EXTENSION") throw error;
    register();
    return await import("../../demo/app.tsx");
  }
}

export interface Failure {
  dialect: Dialect;
  seed: number;
  url: string;
  headers: Record<string, string>;
  steps: Step[];
  expected: string;
  actual: string;
  messages: unknown[];
  error?: string;
}

export interface Harness {
  dialect: Dialect;
  /** Run one sequence; resolves with the failures it found (empty when every page converged). */
  sequence(seed: number): Promise<Failure[]>;
  close(): Promise<void>;
}

const SECRET = "upkeep-convergence-secret-at-least-32-characters";

/**
 * One Upkeep instance, demo app and second (raw) connection per dialect, reused by every sequence. For SQLite,
 * pass no URL: a temporary file is created and removed on close.
 */
export async function openHarness(dialect: Dialect, url?: string): Promise<Harness> {
  let dir: string | undefined;
  if (dialect === "sqlite" && !url) {
    dir = mkdtempSync(join(tmpdir(), "upkeep-convergence-"));
    url = `file:${join(dir, "demo.sqlite")}`;
  }
  if (!url) throw new Error("a PostgreSQL URL is required");
  const raw = await openRaw(url);
  await createSchema(raw);
  await resetToSeed(raw);
  const { createDemoApp } = await importDemoApp();
  const upkeep: Upkeep = await createUpkeep({ database: url, secret: SECRET, mode: "test", install: true });
  const app = createDemoApp(upkeep);
  app.route("/lab", createLabApp(upkeep));
  app.route("/spa", createSpaApp(upkeep).app);
  upkeep.use(app);
  const db = upkeep.db<Database>();

  return {
    dialect,
    async sequence(seed) {
      // Return to the event loop between sequences: V8 keeps every WeakRef target made during a job alive until
      // the job ends, and happy-dom (the DOM oracle) makes one per node, so a run of sequences chained only
      // through promises would hold every document it ever parsed.
      await new Promise((resolve) => setImmediate(resolve));
      const r = new Random(seed);
      await resetToSeed(raw);
      await upkeep.settle();
      const chosen = PAGE_POOL.filter(() => r.chance(0.6));
      if (chosen.length === 0) chosen.push(r.pick(PAGE_POOL));
      const pages: Array<{ spec: (typeof PAGE_POOL)[number]; page: Followed }> = [];
      const failures: Failure[] = [];
      const steps: Step[] = [];
      try {
        for (const spec of chosen) pages.push({ spec, page: await follow(upkeep, app, spec) });
        const count = r.int(1, 6);
        for (let i = 0; i < count; i++) {
          // Each step is generated from the state it will run on, so it can pick existing ids.
          const step = generateStep(r, await readState(raw));
          steps.push(step);
          await runStep(db, raw, step);
          // Sometimes let the pipeline catch up mid-sequence, so both settled and in-flight paths are exercised.
          if (r.chance(0.2)) await upkeep.settle();
          // Sometimes open another page while facts are still in flight: its GET, registration and subscription
          // race the planner (the render → subscribe race of deliver/hub.ts).
          if (r.chance(0.25)) {
            const spec = r.pick(PAGE_POOL);
            pages.push({ spec, page: await follow(upkeep, app, spec) });
          }
        }
        await upkeep.settle();
        for (const { spec, page } of pages) {
          const actual = await page.actual();
          const expected = await page.expected();
          if (actual !== expected || page.reloaded) {
            failures.push({ dialect, seed, ...spec, steps, expected, actual, messages: page.messages });
          }
        }
      } catch (error) {
        failures.push({
          dialect,
          seed,
          url: "(sequence)",
          headers: {},
          steps,
          expected: "",
          actual: "",
          messages: [],
          error: (error as Error).stack ?? String(error),
        });
      } finally {
        for (const { page } of pages) page.close();
      }
      return failures;
    },
    async close() {
      await upkeep.close();
      await raw.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A readable account of a failure: the replay command, the steps, and where the bodies first differ. */
export function describeFailure(f: Failure): string {
  const lines = [
    `convergence failure on ${f.dialect}, sequence seed ${f.seed}`,
    `  replay: npm run convergence -- --dialect ${f.dialect} --seed ${f.seed} --runs 1`,
    `  page: ${f.url} ${JSON.stringify(f.headers)}`,
    `  steps: ${JSON.stringify(f.steps)}`,
  ];
  if (f.error) {
    lines.push(`  error: ${f.error}`);
    return lines.join("\n");
  }
  let i = 0;
  while (i < f.expected.length && f.expected[i] === f.actual[i]) i++;
  lines.push(`  first difference at ${i}:`);
  lines.push(`    fresh GET: …${f.expected.slice(Math.max(0, i - 120), i + 200)}`);
  lines.push(`    live page: …${f.actual.slice(Math.max(0, i - 120), i + 200)}`);
  lines.push(`  messages: ${JSON.stringify(f.messages).slice(0, 2000)}`);
  return lines.join("\n");
}

/** Run `runs` sequences with seeds base, base+1, …; stops collecting after `maxFailures`. */
export async function runConvergence(options: {
  harness: Harness;
  runs: number;
  seed: number;
  maxFailures?: number;
  onProgress?: (done: number) => void;
}): Promise<Failure[]> {
  const failures: Failure[] = [];
  for (let i = 0; i < options.runs; i++) {
    failures.push(...(await options.harness.sequence(options.seed + i)));
    options.onProgress?.(i + 1);
    if (failures.length >= (options.maxFailures ?? 3)) break;
  }
  return failures;
}
