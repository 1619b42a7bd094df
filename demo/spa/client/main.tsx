/** @jsxImportSource react */
// The browser side of the SPA demo: the real @inertiajs/react, made live with one line.
import { createInertiaApp } from "@inertiajs/react";
import { createRoot } from "react-dom/client";
import { live } from "../../../src/client/inertia-react.ts";
import { Board, Boards } from "./pages.tsx";

const pages: Record<string, unknown> = { Board, Boards };

createInertiaApp({
  resolve: (name: string) => pages[name] as any,
  setup({ el, App, props }: any) {
    createRoot(el).render(<App {...props} />);
  },
  progress: false,
});
live();
