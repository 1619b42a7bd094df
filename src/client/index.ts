// The browser side of Upkeep: <upkeep-stream-source token="…" offset="…" incarnation="…" id="upkeep_…"
// data-turbo-permanent>, injected at the end of a live page's <body>. It subscribes through the window's shared
// connection, feeds every patch's Turbo Stream HTML to @hotwired/turbo, remembers the offset the page has reached,
// and reloads the page (once) when the server says it cannot be brought up to date incrementally.
//
// The tabs of one browser share one connection (tabs.ts); connection="window" gives the window one of its own.
// Optional attributes: transport="sse" (use Server-Sent Events), socket-path / events-path (non-default routes).
// Debugging and browser tests: window.__upkeep (debug.ts: state, transport, role, subscriptions, appliedOffsets,
// offset, messagesReceived, reloads, drop(); and patchesApplied).

import type { ConnectionManager, Subscription } from "./connection.ts";
import { CLIENT_TUNING, RELOAD_CODES, WIRE } from "./constants.ts";
import { type ConnectionDebug, connectionFields, lowestOffset } from "./debug.ts";
import { type TabShare, windowManager } from "./tabs.ts";

export { BACKOFF, backoffCeiling, backoffDelay } from "./backoff.ts";
export { ConnectionManager } from "./connection.ts";
export { CLIENT_TUNING, RELOAD_CODES, WIRE } from "./constants.ts";
export { IDLE, transition } from "./state.ts";
export { browserShare, TabShare } from "./tabs.ts";

/** What the page exposes as window.__upkeep, for debugging and browser tests (the fields are debug.ts's). */
interface DebugView extends ConnectionDebug {
  appliedOffsets: Record<string, number>;
  messagesReceived: number;
  /** Patches applied to the page. */
  patchesApplied: number;
  reloads: string[];
}

/** The part of @hotwired/turbo the client uses. */
interface TurboApi {
  connectStreamSource(source: Element): void;
  disconnectStreamSource(source: Element): void;
  visit(location: string, options: { action: "replace" }): void;
}

declare global {
  interface Window {
    Turbo?: TurboApi;
    __upkeep?: DebugView;
  }
}

const connection = connectionFields(() => ({ manager, share }));
const debug: DebugView = {
  get state() {
    return connection.state;
  },
  get transport() {
    return connection.transport;
  },
  get role() {
    return connection.role;
  },
  get subscriptions() {
    return manager ? [...manager.subscriptions.keys()] : [];
  },
  get offset() {
    return lowestOffset(debug.appliedOffsets);
  },
  appliedOffsets: {},
  messagesReceived: 0,
  patchesApplied: 0,
  reloads: [],
  drop: () => connection.drop(),
};

let manager: ConnectionManager | null = null;
let share: TabShare | null = null;

function sharedManager(element: Element): ConnectionManager {
  if (!manager) {
    ({ manager, share } = windowManager({
      socketPath: element.getAttribute("socket-path"),
      eventsPath: element.getAttribute("events-path"),
      connection: element.getAttribute("connection"),
      onState(state) {
        element.ownerDocument.dispatchEvent(new CustomEvent("upkeep:state", { detail: state }));
      },
      onMessage() {
        debug.messagesReceived = manager?.messagesReceived ?? debug.messagesReceived + 1;
      },
    }));
  }
  return manager;
}

let turboLoading: Promise<TurboApi> | null = null;

/** The page's Turbo, or the copy the server serves at WIRE.turboScriptPath. */
function loadTurbo(): Promise<TurboApi> {
  if (window.Turbo) return Promise.resolve(window.Turbo);
  turboLoading ??= import(WIRE.turboScriptPath).then(
    (module) => window.Turbo ?? module.default ?? module,
    (error) => {
      turboLoading = null;
      throw error;
    },
  );
  return turboLoading;
}

let reloadPending = false;
addEventListener("turbo:load", () => {
  reloadPending = false;
});

/** Replaces the page with a fresh GET, once; a server that keeps refusing does not cause a reload loop. */
function reloadPage(reason: string): void {
  if (reloadPending) return;
  const key = "upkeep:reloads";
  const now = Date.now();
  let recent: { href: string; at: number }[] = [];
  try {
    recent = JSON.parse(sessionStorage.getItem(key) ?? "[]").filter(
      (r: { href: string; at: number }) => r.href === location.href && now - r.at < CLIENT_TUNING.reloadWindowMs,
    );
  } catch {
    recent = [];
  }
  if (recent.length >= CLIENT_TUNING.maxReloads) {
    console.error(`upkeep: not reloading again (${reason}); the page stays as it is. Reload it by hand.`);
    return;
  }
  reloadPending = true;
  debug.reloads.push(reason);
  try {
    sessionStorage.setItem(key, JSON.stringify([...recent, { href: location.href, at: now }]));
  } catch {
    // storage unavailable: the in-memory guard still applies to this page
  }
  loadTurbo().then(
    (Turbo) => Turbo.visit(location.href, { action: "replace" }),
    () => location.reload(),
  );
}

let counter = 0;

export class UpkeepStreamSource extends HTMLElement {
  #sub: Subscription | null = null;
  #identityRetried = false;
  /** Patches are applied strictly in arrival order, even while Turbo is still loading. */
  #queue = Promise.resolve();

  connectedCallback() {
    // A Turbo cache preview shows an old snapshot; the real page that follows subscribes.
    if (document.documentElement.hasAttribute("data-turbo-preview")) return;
    if (this.#sub) return; // moved within the document (disconnect + connect): still subscribed
    const token = this.getAttribute(WIRE.tokenAttr);
    const incarnation = this.getAttribute(WIRE.incarnationAttr);
    const offset = Number(this.getAttribute(WIRE.offsetAttr));
    if (!token || incarnation === null || !Number.isSafeInteger(offset) || offset < 0) {
      console.error(`upkeep: <${WIRE.streamSourceTag}> needs token, incarnation and offset attributes`, this);
      return;
    }
    if (!this.id) this.id = `upkeep_client_${++counter}`;
    loadTurbo().then(
      (Turbo) => Turbo.connectStreamSource(this),
      (error) => console.error("upkeep: cannot load Turbo", error),
    );
    this.#sub = {
      id: this.id,
      token,
      incarnation,
      offset,
      transport: this.getAttribute("transport"),
      deliver: (message) => this.#receive(message),
    };
    debug.appliedOffsets[this.id] = offset;
    sharedManager(this).add(this.#sub);
  }

  disconnectedCallback() {
    // Wait a microtask: an element moved (e.g. kept by data-turbo-permanent) is connected again by then.
    queueMicrotask(() => {
      if (this.isConnected || !this.#sub) return;
      this.#leave();
    });
  }

  #leave() {
    if (!this.#sub) return;
    manager?.remove(this.#sub.id);
    delete debug.appliedOffsets[this.#sub.id];
    this.#sub = null;
    window.Turbo?.disconnectStreamSource(this);
  }

  #receive(message: any): void {
    const sub = this.#sub;
    if (!sub) return;
    switch (message.type) {
      case WIRE.msg.patch:
        this.#queue = this.#queue
          .then(() => this.#apply(sub, message))
          .catch((error) => console.error("upkeep:", error));
        return;
      case WIRE.msg.reload:
        this.#leave();
        reloadPage(message.reason ?? "reload");
        return;
      case WIRE.msg.error:
        // A token rendered with the viewer's current cookies (they signed in or out since the window's connection
        // opened): open the connection again, once, so that it carries them.
        if (message.code === "token_identity_mismatch" && !this.#identityRetried && manager) {
          this.#identityRetried = true;
          manager.drop();
          return;
        }
        console.warn(`upkeep: ${message.code}: ${message.message}`);
        this.#leave();
        if (RELOAD_CODES.has(message.code)) reloadPage(message.code);
        return;
      default:
        return; // subscribed: nothing to do
    }
  }

  async #apply(sub: Subscription, message: { offset: number; html: string }): Promise<void> {
    // Patches below the offset the page already shows are stale (each brings the page to current state at its offset).
    if (this.#sub !== sub || message.offset < sub.offset) return;
    const Turbo = await loadTurbo();
    if (this.#sub !== sub) return;
    Turbo.connectStreamSource(this); // idempotent
    this.dispatchEvent(new MessageEvent("message", { data: message.html }));
    // From here on a reconnect resumes after this offset.
    sub.offset = message.offset;
    this.setAttribute(WIRE.offsetAttr, String(message.offset));
    debug.appliedOffsets[sub.id] = message.offset;
    debug.patchesApplied += 1;
  }
}

if (typeof window !== "undefined" && typeof customElements !== "undefined") {
  window.__upkeep = debug;
  if (!customElements.get(WIRE.streamSourceTag)) customElements.define(WIRE.streamSourceTag, UpkeepStreamSource);
}
