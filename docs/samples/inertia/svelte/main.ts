// The browser side with Svelte 5: Inertia's own app, made live with one call.
import { createInertiaApp } from "@inertiajs/svelte";
import { mount } from "svelte";
import { live } from "../../../../src/client/inertia-svelte.ts";
import List from "./List.svelte";

// Inertia's Svelte adapter resolves a page to its module: { default: component }.
const pages: Record<string, any> = { List: { default: List } };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props }: any) {
    mount(App, { target: el, props });
  },
});
live(); // next to createInertiaApp: the props of every page stay live
