// Vite builds the browser side into one ES module, dist/app.js (`npx vite build` in this folder).
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [svelte()],
  build: { rollupOptions: { input: "main.ts", output: { entryFileNames: "app.js" } } },
});
