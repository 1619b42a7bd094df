// The soak run's app process: a live board on createUpkeep + Hono, writing on its own as well (the app's own
// writes through Upkeep's Kysely). Killed with SIGKILL and restarted by scripts/soak.ts.
//   node scripts/soak/app.ts <database> <port> <retentionMs>
import { Hono } from "hono";
import { html } from "hono/html";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep } from "../../src/index.ts";

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
