// Live props for Inertia with Svelte 5: call `live()` once, next to createInertiaApp.
//
//   import { live } from "upkeep/inertia/svelte";
//   createInertiaApp({ … });
//   live();

import { router } from "@inertiajs/svelte";
import { type LiveOptions, startLive } from "./inertia.ts";

export type { LiveDebug, LiveMarker, LiveOptions, LiveState } from "./inertia.ts";

/** Keeps the props of every page this app shows live; returns the function that stops it. */
export function live(options: LiveOptions = {}): () => void {
  return startLive(router, options);
}
