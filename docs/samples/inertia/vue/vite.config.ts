// Vite builds the browser side into one ES module, dist/app.js (`npx vite build` in this folder).
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [vue()],
  build: { rollupOptions: { input: "main.ts", output: { entryFileNames: "app.js" } } },
});
