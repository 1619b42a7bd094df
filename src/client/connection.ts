// One connection per browser window, shared by every <upkeep-stream-source> on the page (and by the next page's
// after a Turbo Drive navigation). The state machine in state.ts decides; this module performs its effects:
// opening and closing transports, (re)subscribing with each subscription's last applied offset, and timers.
//
// Every transport callback names the epoch it was opened in; the manager drops callbacks whose epoch is not the
// current one, so a superseded socket can neither deliver a message nor tear down its successor.

import { BACKOFF, type BackoffOptions } from "./backoff.ts";
import { CLIENT_TUNING, WIRE } from "./constants.ts";
import { type ConnectionEvent, type ConnectionState, IDLE, type Transport, transition } from "./state.ts";

export interface Subscription {
  id: string;
  token: string;
  incarnation: string;
  /** The last offset the page shows; updated by whoever applies patches, used on every (re)subscribe. */
  offset: number;
  transport?: string | null;
  deliver(message: any): void;
}
export interface ManagerEnvironment {
  baseUrl?: string;
  socketPath?: string;
  eventsPath?: string;
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  now?: () => number;
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => any;
  clearTimeout?: (handle: any) => void;
  lingerMs?: number;
  /** How long a connection stays open before its reconnect backoff resets. */
  healthyAfterMs?: number;
  backoff?: BackoffOptions;
  webSocketFailuresBeforeSse?: number;
  onState?: (state: ConnectionState) => void;
  onMessage?: (message: any) => void;
  warn?: (text: string, detail?: unknown) => void;
  /**
   * The browser's shared connection (tabs.ts): when given, each connection attempt first asks it for a link to the
   * tab that holds the socket, and opens its own transport only when it answers null.
   */
  link?: LinkProvider;
}
/** What a transport offers the manager. */
export interface TransportHandle {
  /** The transport that carries the messages once open: the handle's own, or over a link the leader tab's (known
   *  when the link opens). */
  readonly transport?: Transport | null;
  subscribe(sub: Subscription): void;
  unsubscribe(id: string): void;
  close(): void;
  /** Drops the connection behind the transport as a network failure would (a link asks its leader tab to). */
  drop?(): void;
}

/** Opens links to the browser's shared connection (tabs.ts). */
export interface LinkProvider {
  /** A link for one connection attempt (`transport`: the one this window would use), or null to open a transport of
   *  this window's own. */
  open(callbacks: TransportCallbacks, transport: Transport): TransportHandle | null;
  /** Calls `wake` whenever waiting out a backoff is pointless (the shared connection is open again). */
  onWake(wake: () => void): void;
}

export interface TransportCallbacks {
  opened(): void;
  failed(why: string, code?: number): void;
  message(message: any): void;
}

type Environment = Required<Pick<ManagerEnvironment, "now" | "random" | "setTimeout" | "clearTimeout" | "lingerMs">> &
  ManagerEnvironment;

export class ConnectionManager {
  state: ConnectionState = IDLE;
  subscriptions = new Map<string, Subscription>();
  messagesReceived = 0;
  #transport: TransportHandle | null = null;
  #retryTimer: unknown = null;
  #lingerTimer: unknown = null;
  #healthyTimer: unknown = null;
  #env: Environment;

  constructor(env: ManagerEnvironment = {}) {
    this.#env = {
      now: () => Date.now(),
      random: Math.random,
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (handle) => globalThis.clearTimeout(handle),
      lingerMs: CLIENT_TUNING.lingerMs,
      ...env,
    };
    env.link?.onWake(() => this.wake());
  }

  /**
   * The transport carrying this window's messages now: "websocket" or "sse" while the connection is open (over the
   * browser's shared connection, the one the leader tab opened, whatever this window would have chosen), else null.
   */
  get transport(): Transport | null {
    if (this.state.status !== "open") return null;
    return this.#transport?.transport ?? this.state.transport;
  }

  /** Opens the connection now, before any subscription (it stays open until close()); retries at once in backoff.
   *  `transport` is the one to try first (default: what the subscriptions prefer). */
  connect(transport?: Transport): void {
    const s = this.state.status;
    if (s === "idle" || s === "closed") {
      this.#cancelLinger();
      this.#dispatch({ type: "connect", now: this.#env.now(), transport: transport ?? this.#preferred() });
    } else if (s === "backoff") this.wake();
  }

  /** Starts following a page; connects if needed. Re-adding an id replaces it. */
  add(sub: Subscription): void {
    if (this.subscriptions.has(sub.id)) this.remove(sub.id, { linger: false });
    this.subscriptions.set(sub.id, sub);
    this.#cancelLinger();
    const s = this.state.status;
    if (s === "idle" || s === "closed")
      this.#dispatch({ type: "connect", now: this.#env.now(), transport: this.#preferred() });
    else if (s === "open") this.#transport?.subscribe(sub);
    // connecting / backoff: subscribed when the connection opens.
  }

  /** Stops following; the connection closes after the linger delay if nothing else subscribes. */
  remove(id: string, { linger = true }: { linger?: boolean } = {}): void {
    if (!this.subscriptions.delete(id)) return;
    if (this.state.status === "open") this.#transport?.unsubscribe(id);
    if (linger && this.subscriptions.size === 0) this.#linger();
  }

  #linger() {
    this.#cancelLinger();
    this.#lingerTimer = this.#env.setTimeout(() => {
      this.#lingerTimer = null;
      if (this.subscriptions.size === 0) this.#dispatch({ type: "stop", now: this.#env.now() });
    }, this.#env.lingerMs);
  }

  /** Retry at once if waiting out a backoff (network back online, page visible again). */
  wake() {
    this.#dispatch({ type: "wake", now: this.#env.now() });
  }

  /** Drops the current connection as if the network failed (a token rendered for new cookies, tests, debugging); it
   *  reconnects with backoff. Over a link, the leader tab drops the browser's socket and every tab resumes. */
  drop() {
    if (this.#transport?.drop) return this.#transport.drop();
    if (this.state.status === "open" || this.state.status === "connecting") {
      this.#dispatch({ type: "failed", epoch: this.state.epoch, now: this.#env.now() });
    }
  }

  /** Closes everything now. */
  close() {
    this.subscriptions.clear();
    this.#cancelLinger();
    this.#dispatch({ type: "stop", now: this.#env.now() });
  }

  #preferred() {
    for (const sub of this.subscriptions.values()) if (sub.transport === "sse") return "sse";
    return undefined;
  }

  #cancelLinger() {
    if (this.#lingerTimer !== null) this.#env.clearTimeout(this.#lingerTimer);
    this.#lingerTimer = null;
  }

  #dispatch(event: ConnectionEvent): void {
    const before = this.state;
    const after = transition(before, event, {
      backoff: this.#env.backoff ?? BACKOFF,
      random: this.#env.random,
      webSocketFailuresBeforeSse: this.#env.webSocketFailuresBeforeSse,
    });
    if (after === before) return;
    this.state = after;
    this.#effects(before, after);
    this.#env.onState?.(after);
  }

  #effects(before: ConnectionState, after: ConnectionState): void {
    if (before.status === "open" && this.#healthyTimer !== null && after.status !== "open") {
      this.#env.clearTimeout(this.#healthyTimer);
      this.#healthyTimer = null;
    }
    if (after.status === "closed" && after.closedBy !== null && before.status !== "closed") {
      this.#env.warn?.(
        `upkeep: the server closed the connection for good (${after.closedBy}); reload the page to retry`,
      );
    }
    if (before.status === "backoff" && this.#retryTimer !== null) {
      this.#env.clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    // Leaving connecting/open for anything but open means the old transport is finished.
    if ((before.status === "connecting" || before.status === "open") && after.status !== "open") {
      const old = this.#transport;
      this.#transport = null;
      old?.close();
    }
    if (after.status === "connecting") {
      this.#transport = this.#open(after.transport, after.epoch);
    } else if (after.status === "open" && before.status !== "open") {
      for (const sub of this.subscriptions.values()) this.#transport?.subscribe(sub);
      const epoch = after.epoch;
      this.#healthyTimer = this.#env.setTimeout(() => {
        this.#healthyTimer = null;
        this.#dispatch({ type: "healthy", epoch, now: this.#env.now() });
      }, this.#env.healthyAfterMs ?? CLIENT_TUNING.healthyAfterMs);
    } else if (after.status === "backoff") {
      const delay = Math.max(0, (after.retryAt ?? 0) - this.#env.now());
      this.#retryTimer = this.#env.setTimeout(() => {
        this.#retryTimer = null;
        this.#dispatch({ type: "retry", now: Math.max(this.#env.now(), after.retryAt ?? 0) });
      }, delay);
    }
  }

  #open(kind: ConnectionState["transport"], epoch: number): TransportHandle {
    const callbacks: TransportCallbacks = {
      opened: () => this.#dispatch({ type: "opened", epoch, now: this.#env.now() }),
      failed: (why: string, code?: number) => {
        if (epoch === this.state.epoch && why) this.#env.warn?.(`upkeep: connection lost (${why})`);
        this.#dispatch({ type: "failed", epoch, now: this.#env.now(), ...(code === undefined ? {} : { code }) });
      },
      message: (message: any) => this.#receive(epoch, message),
    };
    const link = this.#env.link?.open(callbacks, kind);
    if (link) return link;
    const base = this.#env.baseUrl ?? globalThis.location?.href ?? "http://localhost/";
    return kind === "sse" ? openEventStreams(this.#env, base, callbacks) : openWebSocket(this.#env, base, callbacks);
  }

  #receive(epoch: number, message: any): void {
    // Epoch guard: only the current, open connection delivers.
    if (epoch !== this.state.epoch || this.state.status !== "open") return;
    if (typeof message !== "object" || message === null) return;
    this.messagesReceived += 1;
    this.#env.onMessage?.(message);
    const sub = typeof message.id === "string" ? this.subscriptions.get(message.id) : undefined;
    if (sub) {
      sub.deliver(message);
    } else if (message.type === WIRE.msg.error && message.id === undefined) {
      this.#env.warn?.(`upkeep: ${message.code}: ${message.message}`);
    }
    // A message for an id that already left is a late one: dropped.
  }
}

function subscribeMessage(sub: Subscription) {
  return { type: WIRE.msg.subscribe, id: sub.id, token: sub.token, offset: sub.offset, incarnation: sub.incarnation };
}

/** One WebSocket multiplexing every subscription. */
function openWebSocket(env: Environment, base: string, callbacks: TransportCallbacks): TransportHandle {
  const url = new URL(env.socketPath ?? WIRE.socketPath, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const Impl = env.WebSocket ?? globalThis.WebSocket;
  let closed = false;
  let ws: WebSocket;
  try {
    ws = new Impl(url.href);
  } catch (error) {
    queueMicrotask(() => callbacks.failed(String(error)));
    return { transport: "websocket", subscribe() {}, unsubscribe() {}, close() {} };
  }
  const send = (message: unknown) => {
    if (closed || ws.readyState !== 1) return;
    try {
      ws.send(JSON.stringify(message));
    } catch {
      // the close event follows
    }
  };
  ws.onopen = () => {
    if (!closed) callbacks.opened();
  };
  ws.onmessage = (event) => {
    if (closed || typeof event.data !== "string") return;
    deliverParsed(event.data, callbacks.message);
  };
  ws.onclose = (event) => {
    if (closed) return;
    closed = true;
    callbacks.failed(event.code >= 4000 ? `${event.code} ${event.reason}` : "", event.code);
  };
  ws.onerror = () => {}; // a close event always follows
  return {
    transport: "websocket",
    subscribe: (sub) => send(subscribeMessage(sub)),
    unsubscribe: (id) => send({ type: WIRE.msg.unsubscribe, id }),
    close() {
      if (closed) return;
      closed = true;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // never opened
      }
    },
  };
}

/** One event stream per subscription; any stream failing fails the whole transport (one backoff, one resume). */
function openEventStreams(env: Environment, base: string, callbacks: TransportCallbacks): TransportHandle {
  const Impl = env.EventSource ?? globalThis.EventSource;
  const sources = new Map<string, EventSource>();
  let closed = false;
  const fail = (why: string) => {
    if (closed) return;
    closed = true;
    for (const source of sources.values()) source.close();
    sources.clear();
    callbacks.failed(why);
  };
  // There is no shared connection to wait for: the transport is open at once and each subscription opens its stream.
  queueMicrotask(() => {
    if (!closed) callbacks.opened();
  });
  return {
    transport: "sse",
    subscribe(sub) {
      if (closed) return;
      sources.get(sub.id)?.close();
      const url = new URL(env.eventsPath ?? WIRE.eventsPath, base);
      url.searchParams.set("id", sub.id);
      url.searchParams.set("token", sub.token);
      url.searchParams.set("offset", String(sub.offset));
      url.searchParams.set("incarnation", sub.incarnation);
      let source: EventSource;
      try {
        source = new Impl(url.href);
      } catch (error) {
        return fail(String(error));
      }
      sources.set(sub.id, source);
      const onMessage = (event: MessageEvent) => {
        if (closed || sources.get(sub.id) !== source) return;
        deliverParsed(event.data, callbacks.message);
      };
      for (const type of [WIRE.msg.ack, WIRE.msg.patch, WIRE.msg.reload, WIRE.msg.props, WIRE.msg.value])
        source.addEventListener(type, onMessage);
      // "error" is both a server event (a MessageEvent with data) and the stream failing (a plain Event).
      source.addEventListener("error", (event: Event) => {
        if (typeof (event as MessageEvent).data === "string") {
          return onMessage(event as MessageEvent);
        }
        if (sources.get(sub.id) === source) fail("event stream failed");
      });
    },
    unsubscribe(id) {
      sources.get(id)?.close();
      sources.delete(id);
    },
    close() {
      closed = true;
      for (const source of sources.values()) source.close();
      sources.clear();
    },
  };
}

/**
 * Hands a server message to `deliver`; text that is not JSON is dropped (the server only sends JSON, so it can
 * only be a truncated or foreign frame).
 */
function deliverParsed(data: string, deliver: (message: any) => void): void {
  let message: unknown;
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  deliver(message);
}
