// Live props for Inertia apps, whatever the framework: `startLive(router)` follows the pages Inertia shows, subscribes
// each live page (its page object carries `upkeep: { token, offset, incarnation }`) through the window's shared
// connection, and applies the server's `props` messages with Inertia's own router, so the framework re-renders
// exactly what changed and the history entry keeps the new props.
//
//   import { router } from "@inertiajs/react";
//   startLive(router);          // or: import { live } from "upkeep/inertia/react"; live();
//
// Which page is shown comes from Inertia's events: `navigate` (a new URL, back/forward, the first page), `success` and
// `error` (a full visit of the same URL, which Inertia reports without `navigate`). A full response carries a fresh
// token: the new page is subscribed before the old one is left, so the connection never drops to nothing. Partial
// reloads carry no `upkeep` key and keep the subscription; the marker is written back into the page object with each
// update, so a history entry always holds the offset its props show.
//
// Patches apply to each prop's value as the server last sent it, which a partial reload of the page's own may have
// overtaken; the result is shown. A prop the page was told to fetch itself is fetched again rather than patched, until
// a whole value comes.
//
// While a full visit is in flight, incoming props wait: the page they belong to may be replaced under them. When the
// visit finishes they are applied if their page is still shown, and dropped otherwise (the new page is fresh). Props
// also wait until Inertia reports its first page (its router cannot replace props before).
//
// Reloads: a `reload` message or a token error makes one full Inertia visit of the page (router.reload()), at most
// CLIENT_TUNING.maxReloads times per URL within reloadWindowMs; `token_identity_mismatch` first opens the connection
// again (the viewer signed in or out since it opened).
//
// Debugging and browser tests: window.__upkeepInertia (debug.ts: state, transport, role, subscriptions,
// appliedOffsets, offset, messagesReceived, reloads, drop(); and subscription, propsApplied, partialReloads).
//
// Erasable TypeScript, shipped compiled. No runtime import of @inertiajs/core: the router is an argument.

import type { ConnectionManager, Subscription } from "./connection.ts";
import { RELOAD_CODES, WIRE } from "./constants.ts";
import { type ConnectionDebug, connectionFields } from "./debug.ts";
import { applyJsonPatch, type JsonPatchOperation } from "./json-patch.ts";
import {
  type ConnectionOptions,
  type LiveState,
  nextSubscriptionId,
  onConnectionState,
  reconnectForIdentity,
  reloadAllowed,
  type Subscriptions,
  windowConnection,
  windowConnectionParts,
} from "./shared.ts";

export type { LiveState } from "./shared.ts";

/** A live page's subscription, as the server puts it in the page object under WIRE.pageKey. */
export interface LiveMarker {
  token: string;
  offset: number;
  incarnation: string;
}

/** The part of Inertia's router (`@inertiajs/core` 3) that live props use. */
export interface InertiaRouter {
  on(
    type: "start" | "finish" | "navigate" | "success" | "error",
    callback: (event: CustomEvent<any>) => any,
  ): () => void;
  replace(params: any): void;
  reload(options?: any): void;
}

export interface LiveOptions extends ConnectionOptions {
  /** The first page object; by default read from the document's `<script data-page type="application/json">`. */
  initialPage?: unknown;
  /** `"sse"`: Server-Sent Events instead of a WebSocket. */
  transport?: "websocket" | "sse";
  /** Called on every change of the connection's state, with the offset the page's props show. */
  onState?: (state: LiveState, offset: number | null) => void;
  /** Reloads of props the server asks for are gathered this long into one partial reload (default 30 ms). */
  reloadDelayMs?: number;
  /** Props arriving before Inertia reports its first page wait at most this long (default 3 s; see startLive). */
  readyAfterMs?: number;
  /** Expose window.__upkeepInertia (default: true in a browser). */
  debug?: boolean;
  /** Tests: the subscriptions (default: the window's shared connection), timers, the page's address. */
  subscriptions?: Subscriptions;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  href?: () => string;
}

/** What window.__upkeepInertia shows: the fields of window.__upkeep (debug.ts), and data mode's own. */
export interface LiveDebug extends ConnectionDebug {
  /** The id of the subscription of the page shown (null when it is not live). */
  subscription: string | null;
  /** Props messages applied with router.replace. */
  propsApplied: number;
  /** Partial reloads (router.reload({ only })) made for props the server asked the page to fetch. */
  partialReloads: number;
}

declare global {
  interface Window {
    __upkeepInertia?: LiveDebug;
  }
}

interface PropsMessage {
  type: "props";
  id: string;
  offset: number;
  props?: Record<string, unknown>;
  patches?: Record<string, JsonPatchOperation[]>;
  reload?: string[];
  /** Deferred and optional props the server does not follow for this page: reloaded when the page holds them. */
  reloadIfHeld?: string[];
}

/** The `upkeep` marker of a page object, or null when the page is not live. */
export function liveMarker(page: unknown): LiveMarker | null {
  if (typeof page !== "object" || page === null) return null;
  const marker = (page as Record<string, unknown>)[WIRE.pageKey] as Partial<LiveMarker> | undefined;
  if (typeof marker !== "object" || marker === null) return null;
  const { token, offset, incarnation } = marker;
  if (typeof token !== "string" || token === "" || typeof incarnation !== "string") return null;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) return null;
  return { token, offset, incarnation };
}

/** The page object Inertia renders first, from `<script data-page type="application/json">`. */
export function initialPageFromDocument(doc: Document | undefined = globalThis.document): unknown {
  const script = doc?.querySelector?.('script[data-page][type="application/json"]');
  if (!script?.textContent) return null;
  try {
    return JSON.parse(script.textContent);
  } catch {
    return null;
  }
}

type LiveSubscription = Subscription & {
  /** Props messages waiting to be applied. */
  pending: PropsMessage[];
  /**
   * Each prop's value as the server last sent it (the page's own props at first): a patch is computed by the server
   * against exactly that value, which is not always what the page shows — a partial reload (a deferred prop, a poll,
   * the app's own router.reload) can bring a prop to a later state than the server knows the page has. Patches apply
   * here and the result is shown. A prop whose sent value is not known (named for the page to reload) is reloaded
   * rather than patched.
   */
  sent: Map<string, unknown>;
  /** The connection was opened again once for a token_identity_mismatch (shared.ts, reconnectForIdentity). */
  identityRetried?: boolean;
};

function propsOf(page: unknown): Record<string, unknown> {
  const props = (page as { props?: unknown }).props;
  return typeof props === "object" && props !== null ? (props as Record<string, unknown>) : {};
}

function markerOf(sub: LiveSubscription | null): LiveMarker | undefined {
  return sub ? { token: sub.token, offset: sub.offset, incarnation: sub.incarnation } : undefined;
}

/** What follows each router, so that a second start (a hot module reload) replaces the first. */
const running = new WeakMap<InertiaRouter, () => void>();

/** Keeps the props of the pages `router` shows live. Returns the function that stops it. */
export function startLive(router: InertiaRouter, options: LiveOptions = {}): () => void {
  running.get(router)?.();
  const stop = run(router, options);
  running.set(router, stop);
  return () => {
    if (running.get(router) === stop) running.delete(router);
    stop();
  };
}

function run(router: InertiaRouter, options: LiveOptions): () => void {
  const subscriptions = options.subscriptions ?? windowConnection(options);
  const setTimer = options.setTimeout ?? ((fn: () => void, ms: number) => globalThis.setTimeout(fn, ms));
  const clearTimer = options.clearTimeout ?? ((handle: any) => globalThis.clearTimeout(handle));
  const href = options.href ?? (() => globalThis.location?.href ?? "");
  const reloadDelayMs = options.reloadDelayMs ?? 30;

  let current: LiveSubscription | null = null;
  // With subscriptions of the caller's own there is no window connection to show.
  const connection = connectionFields(() =>
    options.subscriptions ? { manager: null, share: null } : windowConnectionParts(),
  );
  let received = 0;
  const debug: LiveDebug = {
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
      return current ? [current.id] : [];
    },
    get appliedOffsets(): Record<string, number> {
      return current ? { [current.id]: current.offset } : {};
    },
    get offset() {
      return current?.offset ?? null;
    },
    get subscription() {
      return current?.id ?? null;
    },
    get messagesReceived() {
      return received;
    },
    propsApplied: 0,
    reloads: [],
    partialReloads: 0,
    drop: () => (subscriptions as Partial<ConnectionManager>).drop?.(),
  };
  if (options.debug ?? typeof window !== "undefined") globalThis.window.__upkeepInertia = debug;

  let stopped = false;
  /** Visits in flight: partial reloads keep the subscription; full visits hold incoming props back. */
  const partialVisits = new Set<string>();
  const fullVisits = new Set<string>();
  let reloadProps = new Set<string>();
  let reloadTimer: unknown = null;
  /** The props of the page shown (a partial reload's page holds the props it loaded too). */
  let held = new Set<string>();

  const stateChanged = (state: LiveState) => {
    options.onState?.(state, current?.offset ?? null);
  };
  const stopState = options.subscriptions ? () => {} : onConnectionState(stateChanged);

  function follow(page: unknown, visitId?: string): void {
    if (stopped) return;
    held = new Set(Object.keys(propsOf(page)));
    const marker = liveMarker(page);
    if (!marker) {
      // A partial reload's response has no marker: the page is the same, and so is its subscription. The marker is
      // written back, so that the history entry can be followed again after a back/forward navigation.
      if (visitId !== undefined && partialVisits.has(visitId)) {
        if (current) restoreMarker();
        return;
      }
      leave();
      return;
    }
    if (current && current.token === marker.token && current.incarnation === marker.incarnation) return;
    const sub: LiveSubscription = {
      id: nextSubscriptionId("upkeep_inertia"),
      token: marker.token,
      incarnation: marker.incarnation,
      offset: marker.offset,
      transport: options.transport ?? null,
      pending: [],
      sent: new Map(Object.entries(propsOf(page))),
      deliver: (message) => receive(sub, message),
    };
    const old = current;
    current = sub;
    // The new page first, so that the connection is never left without a subscription in between.
    subscriptions.add(sub);
    if (old) subscriptions.remove(old.id);
    cancelReload();
  }

  function restoreMarker(): void {
    router.replace({
      preserveState: true,
      preserveScroll: true,
      get [WIRE.pageKey]() {
        return markerOf(current);
      },
      props: (currentProps: Record<string, unknown>) => currentProps,
    });
  }

  function leave(): void {
    if (!current) return;
    subscriptions.remove(current.id);
    current = null;
    cancelReload();
  }

  function receive(sub: LiveSubscription, message: any): void {
    if (sub !== current || stopped) return; // a late message for a page no longer shown
    received += 1;
    switch (message?.type) {
      case WIRE.msg.props:
        if (fullVisits.size > 0 || !routerReady()) sub.pending.push(message);
        else applyProps(sub, message);
        return;
      case WIRE.msg.reload:
        leave();
        fullReload(String(message.reason ?? "reload"));
        return;
      case WIRE.msg.error:
        if (reconnectForIdentity(subscriptions, sub, message.code)) return;
        console.warn(`upkeep: ${message.code}: ${message.message ?? ""}`);
        leave();
        if (RELOAD_CODES.has(message.code)) fullReload(String(message.code));
        return;
      default:
        return; // subscribed
    }
  }

  function applyProps(sub: LiveSubscription, message: PropsMessage): void {
    if (typeof message.offset !== "number" || message.offset < sub.offset) return; // stale
    const reload = Array.isArray(message.reload) ? [...message.reload] : [];
    // New values, computed against what the server last sent (see `sent`), not against what the page shows.
    const values: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(message.props ?? {})) {
      values[name] = value;
      sub.sent.set(name, value);
    }
    for (const [name, operations] of Object.entries(message.patches ?? {})) {
      try {
        if (!sub.sent.has(name)) throw new Error(`no value of ${name} to patch`);
        const value = applyJsonPatch(sub.sent.get(name), operations);
        values[name] = value;
        sub.sent.set(name, value);
      } catch {
        sub.sent.delete(name);
        reload.push(name);
      }
    }
    // Deferred and optional props this page loaded that the server does not follow (it resumed on a process that never
    // saw them loaded): reloading them makes them live again.
    for (const name of message.reloadIfHeld ?? []) if (held.has(name) && !reload.includes(name)) reload.push(name);
    // The page fetches these itself, at a later state than the server assumes: their next patch cannot be applied.
    for (const name of reload) sub.sent.delete(name);
    sub.offset = message.offset;
    if (Object.keys(values).length > 0) {
      debug.propsApplied += 1;
      router.replace({
        preserveState: true,
        preserveScroll: true,
        // The page object keeps the marker (with the offset its props now show), also after a partial reload
        // dropped it. Read after `props` ran: the marker of the page followed by then.
        get [WIRE.pageKey]() {
          return markerOf(current);
        },
        props: (currentProps: Record<string, unknown>) =>
          sub === current ? { ...currentProps, ...values } : currentProps,
      });
    }
    if (reload.length > 0) scheduleReload(sub, reload);
  }

  function scheduleReload(sub: LiveSubscription, names: string[]): void {
    if (sub !== current) return;
    for (const name of names) reloadProps.add(name);
    if (reloadTimer !== null) return;
    reloadTimer = setTimer(() => {
      reloadTimer = null;
      const only = [...reloadProps];
      reloadProps = new Set();
      if (sub !== current || only.length === 0 || stopped) return;
      debug.partialReloads += 1;
      router.reload({ only });
    }, reloadDelayMs);
  }

  function cancelReload(): void {
    if (reloadTimer !== null) clearTimer(reloadTimer);
    reloadTimer = null;
    reloadProps = new Set();
  }

  function fullReload(reason: string): void {
    if (!reloadAllowed(href())) {
      console.error(`upkeep: not reloading again (${reason}); the page stays as it is. Reload it by hand.`);
      return;
    }
    debug.reloads.push(reason);
    router.reload();
  }

  const isPartial = (visit: any) =>
    (visit?.only?.length ?? 0) > 0 || (visit?.except?.length ?? 0) > 0 || (visit?.reset?.length ?? 0) > 0;

  const off = [
    router.on("start", (event) => {
      const visit = event.detail?.visit;
      if (!visit || visit.prefetch || typeof visit.id !== "string") return;
      (isPartial(visit) ? partialVisits : fullVisits).add(visit.id);
    }),
    router.on("navigate", (event) => shown(event.detail?.page, event.detail?.visitId)),
    router.on("success", (event) => shown(event.detail?.page, event.detail?.visitId)),
    router.on("error", (event) => {
      if (event.detail?.page) shown(event.detail.page, event.detail.visitId);
    }),
    router.on("finish", (event) => {
      const id = event.detail?.visit?.id;
      partialVisits.delete(id);
      if (fullVisits.delete(id)) flushPending();
    }),
  ];

  /** Inertia shows `page`: the router is initialised, and the page is followed. */
  function shown(page: unknown, visitId: string | undefined): void {
    follow(page, visitId);
    if (!ready) {
      ready = true;
      clearTimer(readyTimer);
      flushPending();
    }
  }

  /** Props that waited (for a full visit, or for Inertia to start): applied if their page is still the one shown. */
  function flushPending(): void {
    const sub = current;
    if (!sub || fullVisits.size > 0 || !routerReady()) return;
    const pending = sub.pending;
    sub.pending = [];
    for (const message of pending) applyProps(sub, message);
  }

  // Props can only be applied once Inertia has initialised its router with the first page (createInertiaApp first
  // resolves the page component): until an Inertia event says so, they wait. When live() is called after the app
  // started, the history entry Inertia wrote for this page says so; failing both, a timer does.
  let ready = false;
  function routerReady(): boolean {
    if (!ready && current) {
      const held = liveMarker((globalThis.history?.state as { page?: unknown } | null | undefined)?.page);
      if (held?.token === current.token) ready = true;
    }
    return ready;
  }
  const readyTimer = setTimer(() => {
    ready = true;
    flushPending();
  }, options.readyAfterMs ?? 3_000);

  follow(options.initialPage === undefined ? initialPageFromDocument() : options.initialPage);

  return () => {
    if (stopped) return;
    clearTimer(readyTimer);
    for (const stop of off) stop();
    stopState();
    leave();
    stopped = true;
  };
}
