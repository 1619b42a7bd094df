// One client connection of the WebSocket transport, over a runtime-free socket: subscriptions multiplexed by id,
// the protocol's limits (subscriptions, message size, malformed messages, outbound queue, subscribe rate), and
// keepalive. It only translates between frames and the SubscriptionHub; ordering and resume are the hub's business.
// The Node adapter (websocket.ts) wraps `ws`; another runtime's adapter wraps its own socket the same way.
import { WIRE } from "../constants.ts";
import { UpkeepError } from "../errors.ts";
import type { ClientMessage, ServerMessage, SubscribeRequest, SubscriptionHub } from "../protocol.ts";
import { closeCodeName, encode, idOf, parseClientMessage } from "./wire.ts";

/** What a connection needs of a socket. */
export interface ConnectionSocket {
  /** True while messages can be sent. */
  readonly open: boolean;
  /** Bytes queued toward the peer and not yet written to the network. */
  readonly bufferedAmount: number;
  send(frame: Buffer): void;
  close(code: number, reason: string): void;
  /** Cut the connection without a closing handshake. */
  terminate(): void;
  ping(): void;
}

export interface Limits {
  maxSubscriptions: number;
  maxMessageBytes: number;
  maxMalformed: number;
  maxBufferedBytes: number;
  subscribeBurst: number;
  subscribesPerSecond: number;
}

interface Entry {
  /** Set once hub.subscribe resolved. */
  unsubscribe?: () => void;
  /** The client left (unsubscribe message or socket closed) before or after the hub resolved. */
  ended: boolean;
}

export class Connection {
  readonly #ws: ConnectionSocket;
  readonly #hub: SubscriptionHub;
  readonly #headers: Record<string, string>;
  readonly #limits: Limits;
  readonly #entries = new Map<string, Entry>();
  #malformed = 0;
  #alive = true;
  /** Token bucket for subscribes: refills at subscribesPerSecond up to subscribeBurst. */
  #allowance: number;
  #allowanceAt = Date.now();

  constructor(socket: ConnectionSocket, headers: Record<string, string>, hub: SubscriptionHub, limits: Limits) {
    this.#ws = socket;
    this.#hub = hub;
    this.#limits = limits;
    this.#allowance = limits.subscribeBurst;
    // One frozen copy per connection, shared by its subscriptions (the hub keeps it as each subscriber's inputs).
    this.#headers = Object.freeze({ ...headers });
  }

  /** A frame arrived: its text (null for a binary frame) and its size in bytes. */
  receive(text: string | null, size: number): void {
    try {
      this.#receive(text, size);
    } catch (error) {
      // Defensive: a bug here must cost one message, never the process.
      this.#send({ type: "error", code: "internal", message: String((error as Error)?.message ?? error) });
    }
  }

  /** The peer answered a ping. */
  pong(): void {
    this.#alive = true;
  }

  heartbeat(): void {
    if (!this.#ws.open) return;
    if (!this.#alive) {
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    try {
      this.#ws.ping();
    } catch {
      this.#ws.terminate();
    }
  }

  /** Ends every subscription of this socket (the socket closed or the server is shutting down). */
  endAll(): void {
    for (const [id, entry] of this.#entries) {
      this.#entries.delete(id);
      end(entry);
    }
  }

  /** True when the message was handed to the open socket. A client whose queue passed the bound is cut off:
   *  a client that stops reading must not grow the server without limit. */
  #send(message: ServerMessage): boolean {
    if (!this.#ws.open) return false;
    if (this.#ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.#slowConsumer();
      return false;
    }
    try {
      this.#ws.send(encode(message));
      return true;
    } catch {
      return false; // The socket is closing; its 'close' handler unsubscribes.
    }
  }

  #slowConsumer(): void {
    const reason = `more than ${this.#limits.maxBufferedBytes} bytes queued for a client that is not reading`;
    this.endAll();
    // The close frame would wait behind the full queue: send it, then cut the connection.
    this.#ws.close(WIRE.close.slowConsumer, reason.slice(0, 120));
    this.#ws.terminate();
  }

  #close(code: number, reason: string): void {
    this.#send({ type: "error", code: closeCodeName(code), message: reason });
    this.#ws.close(code, reason.slice(0, 120));
  }

  #receive(text: string | null, size: number): void {
    if (size > this.#limits.maxMessageBytes) {
      this.#close(
        WIRE.close.messageTooLarge,
        `message of ${size} bytes exceeds the ${this.#limits.maxMessageBytes}-byte limit`,
      );
      return;
    }
    if (text === null) {
      this.#malformedMessage(undefined, "binary frames are not part of the protocol; send JSON text");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.#malformedMessage(undefined, "the message is not JSON");
      return;
    }
    const parsed = parseClientMessage(message);
    if (typeof parsed === "string") {
      this.#malformedMessage(idOf(message), parsed);
      return;
    }
    if (parsed.type === WIRE.msg.subscribe) this.#subscribe(parsed);
    else this.#unsubscribe(parsed.id);
  }

  #malformedMessage(id: string | undefined, detail: string): void {
    this.#malformed += 1;
    if (this.#malformed > this.#limits.maxMalformed) {
      this.#close(WIRE.close.malformed, `more than ${this.#limits.maxMalformed} malformed messages`);
      return;
    }
    this.#send({ type: "error", ...(id === undefined ? {} : { id }), code: "malformed_message", message: detail });
  }

  #subscribe(message: Extract<ClientMessage, { type: "subscribe" }>): void {
    const { id } = message;
    const now = Date.now();
    this.#allowance = Math.min(
      this.#limits.subscribeBurst,
      this.#allowance + ((now - this.#allowanceAt) / 1000) * this.#limits.subscribesPerSecond,
    );
    this.#allowanceAt = now;
    if (this.#allowance < 1) {
      // A connection, not one subscription: a client re-subscribing in a loop would otherwise cost a page
      // registration (and a possible replay) each time.
      this.#close(
        WIRE.close.tooManySubscribes,
        `more than ${this.#limits.subscribeBurst} subscribes at once or ${this.#limits.subscribesPerSecond} per second`,
      );
      return;
    }
    this.#allowance -= 1;
    if (this.#entries.has(id)) {
      this.#send({
        type: "error",
        id,
        code: "duplicate_subscription",
        message: `subscription id ${id} is already in use on this connection; unsubscribe it first or pick a new id`,
      });
      return;
    }
    if (this.#entries.size >= this.#limits.maxSubscriptions) {
      this.#close(
        WIRE.close.tooManySubscriptions,
        `more than ${this.#limits.maxSubscriptions} subscriptions on one connection`,
      );
      return;
    }
    const entry: Entry = { ended: false };
    this.#entries.set(id, entry);
    const request: SubscribeRequest = {
      id,
      token: message.token,
      offset: message.offset,
      incarnation: message.incarnation,
      headers: this.#headers,
    };
    // The sink stops forwarding as soon as the subscription ends, so a late hub message never reaches a client
    // that reused the id for a new subscription.
    // The acknowledgement names the connection's bound, so that a browser sharing it between tabs stays within it.
    const sink = {
      send: (out: ServerMessage) =>
        !entry.ended &&
        this.#entries.get(id) === entry &&
        this.#send(out.type === "subscribed" ? { ...out, maxSubscriptions: this.#limits.maxSubscriptions } : out),
    };
    Promise.resolve()
      .then(() => this.#hub.subscribe(request, sink))
      .then(
        (unsubscribe) => {
          entry.unsubscribe = unsubscribe;
          // The client left while the hub was registering: undo the registration now.
          if (entry.ended) safely(unsubscribe);
        },
        (error: unknown) => {
          if (this.#entries.get(id) === entry) this.#entries.delete(id);
          if (entry.ended) return;
          entry.ended = true;
          const code = error instanceof UpkeepError ? error.code : "subscribe_failed";
          const text = error instanceof Error ? error.message : String(error);
          this.#send({ type: "error", id, code, message: text });
        },
      );
  }

  #unsubscribe(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return; // unsubscribing twice, or after a refused subscribe, is a no-op
    this.#entries.delete(id);
    end(entry);
  }
}

function end(entry: Entry): void {
  if (entry.ended) return;
  entry.ended = true;
  if (entry.unsubscribe) safely(entry.unsubscribe);
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // An unsubscribe that throws must not keep the others from running.
  }
}

/** Validates a decoded client message; returns a description of the problem when it is not one. */
