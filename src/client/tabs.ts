// One connection per browser: the tabs of an origin share one socket. The tab that holds a Web Lock (the leader)
// runs a relay (relay.ts) with the real connection; every tab — the leader's own too — reaches it through links
// over BroadcastChannel (tab-wire.ts names the channels and messages). A ConnectionManager asks this module for a
// link on each connection attempt, so everything it does — resubscribing with each page's offset, backoff,
// identity reconnects — works unchanged over a link.
//
// Why nothing is lost or applied twice when the leader changes:
// - A tab applies server messages itself and records the offset it reached; the leader only forwards.
// - A link is "open" exactly while its leader's connection is open. When that connection is lost, or the leader
//   tab closes (its "gone", or the next leader's announcement), the link fails, the tab's manager backs off, and
//   its next link subscribes each page again with the offset the page shows — the same resume a lost WebSocket
//   gets. Messages still in flight for the old link are dropped by the manager's epoch guard.
// - When the leader tab closes, its lock passes to a waiting tab, whose relay announces itself; the announcement
//   wakes every tab's backoff, and the first link's hello opens the socket (with that tab's transport).
// - A link the relay does not answer within CLIENT_TUNING.leaderAnswerMs (a leader tab that hangs), or one the
//   relay refuses because the shared socket is full, makes its tab open a connection of its own (the old way).
//
// Erasable TypeScript, shipped compiled.

import {
  ConnectionManager,
  type LinkProvider,
  type ManagerEnvironment,
  type TransportCallbacks,
  type TransportHandle,
} from "./connection.ts";
import { CLIENT_TUNING, WIRE } from "./constants.ts";
import { Relay } from "./relay.ts";
import type { Transport } from "./state.ts";
import {
  type Announcement,
  type ControlMessage,
  type InboxMessage,
  TAB_WIRE,
  type TabEnvironment,
} from "./tab-wire.ts";

interface LinkHandler {
  control(message: Announcement): void;
  inbox(message: InboxMessage): void;
  end(why: string): void;
}

export class TabShare implements LinkProvider {
  /** True once this tab opens connections of its own (no leader answered, or the shared socket was full). */
  direct = false;
  relay: Relay | null = null;
  #links = new Map<string, LinkHandler>();
  #wakers = new Set<() => void>();
  #control: BroadcastChannel | null = null;
  #inbox: BroadcastChannel | null = null;
  #release: Array<() => void> = [];
  #abort: AbortController | null = null;
  #counter = 0;
  /** The leader of the last announcement heard. */
  #leader: string | null = null;

  readonly env: TabEnvironment;

  constructor(env: TabEnvironment) {
    this.env = env;
    this.start();
  }

  get tabId(): string {
    return this.env.tabId;
  }

  /** What this tab is to the shared connection: leader (holds the socket), follower, or direct (its own socket). */
  get role(): "leader" | "follower" | "direct" {
    return this.direct ? "direct" : this.relay ? "leader" : "follower";
  }

  /** Joins the browser's tabs: listens, holds this tab's lock, and waits to become the leader. */
  start(): void {
    if (this.#control) return;
    const { env } = this;
    this.#control = new env.BroadcastChannel(TAB_WIRE.control(env.key));
    this.#control.onmessage = (event) => this.#onControl(event.data);
    this.#inbox = new env.BroadcastChannel(TAB_WIRE.inbox(env.key, env.tabId));
    this.#inbox.onmessage = (event) => this.#onInbox(event.data);
    const abort = new AbortController();
    this.#abort = abort;
    const hold = () =>
      new Promise<void>((resolve) => {
        this.#release.push(resolve);
      });
    env.locks.request(TAB_WIRE.tabLock(env.key, env.tabId), hold).catch(() => {});
    env.locks
      .request(TAB_WIRE.leaderLock(env.key), { signal: abort.signal }, () => {
        if (abort.signal.aborted) return;
        this.relay = new Relay(env.tabId, env);
        return hold();
      })
      .catch(() => {}); // aborted: this tab left before it became the leader
  }

  /** Leaves (the page is hidden for good or frozen): links end, the relay says it is gone, locks are released. */
  stop(): void {
    if (!this.#control) return;
    for (const link of [...this.#links.values()]) link.end("the page was hidden");
    this.relay?.close();
    this.relay = null;
    this.#abort?.abort();
    for (const release of this.#release.splice(0)) release();
    this.#control.close();
    this.#inbox?.close();
    this.#control = this.#inbox = null;
  }

  onWake(wake: () => void): void {
    this.#wakers.add(wake);
  }

  open(callbacks: TransportCallbacks, transport: Transport): TransportHandle | null {
    if (this.direct || !this.#control) return null;
    return this.#link(callbacks, transport);
  }

  #post(message: ControlMessage): void {
    this.#control?.postMessage(message);
  }

  #onControl(message: ControlMessage): void {
    if (!isAnnouncement(message)) return; // the tabs' own messages to the leader, or not ours
    for (const link of [...this.#links.values()]) link.control(message);
    // A new leader, or the shared connection open (again): a tab waiting out a backoff links now.
    if (message.t !== "state") return;
    const newLeader = message.from !== this.#leader;
    this.#leader = message.from;
    if (newLeader || message.status === "open") for (const wake of this.#wakers) wake();
  }

  #onInbox(message: InboxMessage): void {
    if (typeof message !== "object" || message === null) return;
    this.#links.get(message.link)?.inbox(message);
  }

  #link(callbacks: TransportCallbacks, transport: Transport): TransportHandle {
    const id = `${this.env.tabId}.${++this.#counter}`;
    const tab = this.env.tabId;
    let leader: string | null = null;
    let opened = false;
    /** The transport of the leader's connection, from the announcement that opened this link. */
    let carrying: Transport | null = null;
    let done = false;
    const answerTimer = this.env.setTimeout(() => {
      if (done || leader !== null) return;
      this.direct = true;
      this.env.warn?.("upkeep: no tab answered for the shared connection; this tab opens its own");
      fail("no leader tab answered");
    }, this.env.answerMs ?? CLIENT_TUNING.leaderAnswerMs);
    const end = () => {
      if (done) return;
      done = true;
      this.env.clearTimeout(answerTimer);
      this.#links.delete(id);
      if (leader !== null) this.#post({ t: "bye", to: leader, link: id });
    };
    const fail = (why: string, code?: number) => {
      if (done) return;
      end();
      callbacks.failed(why, code);
    };
    const hello = () => this.#post({ t: "hello", tab, link: id, transport });
    this.#links.set(id, {
      control: (m) => {
        if (m.t === "gone") {
          if (m.from === leader) fail("the tab holding the connection closed");
          return;
        }
        if (leader === null) leader = m.from;
        else if (m.from !== leader) return fail("the tab holding the connection changed");
        if (m.closedBy !== null) return fail(`${m.closedBy}`, m.closedBy);
        if (m.status === "open") {
          if (!opened) {
            opened = true;
            carrying = m.transport;
            callbacks.opened();
          }
        } else if (opened) {
          fail("the shared connection was lost");
        } else if (m.status === "idle" || m.status === "closed") {
          hello(); // this leader has not heard this link yet (it became the leader after the hello)
        }
      },
      inbox: (m) => {
        if (m.t === "full") {
          this.direct = true;
          return fail("the shared connection carries as many pages as it may");
        }
        if (opened && !done) callbacks.message(m.message);
      },
      end: (why) => fail(why),
    });
    hello();
    return {
      get transport() {
        return carrying;
      },
      subscribe: (sub) => {
        if (done || leader === null) return;
        const { id: subId, token, incarnation, offset, transport } = sub;
        this.#post({ t: "sub", to: leader, tab, link: id, sub: { id: subId, token, incarnation, offset, transport } });
      },
      unsubscribe: (subId) => {
        if (!done && leader !== null) this.#post({ t: "unsub", to: leader, link: id, id: subId });
      },
      close: end,
      drop: () => {
        if (!done && leader !== null && opened) this.#post({ t: "drop", to: leader, link: id });
        else fail("dropped");
      },
    };
  }
}

const STATUSES: ReadonlySet<unknown> = new Set(["idle", "connecting", "open", "backoff", "closed"]);

/** A leader's well-formed announcement (anything else on the control channel is ignored). */
function isAnnouncement(m: unknown): m is Announcement {
  if (typeof m !== "object" || m === null) return false;
  const a = m as Record<string, unknown>;
  if (typeof a.from !== "string" || a.from === "") return false;
  if (a.t === "gone") return true;
  return (
    a.t === "state" &&
    STATUSES.has(a.status) &&
    (a.closedBy === null || Number.isInteger(a.closedBy)) &&
    (a.transport === "websocket" || a.transport === "sse")
  );
}

const shares = new Map<string, TabShare>();

/**
 * The window's share of the browser's connection for these paths, or null where tabs cannot share one (no
 * BroadcastChannel, or no Web Locks: an insecure origin, an old browser); the caller then opens its own.
 */
export function browserShare(manager: ManagerEnvironment): TabShare | null {
  const g = globalThis as any;
  const locks = g.navigator?.locks;
  if (typeof g.BroadcastChannel !== "function" || !locks || typeof g.addEventListener !== "function") return null;
  const key = `${manager.socketPath ?? ""}|${manager.eventsPath ?? ""}`;
  let share = shares.get(key);
  if (!share) {
    const tabId = typeof g.crypto?.randomUUID === "function" ? g.crypto.randomUUID() : `${Math.random()}`.slice(2);
    share = new TabShare({
      key,
      tabId,
      BroadcastChannel: g.BroadcastChannel,
      locks,
      manager,
      setTimeout: (fn, ms) => g.setTimeout(fn, ms),
      clearTimeout: (handle) => g.clearTimeout(handle),
      setInterval: (fn, ms) => g.setInterval(fn, ms),
      clearInterval: (handle) => g.clearInterval(handle),
      warn: manager.warn,
    });
    shares.set(key, share);
    const joined = share;
    g.addEventListener("pagehide", () => joined.stop());
    g.addEventListener("pageshow", (event: { persisted?: boolean }) => {
      if (event.persisted) joined.start();
    });
  }
  return share;
}

/** What a window's connection is made of: where the server mounts the transports, whether it joins the browser's. */
export interface WindowConnectionOptions {
  socketPath?: string | null;
  eventsPath?: string | null;
  /** "window": a connection of this window's own; otherwise the browser's shared one (where tabs can share). */
  connection?: string | null;
  onState: ManagerEnvironment["onState"];
  onMessage?: ManagerEnvironment["onMessage"];
}

/**
 * A window's ConnectionManager (the HTML client's and data mode's each make one): linked to the browser's shared
 * connection unless `connection` is "window", and retrying at once when the network returns or the page is shown.
 */
export function windowManager(options: WindowConnectionOptions): {
  manager: ConnectionManager;
  share: TabShare | null;
} {
  const paths = {
    socketPath: options.socketPath ?? WIRE.socketPath,
    eventsPath: options.eventsPath ?? WIRE.eventsPath,
    warn: (text: string) => console.warn(text),
  };
  const share = options.connection === "window" ? null : browserShare(paths);
  const manager = new ConnectionManager({
    ...paths,
    link: share ?? undefined,
    onState: options.onState,
    onMessage: options.onMessage,
  });
  const g = globalThis as any;
  if (typeof g.addEventListener === "function") g.addEventListener("online", () => manager.wake());
  g.document?.addEventListener("visibilitychange", () => {
    if (g.document.visibilityState === "visible") manager.wake();
  });
  return { manager, share };
}
