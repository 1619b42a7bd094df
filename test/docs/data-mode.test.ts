// The data-mode walkthrough, run: each browser side of docs/samples/inertia (React, Vue, Svelte) is built with its own
// vite.config.ts, served by the sample's server on SQLite, and opened in Chromium by a signed-in viewer; the page's
// props (the shared greeting, the todos, the deferred count) must follow a write through the sample's POST route and
// one from another connection, without a reload.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { build } from "vite";
import { createApp } from "../../docs/samples/inertia/server.ts";
import { createTodos } from "../../docs/samples/schema.ts";
import { createUpkeep } from "../../src/index.ts";
import { SECRET } from "../live/fixture.ts";
import { type Browser, browserSkip, launchBrowser } from "../support/browser.ts";

const samples = new URL("../../docs/samples/inertia/", import.meta.url).pathname;
// A bound on waiting for one browser step on a loaded machine, not an assertion on time.
const STEP_TIMEOUT = 20_000;

describe("the data-mode walkthrough in Chromium", { skip: browserSkip(), timeout: 180_000 }, () => {
  let dir: string;
  let browser: Browser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "upkeep-docs-inertia-"));
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const framework of ["react", "vue", "svelte"]) {
    test(`${framework}: the sample's props stay live`, async () => {
      const assets = join(dir, framework);
      // The sample's own config, as `npx vite build` in its folder would run it; only the output goes elsewhere.
      await build({
        root: join(samples, framework),
        configFile: join(samples, framework, "vite.config.ts"),
        logLevel: "warn",
        build: { outDir: assets, emptyOutDir: true },
      });
      const path = join(dir, `${framework}.sqlite`);
      await createTodos(`file:${path}`);
      const shell = new DatabaseSync(path);
      shell.exec("pragma busy_timeout = 5000");
      shell.exec("insert into todos (list, title) values ('home', 'water the plants')");
      const upkeep = await createUpkeep({ database: `file:${path}`, secret: SECRET, install: true, mode: "test" });
      const served = await upkeep.serve(createApp(upkeep, assets), { port: 0 });
      try {
        await browser.context.addCookies([{ name: "name", value: "ada", url: served.url }]);
        const page = await browser.newPage();
        page.setDefaultTimeout(STEP_TIMEOUT);
        const errors: string[] = [];
        page.on("pageerror", (error) => errors.push(String(error)));
        await page.goto(`${served.url}/lists/home`);
        await page.waitForFunction(() => {
          const live = (window as any).__upkeepInertia;
          return live?.state === "open" && live.subscription !== null;
        });
        await page.waitForFunction(() => document.querySelector("#open")?.textContent === "1 open");
        assert.equal(await page.textContent("#viewer"), "Hello, ada");
        await page.evaluate(() => Object.assign(window, { sameDocument: true }));

        // A write through the sample's own route, as the app's forms make it …
        const posted = await fetch(`${served.url}/lists/home/todos`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ title: "call the plumber" }),
          redirect: "manual",
        });
        assert.equal(posted.status, 303);
        // … and one from another connection, as a shell or another service makes it.
        shell.exec("update todos set title = 'water the ferns' where title = 'water the plants'");
        await page.waitForFunction(
          () =>
            [...document.querySelectorAll("#todos li")].map((li) => li.textContent).join("|") ===
              "water the ferns|call the plumber" && document.querySelector("#open")?.textContent === "2 open",
        );
        assert.equal(await page.evaluate(() => (window as any).sameDocument), true, "the page was reloaded");
        assert.deepEqual(errors, []);
        await page.close();
      } finally {
        shell.close();
        await upkeep.close();
      }
    });
  }
});
