// A small chat on Express 5 with signed-in viewers: the second example beside the board. Every viewer sees the same
// rooms and messages, but each page also shows what is theirs — their own messages marked, their unread counts —
// so pages are partitioned by the viewer's cookie, exactly where they read it, and nowhere else.
//
// Plain Express and template strings (no JSX, no build step). Upkeep is two lines: the middleware and attach().
import express, { type Request } from "express";
import type { Generated, Kysely } from "kysely";
import { cookie, upkeepExpress } from "../../src/express/index.ts";
import type { Upkeep } from "../../src/index.ts";

export interface ChatDatabase {
  rooms: { id: Generated<number>; name: string };
  messages: { id: Generated<number>; room_id: number; author: string; body: string };
  /** The last message each viewer has read in each room. */
  reads: { user: string; room_id: number; last_read: number };
}

export const CHAT_SCHEMA = {
  sqlite: `create table if not exists rooms (id integer primary key, name text not null);
create table if not exists messages (id integer primary key, room_id integer not null, author text not null, body text not null);
create table if not exists reads (user text not null, room_id integer not null, last_read integer not null, primary key (user, room_id));`,
  postgres: `create table if not exists rooms (id serial primary key, name text not null);
create table if not exists messages (id serial primary key, room_id integer not null, author text not null, body text not null);
create table if not exists reads ("user" text not null, room_id integer not null, last_read integer not null, primary key ("user", room_id));`,
};

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const e = (text: unknown) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);

const STYLE = `body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:44rem;color:#1d2330}
a{color:#2251c9}li{margin:.3rem 0}.mine{background:#eef3ff;border-radius:.3rem;padding:0 .3rem}
.unread{background:#d93b3b;color:#fff;border-radius:1rem;padding:0 .45rem;font-size:.8rem}
form{display:flex;gap:.5rem;margin:.6rem 0}input{flex:1;padding:.35rem}`;

function page(title: string, user: string | undefined, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${e(title)}</title>
<style>${STYLE}</style><script type="module" src="/upkeep/turbo.js"></script></head><body>
<p id="who">${user ? `Signed in as <strong>${e(user)}</strong>` : "Not signed in"} ·
<form method="post" action="/login" style="display:inline-flex"><input name="name" placeholder="Your name" aria-label="Your name" required><button>Sign in</button></form></p>
${body}</body></html>`;
}

export function createChatApp(upkeep: Upkeep): express.Express {
  const db = upkeep.db<ChatDatabase>() as Kysely<ChatDatabase>;
  const app = express();
  app.use(upkeepExpress(upkeep));
  app.use(express.urlencoded({ extended: false }));
  const viewer = (req: Request) => cookie(req, "user");

  app.get("/", async (req, res) => {
    const user = viewer(req);
    const rooms = await db.selectFrom("rooms").select(["id", "name"]).orderBy("id").execute();
    // Unread counts are the viewer's own: a read of their reads, then one count per room.
    const reads = user
      ? await db.selectFrom("reads").select(["room_id", "last_read"]).where("user", "=", user).execute()
      : [];
    const rows = await Promise.all(
      rooms.map(async (room) => {
        const last = reads.find((r) => r.room_id === room.id)?.last_read ?? 0;
        const { n } = await db
          .selectFrom("messages")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("room_id", "=", room.id)
          .where("id", ">", last)
          .executeTakeFirstOrThrow();
        const unread = user && Number(n) > 0 ? ` <span class="unread" id="unread_${room.id}">${Number(n)}</span>` : "";
        return `<li id="room_${room.id}"><a href="/rooms/${room.id}">${e(room.name)}</a>${unread}</li>`;
      }),
    );
    res.type("html").send(page("Rooms", user, `<h1>Rooms</h1><ul id="rooms">${rows.join("")}</ul>`));
  });

  app.get("/rooms/:id", async (req, res) => {
    const user = viewer(req);
    const id = Number(req.params.id);
    const room = await db.selectFrom("rooms").select(["id", "name"]).where("id", "=", id).executeTakeFirst();
    if (!room) {
      res.status(404).type("html").send(page("Not found", user, "<p>No such room.</p>"));
      return;
    }
    const messages = await db
      .selectFrom("messages")
      .select(["id", "author", "body"])
      .where("room_id", "=", id)
      .orderBy("id")
      .execute();
    const items = messages
      .map(
        (m) =>
          `<li id="message_${m.id}"${m.author === user ? ' class="mine"' : ""}><strong>${e(m.author)}</strong>: ${e(m.body)}</li>`,
      )
      .join("");
    const compose = user
      ? `<form method="post" action="/rooms/${id}/messages"><input name="body" placeholder="Message" aria-label="Message" required autocomplete="off"><button>Send</button></form>
<form method="post" action="/rooms/${id}/read"><button>Mark all read</button></form>`
      : "<p>Sign in to write.</p>";
    res
      .type("html")
      .send(page(room.name, user, `<p><a href="/">All rooms</a></p><h1>${e(room.name)}</h1><ul id="messages">${items}</ul>${compose}`));
  });

  app.post("/login", (req, res) => {
    const name = String(req.body?.name ?? "").trim();
    if (name) res.cookie("user", name, { path: "/", sameSite: "lax", httpOnly: true });
    res.redirect(303, req.get("referer") ?? "/");
  });

  app.post("/rooms/:id/messages", async (req, res) => {
    const user = viewer(req);
    const body = String(req.body?.body ?? "").trim();
    const id = Number(req.params.id);
    if (user && body) {
      await db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto("messages")
          .values({ room_id: id, author: user, body })
          .returning("id")
          .executeTakeFirstOrThrow();
        await markRead(trx, user, id, Number(inserted.id));
      });
    }
    res.redirect(303, `/rooms/${id}`);
  });

  app.post("/rooms/:id/read", async (req, res) => {
    const user = viewer(req);
    const id = Number(req.params.id);
    if (user) {
      const last = await db
        .selectFrom("messages")
        .select((eb) => eb.fn.max("id").as("max"))
        .where("room_id", "=", id)
        .executeTakeFirst();
      await markRead(db, user, id, Number(last?.max ?? 0));
    }
    res.redirect(303, `/rooms/${id}`);
  });

  return app;
}

async function markRead(db: Kysely<ChatDatabase>, user: string, room: number, last: number): Promise<void> {
  await db
    .insertInto("reads")
    .values({ user, room_id: room, last_read: last })
    .onConflict((oc) => oc.columns(["user", "room_id"]).doUpdateSet({ last_read: last }))
    .execute();
}
