/** @jsxImportSource react */
// The browser side with React: Inertia's own app, made live with one call.
import { createInertiaApp } from "@inertiajs/react";
import { createRoot } from "react-dom/client";
import { live } from "../../../../src/client/inertia-react.ts";
import List from "./List.tsx";

const pages: Record<string, any> = { List };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props }: any) {
    createRoot(el).render(<App {...props} />);
  },
});
live(); // next to createInertiaApp: the props of every page stay live
