// The oracle's Chromium sample: a few pages of a sequence open in real Chromium (Debian's, driven by playwright-core)
// with the real browser client and @hotwired/turbo applying the patches; after the settle point each page's DOM must
// equal a fresh GET by the same viewer, normalised the same way (src/testing/dom.ts normalizeBody). Each viewer is a
// browser profile of its own with the viewer cookie.
import type { BrowserContext, Page } from "playwright-core";
import { normalizeBody } from "../../src/testing/dom.ts";
import { launchBrowser, recordSocketFrames, type SocketLog } from "../support/browser.ts";
import type { PageEvent, PageSpec } from "./clients.ts";
import { http } from "./world.ts";

/** A bound on waiting for one browser step on a loaded machine: a bound on waiting, not an assertion on time. */
const STEP_MS = 30_000;
/** How long a page may take to show what its last message brought after the settle point (Turbo applies stream
 *  elements on the next animation frame); a page still different after it has failed. */
const CONVERGE_MS = 15_000;

/**
 * The body of `html` (of the page shown, when null) as it is compared: an element marked data-turbo-permanent is the
 * browser's own (morphs keep it; the page's scripts may change it, as the demo's connection indicator does), so it is
 * compared by its id alone; an empty class or style attribute (what a script's highlight leaves behind) is no
 * attribute. Runs in the page.
 */
function comparable(html: string | null): string {
  const body = html === null ? document.body : new DOMParser().parseFromString(html, "text/html").body;
  const copy = body.cloneNode(true) as HTMLElement;
  for (const element of copy.querySelectorAll("[data-turbo-permanent]")) {
    element.innerHTML = "";
    for (const name of element.getAttributeNames()) if (name !== "id") element.removeAttribute(name);
  }
  for (const element of copy.querySelectorAll("[class=''], [style='']")) {
    if (element.getAttribute("class") === "") element.removeAttribute("class");
    if (element.getAttribute("style") === "") element.removeAttribute("style");
  }
  return copy.outerHTML;
}

export interface BrowserPage {
  readonly spec: PageSpec;
  /** Waits (within a bound) for the page to equal a fresh GET by the same viewer. */
  converge(): Promise<{ ok: boolean; expected: string; actual: string; events: PageEvent[] }>;
  close(): Promise<void>;
}

export interface ChromiumSample {
  /** Opens each page in a profile of its own; `foreign(viewer)` is the text its frames must never carry. */
  open(base: string, specs: PageSpec[], foreign: (viewer: string | null) => string[]): Promise<BrowserPage[]>;
  /** After a restart: every open page retries its connection now instead of waiting out its backoff. */
  wake(): Promise<void>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<ChromiumSample> {
  const launched = await launchBrowser();
  const browser = launched.context.browser();
  if (!browser) throw new Error("playwright gave no browser");
  const open = new Set<{ page: Page; context: BrowserContext }>();
  return {
    async open(base, specs, foreign) {
      const out: BrowserPage[] = [];
      for (const spec of specs) {
        const context = await browser.newContext();
        if (spec.viewer) await context.addCookies([{ name: "viewer", value: spec.viewer, url: base }]);
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_MS);
        const entry = { page, context };
        open.add(entry);
        const events: PageEvent[] = [];
        page.on("pageerror", (error) => events.push({ kind: "error", detail: `page error: ${error}` }));
        const socket = recordSocketFrames(page);
        await page.goto(base + spec.url);
        await socket.waitFor("subscribed");
        out.push(
          sample(base, spec, foreign(spec.viewer), page, socket, events, async () => {
            open.delete(entry);
            await context.close().catch(() => {});
          }),
        );
      }
      return out;
    },
    async wake() {
      for (const { page } of open) await page.evaluate(() => dispatchEvent(new Event("online"))).catch(() => {});
    },
    async close() {
      await launched.close();
    },
  };
}

function sample(
  base: string,
  spec: PageSpec,
  foreign: string[],
  page: Page,
  socket: SocketLog,
  events: PageEvent[],
  close: () => Promise<void>,
): BrowserPage {
  return {
    spec,
    async converge() {
      const response = await http(base + spec.url, {
        headers: { accept: "text/html", ...(spec.viewer ? { cookie: `viewer=${spec.viewer}` } : {}) },
      });
      const expected = normalizeBody(await page.evaluate(comparable, response.text));
      let actual = "";
      const deadline = Date.now() + CONVERGE_MS;
      for (;;) {
        actual = normalizeBody(await page.evaluate(comparable, null));
        if (actual === expected || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const frame of socket.frames) {
        if (frame.type === "reload") events.push({ kind: "reload", detail: String(frame.reason) });
        const text = JSON.stringify(frame);
        for (const m of foreign)
          if (text.includes(m)) events.push({ kind: "isolation", detail: `carried ${m}: ${text.slice(0, 600)}` });
      }
      return { ok: actual === expected && events.length === 0, expected, actual, events };
    },
    close,
  };
}
