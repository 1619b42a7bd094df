// `npm run bench -- tabs [--tabs 8] [--writes 20] [--handovers 5]`: what sharing one connection between the tabs of
// a browser costs and saves, in Debian's Chromium against the demo server (a child process on SQLite).
//
// Two runs of the same workload: `--tabs` tabs of one browser profile (they share one socket: the leader tab's relay
// forwards each patch over BroadcastChannel), and as many separate profiles (a socket each, as before sharing). For
// every write (an UPDATE from another connection, as the sqlite3 shell would) each tab records, in the page, when the
// patch reaches it (the message event Turbo renders from) and when the new title appears, minus the commit's time.
// Tabs of one window that are not the active one get few animation frames from Chromium, and Turbo renders on the
// next frame, so "shown" there includes up to about a second of the browser's own scheduling; "reached" is Upkeep's
// part. Then handovers: the leader tab closes and a write commits at once; the figure is how long until the patch
// reaches every remaining tab (a new leader elected, its socket opened, every tab subscribed again from its offset,
// and the write delivered).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import type { Page } from "playwright-core";
import { WIRE } from "../src/client/constants.ts";
import { freePort, launchBrowser, startDemoServer } from "../test/support/browser.ts";
import { percentile } from "./support/stats.ts";

const { values } = parseArgs({
  options: {
    tabs: { type: "string", default: "8" },
    writes: { type: "string", default: "20" },
    handovers: { type: "string", default: "5" },
  },
});
const TABS = Number(values.tabs);
const WRITES = Number(values.writes);
const HANDOVERS = Number(values.handovers);

const dir = mkdtempSync(join(tmpdir(), "upkeep-bench-tabs-"));
const dbPath = join(dir, "demo.sqlite");
const server = await startDemoServer({ port: await freePort(), databaseUrl: `file:${dbPath}` });
const browser = await launchBrowser();

function write(title: string): number {
  const db = new DatabaseSync(dbPath);
  try {
    db.exec("pragma busy_timeout = 5000");
    db.prepare("update cards set title = ? where id = 1").run(title);
    return Date.now();
  } finally {
    db.close();
  }
}

interface Tab {
  page: Page;
  sockets: { open: number };
}

/** A tab: `newPage` is a tab of the shared profile, or the page of a profile of its own. */
async function openTab(newPage: () => Promise<Page>): Promise<Tab> {
  const page = await newPage();
  page.setDefaultTimeout(60_000);
  const sockets = { open: 0 };
  page.on("websocket", (socket) => {
    if (!new URL(socket.url()).pathname.startsWith(WIRE.socketPath)) return;
    sockets.open += 1;
    socket.on("close", () => {
      sockets.open -= 1;
    });
  });
  await page.goto(`${server.url}/boards/1`);
  await page.waitForFunction(() => (window as any).__upkeep?.state === "open");
  // When each patch reaches the page (the message event Turbo renders from), and when each title first shows (the
  // page's clock is the machine's).
  await page.evaluate(() => {
    const seen: Record<string, number> = {};
    const delivered: Array<[number, string]> = [];
    (window as any).__seen = seen;
    (window as any).__delivered = delivered;
    document
      .querySelector("upkeep-stream-source")
      ?.addEventListener("message", (event) => delivered.push([Date.now(), String((event as MessageEvent).data)]));
    new MutationObserver(() => {
      const text = document.querySelector("#card_1 .title")?.textContent?.trim();
      if (text && !(text in seen)) seen[text] = Date.now();
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  return { page, sockets };
}

const seenAt = (tab: Tab, title: string): Promise<number> =>
  tab.page
    .waitForFunction((t) => (window as any).__seen?.[t] as number | undefined, title)
    .then((h) => h.jsonValue() as Promise<number>);
const deliveredAt = (tab: Tab, title: string) =>
  tab.page.evaluate(
    (t) => ((window as any).__delivered as Array<[number, string]>).find(([, html]) => html.includes(t))?.[0] ?? null,
    title,
  );

const summary = (xs: number[]) => ({
  p50: percentile(xs, 50),
  p95: percentile(xs, 95),
  max: xs.length ? Math.max(...xs) : Number.NaN,
});

/** Commit → patch delivered to each tab, and commit → title shown in each tab (ms). */
async function deliveries(name: string, tabs: Tab[]): Promise<{ delivered: number[]; shown: number[] }> {
  const delivered: number[] = [];
  const shown: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const title = `${name} ${i}`;
    const committed = write(title);
    for (const at of await Promise.all(tabs.map((tab) => seenAt(tab, title)))) shown.push(at - committed);
    for (const tab of tabs) {
      const at = await deliveredAt(tab, title);
      if (at === null) throw new Error(`no patch with "${title}" reached a tab, yet it shows it`);
      delivered.push(at - committed);
    }
  }
  return { delivered, shown };
}

// Shared: the tabs of one profile.
const shared: Tab[] = [];
for (let i = 0; i < TABS; i++) shared.push(await openTab(browser.newPage));
const sharedSockets = shared.reduce((n, t) => n + t.sockets.open, 0);
const sharedLatency = await deliveries("shared", shared);

// Handovers: close the leader, commit at once, wait until every other tab shows it; open a tab again.
const handovers: number[] = [];
for (let h = 0; h < HANDOVERS; h++) {
  const roles = await Promise.all(shared.map((t) => t.page.evaluate(() => (window as any).__upkeep.role as string)));
  const leader = shared.splice(roles.indexOf("leader"), 1)[0]!;
  await leader.page.close();
  const title = `handover ${h}`;
  const committed = write(title);
  await Promise.all(shared.map((tab) => seenAt(tab, title)));
  const reached = await Promise.all(shared.map((tab) => deliveredAt(tab, title)));
  handovers.push(Math.max(...reached.map((at) => (at ?? Number.NaN) - committed)));
  shared.push(await openTab(browser.newPage));
}
for (const tab of shared) await tab.page.close();

// Separate: one profile per tab, a socket each (the same pages, as before tabs shared a connection).
const separate: Tab[] = [];
for (let i = 0; i < TABS; i++) separate.push(await openTab(browser.newWindow));
const separateSockets = separate.reduce((n, t) => n + t.sockets.open, 0);
const separateLatency = await deliveries("separate", separate);

await browser.close();
await server.stop();
rmSync(dir, { recursive: true, force: true });

const results = {
  tabs: TABS,
  writes: WRITES,
  shared: {
    sockets: sharedSockets,
    deliveredMs: summary(sharedLatency.delivered),
    shownMs: summary(sharedLatency.shown),
  },
  separate: {
    sockets: separateSockets,
    deliveredMs: summary(separateLatency.delivered),
    shownMs: summary(separateLatency.shown),
  },
  handoverMs: summary(handovers),
};
type Run = typeof results.shared;
const line = (name: string, r: Run) =>
  `  ${name}: ${r.sockets} server connection(s); commit → patch in the tab p50 ${r.deliveredMs.p50} ms, p95 ${r.deliveredMs.p95} ms, max ${r.deliveredMs.max} ms; → title shown p50 ${r.shownMs.p50} ms, p95 ${r.shownMs.p95} ms`;
console.log(`${TABS} tabs on the demo board, ${WRITES} writes each run`);
console.log(line("one browser, shared connection", results.shared));
console.log(line("separate browsers (baseline)", results.separate));
console.log(
  `  leader tab closed → a write committed at that moment reaches every other tab: p50 ${results.handoverMs.p50} ms, max ${results.handoverMs.max} ms (${HANDOVERS} handovers)`,
);
mkdirSync(new URL("./results/", import.meta.url).pathname, { recursive: true });
writeFileSync(new URL("./results/tabs.json", import.meta.url).pathname, `${JSON.stringify(results, null, 2)}\n`);
