// Builds the SPA demo's browser side (client/main.tsx) with Vite into one ES module, served at
// `${SPA_PREFIX}/assets/app.js`; `npm start` builds it at start-up (a second or two).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import react from "@vitejs/plugin-react";
import type { Hono } from "hono";
import { build } from "vite";
import { SPA_PREFIX } from "../app.ts";

const here = new URL(".", import.meta.url).pathname;

export async function buildSpaClient(outDir: string): Promise<void> {
  await build({
    root: here,
    configFile: false,
    logLevel: "warn",
    mode: "production",
    plugins: [react()],
    base: `${SPA_PREFIX}/assets/`,
    define: { __SPA_PREFIX__: JSON.stringify(SPA_PREFIX) },
    build: {
      outDir,
      emptyOutDir: true,
      copyPublicDir: false,
      chunkSizeWarningLimit: 4096, // one module with React and Inertia in it, on purpose
      rollupOptions: { input: join(here, "main.tsx"), output: { entryFileNames: "app.js" } },
    },
  });
}

/** What the SPA's HTML shell adds to its <head>: the bundle and the board's styles. */
export function spaHead(): string {
  return `<script type="module" src="${SPA_PREFIX}/assets/app.js"></script><style>${STYLE}</style>`;
}

/** Serves the built bundle at `${SPA_PREFIX}/assets/<file>.js`. */
export function serveSpaClient(app: Hono, outDir: string): void {
  app.get(`${SPA_PREFIX}/assets/:file`, async (c) => {
    const file = c.req.param("file");
    if (!/^[\w.-]+\.js$/.test(file)) return c.notFound();
    const body = await readFile(join(outDir, file), "utf8").catch(() => null);
    return body === null ? c.notFound() : c.body(body, 200, { "content-type": "text/javascript; charset=utf-8" });
  });
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
.columns { display: grid; grid-template-columns: repeat(3, 1fr); gap: 1rem; }
.column { background: #f4f5f7; border-radius: 8px; padding: 0.75rem; }
.cards { list-style: none; padding: 0; margin: 0 0 0.75rem; }
.card { background: white; border-radius: 6px; padding: 0.5rem; margin-bottom: 0.5rem; box-shadow: 0 1px 2px #0002; }
.card .actions { display: block; margin-top: 0.25rem; }
.card button { font-size: 0.75rem; margin-right: 0.25rem; }
.count { color: #888; font-weight: normal; }
.viewer { float: right; }
`;
