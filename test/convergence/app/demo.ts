// The demo's own app (demo/app.tsx, JSX views; demo/spa/app.ts, the same board as an Inertia app) as the oracle sees
// it: its pages per rendering, and seeded writes on its boards and cards — inserts, renames, moves between columns and
// boards, swaps, deletes, bulk statements, new and renamed boards. Viewers sign in by the `viewer` cookie, which the
// pages greet by name: a page of one viewer must never carry another's name.
import type { Kysely } from "kysely";
import {
  type CardStatus,
  createSchema,
  type Database,
  type RawConnection,
  resetToSeed,
  STATUSES,
} from "../../../demo/schema.ts";
import type { PageSpec } from "../clients.ts";
import { pickVia, type Random } from "../generate.ts";
import type { Rendering } from "../stack.ts";
import type { AppKit, Dialect, Step, Via } from "./kit.ts";
import { literal as l } from "./ops.ts";

/** The viewers' cookie values: text nothing else on a page or in a message can contain (no seed or generated text has
 *  a "~", nor has base64 or hex, as tokens and digests are), so the page that shows one is that viewer's. */
const VIEWERS = ["alice~", "bob~", "carol~"] as const;
const WORDS = ["alpha", "bravo", "copy", "deploy", "email", "fix", "graph", "<b>&amp;", "ünï", "o'hara"];
/** Boards the pages show; they are never deleted (a deleted board's page is a 404, not a live page). */
const WATCHED_BOARDS = [1, 2, 3];

export type DemoOp =
  | { kind: "insertCard"; board: number; status: CardStatus; title: string; position: number }
  | { kind: "rename"; id: number; title: string }
  | { kind: "noopRename"; id: number }
  | { kind: "move"; id: number; status: CardStatus; position: number }
  | { kind: "moveBoard"; id: number; board: number }
  /** Two cards exchange positions (as read when the step was generated). */
  | { kind: "swap"; a: number; b: number; positionA: number; positionB: number }
  | { kind: "deleteCard"; id: number }
  | { kind: "bulkStatus"; board: number; from: CardStatus; to: CardStatus }
  | { kind: "bulkShift"; board: number; by: number }
  | { kind: "bulkDelete"; board: number; status: CardStatus }
  | { kind: "insertBoard"; name: string }
  | { kind: "renameBoard"; id: number; name: string }
  | { kind: "deleteBoard"; id: number };

interface State {
  cards: { id: number; board_id: number; status: CardStatus; position: number }[];
  boards: number[];
}

async function readState(raw: RawConnection): Promise<State> {
  const cards = await raw.query<State["cards"][number]>("select id, board_id, status, position from cards order by id");
  const boards = (await raw.query<{ id: number }>("select id from boards order by id")).map((b) => Number(b.id));
  return {
    cards: cards.map((c) => ({ ...c, id: Number(c.id), board_id: Number(c.board_id), position: Number(c.position) })),
    boards,
  };
}

function genOp(r: Random, s: State): DemoOp {
  const card = () => (s.cards.length ? r.pick(s.cards) : { id: 1_000_000, position: 0 }); // a missing id matches nothing
  const title = () => `${r.pick(WORDS)} ${r.int(0, 99)}`;
  const board = () => r.pick(s.boards);
  const roll = r.int(0, 99);
  if (roll < 18)
    return { kind: "insertCard", board: board(), status: r.pick(STATUSES), title: title(), position: r.int(0, 6) };
  if (roll < 32) return { kind: "rename", id: card().id, title: title() };
  if (roll < 35) return { kind: "noopRename", id: card().id };
  if (roll < 50) return { kind: "move", id: card().id, status: r.pick(STATUSES), position: r.int(0, 6) };
  if (roll < 58) return { kind: "moveBoard", id: card().id, board: board() };
  if (roll < 68) {
    const [a, b] = [card(), card()];
    return { kind: "swap", a: a.id, b: b.id, positionA: a.position, positionB: b.position };
  }
  if (roll < 76) return { kind: "deleteCard", id: card().id };
  if (roll < 81) return { kind: "bulkStatus", board: board(), from: r.pick(STATUSES), to: r.pick(STATUSES) };
  if (roll < 85) return { kind: "bulkShift", board: board(), by: r.pick([-2, -1, 1, 3]) };
  if (roll < 88) return { kind: "bulkDelete", board: board(), status: r.pick(STATUSES) };
  if (roll < 93) return { kind: "insertBoard", name: `Board ${title()}` };
  const extra = s.boards.filter((b) => !WATCHED_BOARDS.includes(b));
  if (roll < 97 || extra.length === 0) return { kind: "renameBoard", id: board(), name: `Board ${title()}` };
  return { kind: "deleteBoard", id: r.pick(extra) };
}

/** Keeps the generator's picture of the state close enough for the later ops of one transaction. */
function project(s: State, op: DemoOp): void {
  if (op.kind === "deleteCard") s.cards = s.cards.filter((c) => c.id !== op.id);
  if (op.kind === "bulkDelete") s.cards = s.cards.filter((c) => c.board_id !== op.board || c.status !== op.status);
  if (op.kind === "deleteBoard") {
    s.cards = s.cards.filter((c) => c.board_id !== op.id);
    s.boards = s.boards.filter((b) => b !== op.id);
  }
  if (op.kind === "moveBoard") for (const c of s.cards) if (c.id === op.id) c.board_id = op.board;
}

function opSql(_dialect: Dialect, op: DemoOp): string {
  switch (op.kind) {
    case "insertCard":
      return `insert into cards (board_id, title, status, position) values (${l(op.board)}, ${l(op.title)}, ${l(op.status)}, ${l(op.position)})`;
    case "rename":
      return `update cards set title = ${l(op.title)} where id = ${l(op.id)}`;
    case "noopRename":
      return `update cards set title = title where id = ${l(op.id)}`;
    case "move":
      return `update cards set status = ${l(op.status)}, position = ${l(op.position)} where id = ${l(op.id)}`;
    case "moveBoard":
      return `update cards set board_id = ${l(op.board)} where id = ${l(op.id)}`;
    case "swap":
      return `update cards set position = ${l(op.positionB)} where id = ${l(op.a)}; update cards set position = ${l(op.positionA)} where id = ${l(op.b)}`;
    case "deleteCard":
      return `delete from cards where id = ${l(op.id)}`;
    case "bulkStatus":
      return `update cards set status = ${l(op.to)} where board_id = ${l(op.board)} and status = ${l(op.from)}`;
    case "bulkShift":
      return `update cards set position = position + ${l(op.by)} where board_id = ${l(op.board)}`;
    case "bulkDelete":
      return `delete from cards where board_id = ${l(op.board)} and status = ${l(op.status)}`;
    case "insertBoard":
      return `insert into boards (name) values (${l(op.name)})`;
    case "renameBoard":
      return `update boards set name = ${l(op.name)} where id = ${l(op.id)}`;
    case "deleteBoard":
      return `delete from cards where board_id = ${l(op.id)}; delete from boards where id = ${l(op.id)}`;
  }
}

async function runKysely(db: Kysely<Database>, op: DemoOp): Promise<void> {
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
    case "swap":
      await db.updateTable("cards").set({ position: op.positionB }).where("id", "=", op.a).execute();
      await db.updateTable("cards").set({ position: op.positionA }).where("id", "=", op.b).execute();
      return;
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

/** The board list and the boards (the activity panel is off), or the Inertia SPA's pages in the data cells. */
function pool(rendering: Rendering): PageSpec[] {
  const specs: PageSpec[] = [];
  for (const viewer of [null, ...VIEWERS]) {
    if (rendering === "data") {
      for (const url of ["/spa", "/spa/boards/1", "/spa/boards/1", "/spa/boards/2", "/spa/boards/3"])
        specs.push({ url, viewer, kind: "props" });
      continue;
    }
    for (const url of ["/", "/boards/1", "/boards/1", "/boards/2", "/boards/3"])
      specs.push({ url, viewer, kind: "html" });
  }
  return specs;
}

export const demoKit: AppKit = {
  name: "demo",
  createSchema,
  resetToSeed,
  pool,
  sequence: () => ({
    async next(raw: RawConnection, r: Random, vias: readonly Via[]): Promise<Step> {
      const state = await readState(raw);
      const transaction = r.chance(0.3);
      const ops: DemoOp[] = [];
      for (let i = transaction ? r.int(2, 4) : 1; i > 0; i--) {
        const op = genOp(r, state);
        ops.push(op);
        project(state, op);
      }
      return { via: pickVia(r, vias), ops, transaction, rollback: transaction && r.chance(0.15) };
    },
  }),
  opSql: (dialect, op) => opSql(dialect, op as DemoOp),
  runKysely: (db, _dialect, op) => runKysely(db as Kysely<Database>, op as DemoOp),
  foreign: (viewer) => VIEWERS.filter((v) => v !== viewer),
};
