// The demo board in a real Chromium: the demo server runs as a child process on a temporary SQLite file; writes
// come from a browser form, from raw SQL in this process, and while the server is down.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import {
  type Browser,
  browserSkip,
  type DemoServer,
  freePort,
  launchBrowser,
  recordSocketFrames,
  type SocketLog,
  startDemoServer,
} from "../support/browser.ts";

const skip = browserSkip();
// Generous bound for one browser step on a loaded 2-core machine; a bound on waiting, not an assertion on time.
const STEP_TIMEOUT = 30_000;

describe("demo board in Chromium", { skip, timeout: 180_000 }, () => {
  let dir: string;
  let dbPath: string;
  let server: DemoServer;
  let browser: Browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "upkeep-e2e-"));
    dbPath = join(dir, "demo.sqlite");
    server = await startDemoServer({ port: await freePort(), databaseUrl: `file:${dbPath}` });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Open `path` in a browser of its own (its own connection) and wait until its subscription is acknowledged. */
  async function openLive(path: string): Promise<{ page: Page; socket: SocketLog; errors: string[] }> {
    const page = await browser.newWindow();
    page.setDefaultTimeout(STEP_TIMEOUT);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const socket = recordSocketFrames(page);
    await page.goto(server.url + path);
    await withTimeout(socket.waitFor("subscribed"), `subscription of ${path}\n${server.output()}`);
    return { page, socket, errors };
  }

  function rawWrite(sql: string, ...params: Array<string | number>): void {
    const db = new DatabaseSync(dbPath);
    try {
      db.exec("pragma busy_timeout = 5000");
      db.prepare(sql).run(...params);
    } finally {
      db.close();
    }
  }

  const cardTitle = (page: Page, id: number) => page.locator(`#card_${id} .title`);

  test("a form write in one page updates the other page on the same board", async () => {
    const a = await openLive("/boards/1");
    const b = await openLive("/boards/1");
    const title = `From the form ${Date.now()}`;
    await a.page.getByLabel("New card in To do").fill(title);
    await a.page.locator("#column_todo form.add-card button").click();
    await b.page.locator("#cards_todo").getByText(title).waitFor();
    await a.page.locator("#cards_todo").getByText(title).waitFor();
    assert.ok(b.socket.count("patch") >= 1, "the other page was patched over its WebSocket");
    assert.deepEqual(b.errors, []);
    await a.page.close();
    await b.page.close();
  });

  test("a raw SQL write updates both pages; a page on another board receives no frames for it", async () => {
    const a = await openLive("/boards/1");
    const b = await openLive("/boards/1");
    const other = await openLive("/boards/2");
    const patchesBefore = other.socket.count("patch");

    rawWrite("update cards set title = ? where id = 1", "Renamed by raw SQL");
    await cardTitle(a.page, 1).getByText("Renamed by raw SQL").waitFor();
    await cardTitle(b.page, 1).getByText("Renamed by raw SQL").waitFor();

    // Each subscriber's messages arrive in ledger order: once the other board's page shows a later write to its
    // own board, every message the first write could have caused it has arrived too.
    rawWrite("update cards set title = ? where id = 6", "Board two, later");
    await cardTitle(other.page, 6).getByText("Board two, later").waitFor();
    assert.equal(
      other.socket.count("patch") - patchesBefore,
      1,
      `the board 2 page received only its own write: ${JSON.stringify(other.socket.frames)}`,
    );
    assert.equal(a.socket.frames.filter((f) => f.type === "reload").length, 0);
    for (const p of [a, b, other]) await p.page.close();
  });

  test("Turbo Drive navigation moves the subscription to the new page over the same socket", async () => {
    const a = await openLive("/boards/1");
    let sockets = 0;
    a.page.on("websocket", () => sockets++);
    await a.page.getByRole("link", { name: "All boards" }).click();
    await a.page.waitForURL(`${server.url}/`);
    await withTimeout(a.socket.waitFor("subscribed", 2), "the board list's subscription");
    await a.page.locator('a[href="/boards/2"]').click();
    await a.page.waitForURL(`${server.url}/boards/2`);
    await withTimeout(a.socket.waitFor("subscribed", 3), "board 2's subscription");
    // The previous pages unsubscribed: one subscription is left.
    await a.page.waitForFunction(() => (window as any).__upkeep.subscriptions.length === 1);
    const before = a.socket.count("patch");
    rawWrite("update cards set title = ? where id = 1", "Board one, after navigating away");
    rawWrite("update cards set title = ? where id = 6", "Board two, after navigating here");
    await cardTitle(a.page, 6).getByText("Board two, after navigating here").waitFor();
    assert.equal(a.socket.count("patch") - before, 1, JSON.stringify(a.socket.frames.slice(-3)));
    assert.equal(sockets, 0, "Turbo Drive visits reused the page's WebSocket");
    assert.deepEqual(a.errors, []);
    await a.page.close();
  });

  test("the Inertia board under /spa: a card added in one page shows in the other", async () => {
    const open = async () => {
      const page = await browser.newWindow();
      page.setDefaultTimeout(STEP_TIMEOUT);
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`${server.url}/spa/boards/1`);
      await page.waitForFunction(() => (window as any).__upkeepInertia?.state === "open");
      return { page, errors };
    };
    const a = await open();
    const b = await open();
    const title = `From the SPA ${Date.now()}`;
    await a.page.getByLabel("New card in Doing").fill(title);
    await a.page.locator("#column_doing button[type=submit]").click();
    await b.page.locator("#cards_doing").getByText(title).waitFor();
    await a.page.locator("#cards_doing").getByText(title).waitFor();
    // And the HTML board shows the same write.
    const html = await openLive("/boards/1");
    await html.page.locator("#cards_doing").getByText(title).waitFor();
    assert.deepEqual([...a.errors, ...b.errors, ...html.errors], []);
    for (const p of [a.page, b.page, html.page]) await p.close();
  });

  test("signing in with a Turbo form keeps the page live (the connection is opened again with the new cookie)", async () => {
    const a = await openLive("/");
    await a.page.getByLabel("Your name").fill("Grace");
    await a.page.getByRole("button", { name: "Sign in" }).click();
    await a.page.locator("#greeting").getByText("Grace").waitFor();
    await withTimeout(a.socket.waitFor("subscribed", 2), "the signed-in page's subscription");
    rawWrite("update boards set name = ? where id = 3", "Hiring, renamed after signing in");
    await a.page.getByText("Hiring, renamed after signing in").waitFor();
    const reloads = await a.page.evaluate(() => (window as any).__upkeep.reloads);
    assert.deepEqual(reloads, [], "no reload was needed");
    assert.deepEqual(a.errors, []);
    await a.page.context().clearCookies();
    await a.page.close();
  });

  test("the demo shows Upkeep at work: card menus, the connection state, highlights and what each write cost", async () => {
    const a = await openLive("/boards/1");
    const b = await openLive("/boards/1");
    await b.page.locator("#connection[data-state='live']").waitFor();

    assert.match((await b.page.locator("#connection").textContent()) ?? "", /^live · offset \d+$/);
    // Rename card 3 through its menu in one page; the other page shows it, highlighted, and the write's cost.
    await a.page.getByLabel("Actions for Pricing page copy").click();
    await a.page.locator("#card_3 input[name=title]").fill("Pricing, renamed from the menu");
    await a.page.locator("#card_3").getByRole("button", { name: "Rename" }).click();
    await cardTitle(b.page, 3).getByText("Pricing, renamed from the menu").waitFor();
    await b.page.locator("#card_3.patched").waitFor();
    const entry = b.page.locator("#activity li").first();
    await entry.getByText("rename card 3").waitFor();
    // What the write cost: its fact, and no page replay. Its card is rendered once, as a frame (`frame render …
    // replace ×1`) — or, when the form's redirect (a GET that already shows the new title) registers the page before
    // the fact is planned, by that GET, and the other page is sent the difference without any render.
    const cost = (await entry.textContent()) ?? "";
    assert.match(cost, /1 fact · .*\d+ messages?, \d+ B/);
    assert.doesNotMatch(cost, /page replay/);
    // Only what the patches changed is highlighted: the renamed card and the new activity entry.
    const highlighted = await b.page.evaluate(() => [...document.querySelectorAll(".patched")].map((e) => e.id));
    assert.ok(
      highlighted.every((id) => id === "card_3" || id.startsWith("activity_")),
      `highlighted: ${highlighted.join(", ")}`,
    );
    const shot = join(tmpdir(), "upkeep-demo-board.png");
    await b.page.setViewportSize({ width: 1280, height: 720 });
    // caret "initial": hiding the caret restyles every input, which the demo would highlight as changed.
    await b.page.screenshot({ path: shot, caret: "initial" });

    console.log(`# demo screenshot: ${shot}`);
    assert.deepEqual(b.errors, []);
    await a.page.close();
    await b.page.close();
  });

  test("after a SIGKILL and a write while the server is down, the restarted server brings the page up to date", async () => {
    const a = await openLive("/boards/1");
    await server.kill();
    rawWrite("update cards set title = ? where id = 2", "Written while the server was down");
    server = await startDemoServer({ port: server.port, databaseUrl: `file:${dbPath}` });
    // The page reconnects with backoff and resumes from the last offset it applied.
    await cardTitle(a.page, 2).getByText("Written while the server was down").waitFor({ timeout: 60_000 });
    // And it stays live on the new process.
    rawWrite("update cards set title = ? where id = 2", "After the restart");
    await cardTitle(a.page, 2).getByText("After the restart").waitFor();
    assert.deepEqual(a.errors, []);
    await a.page.close();
  });
});

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
