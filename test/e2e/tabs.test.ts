// One connection per browser, in a real Chromium: five tabs of one browser profile on the demo board share one
// WebSocket (a leader tab elected with Web Locks holds it; the others follow over BroadcastChannel). Writes reach
// every tab; when the leader tab closes another takes over and every tab resumes from the offset it shows, with
// nothing lost, even for writes committed during the handover.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import { WIRE } from "../../src/client/constants.ts";
import {
  type Browser,
  browserSkip,
  type DemoServer,
  freePort,
  launchBrowser,
  startDemoServer,
} from "../support/browser.ts";

const skip = browserSkip();
// Generous bound for one browser step on a loaded 2-core machine; a bound on waiting, not an assertion on time.
const STEP_TIMEOUT = 30_000;

interface Tab {
  page: Page;
  errors: string[];
  /** Upkeep WebSockets this tab opened, and how many of them are still open. */
  sockets: { opened: number; open: number };
}

describe("one connection per browser: five tabs in Chromium", { skip, timeout: 240_000 }, () => {
  let dir: string;
  let dbPath: string;
  let server: DemoServer;
  let browser: Browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "upkeep-tabs-"));
    dbPath = join(dir, "demo.sqlite");
    server = await startDemoServer({ port: await freePort(), databaseUrl: `file:${dbPath}` });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A new tab of the same browser on `path`, once its page is live (subscribed, through whichever tab leads). */
  async function openTab(path: string): Promise<Tab> {
    const page = await browser.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const sockets = { opened: 0, open: 0 };
    page.on("websocket", (socket) => {
      if (!new URL(socket.url()).pathname.startsWith(WIRE.socketPath)) return;
      sockets.opened += 1;
      sockets.open += 1;
      socket.on("close", () => {
        sockets.open -= 1;
      });
    });
    await page.goto(server.url + path);
    await page.waitForFunction(() => {
      const u = (window as any).__upkeep;
      return u?.state === "open" && u.subscriptions.length === 1 && u.messagesReceived > 0; // acknowledged
    });
    return { page, errors, sockets };
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

  const role = (tab: Tab) => tab.page.evaluate(() => (window as any).__upkeep.role as string);
  const titles = (page: Page, status: string) =>
    page.locator(`#cards_${status} .title`).evaluateAll((els) => els.map((e) => e.textContent?.trim()));

  test("five tabs, one server connection; close the leader: every tab stays live and nothing is lost", async () => {
    const tabs: Tab[] = [];
    for (let i = 0; i < 5; i++) tabs.push(await openTab("/boards/1"));
    const roles = await Promise.all(tabs.map(role));
    assert.deepEqual(roles.filter((r) => r === "leader").length, 1, `roles: ${roles.join(", ")}`);
    assert.deepEqual(roles.filter((r) => r === "follower").length, 4, `roles: ${roles.join(", ")}`);
    const open = () => tabs.reduce((n, t) => n + t.sockets.open, 0);
    assert.equal(open(), 1, "one WebSocket for five tabs");
    assert.equal(
      tabs.reduce((n, t) => n + t.sockets.opened, 0),
      1,
      "no tab ever opened a second one",
    );

    // A write from a sqlite shell's point of view (another connection) reaches every tab.
    rawWrite("update cards set title = ? where id = 1", "Seen by five tabs");
    for (const tab of tabs) await tab.page.locator("#card_1 .title").getByText("Seen by five tabs").waitFor();

    // Close the leader, and write while the next leader takes over, and after.
    const leader = tabs[roles.indexOf("leader")]!;
    const rest = tabs.filter((t) => t !== leader);
    const closing = leader.page.close();
    const added: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const title = `During the handover ${i}`;
      added.push(title);
      rawWrite(
        "insert into cards (board_id, title, status, position) values (1, ?, 'todo', (select coalesce(max(position), 0) + 1 from cards))",
        title,
      );
      if (i === 2) await closing;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    rawWrite("update cards set title = ? where id = 1", "After the handover");
    for (const tab of rest) {
      await tab.page.locator("#card_1 .title").getByText("After the handover").waitFor();
      for (const title of added) await tab.page.locator("#cards_todo").getByText(title, { exact: true }).waitFor();
    }
    // Exactly what a fresh GET shows, in every tab, with no reload: each resumed from the offset it showed.
    const fresh = await openTab("/boards/1");
    for (const status of ["todo", "doing", "done"]) {
      const expected = await titles(fresh.page, status);
      for (const tab of rest) assert.deepEqual(await titles(tab.page, status), expected, `column ${status}`);
    }
    for (const tab of rest) {
      assert.deepEqual(await tab.page.evaluate(() => (window as any).__upkeep.reloads), [], "no tab reloaded");
    }
    const after = await Promise.all(rest.map(role));
    assert.equal(after.filter((r) => r === "leader").length, 1, `a new leader: ${after.join(", ")}`);
    assert.equal(await role(fresh), "follower", "a new tab follows the new leader");
    const live = [...rest, fresh];
    assert.equal(
      live.reduce((n, t) => n + t.sockets.open, 0),
      1,
      "one WebSocket again, the new leader's",
    );
    assert.deepEqual(
      live.flatMap((t) => t.errors),
      [],
    );
    for (const tab of live) await tab.page.close();
  });

  test("a follower tab navigates with Turbo Drive and drops the shared socket: every tab stays live", async () => {
    const leader = await openTab("/boards/1");
    const follower = await openTab("/boards/1");
    assert.deepEqual([await role(leader), await role(follower)], ["leader", "follower"]);
    // Turbo Drive in the follower: its subscription moves to board 2 through the leader's socket.
    await follower.page.getByRole("link", { name: "All boards" }).click();
    await follower.page.waitForURL(`${server.url}/`);
    await follower.page.locator('a[href="/boards/2"]').click();
    await follower.page.waitForURL(`${server.url}/boards/2`);
    await follower.page.waitForFunction(() => (window as any).__upkeep.subscriptions.length === 1);
    rawWrite("update cards set title = ? where id = 6", "Board two, from a follower tab");
    await follower.page.locator("#card_6 .title").getByText("Board two, from a follower tab").waitFor();
    // The follower drops the connection (what a page rendered for new cookies does): the leader's socket is opened
    // again, and both tabs resume from their offsets.
    await follower.page.evaluate(() => (window as any).__upkeep.drop());
    rawWrite("update cards set title = ? where id = 6", "Board two, after the drop");
    rawWrite("update cards set title = ? where id = 1", "Board one, after the drop");
    await follower.page.locator("#card_6 .title").getByText("Board two, after the drop").waitFor();
    await leader.page.locator("#card_1 .title").getByText("Board one, after the drop").waitFor();
    assert.equal(leader.sockets.opened, 2, "the leader opened its socket again");
    assert.equal(leader.sockets.open + follower.sockets.open, 1, "still one socket");
    assert.equal(follower.sockets.opened, 0, "the follower never opened one");
    for (const tab of [leader, follower]) {
      assert.deepEqual(await tab.page.evaluate(() => (window as any).__upkeep.reloads), []);
      assert.deepEqual(tab.errors, []);
      await tab.page.close();
    }
  });

  test('connection="window" opts a page out: its tab keeps a socket of its own', async () => {
    const { page, sockets } = await openTab("/boards/1");
    assert.equal(await role({ page, errors: [], sockets }), "leader", "the only tab leads");
    // The attribute is read when a window's connection is made: a frame (a window of its own) with it set.
    const framed = await page.evaluate(async () => {
      const source = document.querySelector("upkeep-stream-source")!;
      const html = source.outerHTML.replace("<upkeep-stream-source", '<upkeep-stream-source connection="window"');
      const frame = document.createElement("iframe");
      document.body.append(frame);
      frame.contentDocument!.open();
      frame.contentDocument!.write(
        `<script type="module" src="/upkeep/client/index.js"></script>${html.replace(/id="[^"]*"/, 'id="opt_out"')}`,
      );
      frame.contentDocument!.close();
      const w = frame.contentWindow as any;
      for (let i = 0; i < 400 && w.__upkeep?.state !== "open"; i++) await new Promise((r) => setTimeout(r, 50));
      return { state: w.__upkeep?.state, role: w.__upkeep?.role };
    });
    assert.deepEqual(framed, { state: "open", role: "window" });
    assert.equal(sockets.open, 2, "the leader's socket and the opted-out frame's own");
    await page.close();
  });
});
