// Data mode end to end on both dialects: Inertia props and live JSON resources. Which props a write makes the
// server evaluate, what each browser is sent (values, patches, reload names), who receives it, and — for every case
// and for random write sequences — that the props a browser holds equal a fresh Inertia visit by the same viewer.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { Hono } from "hono";
import { applyJsonPatch } from "../../src/client/json-patch.ts";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { ConfigError, cookie, createUpkeep, depends, touch, type Upkeep } from "../../src/index.ts";
import { createInertia, defer, optional, reloadOnly } from "../../src/inertia/index.ts";
import { freshJson, freshProps, type LiveData, openLiveProps, openLiveResource } from "../../src/testing/index.ts";
import { type DB, DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

/** A value capture cannot see: another service's, kept here. */
const forecasts = new Map<string, string>([
  ["paris", "sun"],
  ["london", "fog"],
]);

/** Holds the evaluation of the `others` prop until it resolves (a test opens it again). */
let othersGate: Promise<void> = Promise.resolve();

function inertiaApp(upkeep: Upkeep) {
  const db = upkeep.db<DB>();
  const inertia = createInertia({
    version: "v1",
    html: (page) => `<!doctype html><html><head><title>app</title></head><body>${page}</body></html>`,
    share: { viewer: () => cookie("viewer") ?? "guest" },
  });
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  const items = (list: string) =>
    db.selectFrom("items").select(["id", "title"]).where("list", "=", list).orderBy("pos").orderBy("id").execute();
  app.get("/board/:list", (c) => {
    const list = c.req.param("list");
    return inertia.render(c, "Board", {
      list,
      items: () => items(list),
      count: async () =>
        Number(
          (
            await db
              .selectFrom("items")
              .select((eb) => eb.fn.countAll<number>().as("n"))
              .where("list", "=", list)
              .executeTakeFirstOrThrow()
          ).n,
        ),
      mine: () =>
        db
          .selectFrom("secrets")
          .select(["id", "body"])
          .where("owner", "=", cookie("viewer") ?? "nobody")
          .orderBy("id")
          .execute(),
      titles: reloadOnly(async () => (await items(list)).map((i) => i.title)),
      others: defer(async () => {
        await othersGate;
        return items("z");
      }),
      extra: optional(() => items("y")),
    });
  });
  // The handler reads the viewer's cookie outside any prop, and a prop closes over it.
  app.get("/closure/:list", (c) => {
    const who = cookie("viewer") ?? "guest";
    const list = c.req.param("list");
    return inertia.render(c, "Closure", {
      tagged: async () => (await items(list)).map((i) => `${who}:${i.title}`),
      plain: async () => (await items(list)).length,
    });
  });
  const forecast = (city: string) => async () => {
    await depends(db, `Weather:${city}`);
    return forecasts.get(city) ?? null;
  };
  app.get("/weather", (c) => inertia.render(c, "Weather", { paris: forecast("paris"), london: forecast("london") }));
  app.get("/greedy", (c) =>
    inertia.render(c, "Greedy", {
      all: async () => {
        await depends(db, ...Array.from({ length: 101 }, (_, i) => `Item:${i}`));
        return 1;
      },
    }),
  );
  app.get("/other", (c) => inertia.render(c, "Other", { n: () => items("b") }));
  app.post("/items", (c) => inertia.redirect(c, "/board/a"));
  app.get("/api/items/:list", async (c) => c.json(await items(c.req.param("list"))));
  return { app, inertia };
}

for (const dialect of DIALECTS) {
  describe(`data mode (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let app: Hono;
    const viewer = (name: string) => ({ headers: { cookie: `viewer=${name}` } });

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      upkeep = await createUpkeep({
        database: fixture.database,
        secret: SECRET,
        mode: "test",
        install: true,
        identifiers: true,
      });
      app = inertiaApp(upkeep).app;
      upkeep.use(app);
    });
    after(async () => {
      await upkeep?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);
    const exec = async (statement: string) => {
      await fixture!.exec(statement);
      await upkeep.settle();
    };
    const converged = async (page: LiveData<Record<string, unknown>>, name: string) => {
      await page.idle();
      const fresh = await freshProps(app, page.url, { cookie: `viewer=${name}` });
      const held = page.current();
      // Deferred and optional props are compared when the browser holds them.
      for (const key of ["others", "extra"]) if (!(key in held)) delete fresh[key];
      assert.deepEqual(held, fresh);
    };
    const cost = async (statement: string) => {
      const before = { ...upkeep.hub.stats };
      await exec(statement);
      return {
        renders: upkeep.hub.stats.renders - before.renders,
        props: upkeep.hub.stats.frameRenders - before.frameRenders,
      };
    };

    it("the first visit is the HTML shell with the page object; X-Inertia visits answer JSON", async () => {
      const first = await app.request("/board/a", { headers: { accept: "text/html" } });
      const html = await first.text();
      const json = /<script data-page="app" type="application\/json">(.*?)<\/script><div id="app"><\/div>/.exec(html);
      assert.ok(json, html);
      const page = JSON.parse(json[1] as string);
      assert.equal(page.component, "Board");
      assert.equal(page.url, "/board/a");
      assert.equal(page.version, "v1");
      assert.deepEqual(page.deferredProps, { default: ["others"] });
      assert.ok(!("extra" in page.props) && !("others" in page.props));
      assert.equal(typeof page.upkeep.token, "string");
      const visit = await app.request("/board/a", { headers: { "x-inertia": "true", "x-inertia-version": "v1" } });
      assert.equal(visit.headers.get("x-inertia"), "true");
      assert.match(visit.headers.get("vary") ?? "", /X-Inertia/);
      assert.equal((await visit.json()).component, "Board");
    });

    it("a stale asset version answers 409 with the location; a form's redirect is a 303", async () => {
      const stale = await app.request("/board/a", { headers: { "x-inertia": "true", "x-inertia-version": "v0" } });
      assert.equal(stale.status, 409);
      assert.equal(stale.headers.get("x-inertia-location"), "http://localhost/board/a");
      const posted = await app.request("/items", { method: "POST" });
      assert.equal(posted.status, 303);
    });

    it("a partial reload evaluates only the props asked for (and errors), and carries no subscription", async () => {
      const partial = await app.request("/board/a", {
        headers: {
          "x-inertia": "true",
          "x-inertia-partial-component": "Board",
          "x-inertia-partial-data": "count,extra",
        },
      });
      const page = await partial.json();
      assert.deepEqual(Object.keys(page.props).sort(), ["count", "errors", "extra"]);
      assert.equal(page.upkeep, undefined);
      const except = await app.request("/board/a", {
        headers: { "x-inertia": "true", "x-inertia-partial-component": "Board", "x-inertia-partial-except": "items" },
      });
      assert.ok(!("items" in (await except.json()).props));
    });

    it("a write evaluates only the props it affects, and the browser gets their new values", async () => {
      const page = await openLiveProps(upkeep, app, "/board/a", viewer("alice"));
      const spent = await cost("insert into items (list, title, pos) values ('a', 'first', 1)");
      // items, count and titles read list a; mine, viewer and list did not and are not evaluated.
      assert.deepEqual(spent, { renders: 0, props: 3 });
      const message = page.messages.at(-1);
      assert.equal(message?.type, "props");
      if (message?.type !== "props") return;
      assert.deepEqual(Object.keys({ ...message.props, ...message.patches }).sort(), ["count", "items"]);
      assert.deepEqual(message.reload, ["titles"]);
      assert.equal(page.partialReloads, 1);
      await converged(page, "alice");
      page.close();
    });

    it("a browser resuming from an offset behind the page's latest render catches up with props, not HTML", async () => {
      // The page as a browser got it, before a write that another browser's subscription makes the server render.
      const headers = { host: "localhost", accept: "text/html", "x-inertia": "true", cookie: "viewer=alice" };
      const response = await app.request("/board/resume", { headers });
      const marker = (await response.json()).upkeep as { token: string; offset: number };
      const other = await openLiveProps(upkeep, app, "/board/resume", viewer("alice"));
      await exec("insert into items (list, title, pos) values ('resume', 'while away', 1)");
      assert.equal(other.messages.at(-1)?.type, "props");
      // The first browser comes back (a new connection) with the offset it shows.
      const messages: Array<{ type: string; offset?: number; props?: Record<string, unknown> }> = [];
      const stop = await upkeep.hub.subscribe(
        { id: "resumed", token: marker.token, offset: marker.offset, incarnation: upkeep.ledger.incarnation, headers },
        {
          send(message) {
            messages.push(message);
            return true;
          },
        },
      );
      await upkeep.settle();
      assert.deepEqual(
        messages.map((m) => m.type),
        ["subscribed", "props"],
        JSON.stringify(messages),
      );
      assert.ok(messages[1]!.offset! > marker.offset);
      const items = (messages[1]!.props ?? {}).items as Array<{ title: string }>;
      assert.deepEqual(
        items.map((item) => item.title),
        ["while away"],
      );
      stop();
      other.close();
    });

    it("a small change to a large prop is sent as an RFC 6902 patch", async () => {
      for (let i = 0; i < 5; i++)
        await fixture!.exec(`insert into items (list, title, pos) values ('p', 'item ${i} with a longer title', ${i})`);
      await upkeep.settle();
      const page = await openLiveProps(upkeep, app, "/board/p", viewer("alice"));
      await exec("update items set title = 'renamed' where list = 'p' and pos = 2");
      const message = page.messages.at(-1);
      assert.ok(message?.type === "props" && message.patches?.items, JSON.stringify(message));
      assert.deepEqual(message.patches.items, [{ op: "replace", path: "/2/title", value: "renamed" }]);
      await converged(page, "alice");
      page.close();
    });

    it("a prop that read no viewer input is evaluated once for every viewer", async () => {
      const names = ["v1", "v2", "v3"];
      const pages = await Promise.all(names.map((name) => openLiveProps(upkeep, app, "/board/k", viewer(name))));
      // Three viewers, three page groups (the shared prop "viewer" read the cookie); items, count and titles read
      // no input: each is evaluated once for all three.
      const spent = await cost("insert into items (list, title, pos) values ('k', 'shared', 1)");
      assert.deepEqual(spent, { renders: 0, props: 3 });
      for (const [i, page] of pages.entries()) {
        assert.equal(page.current().viewer, names[i]);
        assert.equal(page.current().count, 1);
        await converged(page, names[i] as string);
        page.close();
      }
    });

    it("props of a page whose handler read the viewer's cookie are evaluated per viewer (they may close over it)", async () => {
      const names = ["w1", "w2"];
      const pages = await Promise.all(names.map((name) => openLiveProps(upkeep, app, "/closure/j", viewer(name))));
      const spent = await cost("insert into items (list, title, pos) values ('j', 'own', 1)");
      assert.deepEqual(spent, { renders: 0, props: 2 * names.length });
      for (const [i, page] of pages.entries()) {
        assert.deepEqual(page.current().tagged, [`${names[i]}:own`]);
        await converged(page, names[i] as string);
        page.close();
      }
    });

    it("a prop that read the viewer's cookie reaches only that viewer", async () => {
      const alice = await openLiveProps(upkeep, app, "/board/a", viewer("alice"));
      const bob = await openLiveProps(upkeep, app, "/board/a", viewer("bob"));
      const bobBefore = bob.messages.length;
      await exec("insert into secrets (owner, body) values ('alice', 'for alice only')");
      assert.equal(bob.messages.length, bobBefore, "bob received something for alice's write");
      assert.deepEqual(alice.current().mine, [
        { id: (alice.current().mine as { id: number }[])[0]?.id, body: "for alice only" },
      ]);
      assert.ok(!JSON.stringify(bob.current()).includes("for alice only"));
      await converged(alice, "alice");
      await converged(bob, "bob");
      alice.close();
      bob.close();
    });

    it("a write no prop read sends nothing and evaluates nothing", async () => {
      const page = await openLiveProps(upkeep, app, "/board/a", viewer("carol"));
      const from = page.messages.length;
      const spent = await cost("insert into items (list, title, pos) values ('q', 'elsewhere', 1)");
      assert.deepEqual(spent, { renders: 0, props: 0 });
      assert.equal(page.messages.length, from);
      page.close();
    });

    it("a deferred prop the browser loaded is live too", async () => {
      const page = await openLiveProps(upkeep, app, "/board/a", viewer("dave"));
      assert.ok(!("others" in page.current()));
      // The browser loads it (as Inertia does after the first render) with a partial reload of its own.
      const loaded = await app.request("/board/a", {
        headers: {
          cookie: "viewer=dave",
          "x-inertia": "true",
          "x-inertia-partial-component": "Board",
          "x-inertia-partial-data": "others",
        },
      });
      const others = (await loaded.json()).props.others;
      assert.deepEqual(others, []);
      // Another visit of the page by the same viewer (a second tab's first visit defers the prop again) keeps it live
      // for the first, and does not make its page look changed.
      const again = await app.request("/board/a", { headers: { cookie: "viewer=dave", "x-inertia": "true" } });
      assert.ok(!("others" in (await again.json()).props));
      await exec("insert into items (list, title, pos) values ('z', 'deferred', 1)");
      const message = page.messages.at(-1);
      assert.ok(message?.type === "props", JSON.stringify(message));
      assert.deepEqual(Object.keys({ ...message.props, ...message.patches }), ["others"]);
      assert.equal(page.reloaded, false);
      page.close();
    });

    it("a deferred prop the browser loaded stays live when the page resumes on a process that never saw it", async () => {
      const headers = { cookie: "viewer=erin", "x-inertia": "true" };
      const visit = (await (await app.request("/board/a", { headers })).json()) as {
        props: Record<string, unknown>;
        upkeep: { token: string; offset: number; incarnation: string };
      };
      const partial = async (target: Hono, only: string[]) =>
        (
          (await (
            await target.request("/board/a", {
              headers: { ...headers, "x-inertia-partial-component": "Board", "x-inertia-partial-data": only.join(",") },
            })
          ).json()) as { props: Record<string, unknown> }
        ).props;
      // The browser loads the deferred prop (as Inertia does after the first render) and holds it.
      let props = { ...visit.props, ...(await partial(app, ["others"])) };
      // Its connection is lost, and it resumes on another process of the app, which never saw the page.
      const other = await createUpkeep({ database: fixture!.database, secret: SECRET, mode: "test" });
      try {
        const otherApp = inertiaApp(other).app;
        other.use(otherApp);
        const reloads: Promise<void>[] = [];
        await other.hub.subscribe(
          { id: "resumed", ...visit.upkeep, headers: { cookie: "viewer=erin" } },
          {
            send(message) {
              if (message.type !== "props") return true;
              props = { ...props, ...message.props };
              // What a browser does with the props it is told to reload when it holds them.
              const held = [...(message.reload ?? []), ...(message.reloadIfHeld ?? [])].filter((n) => n in props);
              if (held.length === 0) return true;
              reloads.push(
                partial(otherApp, held).then((loaded) => {
                  props = { ...props, ...loaded };
                }),
              );
              return true;
            },
          },
        );
        await other.settle();
        await Promise.all(reloads);
        await fixture!.exec("insert into items (list, title, pos) values ('z', 'after the resume', 1)");
        await other.settle();
        await Promise.all(reloads);
        assert.deepEqual(props.others, (await partial(app, ["others"])).others);
        assert.match(JSON.stringify(props.others), /after the resume/);
      } finally {
        await other.close();
      }
    });

    it("a deferred prop evaluated again after another visit carried its old value reaches the browser", async () => {
      const headers = { cookie: "viewer=gina", "x-inertia": "true" };
      const page = await openLiveProps(upkeep, app, "/board/a", viewer("gina"));
      // The browser loads the deferred prop (as Inertia does after the first render).
      const load = await app.request("/board/a", {
        headers: { ...headers, "x-inertia-partial-component": "Board", "x-inertia-partial-data": "others" },
      });
      let others = (await load.json()).props.others as unknown;
      await upkeep.settle();
      // A write to what `others` reads: the hub plans it, and the prop's evaluation waits at the gate.
      let open = () => {};
      othersGate = new Promise((resolve) => {
        open = resolve;
      });
      try {
        await fixture!.exec("insert into items (list, title, pos) values ('z', 'behind the gate', 7)");
        const head = await upkeep.ledger.head();
        while (upkeep.hub.position < head) await new Promise((resolve) => setTimeout(resolve, 5));
        // Another tab of the same viewer visits the page: its render (at the planner's position) carries the group's
        // `others`, still the value from before the write.
        await app.request("/board/a", { headers });
      } finally {
        open();
        othersGate = Promise.resolve();
      }
      await upkeep.settle();
      for (const message of page.messages) {
        if (message.type !== "props") continue;
        if (message.props && "others" in message.props) others = message.props.others;
        if (message.patches?.others) others = applyJsonPatch(others, message.patches.others);
      }
      const fresh = await app.request("/board/a", {
        headers: { ...headers, "x-inertia-partial-component": "Board", "x-inertia-partial-data": "others" },
      });
      assert.deepEqual(others, (await fresh.json()).props.others);
      assert.match(JSON.stringify(others), /behind the gate/);
      page.close();
    });

    it("a live JSON resource receives its new value or a patch", async () => {
      const resource = await openLiveResource<unknown[]>(upkeep, app, "/api/items/r");
      await exec("insert into items (list, title, pos) values ('r', 'one', 1)");
      assert.ok(
        resource.messages.some((m) => m.type === "value" && m.value),
        JSON.stringify(resource.messages),
      );
      for (let i = 2; i < 8; i++)
        await fixture!.exec(`insert into items (list, title, pos) values ('r', 'item ${i} of the resource', ${i})`);
      await upkeep.settle();
      await exec("update items set title = 'renamed' where list = 'r' and pos = 4");
      const last = resource.messages.at(-1);
      assert.ok(last?.type === "value" && last.patch, JSON.stringify(last));
      assert.deepEqual(last.patch, [{ op: "replace", path: "/3/title", value: "renamed" }]);
      assert.deepEqual(resource.current(), await freshJson(app, "/api/items/r"));
      const from = resource.messages.length;
      await exec("insert into items (list, title, pos) values ('s', 'other', 1)");
      assert.equal(resource.messages.length, from);
      resource.close();
    });

    it("a touched identifier evaluates again exactly the props that declared it", async () => {
      const page = await openLiveProps(upkeep, app, "/weather", viewer("eve"));
      forecasts.set("paris", "rain");
      const before = upkeep.hub.stats.frameRenders;
      // In the transaction of the app's own write, as a service that changed the value would.
      await upkeep
        .db<any>()
        .transaction()
        .execute(async (trx) => {
          await trx.insertInto("items").values({ list: "weather-log", title: "paris", pos: 1 }).execute();
          await touch(trx, "Weather:paris");
        });
      await upkeep.settle();
      assert.equal(upkeep.hub.stats.frameRenders - before, 1);
      assert.deepEqual(page.current().paris, "rain");
      assert.deepEqual(page.current().london, "fog");
      await touch(upkeep.db(), "Weather:nowhere");
      await upkeep.settle();
      assert.equal(upkeep.hub.stats.frameRenders - before, 1, "an identifier nobody declared evaluated something");
      assert.deepEqual(page.current(), await freshProps(app, "/weather", { cookie: "viewer=eve" }));
      page.close();
    });

    it("a frame that declares more than 100 identifiers is an error naming the limit and the fix", async () => {
      await assert.rejects(
        (async () => {
          const { runWithCapture, createCapture } = await import("../../src/capture/context.ts");
          await runWithCapture(createCapture("/x"), () =>
            depends(upkeep.db(), ...Array.from({ length: 101 }, (_, i) => `Item:${i}`)),
          );
        })(),
        (error: Error) =>
          error instanceof ConfigError &&
          /at most 100/.test(error.message) &&
          /collection/.test((error as ConfigError).hint ?? error.message),
      );
      // In a live request the error surfaces as the app's error response; the page is not served live.
      const response = await app.request("/greedy", { headers: { "x-inertia": "true" } });
      assert.equal(response.status, 500);
    });

    it("random writes: every viewer's props equal a fresh visit after settling", async () => {
      const names = ["ann", "ben", "cat"];
      const lists = ["m", "n"];
      const pages = [];
      for (const name of names)
        for (const list of lists)
          pages.push({ name, page: await openLiveProps(upkeep, app, `/board/${list}`, viewer(name)) });
      let seed = dialect === "sqlite" ? 7 : 11;
      const random = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      for (let round = 0; round < 25; round++) {
        const list = lists[random(2)];
        const statements = [
          `insert into items (list, title, pos) values ('${list}', 't${round}', ${random(5)})`,
          `update items set pos = ${random(5)}, title = 'u${round}' where list in ('m', 'n') and id % 3 = ${random(3)}`,
          `update items set list = '${list}' where id = (select min(id) from items where list in ('m', 'n'))`,
          `delete from items where list in ('m', 'n') and id % 4 = ${random(4)}`,
          `insert into secrets (owner, body) values ('${names[random(3)]}', 's${round}')`,
          `delete from secrets where owner = '${names[random(3)]}' and id % 2 = ${random(2)}`,
        ];
        await fixture!.exec(statements[random(statements.length)] as string);
        if (random(3) === 0) await upkeep.settle();
      }
      await upkeep.settle();
      for (const { name, page } of pages) {
        await converged(page, name);
        assert.equal(page.reloaded, false);
        page.close();
      }
    });
  });
}
