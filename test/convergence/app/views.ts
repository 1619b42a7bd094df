// The convergence app's pages, written once and free of any framework: each view is a function of its route's
// parameters returning the page's HTML, with hono's `html` template (no transform needed) and Upkeep's `partial`,
// `Collection` and `cookie()`. Each adapter (hono.ts, express.ts, fastify.ts, node.ts) mounts them with its own routes.
//
// The shapes the oracle must see: a filtered and ordered list, a LIMIT window over a join that shows a related row's
// column (a ticket's assignee's name), members with reads of their own (tags, an assignee looked up by id), nested
// fragments holding a fragment and a collection, an aggregate, and per-viewer parts reading the `viewer` cookie —
// in a fragment beside frames every viewer shares (the queue page) and at the page's top level (the person page).
// The window's and the urgent list's lines are both `t_<ticket id>`, as an app naming elements after their records
// does: a ticket in both lists is on the page twice under one id (such members are folded into their collections).
import { html } from "hono/html";
import type { Kysely } from "kysely";
import { Collection, cookie, partial, type Upkeep } from "../../../src/index.ts";
import { type Database, marker } from "./schema.ts";

/** The LIMIT of the queue page's window. */
export const WINDOW = 12;

type Db = Kysely<Database>;

const layout = (title: string, body: unknown) =>
  html`<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><nav><a href="/">queues</a></nav>${body}</body></html>`;

export function createViews(upkeep: Upkeep) {
  const db: Db = upkeep.db<Database>();

  // ── the queue page ────────────────────────────────────────────────────────────────────────────────────────
  const Head = partial("head", async ({ queue }: { queue: number }) => {
    const found = await db.selectFrom("queues").select("name").where("id", "=", queue).executeTakeFirst();
    return html`<h1 id="head_${queue}">${found?.name ?? "no such queue"}</h1>`;
  });
  // A member of the window: its row carries the joined assignee name; its tags are its own read.
  const Row = partial(
    "row",
    async ({
      row,
    }: {
      row: { id: number; title: string; priority: number; status: string; assignee: string | null };
    }) => {
      const tags = await db
        .selectFrom("tags")
        .select(["tag", "color"])
        .where("ticket_id", "=", row.id)
        .orderBy("tag")
        .execute();
      return html`<li id="t_${row.id}">${row.title} · P${row.priority} · ${row.status} · <b>${row.assignee ?? "nobody"}</b>${tags.map((t) => html` <i>${t.tag}:${t.color}</i>`)}</li>`;
    },
  );
  const Doing = partial(
    "doing",
    ({ doing }: { doing: { id: number; title: string } }) => html`<li id="d_${doing.id}">${doing.title}</li>`,
  );
  // A member that looks its related row up itself (by the id its row carries).
  const Urgent = partial(
    "urgent",
    async ({ urgent }: { urgent: { id: number; title: string; priority: number; assignee_id: number | null } }) => {
      const who =
        urgent.assignee_id === null
          ? undefined
          : await db.selectFrom("people").select("name").where("id", "=", urgent.assignee_id).executeTakeFirst();
      return html`<li id="t_${urgent.id}">${urgent.title} (P${urgent.priority}, ${who?.name ?? "nobody"})</li>`;
    },
  );
  const Counts = partial("counts", async ({ queue }: { queue: number }) => {
    const rows = await db
      .selectFrom("tickets")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .where("queue_id", "=", queue)
      .groupBy("status")
      .orderBy("status")
      .execute();
    return html`<p id="counts_${queue}">${rows.map((r) => `${r.status}:${Number(r.n)}`).join(" ")}</p>`;
  });
  // Nested frames: a fragment holding a fragment and a collection.
  const Panel = partial("panel", async ({ queue }: { queue: number }) => {
    const found = await db.selectFrom("queues").select("name").where("id", "=", queue).executeTakeFirst();
    const urgent = db
      .selectFrom("tickets")
      .select(["id", "title", "priority", "assignee_id"])
      .where("queue_id", "=", queue)
      .where("priority", ">=", 3)
      .orderBy("priority", "desc")
      .orderBy("id");
    return html`<section id="panel_${queue}"><h2>${found?.name ?? "?"} at a glance</h2>${Counts({ queue })}${Collection({ id: `urgent_${queue}`, tag: "ul", of: urgent, item: Urgent })}</section>`;
  });
  // One per viewer, beside the frames every viewer shares: the viewer's tickets and private notes in this queue.
  const Mine = partial("mine", async ({ queue }: { queue: number }) => {
    const viewer = cookie("viewer") ?? "guest";
    const me = await db.selectFrom("people").select(["id", "name"]).where("login", "=", viewer).executeTakeFirst();
    const tickets = me
      ? await db
          .selectFrom("tickets")
          .select(["id", "title"])
          .where("queue_id", "=", queue)
          .where("assignee_id", "=", me.id)
          .orderBy("id")
          .execute()
      : [];
    const notes = await db
      .selectFrom("notes")
      .innerJoin("tickets", "tickets.id", "notes.ticket_id")
      .select(["notes.id", "notes.body", "tickets.title"])
      .where("notes.owner", "=", viewer)
      .where("tickets.queue_id", "=", queue)
      .orderBy("notes.id")
      .execute();
    return html`<aside id="mine"><p>${marker(viewer)} ${me?.name ?? "guest"}</p><ul>${tickets.map((t) => html`<li>${t.title}</li>`)}</ul><ol>${notes.map((n) => html`<li>${n.title}: ${n.body}</li>`)}</ol></aside>`;
  });

  async function queuePage(queue: number): Promise<string> {
    const window = db
      .selectFrom("tickets")
      .leftJoin("people", "people.id", "tickets.assignee_id")
      .select(["tickets.id", "tickets.title", "tickets.priority", "tickets.status", "people.name as assignee"])
      .where("tickets.queue_id", "=", queue)
      .where("tickets.status", "in", ["open", "doing"])
      .orderBy("tickets.priority", "desc")
      .orderBy("tickets.id")
      .limit(WINDOW);
    const doing = db
      .selectFrom("tickets")
      .select(["id", "title"])
      .where("queue_id", "=", queue)
      .where("status", "=", "doing")
      .orderBy("title")
      .orderBy("id");
    return String(
      await layout(
        `queue ${queue}`,
        html`${Head({ queue })}${Mine({ queue })}
${Collection({ id: "window", tag: "ol", of: window, item: Row })}
${Collection({ id: "doing", tag: "ul", of: doing, item: Doing })}
${Panel({ queue })}`,
      ),
    );
  }

  // ── the index: every queue, every person (each member reads on its own) ────────────────────────────────────
  const QueueItem = partial("queue", async ({ queue }: { queue: { id: number; name: string } }) => {
    const [open] = await db
      .selectFrom("tickets")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("queue_id", "=", queue.id)
      .where("status", "!=", "closed")
      .execute();
    return html`<li id="q_${queue.id}"><a href="/queues/${queue.id}">${queue.name}</a> ${Number(open?.n ?? 0)} open</li>`;
  });
  const PersonItem = partial(
    "person",
    ({ person }: { person: { id: number; name: string } }) =>
      html`<li id="p_${person.id}"><a href="/people/${person.id}">${person.name}</a></li>`,
  );

  async function indexPage(): Promise<string> {
    const queues = db.selectFrom("queues").select(["id", "name"]).orderBy("name").orderBy("id");
    const people = db.selectFrom("people").select(["id", "name"]).orderBy("name").orderBy("id");
    return String(
      await layout(
        "queues",
        html`${Collection({ id: "queues", tag: "ul", of: queues, item: QueueItem })}${Collection({ id: "people", tag: "ul", of: people, item: PersonItem })}`,
      ),
    );
  }

  // ── a person: the page itself reads the viewer cookie; a join shows each ticket's queue name ───────────────
  const Assigned = partial(
    "assigned",
    ({ assigned }: { assigned: { id: number; title: string; queue: string; priority: number } }) =>
      html`<li id="a_${assigned.id}">${assigned.title} in ${assigned.queue} (P${assigned.priority})</li>`,
  );

  async function personPage(person: number): Promise<string> {
    const viewer = cookie("viewer") ?? "guest";
    const found = await db.selectFrom("people").select(["login", "name"]).where("id", "=", person).executeTakeFirst();
    const assigned = db
      .selectFrom("tickets")
      .innerJoin("queues", "queues.id", "tickets.queue_id")
      .select(["tickets.id", "tickets.title", "queues.name as queue", "tickets.priority"])
      .where("tickets.assignee_id", "=", person)
      .where("tickets.status", "!=", "closed")
      .orderBy("tickets.priority", "desc")
      .orderBy("tickets.id")
      .limit(5);
    return String(
      await layout(
        found?.name ?? "nobody",
        html`<h1 id="person">${found?.name ?? "nobody"}</h1><p id="you">${marker(viewer)} ${found?.login === viewer ? "this is you" : "someone else"}</p>${Collection({ id: "assigned", tag: "ul", of: assigned, item: Assigned })}`,
      ),
    );
  }

  // ── a live JSON resource (data mode on every adapter) ──────────────────────────────────────────────────────
  async function queueJson(queue: number) {
    const viewer = cookie("viewer") ?? "guest";
    const top = await db
      .selectFrom("tickets")
      .leftJoin("people", "people.id", "tickets.assignee_id")
      .select(["tickets.id", "tickets.title", "tickets.priority", "people.name as assignee"])
      .where("tickets.queue_id", "=", queue)
      .where("tickets.status", "!=", "closed")
      .orderBy("tickets.priority", "desc")
      .orderBy("tickets.id")
      .limit(5)
      .execute();
    const notes = await db
      .selectFrom("notes")
      .select(["id", "body"])
      .where("owner", "=", viewer)
      .orderBy("id")
      .execute();
    return { queue, viewer: marker(viewer), top, notes };
  }

  return { queuePage, indexPage, personPage, queueJson };
}

export type Views = ReturnType<typeof createViews>;
