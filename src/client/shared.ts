// Data mode's share of the browser client: one ConnectionManager per window for every live Inertia page and live
// JSON resource (linked to the browser's one connection, tabs.ts), the connection state as data mode reports it,
// subscription ids, and the guard that keeps a server refusing every token from causing a reload loop.
//
// Erasable TypeScript, shipped compiled.

import type { ConnectionManager, Subscription } from "./connection.ts";
import { CLIENT_TUNING, WIRE } from "./constants.ts";
import type { ConnectionState } from "./state.ts";
import { type TabShare, windowManager } from "./tabs.ts";

/** What a live page or resource shows about its connection: `live` when the connection is open. */
export type LiveState = "connecting" | "live" | "reconnecting" | "offline";

/** The part of ConnectionManager that data mode uses (tests pass a fake). */
export type Subscriptions = Pick<ConnectionManager, "add" | "remove">;

export interface ConnectionOptions {
  /** Where the server mounts the WebSocket (default /upkeep/socket). */
  socketPath?: string;
  /** Where the server mounts the event streams (default /upkeep/events). */
  eventsPath?: string;
  /** "browser" (default): the tabs of the browser share one connection; "window": this window opens its own. */
  connection?: "browser" | "window";
}

let manager: ConnectionManager | null = null;
let share: TabShare | null = null;
let state: LiveState = "offline";
let everOpened = false;
const listeners = new Set<(state: LiveState) => void>();

function liveState(connection: ConnectionState): LiveState {
  switch (connection.status) {
    case "open":
      everOpened = true;
      return "live";
    case "connecting":
    case "backoff":
      return everOpened || connection.attempt > 0 ? "reconnecting" : "connecting";
    default:
      return "offline";
  }
}

/** The window's connection for data mode, created on first use (the first caller's paths win). */
export function windowConnection(options: ConnectionOptions = {}): ConnectionManager {
  if (!manager) {
    ({ manager, share } = windowManager({
      ...options,
      onState(connection) {
        const next = liveState(connection);
        if (next === state) return;
        state = next;
        for (const listener of listeners) listener(next);
      },
    }));
  }
  return manager;
}

/** The window's data-mode connection and its share of the browser's, once made (for the debug view, debug.ts). */
export function windowConnectionParts(): { manager: ConnectionManager | null; share: TabShare | null } {
  return { manager, share };
}

/** The data-mode connection's state now. */
export function connectionState(): LiveState {
  return state;
}

/** Calls `listener` on every change of the data-mode connection's state; returns the function that stops it. */
export function onConnectionState(listener: (state: LiveState) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

let counter = 0;

/** A subscription id unique within the window, e.g. upkeep_inertia_3. */
export function nextSubscriptionId(prefix: string): string {
  counter += 1;
  return `${prefix}_${counter}`;
}

/** A subscription's message, as the ConnectionManager delivers it. */
export type Deliver = Subscription["deliver"];

/**
 * Whether another reload of `key` (a URL) is allowed: at most CLIENT_TUNING.maxReloads within reloadWindowMs,
 * remembered in sessionStorage (so full page loads count too) and in memory (when storage is unavailable).
 */
export function reloadAllowed(key: string, now = Date.now()): boolean {
  const storageKey = "upkeep:data-reloads";
  const fresh = (r: { key: string; at: number }) => r.key === key && now - r.at < CLIENT_TUNING.reloadWindowMs;
  let recent = memory.filter(fresh);
  try {
    const text = globalThis.sessionStorage?.getItem(storageKey);
    const stored = typeof text === "string" ? JSON.parse(text) : null;
    if (Array.isArray(stored)) recent = stored.filter(fresh);
  } catch {
    // storage unavailable or corrupt: the in-memory record applies
  }
  if (recent.length >= CLIENT_TUNING.maxReloads) return false;
  recent.push({ key, at: now });
  memory = recent;
  try {
    globalThis.sessionStorage?.setItem(storageKey, JSON.stringify(recent));
  } catch {
    // as above
  }
  return true;
}
let memory: { key: string; at: number }[] = [];

/** Forgets every recorded reload (tests). */
export function resetReloadGuard(): void {
  memory = [];
  try {
    globalThis.sessionStorage?.removeItem("upkeep:data-reloads");
  } catch {
    // storage unavailable
  }
}

/**
 * A subscription refused with `token_identity_mismatch` whose token is newer than the connection: the token was
 * rendered with the viewer's current cookies (they signed in or out since the connection opened), and the server
 * checks it against the cookies the connection was opened with. The connection is opened again (every subscription
 * resumes from its offset), once per subscription; returns false when that was already tried.
 */
export function reconnectForIdentity(
  subscriptions: Subscriptions,
  sub: { identityRetried?: boolean },
  code: unknown,
): boolean {
  const drop = (subscriptions as Partial<ConnectionManager>).drop;
  if (code !== "token_identity_mismatch" || sub.identityRetried || typeof drop !== "function") return false;
  sub.identityRetried = true;
  drop.call(subscriptions);
  return true;
}
