// The Svelte 5 fixture app: the real @inertiajs/svelte, made live with one line.
import { createInertiaApp, router } from "@inertiajs/svelte";
import { mount } from "svelte";
import { live } from "../../../../src/client/inertia-svelte.ts";
import Board from "./Board.svelte";
import Other from "./Other.svelte";

// Inertia's Svelte adapter resolves a page to its module ({ default: component }).
const pages: Record<string, any> = { Board: { default: Board }, Other: { default: Other } };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props }: any) {
    mount(App, { target: el!, props });
  },
  progress: false,
});
live({ transport: (window as any).__upkeepTransport });
// For the browser tests: Inertia visits made from the page.
(window as any).__router = router;
