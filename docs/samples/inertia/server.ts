// Data mode on Hono: the todo list as an Inertia page whose props stay live. The browser side is one of react/, vue/
// or svelte/, built by Vite into one module that the page's HTML loads from /assets/app.js.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Hono } from "hono";
import { cookie, type Upkeep } from "../../../src/index.ts";
import { upkeepMiddleware } from "../../../src/hono/index.ts";
import { createInertia, defer } from "../../../src/inertia/index.ts";
import type { Database } from "../schema.ts";

export function createApp(upkeep: Upkeep, assets: string): Hono {
  const db = upkeep.db<Database>();
  const inertia = createInertia({
    version: "1", // change it with each build: a browser holding another version loads the page anew
    html: (page) =>
      `<!doctype html><html><head><meta charset="utf-8"><script type="module" src="/assets/app.js"></script></head><body>${page}</body></html>`,
    // A prop of every page. cookie() from "upkeep" records exactly that cookie as an input of this prop alone: the
    // greeting is evaluated per viewer, the todos once for every viewer.
    share: { viewer: () => cookie("name") ?? "guest" },
  });
  const app = new Hono();
  // The built browser side, before the middleware (these are not pages).
  app.get("/assets/:file", async (c) => {
    const file = c.req.param("file");
    const body = /^[\w.-]+\.js$/.test(file) ? await readFile(join(assets, file), "utf8").catch(() => null) : null;
    return body === null ? c.notFound() : c.body(body, 200, { "content-type": "text/javascript; charset=utf-8" });
  });
  app.use(upkeepMiddleware(upkeep)); // first, before anything that reads cookies or headers
  app.get("/lists/:list", (c) => {
    const list = c.req.param("list");
    return inertia.render(c, "List", {
      list,
      // A prop's work inside its function: a write to todos evaluates this prop again, alone.
      todos: () => db.selectFrom("todos").select(["id", "title"]).where("list", "=", list).orderBy("id").execute(),
      // Loaded by the browser right after the first render, and live from then on.
      open: defer(async () => {
        const open = await db.selectFrom("todos").select("id").where("list", "=", list).where("done", "=", 0).execute();
        return open.length;
      }),
    });
  });
  app.post("/lists/:list/todos", async (c) => {
    const list = c.req.param("list");
    const { title } = await c.req.json<{ title: string }>(); // Inertia's router.post sends JSON
    await db.insertInto("todos").values({ list, title, done: 0 }).execute();
    return inertia.redirect(c, `/lists/${list}`); // 303: the browser visits the list again
  });
  return app;
}

// In your server: const upkeep = await createUpkeep({ database, secret, install: true });
// await upkeep.serve(createApp(upkeep, "dist"), { port: 3000 });
