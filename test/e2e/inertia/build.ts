// Builds the fixture apps with Vite's programmatic build (nothing is fetched: every module comes from node_modules).
// Each app is one ES module, served by server.ts at /assets/<framework>/app.js.
import { join } from "node:path";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import react from "@vitejs/plugin-react";
import vue from "@vitejs/plugin-vue";
import { build, type PluginOption } from "vite";

const here = new URL(".", import.meta.url).pathname;

export const FRAMEWORKS = ["react", "svelte", "vue"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

const ENTRIES: Record<Framework, { entry: string; plugins: () => PluginOption[] }> = {
  react: { entry: "react/main.tsx", plugins: () => [react()] },
  svelte: { entry: "svelte/main.ts", plugins: () => [svelte({ configFile: false })] },
  vue: { entry: "vue/main.ts", plugins: () => [vue()] },
};

/** Builds every fixture app into `outDir/<framework>/app.js`. */
export async function buildFixtureApps(outDir: string): Promise<void> {
  for (const framework of FRAMEWORKS) {
    const { entry, plugins } = ENTRIES[framework];
    await build({
      root: here,
      configFile: false,
      logLevel: "warn",
      mode: "production",
      plugins: plugins(),
      base: `/assets/${framework}/`,
      build: {
        outDir: join(outDir, framework),
        emptyOutDir: true,
        minify: false,
        sourcemap: false,
        copyPublicDir: false,
        rollupOptions: {
          input: join(here, entry),
          output: {
            entryFileNames: "app.js",
            chunkFileNames: "[name]-[hash].js",
            assetFileNames: "[name]-[hash][extname]",
          },
        },
      },
    });
  }
}
