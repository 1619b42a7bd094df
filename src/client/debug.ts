// What a page shows about its live connection, for debugging and browser tests: window.__upkeep (HTML pages, index.ts)
// and window.__upkeepInertia (data mode, inertia.ts) have these fields, with the same meanings, and each adds its
// format's counters. The connection's fields are read from the window's ConnectionManager when asked, so they are
// never behind it.
//
// Erasable TypeScript, shipped compiled.

import type { ConnectionManager } from "./connection.ts";
import type { ConnectionStatus, Transport } from "./state.ts";
import type { TabShare } from "./tabs.ts";

export interface ConnectionDebug {
  /** The window's connection: idle, connecting, open, backoff (waiting to retry) or closed. */
  readonly state: ConnectionStatus;
  /** The transport carrying the page's messages — over the browser's shared connection, the one the leader tab
   *  opened — while the connection is open; null otherwise. */
  readonly transport: Transport | null;
  /** This tab's part in the browser's shared connection: leader (holds the socket), follower, direct (a socket of
   *  its own: the shared one was full or unanswered), or window (sharing is off or unavailable). */
  readonly role: string;
  /** The ids of the page's subscriptions (on a shared socket each travels as <link>~<id>). */
  readonly subscriptions: string[];
  /** Subscription id → the offset the page shows for it. */
  readonly appliedOffsets: Record<string, number>;
  /** The offset the page shows: the lowest of appliedOffsets, null without a subscription. */
  readonly offset: number | null;
  /** Messages the server sent to the page's subscriptions (acknowledgements included). */
  readonly messagesReceived: number;
  /** Reasons of the reloads the server asked for. */
  readonly reloads: string[];
  /** Drops the connection as a network failure would; it reconnects and resumes from the offsets shown. */
  drop(): void;
}

/** The connection's part of a debug view: its state, transport and role, read from `current()` when asked. */
export function connectionFields(
  current: () => { manager: ConnectionManager | null; share: TabShare | null },
): Pick<ConnectionDebug, "state" | "transport" | "role" | "drop"> {
  return {
    get state() {
      return current().manager?.state.status ?? "idle";
    },
    get transport() {
      return current().manager?.transport ?? null;
    },
    get role() {
      return current().share?.role ?? "window";
    },
    drop() {
      current().manager?.drop();
    },
  };
}

/** The lowest offset of `offsets`, or null when there is none. */
export function lowestOffset(offsets: Record<string, number>): number | null {
  const values = Object.values(offsets);
  return values.length === 0 ? null : Math.min(...values);
}
