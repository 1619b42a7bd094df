// Live props for Inertia with React: call `live()` once, next to createInertiaApp.
//
//   import { live } from "upkeep/inertia/react";
//   createInertiaApp({ … });
//   live();

import { router } from "@inertiajs/react";
import { type LiveOptions, startLive } from "./inertia.ts";

export type { LiveDebug, LiveMarker, LiveOptions, LiveState } from "./inertia.ts";

/** Keeps the props of every page this app shows live; returns the function that stops it. */
export function live(options: LiveOptions = {}): () => void {
  return startLive(router, options);
}
