/** @jsxImportSource react */
// The React fixture app: the real @inertiajs/react, made live with one line.
import { createInertiaApp, router } from "@inertiajs/react";
import { createRoot } from "react-dom/client";
import { live } from "../../../../src/client/inertia-react.ts";
import { Board, Other } from "./pages.tsx";

const pages: Record<string, any> = { Board, Other };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props }: any) {
    createRoot(el!).render(<App {...props} />);
  },
  progress: false,
});
live({ transport: (window as any).__upkeepTransport });
// For the browser tests: Inertia visits made from the page.
(window as any).__router = router;
