// The leader tab's half of the browser's shared connection (tabs.ts has the protocol and the other half): the one
// ConnectionManager with a real socket, carrying the subscriptions of every tab's links.
//
// A link's subscription `id` is subscribed on the socket as `<link>~<id>`: link ids are unique in the browser
// (tab id + counter), so tabs never collide, and a message the server sent for a link that has since closed finds
// no subscription here and is dropped (ConnectionManager drops messages for ids that left) instead of reaching the
// tab's next link.
//
// The relay never subscribes on a tab's behalf: when its connection is lost it removes every relayed subscription
// at once, its announcement fails the links, and each tab subscribes again through a new link with the offset its
// page shows. So a resume always starts from what the tab applied, never from what the relay last forwarded.

import { ConnectionManager, type Subscription } from "./connection.ts";
import { CLIENT_TUNING } from "./constants.ts";
import type { ConnectionState } from "./state.ts";
import {
  type ControlMessage,
  type InboxMessage,
  type SubscribeMessage,
  TAB_WIRE,
  type TabEnvironment,
} from "./tab-wire.ts";

interface RelayedLink {
  tab: string;
  /** Local subscription id → the id on the socket. */
  subs: Map<string, string>;
}

export class Relay {
  readonly manager: ConnectionManager;
  #links = new Map<string, RelayedLink>();
  #control: BroadcastChannel;
  #inboxes = new Map<string, BroadcastChannel>();
  #idleTimer: unknown = null;
  #sweepTimer: unknown = null;
  #closed = false;
  /** The server's bound on subscriptions per connection, from its acknowledgements (kept across reconnects). */
  #serverBound: number = CLIENT_TUNING.maxSharedSubscriptions;

  readonly id: string;
  readonly env: TabEnvironment;

  constructor(id: string, env: TabEnvironment) {
    this.id = id;
    this.env = env;
    this.#control = new env.BroadcastChannel(TAB_WIRE.control(env.key));
    this.#control.onmessage = (event) => this.#handle(event.data as ControlMessage);
    this.manager = new ConnectionManager({
      ...env.manager,
      link: undefined, // the relay's manager is the one with a socket of its own
      onMessage: undefined,
      onState: (state) => this.#stateChanged(state),
    });
    this.#sweepTimer = env.setInterval(() => this.#sweep(), env.sweepMs ?? CLIENT_TUNING.tabSweepMs);
    // The socket opens on the first hello, with that link's transport; with no link it closes after the linger.
    // The announcement makes tabs that were waiting (for a leader, or out a backoff) say hello.
    this.#idle();
    this.#announce();
  }

  /** Subscriptions the socket may carry: the server's bound once an acknowledgement named it (until then the
   *  server's default), and never more than env.maxSubscriptions. */
  get capacity(): number {
    return Math.min(this.env.maxSubscriptions ?? Number.POSITIVE_INFINITY, this.#serverBound);
  }

  /** Relayed subscriptions now (tests, the debug view). */
  get subscriptions(): number {
    let n = 0;
    for (const link of this.#links.values()) n += link.subs.size;
    return n;
  }

  /** The tab is going away: the links learn at once instead of waiting for the next leader's announcement. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#post({ t: "gone", from: this.id });
    this.env.clearInterval(this.#sweepTimer);
    this.#cancelIdle();
    this.manager.close();
    this.#control.close();
    for (const inbox of this.#inboxes.values()) inbox.close();
    this.#inboxes.clear();
  }

  #handle(m: ControlMessage): void {
    // Anything else on the channel (another version's message, a script of the page) is not the relay's business.
    if (this.#closed || !wellFormed(m)) return;
    if (m.t === "hello") {
      this.#link(m.link, m.tab);
      this.manager.connect(m.transport === "sse" ? "sse" : "websocket");
      this.#announce();
      return;
    }
    if (!("to" in m) || m.to !== this.id) return;
    if (m.t === "sub") this.#subscribe(m.link, m.tab, m.sub);
    else if (m.t === "unsub") this.#unsubscribe(m.link, m.id);
    else if (m.t === "bye") this.#unlink(m.link);
    else if (m.t === "drop") this.manager.drop();
  }

  #unsubscribe(linkId: string, id: string): void {
    const link = this.#links.get(linkId);
    const socketId = link?.subs.get(id);
    if (!link || !socketId) return;
    link.subs.delete(id);
    this.manager.remove(socketId, { linger: false });
  }

  #link(id: string, tab: string): RelayedLink {
    let link = this.#links.get(id);
    if (!link) {
      link = { tab, subs: new Map() };
      this.#links.set(id, link);
      this.#cancelIdle();
    }
    return link;
  }

  #unlink(id: string): void {
    const link = this.#links.get(id);
    if (!link) return;
    for (const socketId of link.subs.values()) this.manager.remove(socketId, { linger: false });
    this.#links.delete(id);
    if (this.#links.size === 0) this.#idle();
  }

  #subscribe(linkId: string, tab: string, sub: SubscribeMessage["sub"]): void {
    // A subscribe sent while the connection was being lost: the link fails on the announcement and subscribes again.
    if (this.manager.state.status !== "open") return;
    const link = this.#link(linkId, tab);
    if (!link.subs.has(sub.id) && this.subscriptions >= this.capacity) {
      this.#send(tab, { t: "full", link: linkId });
      return;
    }
    const socketId = `${linkId}~${sub.id}`;
    link.subs.set(sub.id, socketId);
    const relayed: Subscription = {
      id: socketId,
      token: sub.token,
      incarnation: sub.incarnation,
      offset: sub.offset,
      transport: sub.transport ?? null,
      deliver: (message) => {
        const bound = message.type === "subscribed" ? message.maxSubscriptions : undefined;
        if (Number.isSafeInteger(bound) && bound > 0) this.#serverBound = bound;
        this.#send(tab, { t: "msg", link: linkId, message: { ...message, id: sub.id } });
      },
    };
    this.manager.add(relayed);
  }

  #stateChanged(state: ConnectionState): void {
    if (state.status !== "open") {
      // Every relayed subscription ends with the connection; the tabs subscribe again with the offsets they show.
      for (const link of this.#links.values()) {
        for (const socketId of link.subs.values()) this.manager.remove(socketId, { linger: false });
        link.subs.clear();
      }
    }
    this.#announce();
  }

  #announce(): void {
    const { status, transport, closedBy } = this.manager.state;
    this.#post({ t: "state", from: this.id, status, transport, closedBy });
  }

  /** Links of tabs that closed without saying so (a crash, a killed process) end: their tab lock is free. */
  #sweep(): void {
    const tabs = new Set([...this.#links.values()].map((l) => l.tab));
    for (const tab of tabs) {
      if (tab === this.env.tabId) continue;
      void this.env.locks.request(TAB_WIRE.tabLock(this.env.key, tab), { ifAvailable: true }, (lock) => {
        if (!lock || this.#closed) return;
        for (const [id, link] of this.#links) if (link.tab === tab) this.#unlink(id);
        this.#inboxes.get(tab)?.close();
        this.#inboxes.delete(tab);
      });
    }
  }

  /** No link left: the socket closes after the linger delay unless a tab says hello again. */
  #idle(): void {
    this.#cancelIdle();
    this.#idleTimer = this.env.setTimeout(() => {
      this.#idleTimer = null;
      if (this.#links.size === 0) this.manager.close();
    }, this.env.manager.lingerMs ?? CLIENT_TUNING.lingerMs);
  }

  #cancelIdle(): void {
    if (this.#idleTimer !== null) this.env.clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #post(message: ControlMessage): void {
    if (!this.#closed || message.t === "gone") this.#control.postMessage(message);
  }

  #send(tab: string, message: InboxMessage): void {
    if (this.#closed) return;
    let inbox = this.#inboxes.get(tab);
    if (!inbox) {
      inbox = new this.env.BroadcastChannel(TAB_WIRE.inbox(this.env.key, tab));
      this.#inboxes.set(tab, inbox);
    }
    inbox.postMessage(message);
  }
}

const text = (value: unknown): value is string => typeof value === "string" && value.length > 0;

/** Whether a control message has the fields its kind needs (state and gone are the relay's own: not handled). */
function wellFormed(m: unknown): m is ControlMessage {
  if (typeof m !== "object" || m === null) return false;
  const c = m as Record<string, unknown>;
  switch (c.t) {
    case "hello":
      return text(c.tab) && text(c.link);
    case "sub": {
      const sub = c.sub as Record<string, unknown> | null;
      return (
        text(c.to) &&
        text(c.tab) &&
        text(c.link) &&
        typeof sub === "object" &&
        sub !== null &&
        text(sub.id) &&
        text(sub.token) &&
        typeof sub.incarnation === "string" &&
        Number.isSafeInteger(sub.offset)
      );
    }
    case "unsub":
      return text(c.to) && text(c.link) && text(c.id);
    case "bye":
    case "drop":
      return text(c.to) && text(c.link);
    default:
      return false;
  }
}
