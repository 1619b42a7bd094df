// The soak run's app process: a live board on createUpkeep + Hono, writing on its own as well (the app's own
// writes through Upkeep's Kysely). Killed with SIGKILL and restarted by scripts/soak.ts.
//   node scripts/soak/app.ts <database> <port> <retentionMs>
import { Hono } from "hono";
import { html } from "hono/html";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { Collection, createUpkeep, partial } from "../../src/index.ts";

const [database, port, retention] = process.argv.slice(2) as [string, string, string];
const upkeep = await createUpkeep({
  database,
  secret: "soak-secret-0123456789abcdef0123456789",
  mode: "production",
  install: true,
  retentionMs: Number(retention),
});
const db = upkeep.db<{ cards: { id: number; board: string; title: string; pos: number } }>();

const app = new Hono();
app.use(upkeepMiddleware(upkeep));
app.get("/boards/:board", async (c) => {
  const cards = await db
    .selectFrom("cards")
    .select(["id", "title", "pos"])
    .where("board", "=", c.req.param("board"))
    .orderBy("pos")
    .orderBy("id")
    .execute();
  return c.html(
    html`<!doctype html><html><head><title>${c.req.param("board")}</title></head><body><ul id="cards">${cards.map(
      (card) => html`<li id="card_${card.id}">${card.title} @${card.pos}</li>`,
    )}</ul><p id="count">${cards.length}</p></body></html>`,
  );
});
// The same cards as frames: a collection of members and a count fragment, each rendered on its own.
const Card = partial(
  "card",
  ({ card }: { card: { id: number; title: string; pos: number } }) =>
    html`<li id="card_${card.id}">${card.title} @${card.pos}</li>`,
);
const Count = partial("count", async ({ board }: { board: string }) => {
  const { n } = await db
    .selectFrom("cards")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("board", "=", board)
    .executeTakeFirstOrThrow();
  return html`<p id="count">${Number(n)}</p>`;
});
app.get("/framed/:board", async (c) => {
  const board = c.req.param("board");
  const cards = db
    .selectFrom("cards")
    .select(["id", "title", "pos"])
    .where("board", "=", board)
    .orderBy("pos")
    .orderBy("id");
  return c.html(
    html`<!doctype html><html><head><title>${board}</title></head><body>${Collection({ id: "cards", tag: "ul", of: cards, item: Card })}${Count({ board })}</body></html>`,
  );
});
await upkeep.serve(app, { port: Number(port), hostname: "127.0.0.1" });

// The app's own writes: a steady trickle through Upkeep's Kysely (their failures are reported to the parent).
let n = 0;
setInterval(async () => {
  n++;
  try {
    const id = 1 + (n % 40);
    await db
      .updateTable("cards")
      .set({ title: `app-${n}`, pos: n % 7 })
      .where("id", "=", id)
      .execute();
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ writeFailed: (error as Error).message })}\n`);
  }
}, 40).unref();

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
