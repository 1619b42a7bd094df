// The browser ↔ server protocol and the contract between transports (WebSocket, SSE) and the subscription hub.
// It sits below the pipeline folders (like constants.ts and errors.ts): the registry keeps subscribers' sinks, the
// transports implement them, the hub drives them.

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
  | { type: "subscribed"; id: string; offset: number }
  /** `html` is one or more <turbo-stream> elements; applying them brings the page to `offset`. */
  | { type: "patch"; id: string; offset: number; html: string }
  /** The page cannot be brought up to date incrementally: the browser must reload it. */
  | { type: "reload"; id: string; reason: string }
  | { type: "error"; id?: string; code: string; message: string };

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
