// What the tabs of one browser say to each other about their shared connection (tabs.ts, relay.ts): the channel and
// lock names, the messages, and what the two halves need from the browser.
//
// Names are scoped by a key (the socket and event-stream paths), so two Upkeep apps on one origin under different
// paths each share their own connection.
//
//   control channel  upkeep:<key>            every tab: hello, sub/unsub/bye/drop (to the leader), state and gone
//   inbox channel    upkeep:<key>:tab:<tab>  one tab: msg (a server message for one of its links), full
//   leader lock      upkeep:<key>:leader     held by the tab whose relay holds the socket, until the tab goes
//   tab lock         upkeep:<key>:alive:<tab>  held by each tab for its lifetime; free means the tab is gone

import type { ManagerEnvironment } from "./connection.ts";
import type { ConnectionStatus, Transport } from "./state.ts";

export const TAB_WIRE = Object.freeze({
  control: (key: string) => `upkeep:${key}`,
  inbox: (key: string, tab: string) => `upkeep:${key}:tab:${tab}`,
  leaderLock: (key: string) => `upkeep:${key}:leader`,
  tabLock: (key: string, tab: string) => `upkeep:${key}:alive:${tab}`,
});

/** A subscription as a link hands it to the relay. */
export interface RelayedSubscription {
  id: string;
  token: string;
  incarnation: string;
  offset: number;
  transport?: string | null;
}

export type ControlMessage =
  /** A new link wants the connection: the leader opens it (if needed, with the link's transport) and announces its
   *  state. */
  | { t: "hello"; tab: string; link: string; transport: Transport }
  | { t: "sub"; to: string; tab: string; link: string; sub: RelayedSubscription }
  | { t: "unsub"; to: string; link: string; id: string }
  /** The link closed: its subscriptions end. */
  | { t: "bye"; to: string; link: string }
  /** Drop the socket as a network failure would (a token rendered for new cookies, or a test). */
  | { t: "drop"; to: string; link: string }
  | Announcement;

/** What the leader tells every tab: its connection state (on every change and in answer to hello), or that the
 *  leader tab is closing. */
export type Announcement =
  | { t: "state"; from: string; status: ConnectionStatus; transport: Transport; closedBy: number | null }
  | { t: "gone"; from: string };

export type SubscribeMessage = Extract<ControlMessage, { t: "sub" }>;

export type InboxMessage =
  | { t: "msg"; link: string; message: any }
  /** The shared connection carries as many subscriptions as it may: this link's tab opens its own. */
  | { t: "full"; link: string };

/** The part of the Web Locks API the tabs use. */
export interface TabLocks {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => unknown,
  ): Promise<unknown>;
  request(name: string, callback: (lock: unknown) => unknown): Promise<unknown>;
}

export interface TabEnvironment {
  /** Scopes every channel and lock name. */
  key: string;
  /** This tab's id, unique in the browser. */
  tabId: string;
  BroadcastChannel: typeof BroadcastChannel;
  locks: TabLocks;
  /** The leader's ConnectionManager settings (paths, backoff, timers, warn). */
  manager: ManagerEnvironment;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
  setInterval: (fn: () => void, ms: number) => unknown;
  clearInterval: (handle: unknown) => void;
  /** How often the leader looks for tabs that closed without saying so (CLIENT_TUNING.tabSweepMs). */
  sweepMs?: number;
  /** An upper bound of the client's own on the subscriptions the shared socket carries (the server's bound, which
   *  its acknowledgements name, applies either way). */
  maxSubscriptions?: number;
  /** How long a link waits for any leader's answer before its tab opens its own (CLIENT_TUNING.leaderAnswerMs). */
  answerMs?: number;
  warn?: (text: string) => void;
}
