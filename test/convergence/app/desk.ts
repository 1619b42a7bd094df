// The help desk the convergence oracle was written for (schema.ts, views.ts, ops.ts), as the oracle sees it: its
// pages per rendering, and its seeded writes — each step generated from the state it will run on (so it picks
// existing tickets, notes and tags), in every form the oracle must survive: single writes and transactions, some
// rolled back; rows moving into and out of filters, orders and the LIMIT window; renames of rows other rows join to;
// bulk statements; upserts, REPLACE INTO / MERGE, and whole-table deletes (TRUNCATE on PostgreSQL).
import type { Kysely } from "kysely";
import type { RawConnection } from "../../../demo/schema.ts";
import type { PageSpec } from "../clients.ts";
import { pickVia, type Random } from "../generate.ts";
import type { Rendering } from "../stack.ts";
import { INERTIA_PREFIX } from "./inertia.ts";
import type { AppKit, Step, Via } from "./kit.ts";
import { type Op, opSql, runKysely } from "./ops.ts";
import { createSchema, type Database, marker, resetToSeed, STATUSES, type Status, VIEWERS } from "./schema.ts";

const WORDS = ["alpha", "bravo", "copy", "deploy", "email", "graph", "<b>&amp;", "ünï", "o'hara", "zulu"];
const NAMES = ["Ann", "Ben", "Cy", "Dee", "Eve", "Fay", "Gus", "<i>Hal</i>", "Ida & Co", "Zoë"];
const TAGS = ["vip", "bug", "wait", "sla"];
const COLORS = ["gold", "red", "blue", "grey"];

/** The rows a step may pick from, read before it is generated. */
interface State {
  tickets: { id: number; queue_id: number; status: Status }[];
  notes: { id: number; owner: string }[];
  tags: { ticket_id: number; tag: string }[];
  /** Ids the upserts of a sequence create (far above the identity sequences, so inserts never collide with them). */
  nextUpsertId: number;
}

async function readState(raw: RawConnection, nextUpsertId: number): Promise<State> {
  const tickets = await raw.query<{ id: number; queue_id: number; status: Status }>(
    "select id, queue_id, status from tickets order by id",
  );
  const notes = await raw.query<{ id: number; owner: string }>("select id, owner from notes order by id");
  const tags = await raw.query<{ ticket_id: number; tag: string }>(
    "select ticket_id, tag from tags order by ticket_id, tag",
  );
  return {
    tickets: tickets.map((t) => ({ ...t, id: Number(t.id), queue_id: Number(t.queue_id) })),
    notes: notes.map((n) => ({ ...n, id: Number(n.id) })),
    tags: tags.map((t) => ({ ...t, ticket_id: Number(t.ticket_id) })),
    nextUpsertId,
  };
}

const QUEUES = [1, 2, 3];
const PEOPLE = [1, 2, 3, 4, 5];

function genOp(r: Random, s: State): Op {
  const ticket = () => (s.tickets.length > 0 && r.chance(0.95) ? r.pick(s.tickets).id : 1_000_000);
  const title = () => `${r.pick(WORDS)} ${r.int(0, 99)}`;
  const assignee = () => (r.chance(0.15) ? null : r.pick(PEOPLE));
  const priority = () => r.int(0, 5);
  const status = () => r.pick(STATUSES);
  const row = (id: number) => ({
    id,
    queue: r.pick(QUEUES),
    title: title(),
    status: status(),
    priority: priority(),
    assignee: assignee(),
  });
  const existingOrNew = () => (r.chance(0.6) && s.tickets.length > 0 ? r.pick(s.tickets).id : s.nextUpsertId++);
  const note = () => (s.notes.length > 0 ? r.pick(s.notes) : { id: 1_000_000, owner: "alice" });
  const kind = r.weighted<Op["kind"]>([
    [10, "insertTicket"],
    [7, "retitle"],
    [10, "reprioritize"],
    [7, "setStatus"],
    [8, "reassign"],
    [4, "moveQueue"],
    [2, "touch"],
    [5, "deleteTicket"],
    [9, "renamePerson"],
    [3, "renameQueue"],
    [3, "bulkPriority"],
    [3, "bulkStatus"],
    [1, "bulkDelete"],
    [4, "upsertTicket"],
    [4, "replaceTicket"],
    [4, "tag"],
    [2, "replaceTag"],
    [2, "untag"],
    [3, "addNote"],
    [2, "editNote"],
    [2, "deleteNote"],
    [1, "truncate"],
  ]);
  switch (kind) {
    case "insertTicket": {
      const { queue, title: t, status: st, priority: p, assignee: a } = row(0);
      return { kind, queue, title: t, status: st, priority: p, assignee: a };
    }
    case "retitle":
      return { kind, id: ticket(), title: title() };
    case "reprioritize":
      return { kind, id: ticket(), priority: priority() };
    case "setStatus":
      return { kind, id: ticket(), status: status() };
    case "reassign":
      return { kind, id: ticket(), assignee: assignee() };
    case "moveQueue":
      return { kind, id: ticket(), queue: r.pick(QUEUES) };
    case "touch":
      return { kind, id: ticket() };
    case "deleteTicket":
      return { kind, id: ticket() };
    case "renamePerson":
      return { kind, id: r.pick(PEOPLE), name: `${r.pick(NAMES)} ${r.int(0, 99)}` };
    case "renameQueue":
      return { kind, id: r.pick(QUEUES), name: `${r.pick(NAMES)} desk ${r.int(0, 9)}` };
    case "bulkPriority":
      return { kind, queue: r.pick(QUEUES), by: r.pick([-2, -1, 1, 2]) };
    case "bulkStatus":
      return { kind, queue: r.pick(QUEUES), from: status(), to: status() };
    case "bulkDelete":
      return { kind, queue: r.pick(QUEUES), status: "closed" };
    case "upsertTicket":
    case "replaceTicket":
      return { kind, ...row(existingOrNew()) };
    case "tag":
    case "replaceTag":
      return { kind, ticket: ticket(), tag: r.pick(TAGS), color: r.pick(COLORS) };
    case "untag": {
      const tag = s.tags.length > 0 ? r.pick(s.tags) : { ticket_id: 1, tag: "vip" };
      return { kind, ticket: tag.ticket_id, tag: tag.tag };
    }
    case "addNote": {
      const owner = r.pick(VIEWERS);
      return { kind, owner, ticket: ticket(), body: `${title()} ${marker(owner)}` };
    }
    case "editNote": {
      const n = note();
      return { kind, id: n.id, body: `${title()} ${marker(n.owner)}` };
    }
    case "deleteNote":
      return { kind, id: note().id };
    case "truncate":
      return {
        kind,
        table: r.weighted([
          [5, "tags"],
          [4, "notes"],
          [1, "tickets"],
        ] as const),
      };
  }
}

/** Keeps the generator's picture of the state close enough for the later ops of one transaction. */
function project(s: State, op: Op): void {
  if (op.kind === "deleteTicket") s.tickets = s.tickets.filter((t) => t.id !== op.id);
  if (op.kind === "deleteNote") s.notes = s.notes.filter((n) => n.id !== op.id);
  if (op.kind === "untag") s.tags = s.tags.filter((t) => t.ticket_id !== op.ticket || t.tag !== op.tag);
  if (op.kind === "truncate" && op.table === "tickets") s.tickets = [];
  if (op.kind === "truncate" && op.table === "notes") s.notes = [];
  if (op.kind === "truncate" && op.table === "tags") s.tags = [];
  if (op.kind === "bulkDelete") s.tickets = s.tickets.filter((t) => t.queue_id !== op.queue || t.status !== op.status);
}

/** One step: a single write, or 2–4 in one transaction (sometimes rolled back), made by `vias`' pick. */
function generateStep(r: Random, s: State, vias: readonly Via[]): Step<Op> {
  const transaction = r.chance(0.3);
  const ops: Op[] = [];
  const count = transaction ? r.int(2, 4) : 1;
  for (let i = 0; i < count; i++) {
    const op = genOp(r, s);
    ops.push(op);
    project(s, op);
  }
  return { via: pickVia(r, vias), ops, transaction, rollback: transaction && r.chance(0.15) };
}

/** The pages of a rendering: HTML pages (or Inertia pages in the data cells) and live JSON resources, per viewer. */
function pool(rendering: Rendering): PageSpec[] {
  const specs: PageSpec[] = [];
  for (const viewer of [null, ...VIEWERS]) {
    specs.push({ url: "/api/queues/1", viewer, kind: "json" });
    if (rendering === "data") {
      for (const q of [1, 2, 3]) specs.push({ url: `${INERTIA_PREFIX}/queues/${q}`, viewer, kind: "props" });
      specs.push({ url: "/api/queues/2", viewer, kind: "json" });
      continue;
    }
    for (const q of [1, 1, 2, 3]) specs.push({ url: `/queues/${q}`, viewer, kind: "html" });
    specs.push({ url: "/", viewer, kind: "html" });
    for (const p of [1, 2, 4]) specs.push({ url: `/people/${p}`, viewer, kind: "html" });
  }
  return specs;
}

export const deskKit: AppKit = {
  name: "desk",
  createSchema,
  resetToSeed,
  pool,
  sequence() {
    let upsertId = 500;
    return {
      async next(raw, r, vias) {
        const state = await readState(raw, upsertId);
        const step = generateStep(r, state, vias);
        upsertId = state.nextUpsertId;
        return step;
      },
    };
  },
  opSql: (dialect, op) => opSql(dialect, op as Op),
  runKysely: (db, dialect, op) => runKysely(db as Kysely<Database>, dialect, op as Op),
  foreign: (viewer) => [...VIEWERS, "guest"].filter((v) => v !== (viewer ?? "guest")).map(marker),
};
