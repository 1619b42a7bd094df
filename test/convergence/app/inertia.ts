// Data mode of the convergence app: the queue page as an Inertia page whose props stay live — a LIMIT window over a
// join (each ticket's assignee's name), a filtered list, a shared prop and a prop reading the viewer cookie, and a
// deferred prop the client loads right after the visit. Inertia runs on Hono today (upkeep/inertia); an adapter
// joins the data cells once upkeep/inertia runs on it (stack.ts, DATA_ADAPTERS).
import type { Hono } from "hono";
import { cookie } from "../../../src/hono/index.ts";
import type { Upkeep } from "../../../src/index.ts";
import { createInertia, defer } from "../../../src/inertia/index.ts";
import { type Database, marker } from "./schema.ts";

export const INERTIA_PREFIX = "/spa";

export function mountInertia(app: Hono, upkeep: Upkeep): void {
  const db = upkeep.db<Database>();
  const inertia = createInertia({
    version: "1",
    html: (page) => `<!doctype html><html><head><title>spa</title></head><body>${page}</body></html>`,
    share: { viewer: (c) => marker(cookie(c, "viewer") ?? "guest") },
  });
  app.get(`${INERTIA_PREFIX}/queues/:id`, (c) => {
    const queue = Number(c.req.param("id"));
    return inertia.render(c, "Queue", {
      queue: () => db.selectFrom("queues").select(["id", "name"]).where("id", "=", queue).executeTakeFirst(),
      window: () =>
        db
          .selectFrom("tickets")
          .leftJoin("people", "people.id", "tickets.assignee_id")
          .select(["tickets.id", "tickets.title", "tickets.priority", "people.name as assignee"])
          .where("tickets.queue_id", "=", queue)
          .where("tickets.status", "in", ["open", "doing"])
          .orderBy("tickets.priority", "desc")
          .orderBy("tickets.id")
          .limit(12)
          .execute(),
      doing: () =>
        db
          .selectFrom("tickets")
          .select(["id", "title"])
          .where("queue_id", "=", queue)
          .where("status", "=", "doing")
          .orderBy("title")
          .orderBy("id")
          .execute(),
      notes: (c) =>
        db
          .selectFrom("notes")
          .innerJoin("tickets", "tickets.id", "notes.ticket_id")
          .select(["notes.id", "notes.body", "tickets.title"])
          .where("notes.owner", "=", cookie(c, "viewer") ?? "guest")
          .where("tickets.queue_id", "=", queue)
          .orderBy("notes.id")
          .execute(),
      people: defer(() => db.selectFrom("people").select(["id", "name"]).orderBy("name").orderBy("id").execute()),
    });
  });
}
