// The browser ↔ server protocol and the contract between transports (WebSocket, SSE) and the subscription hub.
// It sits below the pipeline folders (like constants.ts and errors.ts): the registry keeps subscribers' sinks, the
// transports implement them, the hub drives them.

import type { ErrorCode } from "./errors.ts";

/** A browser asks to follow one page. */
export interface SubscribeRequest {
  /** Chosen by the client, unique within its connection. */
  id: string;
  /** The signed token from the page's live marker. */
  token: string;
  /** The last offset whose effects the page shows (the render offset at first, then each applied patch's). */
  offset: number;
  /** The ledger incarnation the offset belongs to. */
  incarnation: string;
  /** Headers of the connecting request (lower-case names), from which the identity signature is re-derived. */
  headers: Record<string, string>;
}

export type ServerMessage =
  /** On a WebSocket, `maxSubscriptions` is the most the connection accepts (the browser's tabs share it up to that). */
  | { type: "subscribed"; id: string; offset: number; maxSubscriptions?: number }
  /** `html` is one or more <turbo-stream> elements; applying them brings the page to `offset`. */
  | { type: "patch"; id: string; offset: number; html: string }
  /** The page cannot be brought up to date incrementally: the browser must reload it. */
  | { type: "reload"; id: string; reason: ReloadReason }
  /**
   * Data mode, an Inertia page: brings the page's props to `offset`. `props` are new values (whole props),
   * `patches` RFC 6902 operations against a prop's current value (sent when smaller), `reload` props the client
   * fetches itself with one partial reload (`router.reload({ only })`: props marked reload-only, or too large).
   * `reloadIfHeld` names deferred and optional props the server does not follow for this page (it resumed on a
   * process that never saw them loaded): the client reloads those it holds, which makes them live again.
   */
  | {
      type: "props";
      id: string;
      offset: number;
      props?: Record<string, unknown>;
      patches?: Record<string, JsonPatchOperation[]>;
      reload?: string[];
      reloadIfHeld?: string[];
    }
  /** Data mode, a live JSON resource: its new value, or an RFC 6902 patch against the value the client holds. */
  | { type: "value"; id: string; offset: number; value?: unknown; patch?: JsonPatchOperation[] }
  | { type: "error"; id?: string; code: WireErrorCode; message: string };

/** One RFC 6902 operation; Upkeep sends only add, remove and replace (client/json-patch.ts). */
export type { JsonPatchOperation } from "./client/json-patch.ts";

import type { JsonPatchOperation } from "./client/json-patch.ts";

/** Why a browser must reload a page rather than be patched (besides `status_<n>`: a replay answered with status n,
 *  404, a redirect…). docs/codes.md explains each. */
export const RELOAD_REASONS = [
  /** The page's offset belongs to another incarnation of the ledger (reset, reinstalled, restored). */
  "incarnation_mismatch",
  /** The ledger became a new incarnation while the page was open. */
  "incarnation_changed",
  /** Capture was lost (the ledger's tables or its replication slot are gone): the page cannot be kept live. */
  "capture_lost",
  /** The facts after the page's offset were pruned. */
  "offset_too_old",
  /** The page's offset is beyond the ledger's head (a database restored from an older copy). */
  "offset_ahead_of_ledger",
  /** A replay of the page threw. */
  "render_failed",
  /** A replay no longer yields a live page (it is now refused, or not HTML). */
  "not_live",
  /** Data mode: the page became another page (component, URL, asset version or its set of props changed). */
  "page_changed",
] as const;

export type ReloadReason = (typeof RELOAD_REASONS)[number] | `status_${number}`;

/** The transport's own codes of `error` messages (besides every UpkeepError code). docs/codes.md explains each. */
export const TRANSPORT_ERROR_CODES = [
  "malformed_message",
  "duplicate_subscription",
  "subscribe_failed",
  "internal",
  "too_many_subscriptions",
  "message_too_large",
  "too_many_subscribes",
  "too_many_malformed_messages",
] as const;

/** The codes of `error` messages: an UpkeepError's code, or one of the transport's own. */
export type WireErrorCode = ErrorCode | (typeof TRANSPORT_ERROR_CODES)[number];

export type ClientMessage =
  | { type: "subscribe"; id: string; token: string; offset: number; incarnation: string }
  | { type: "unsubscribe"; id: string };

/** Where the hub sends a subscription's messages. Transports implement it; `send` never throws. */
export interface Sink {
  /** True when the message was handed to an open connection; false when the connection is closed or closing
   *  (the hub counts only delivered messages). */
  send(message: ServerMessage): boolean;
}

export interface SubscriptionHub {
  /**
   * Start following. Resolves with an unsubscribe function once the subscription is registered (every fact
   * after `request.offset` will be planned for it); the hub itself sends `subscribed` on the sink (transports
   * add no acknowledgement of their own). Rejects with SubscriptionTokenError for a bad token; an
   * incarnation mismatch or pruned offset is answered with a `reload` message on the sink instead.
   */
  subscribe(request: SubscribeRequest, sink: Sink): Promise<() => void>;
}
