// A live JSON resource, whatever the framework: `followLiveResource(url, onChange)` fetches `url` asking for a live
// response (`upkeep-live: 1`); when the server answers with a subscription (`upkeep-token`, `upkeep-offset`,
// `upkeep-incarnation` headers) it follows it through the window's shared connection and applies each `value`
// message (a new value, or an RFC 6902 patch of the value held). When the server cannot bring the value up to date
// (reload, a token problem, a patch that does not fit) the resource is fetched and subscribed again, at most
// CLIENT_TUNING.maxReloads times within reloadWindowMs.
//
// Erasable TypeScript, shipped compiled.

import type { Subscription } from "./connection.ts";
import { CLIENT_TUNING, RELOAD_CODES, WIRE } from "./constants.ts";
import { applyJsonPatch } from "./json-patch.ts";
import {
  type ConnectionOptions,
  connectionState,
  nextSubscriptionId,
  onConnectionState,
  reconnectForIdentity,
  type Subscriptions,
  windowConnection,
} from "./shared.ts";

/**
 * `loading` until the first response; `live` while subscribed and connected; `reconnecting` while subscribed and the
 * connection is down (the value may be behind); `static` when the server answered without a subscription; `error`
 * when the fetch failed (the last value, if any, stays).
 */
export type LiveResourceStatus = "loading" | "live" | "reconnecting" | "static" | "error";

export interface LiveResourceSnapshot<T> {
  data: T | undefined;
  error: Error | undefined;
  status: LiveResourceStatus;
  /** The ledger offset the value shows (null when not live). */
  offset: number | null;
}

export interface LiveResourceOptions extends ConnectionOptions {
  /** Extra request options (headers are merged with Upkeep's). */
  init?: RequestInit;
  transport?: "websocket" | "sse";
  /** Tests: fetch and the subscriptions (default: the window's shared connection). */
  fetch?: typeof fetch;
  subscriptions?: Subscriptions;
}

export interface LiveResource<T> {
  snapshot(): LiveResourceSnapshot<T>;
  /** Fetch and subscribe again. */
  refetch(): void;
  close(): void;
}

export function followLiveResource<T>(
  url: string,
  onChange: (snapshot: LiveResourceSnapshot<T>) => void,
  options: LiveResourceOptions = {},
): LiveResource<T> {
  const subscriptions = options.subscriptions ?? windowConnection(options);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  let snapshot: LiveResourceSnapshot<T> = { data: undefined, error: undefined, status: "loading", offset: null };
  let sub: (Subscription & { identityRetried?: boolean }) | null = null;
  let closed = false;
  let generation = 0;
  let refetches: number[] = [];

  const connectionStatus = (): LiveResourceStatus =>
    options.subscriptions || connectionState() === "live" ? "live" : "reconnecting";
  const emit = (next: Partial<LiveResourceSnapshot<T>>) => {
    if (closed) return;
    snapshot = { ...snapshot, ...next };
    onChange(snapshot);
  };
  const stopState = options.subscriptions
    ? () => {}
    : onConnectionState(() => {
        if (sub && !closed) emit({ status: connectionStatus() });
      });

  function leave(): void {
    if (sub) subscriptions.remove(sub.id);
    sub = null;
  }

  async function load(): Promise<void> {
    const mine = ++generation;
    const headers = new Headers(options.init?.headers);
    headers.set("accept", "application/json");
    headers.set(WIRE.liveHeader, "1");
    let response: Response;
    let data: T;
    try {
      response = await fetchImpl(url, { ...options.init, headers });
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      data = (await response.json()) as T;
    } catch (error) {
      if (mine !== generation || closed) return;
      leave();
      emit({ error: error instanceof Error ? error : new Error(String(error)), status: "error", offset: null });
      return;
    }
    if (mine !== generation || closed) return;
    const token = response.headers.get(WIRE.tokenHeader);
    const incarnation = response.headers.get(WIRE.incarnationHeader);
    const offset = Number(response.headers.get(WIRE.offsetHeader));
    if (!token || incarnation === null || !Number.isSafeInteger(offset) || offset < 0) {
      leave();
      emit({ data, error: undefined, status: "static", offset: null });
      return;
    }
    const next: Subscription & { identityRetried?: boolean } = {
      id: nextSubscriptionId("upkeep_resource"),
      token,
      incarnation,
      offset,
      transport: options.transport ?? null,
      deliver: (message) => receive(next, message),
    };
    const old = sub;
    sub = next;
    subscriptions.add(next);
    if (old) subscriptions.remove(old.id);
    emit({ data, error: undefined, status: connectionStatus(), offset });
  }

  function receive(from: Subscription & { identityRetried?: boolean }, message: any): void {
    if (from !== sub || closed) return;
    switch (message?.type) {
      case WIRE.msg.value: {
        if (typeof message.offset !== "number" || message.offset < from.offset) return;
        let data: T;
        if (Array.isArray(message.patch)) {
          try {
            data = applyJsonPatch<T>(snapshot.data, message.patch);
          } catch {
            again("patch_failed");
            return;
          }
        } else if ("value" in message) data = message.value as T;
        else return;
        from.offset = message.offset;
        emit({ data, offset: from.offset });
        return;
      }
      case WIRE.msg.reload:
        again(String(message.reason ?? "reload"));
        return;
      case WIRE.msg.error:
        if (reconnectForIdentity(subscriptions, from, message.code)) return;
        if (RELOAD_CODES.has(message.code)) again(String(message.code));
        else {
          leave();
          emit({ error: new Error(`${message.code}: ${message.message ?? ""}`), status: "error" });
        }
        return;
      default:
        return; // subscribed
    }
  }

  function again(reason: string): void {
    leave();
    const now = Date.now();
    refetches = refetches.filter((at) => now - at < CLIENT_TUNING.reloadWindowMs);
    if (refetches.length >= CLIENT_TUNING.maxReloads) {
      emit({ error: new Error(`upkeep: ${url} keeps failing to stay live (${reason})`), status: "error" });
      return;
    }
    refetches.push(now);
    void load();
  }

  void load();
  return {
    snapshot: () => snapshot,
    refetch: () => {
      refetches = [];
      void load();
    },
    close() {
      if (closed) return;
      closed = true;
      generation += 1;
      stopState();
      leave();
    },
  };
}
