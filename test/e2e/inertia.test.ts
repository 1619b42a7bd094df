// Live props in real Inertia apps, in Chromium: a React app and a Svelte 5 app (the real @inertiajs/react and
// @inertiajs/svelte, each made live with `live()`) are built with Vite inside the test and served by a Hono app through
// upkeep/inertia on SQLite. Writes come from the app's Kysely, from Inertia form posts and from the sqlite3 shell in
// another process; the pages must show them without reloading, never show another viewer's props, follow Inertia
// navigations, and end up with exactly the props a fresh Inertia visit by the same viewer returns.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import { type Browser, browserSkip, launchBrowser, recordSocketFrames, type SocketLog } from "../support/browser.ts";
import { buildFixtureApps, FRAMEWORKS } from "./inertia/build.ts";
import { createFixtureDatabase, type FixtureServer, startFixtureServer } from "./inertia/server.ts";

const skip = browserSkip();
/** Behaviour that does not depend on the framework is tested on React only (not registered for the others, so
 *  nothing is skipped), unless UPKEEP_E2E_ALL_FRAMEWORKS=1 runs it on every framework. */
const testOnce = (framework: string): typeof test =>
  framework === "react" || process.env.UPKEEP_E2E_ALL_FRAMEWORKS === "1"
    ? test
    : ((() => Promise.resolve()) as unknown as typeof test);
const SQLITE3 = process.env.UPKEEP_SQLITE3 ?? "/usr/bin/sqlite3";
// A bound on waiting for one browser step on a loaded machine, not an assertion on time.
const STEP_TIMEOUT = 20_000;

describe("live Inertia props in Chromium", { skip, timeout: 120_000 }, () => {
  let dir: string;
  let dbPath: string;
  let server: FixtureServer;
  /** Two browsers, so two cookie jars: alice and bob. */
  let alice: Browser;
  let bob: Browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "upkeep-inertia-e2e-"));
    dbPath = join(dir, "app.sqlite");
    createFixtureDatabase(dbPath);
    await buildFixtureApps(join(dir, "assets"));
    server = await startFixtureServer({ databasePath: dbPath, assets: join(dir, "assets") });
    [alice, bob] = await Promise.all([launchBrowser(), launchBrowser()]);
    await alice.context.addCookies([{ name: "user", value: "alice", url: server.url }]);
    await bob.context.addCookies([{ name: "user", value: "bob", url: server.url }]);
  });

  after(async () => {
    await alice?.close();
    await bob?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  interface Opened {
    page: Page;
    socket: SocketLog;
    errors: string[];
  }

  /** Opens `path`, waits until its props are live, and marks the document (a full reload would lose the mark). */
  async function openLive(browser: Browser, path: string, transport?: "sse"): Promise<Opened> {
    const page = await browser.newWindow();
    // The fixture apps pass this to live({ transport }).
    if (transport) await page.addInitScript((t) => Object.assign(window, { __upkeepTransport: t }), transport);
    page.setDefaultTimeout(STEP_TIMEOUT);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    const socket = recordSocketFrames(page);
    await page.goto(server.url + path);
    await page.waitForFunction(() => {
      const live = (window as any).__upkeepInertia;
      return live?.state === "open" && live.subscription !== null;
    });
    if (!transport) await socket.waitFor("subscribed");
    await page.evaluate(() => {
      (window as any).__sameDocument = true;
    });
    return { page, socket, errors };
  }

  /** Waits for `locator`; on a timeout the error shows the page's frames and live state. */
  async function shows(opened: Opened, locator: ReturnType<Page["locator"]>): Promise<void> {
    try {
      await locator.waitFor();
    } catch (error) {
      const live = await opened.page.evaluate(() => JSON.stringify((window as any).__upkeepInertia));
      throw new Error(`${(error as Error).message}\nlive: ${live}\nframes: ${JSON.stringify(opened.socket.frames)}`);
    }
  }

  async function assertNotReloaded(opened: Opened): Promise<void> {
    const state = await opened.page.evaluate(() => ({
      same: (window as any).__sameDocument === true,
      reloads: (window as any).__upkeepInertia.reloads,
    }));
    assert.deepEqual(state, { same: true, reloads: [] }, "the page was updated in place, never reloaded");
  }

  /** Whether a frame's id is the page's subscription: on the socket it is `<link>~<id>` (the browser's shared
   *  connection names each tab's link). */
  const sameId = (wire: unknown, id: string) => typeof wire === "string" && wire.endsWith(`~${id}`);
  const subscriptionOf = (page: Page) => page.evaluate(() => (window as any).__upkeepInertia.subscription as string);

  function shell(statement: string): void {
    const run = spawnSync(SQLITE3, ["-cmd", ".timeout 5000", dbPath, statement], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
  }

  /** The props Inertia holds for the page (its history entry) and what a fresh Inertia visit returns now. */
  async function propsAndFresh(page: Page) {
    return page.evaluate(async () => {
      const held = (history.state as any).page;
      const headers = { "x-inertia": "true", "x-inertia-version": "1", accept: "text/html, application/xhtml+xml" };
      const fresh = await (await fetch(location.href, { headers })).json();
      // Deferred props come with a partial reload, as Inertia loads them.
      const deferred = Object.values(fresh.deferredProps ?? {}).flat() as string[];
      if (deferred.length > 0) {
        const partial = await (
          await fetch(location.href, {
            headers: {
              ...headers,
              "x-inertia-partial-component": fresh.component,
              "x-inertia-partial-data": deferred.join(","),
            },
          })
        ).json();
        Object.assign(fresh.props, partial.props);
      }
      return { held: held.props, marker: held.upkeep, fresh: fresh.props, component: held.component };
    });
  }

  for (const framework of FRAMEWORKS) {
    describe(framework, () => {
      const board = `/${framework}/boards/1`;

      test("writes through the app, an Inertia form and the sqlite3 shell show without a reload", async () => {
        const a = await openLive(alice, board);
        const n = (await server.db.selectFrom("cards").select("id").where("board_id", "=", 1).execute()).length;
        await a.page.locator("#stats").getByText(`${n} cards`).waitFor();

        await server.db
          .updateTable("cards")
          .set({ title: `Design (${framework})` })
          .where("id", "=", 1)
          .execute();
        await a.page.locator("#cards li", { hasText: `Design (${framework})` }).waitFor();

        // A form post answered with a redirect to the same URL: Inertia shows a new page object (a new token) without
        // a navigate event; the page follows it and stays live.
        const before = await subscriptionOf(a.page);
        await a.page.evaluate((url) => (window as any).__router.post(url, { title: "Posted" }), `${board}/cards`);
        await a.page.locator("#cards li", { hasText: "Posted" }).waitFor();
        await a.page.waitForFunction((old) => (window as any).__upkeepInertia.subscription !== old, before);
        // The deferred count is a prop like any other.
        await a.page
          .locator("#stats")
          .getByText(`${n + 1} cards`)
          .waitFor();

        if (existsSync(SQLITE3)) {
          shell(`update cards set title = 'From the shell (${framework})' where id = 2`);
          await a.page.locator("#cards li", { hasText: `From the shell (${framework})` }).waitFor();
        }
        await assertNotReloaded(a);
        assert.ok(a.socket.count("props") >= 2, JSON.stringify(a.socket.frames));
        const { marker } = await propsAndFresh(a.page);
        assert.equal(typeof marker?.token, "string", "Inertia keeps the upkeep key in its page object");
        assert.deepEqual(a.errors, []);
        await a.page.close();
      });

      testOnce(framework)("a prop that reads the viewer's cookie never shows another viewer's value", async () => {
        const a = await openLive(alice, board);
        const b = await openLive(bob, board);
        assert.equal(await a.page.locator("#viewer").textContent(), "alice");
        assert.equal(await b.page.locator("#viewer").textContent(), "bob");

        const secret = `alice secret (${framework})`;
        await server.db.insertInto("notes").values({ owner: "alice", body: secret }).execute();
        await a.page.locator("#mine li", { hasText: secret }).waitFor();
        // Bob's own write comes later in the ledger: once his page shows it, anything alice's write caused for him
        // has arrived too.
        const own = `bob note (${framework})`;
        await server.db.insertInto("notes").values({ owner: "bob", body: own }).execute();
        await b.page.locator("#mine li", { hasText: own }).waitFor();

        assert.ok(!(await b.page.locator("#mine").textContent())?.includes("alice"));
        assert.ok(!JSON.stringify(b.socket.frames).includes(secret), "bob received nothing rendered for alice");
        assert.ok(!JSON.stringify(a.socket.frames).includes(own), "alice received nothing rendered for bob");
        const held = await propsAndFresh(b.page);
        assert.deepEqual(held.held, held.fresh);
        await assertNotReloaded(a);
        await assertNotReloaded(b);
        await a.page.close();
        await b.page.close();
      });

      testOnce(framework)("a viewer who signs in as someone else stays live, with the new viewer's props", async () => {
        const a = await openLive(alice, board);
        try {
          const before = await subscriptionOf(a.page);
          await a.page.evaluate(
            ([url, back]) => (window as any).__router.post(url, { name: "carol", back }),
            [`/${framework}/viewer`, board],
          );
          await a.page.locator("#viewer").getByText("carol").waitFor();
          await a.page.waitForFunction((old) => (window as any).__upkeepInertia.subscription !== old, before);
          // The new page's token is carol's; the connection, opened with alice's cookie, is opened again.
          const note = `carol's note (${framework})`;
          await server.db.insertInto("notes").values({ owner: "carol", body: note }).execute();
          await shows(a, a.page.locator("#mine li", { hasText: note }));
          assert.ok(!(await a.page.locator("#mine").textContent())?.includes("alice"));
          await assertNotReloaded(a);
        } finally {
          await alice.context.addCookies([{ name: "user", value: "alice", url: server.url }]);
          await a.page.close();
        }
      });

      test("an Inertia navigation moves the subscription to the new page", async () => {
        const a = await openLive(alice, board);
        const first = await subscriptionOf(a.page);
        await a.page.locator("#to-other").click();
        await a.page.waitForURL(`${server.url}/${framework}/other`);
        await a.page.waitForFunction((old) => {
          const live = (window as any).__upkeepInertia;
          return live.subscription !== null && live.subscription !== old;
        }, first);
        const second = await subscriptionOf(a.page);
        // The server has the new subscription (and, sent on the same socket right after it, the old one's end).
        await until(() => a.socket.frames.some((f) => f.type === "subscribed" && sameId(f.id, second)));
        const seen = a.socket.frames.length;
        const count = Number(await a.page.locator("#count").textContent());

        // A write only the board page reads, then one the other page reads: only the second reaches this page.
        await server.db
          .updateTable("cards")
          .set({ title: `After leaving (${framework})` })
          .where("id", "=", 2)
          .execute();
        await server.db.insertInto("cards").values({ board_id: 2, title: "Laundry", position: 2 }).execute();
        await a.page
          .locator("#count")
          .getByText(String(count + 1))
          .waitFor();
        const later = a.socket.frames.slice(seen);
        assert.ok(
          later.every((f) => !sameId(f.id, first)),
          `no message for the page left behind: ${JSON.stringify(later)}`,
        );
        assert.ok(later.some((f) => f.type === "props" && sameId(f.id, second)));

        // Back to the board with the browser's back button: Inertia restores the page from its history entry, with
        // the marker and offset of the props it holds; it subscribes again and catches up.
        await server.db
          .updateTable("cards")
          .set({ title: `While away (${framework})` })
          .where("id", "=", 1)
          .execute();
        await a.page.goBack();
        await a.page.waitForURL(server.url + board);
        await a.page.locator("#cards li", { hasText: `While away (${framework})` }).waitFor();
        await a.page.waitForFunction((old) => {
          const live = (window as any).__upkeepInertia;
          return live.subscription !== null && live.subscription !== old;
        }, second);
        await server.db
          .updateTable("cards")
          .set({ title: `Back again (${framework})` })
          .where("id", "=", 2)
          .execute();
        await a.page.locator("#cards li", { hasText: `Back again (${framework})` }).waitFor();
        await assertNotReloaded(a);
        assert.deepEqual(a.errors, []);
        await a.page.close();
      });

      test("a reload-only prop is fetched with a partial reload; a live JSON resource follows writes", async () => {
        const a = await openLive(alice, board);
        const title = `Newest card (${framework})`;
        await server.db.insertInto("cards").values({ board_id: 1, title, position: 60 }).execute();
        await a.page.locator("#latest").getByText(title).waitFor();
        const live = await a.page.evaluate(() => (window as any).__upkeepInertia);
        assert.ok(live.partialReloads >= 1, JSON.stringify(live));
        assert.ok(
          a.socket.frames.some((f) => f.type === "props" && (f.reload as string[] | undefined)?.includes("latest")),
        );
        if (framework === "react") {
          await a.page.locator("#resource", { hasText: title }).waitFor();
          await a.page.locator("#resource-suspense", { hasText: title }).waitFor();
          assert.equal(await a.page.locator("#resource").getAttribute("data-status"), "live");
          assert.ok(a.socket.count("value") >= 1, "the resource was updated over the same socket");
          await server.db.deleteFrom("cards").where("title", "=", title).execute();
          await a.page.waitForFunction(
            (gone) => !document.querySelector("#resource")?.textContent?.includes(gone),
            title,
          );
        }
        await assertNotReloaded(a);
        assert.deepEqual(a.errors, []);
        await a.page.close();
      });

      testOnce(framework)(
        "after a dropped connection the page resumes from its offset; Server-Sent Events work the same",
        async () => {
          const a = await openLive(alice, board);
          const sub = await subscriptionOf(a.page);
          await a.page.evaluate(() => (window as any).__upkeepInertia.drop());
          await server.db
            .updateTable("cards")
            .set({ title: `During the drop (${framework})` })
            .where("id", "=", 1)
            .execute();
          await shows(a, a.page.locator("#cards li", { hasText: `During the drop (${framework})` }));
          // The same subscription, subscribed again on the new socket from the offset it had reached.
          await until(() => a.socket.frames.filter((f) => f.type === "subscribed" && sameId(f.id, sub)).length === 2);
          await assertNotReloaded(a);

          const sse = await openLive(bob, board, "sse");
          let sockets = 0;
          sse.page.on("websocket", () => sockets++);
          await server.db
            .updateTable("cards")
            .set({ title: `Over SSE (${framework})` })
            .where("id", "=", 1)
            .execute();
          await sse.page.locator("#cards li", { hasText: `Over SSE (${framework})` }).waitFor();
          assert.equal(sockets + sse.socket.frames.length, 0, "no WebSocket: the event stream carried the props");
          await assertNotReloaded(sse);
          assert.deepEqual([...a.errors, ...sse.errors], []);
          await a.page.close();
          await sse.page.close();
        },
      );

      testOnce(framework)("a page that became another page is visited anew, in place", async () => {
        const a = await openLive(alice, board);
        // A prop more arrives as a props message; a prop less makes it another page: the server says reload, and
        // the page is visited anew through Inertia (no document reload).
        await server.db
          .insertInto("flags")
          .values({ name: "banner", value: `Maintenance (${framework})` })
          .execute();
        await a.page.locator("#banner").getByText(`Maintenance (${framework})`).waitFor();
        await server.db.deleteFrom("flags").where("name", "=", "banner").execute();
        await a.page.locator("#banner").waitFor({ state: "detached" });
        const state = await a.page.evaluate(() => ({
          same: (window as any).__sameDocument === true,
          reloads: (window as any).__upkeepInertia.reloads,
        }));
        assert.deepEqual(state, { same: true, reloads: ["page_changed"] }, JSON.stringify(a.socket.frames));
        assert.equal(a.socket.count("reload"), 1);
        // Live again on the page the visit brought.
        await server.db
          .updateTable("cards")
          .set({ title: `After the visit (${framework})` })
          .where("id", "=", 1)
          .execute();
        await a.page.locator("#cards li", { hasText: `After the visit (${framework})` }).waitFor();
        assert.deepEqual(a.errors, []);
        await a.page.close();
      });

      test("after settling, the props in the browser equal a fresh Inertia visit by the same viewer", async () => {
        const a = await openLive(alice, board);
        await a.page
          .locator("#stats")
          .getByText(/\d+ cards/)
          .waitFor();
        await server.db
          .insertInto("cards")
          .values({ board_id: 1, title: `Settle one (${framework})`, position: 0 })
          .execute();
        await server.db.deleteFrom("cards").where("title", "=", "Posted").execute();
        await server.db
          .updateTable("boards")
          .set({ name: `Roadmap (${framework})` })
          .where("id", "=", 1)
          .execute();
        await server.db
          .insertInto("notes")
          .values({ owner: "alice", body: `settled note (${framework})` })
          .execute();
        if (existsSync(SQLITE3)) shell(`update cards set position = 50 where id = 1`);
        await a.page.locator("#board-name").getByText(`Roadmap (${framework})`).waitFor();
        await a.page.locator("#mine li", { hasText: `settled note (${framework})` }).waitFor();

        // Settled: the held props stop changing and equal a fresh visit's.
        let last = "";
        for (let i = 0; i < 50; i++) {
          const { held, fresh } = await propsAndFresh(a.page);
          if (JSON.stringify(held) === JSON.stringify(fresh) && JSON.stringify(held) === last) break;
          last = JSON.stringify(held);
          await a.page.waitForTimeout(100);
        }
        const { held, fresh, marker } = await propsAndFresh(a.page);
        assert.deepEqual(held, fresh);
        assert.equal(marker.offset > 0, true, "the page object carries the offset its props show");
        const cards = await a.page.locator("#cards li").allTextContents();
        assert.deepEqual(
          cards,
          (held.cards as { title: string }[]).map((c) => c.title),
          "the DOM shows the props",
        );
        await assertNotReloaded(a);
        assert.deepEqual(a.errors, []);
        await a.page.close();
      });
    });
  }
});

/** Resolves once `condition` holds (polled; the test's own timeout bounds the wait). */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
