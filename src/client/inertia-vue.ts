// Live props for Inertia with Vue 3: call `live()` once, next to createInertiaApp.
//
//   import { live } from "upkeep/inertia/vue";
//   createInertiaApp({ … });
//   live();

import { router } from "@inertiajs/vue3";
import { type LiveOptions, startLive } from "./inertia.ts";

export type { LiveDebug, LiveMarker, LiveOptions, LiveState } from "./inertia.ts";

/** Keeps the props of every page this app shows live; returns the function that stops it. */
export function live(options: LiveOptions = {}): () => void {
  return startLive(router, options);
}
