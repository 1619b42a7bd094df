// Vite builds the browser side into one ES module, dist/app.js (`npx vite build` in this folder).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: { rollupOptions: { input: "main.tsx", output: { entryFileNames: "app.js" } } },
});
