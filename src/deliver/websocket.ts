// The WebSocket transport: one socket per browser window multiplexes many subscriptions (ids chosen by the client).
// It only translates between JSON frames and the SubscriptionHub; ordering and resume are the hub's business.
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { DELIVERY_TUNING, TRANSPORT_TUNING, WIRE } from "../constants.ts";
import { UpkeepError } from "../errors.ts";
import type { ClientMessage, ServerMessage, SubscribeRequest, SubscriptionHub } from "./types.ts";

export interface WebSocketOptions {
  /** Upgrade requests on other paths are left to other listeners. Default WIRE.socketPath. */
  path?: string;
  /** More subscriptions on one socket close it with WIRE.close.tooManySubscriptions. */
  maxSubscriptions?: number;
  /**
   * Largest inbound message; a larger one closes the socket with WIRE.close.messageTooLarge. Messages beyond four
   * times the limit are cut off while still arriving (standard close code 1009) so nothing large is buffered.
   */
  maxMessageBytes?: number;
  /**
   * Which `Origin` headers may open a socket: a list of origins ("https://app.example"), a predicate, or "*".
   * Default: requests without Origin (non-browser clients) and same-origin requests (Origin host equals Host).
   */
  allowedOrigins?: readonly string[] | "*" | ((origin: string, request: IncomingMessage) => boolean);
  /** Keepalive ping interval; a socket that missed the previous pong is terminated. */
  pingIntervalMs?: number;
  /** Malformed messages tolerated before the socket is closed with WIRE.close.malformed. */
  maxMalformedMessages?: number;
  /** Bytes queued toward one client beyond which it is closed with WIRE.close.slowConsumer. */
  maxBufferedBytes?: number;
  /** Subscribes allowed in a burst and per second after it; beyond them WIRE.close.tooManySubscribes. */
  subscribeBurst?: number;
  subscribesPerSecond?: number;
}

export interface WebSocketTransport {
  /** Closes every socket (1001), runs every unsubscribe and detaches from the server. */
  close(): Promise<void>;
  /** Open sockets. */
  readonly clients: number;
}

interface Entry {
  /** Set once hub.subscribe resolved. */
  unsubscribe?: () => void;
  /** The client left (unsubscribe message or socket closed) before or after the hub resolved. */
  ended: boolean;
}

const GOING_AWAY = 1001;

export function attachWebSocket(
  server: Server,
  hub: SubscriptionHub,
  options: WebSocketOptions = {},
): WebSocketTransport {
  const path = options.path ?? WIRE.socketPath;
  const maxSubscriptions = options.maxSubscriptions ?? DELIVERY_TUNING.maxSubscriptionsPerConnection;
  const maxMessageBytes = options.maxMessageBytes ?? DELIVERY_TUNING.maxInboundMessageBytes;
  const maxMalformed = options.maxMalformedMessages ?? TRANSPORT_TUNING.maxMalformedMessages;
  const pingIntervalMs = options.pingIntervalMs ?? TRANSPORT_TUNING.pingIntervalMs;
  const maxBufferedBytes = options.maxBufferedBytes ?? TRANSPORT_TUNING.maxBufferedBytes;
  const subscribeBurst = options.subscribeBurst ?? TRANSPORT_TUNING.subscribeBurst;
  const subscribesPerSecond = options.subscribesPerSecond ?? TRANSPORT_TUNING.subscribesPerSecond;
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes * 4, clientTracking: true });
  const connections = new Set<Connection>();
  let closed = false;

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    let pathname: string;
    try {
      pathname = new URL(request.url ?? "/", "http://upkeep.invalid").pathname;
    } catch {
      pathname = "";
    }
    if (pathname !== path) {
      // Another listener may own this path; if we are alone, nobody would answer, so refuse rather than hang.
      if (server.listenerCount("upgrade") <= 1) refuseUpgrade(socket, 404, "Not Found");
      return;
    }
    if (closed) return refuseUpgrade(socket, 503, "Service Unavailable");
    if (!originAllowed(request, options.allowedOrigins)) return refuseUpgrade(socket, 403, "Forbidden");
    socket.on("error", () => {}); // a reset during the handshake must not crash the process
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = new Connection(ws, request, hub, {
        maxSubscriptions,
        maxMessageBytes,
        maxMalformed,
        maxBufferedBytes,
        subscribeBurst,
        subscribesPerSecond,
      });
      connections.add(connection);
      ws.once("close", () => connections.delete(connection));
    });
  };
  server.on("upgrade", onUpgrade);

  // Keepalive: a socket that has not answered the previous ping by the next tick is dead (half-open TCP).
  const pinger = setInterval(() => {
    for (const connection of connections) connection.heartbeat();
  }, pingIntervalMs);
  pinger.unref();

  return {
    get clients() {
      return wss.clients.size;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(pinger);
      server.off("upgrade", onUpgrade);
      const done = [...wss.clients].map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === WebSocket.CLOSED) return resolve();
            ws.once("close", () => resolve());
            ws.close(GOING_AWAY, "server shutting down");
            // A peer that never answers the close handshake is cut off.
            setTimeout(() => ws.terminate(), 1000).unref();
          }),
      );
      for (const connection of connections) connection.endAll();
      await Promise.all(done);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

interface Limits {
  maxSubscriptions: number;
  maxMessageBytes: number;
  maxMalformed: number;
  maxBufferedBytes: number;
  subscribeBurst: number;
  subscribesPerSecond: number;
}

class Connection {
  readonly #ws: WebSocket;
  readonly #hub: SubscriptionHub;
  readonly #headers: Record<string, string>;
  readonly #limits: Limits;
  readonly #entries = new Map<string, Entry>();
  #malformed = 0;
  #alive = true;
  /** Token bucket for subscribes: refills at subscribesPerSecond up to subscribeBurst. */
  #allowance: number;
  #allowanceAt = Date.now();

  constructor(ws: WebSocket, request: IncomingMessage, hub: SubscriptionHub, limits: Limits) {
    this.#ws = ws;
    this.#hub = hub;
    this.#limits = limits;
    this.#allowance = limits.subscribeBurst;
    this.#headers = headersOf(request);
    ws.on("message", (data, isBinary) => {
      try {
        this.#receive(data, isBinary);
      } catch (error) {
        // Defensive: a bug here must cost one message, never the process.
        this.#send({ type: "error", code: "internal", message: String((error as Error)?.message ?? error) });
      }
    });
    ws.on("pong", () => {
      this.#alive = true;
    });
    ws.on("error", () => {}); // protocol errors close the socket; 'close' below cleans up
    ws.on("close", () => this.endAll());
  }

  heartbeat(): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
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
    if (this.#ws.readyState !== WebSocket.OPEN) return false;
    if (this.#ws.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.#slowConsumer();
      return false;
    }
    try {
      this.#ws.send(encode(message), { binary: false });
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

  #receive(data: RawData, isBinary: boolean): void {
    const size = byteLength(data);
    if (size > this.#limits.maxMessageBytes) {
      this.#close(
        WIRE.close.messageTooLarge,
        `message of ${size} bytes exceeds the ${this.#limits.maxMessageBytes}-byte limit`,
      );
      return;
    }
    if (isBinary) {
      this.#malformedMessage(undefined, "binary frames are not part of the protocol; send JSON text");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(rawToString(data));
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
      headers: { ...this.#headers },
    };
    // The sink stops forwarding as soon as the subscription ends, so a late hub message never reaches a client
    // that reused the id for a new subscription.
    const sink = {
      send: (out: ServerMessage) => !entry.ended && this.#entries.get(id) === entry && this.#send(out),
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
export function parseClientMessage(value: unknown): ClientMessage | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "a message is a JSON object";
  const m = value as Record<string, unknown>;
  if (typeof m.id !== "string" || m.id.length === 0 || m.id.length > TRANSPORT_TUNING.maxSubscriptionIdLength) {
    return `id must be a non-empty string of at most ${TRANSPORT_TUNING.maxSubscriptionIdLength} characters`;
  }
  if (m.type === WIRE.msg.unsubscribe) return { type: "unsubscribe", id: m.id };
  if (m.type !== WIRE.msg.subscribe) {
    return `unknown message type ${JSON.stringify(m.type)}; expected "${WIRE.msg.subscribe}" or "${WIRE.msg.unsubscribe}"`;
  }
  if (typeof m.token !== "string" || m.token.length === 0) return "subscribe needs the token from the live marker";
  if (!Number.isSafeInteger(m.offset) || (m.offset as number) < 0) return "offset must be a non-negative integer";
  if (typeof m.incarnation !== "string") return "incarnation must be a string";
  return { type: "subscribe", id: m.id, token: m.token, offset: m.offset as number, incarnation: m.incarnation };
}

function idOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const id = (value as Record<string, unknown>).id;
  return typeof id === "string" && id.length > 0 && id.length <= TRANSPORT_TUNING.maxSubscriptionIdLength
    ? id
    : undefined;
}

function closeCodeName(code: number): string {
  switch (code) {
    case WIRE.close.tooManySubscriptions:
      return "too_many_subscriptions";
    case WIRE.close.messageTooLarge:
      return "message_too_large";
    case WIRE.close.tooManySubscribes:
      return "too_many_subscribes";
    default:
      return "too_many_malformed_messages";
  }
}

function headersOf(request: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function originAllowed(request: IncomingMessage, allowed: WebSocketOptions["allowedOrigins"]): boolean {
  if (allowed === "*") return true;
  const origin = request.headers.origin;
  if (typeof allowed === "function") return origin === undefined ? true : safePredicate(allowed, origin, request);
  if (origin === undefined) return true; // not a browser: the token and identity check still apply
  if (Array.isArray(allowed)) return allowed.includes(origin);
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

function safePredicate(
  predicate: (origin: string, request: IncomingMessage) => boolean,
  origin: string,
  request: IncomingMessage,
): boolean {
  try {
    return predicate(origin, request) === true;
  } catch {
    return false;
  }
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  try {
    socket.once("finish", () => socket.destroy());
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  } catch {
    socket.destroy();
  }
}

function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

/**
 * A page group's patch goes to every subscriber with only the id differing. The HTML is JSON-encoded once (the
 * hub hands every subscriber the same string) and each frame is that buffer behind a small per-subscriber prefix,
 * which `ws` writes without copying or re-encoding.
 */
let lastHtml: string | null = null;
let lastHtmlJson: Buffer = Buffer.alloc(0);
const CLOSE_BRACE = Buffer.from("}");

export function encode(message: ServerMessage): Buffer {
  if (message.type !== "patch") return Buffer.from(JSON.stringify(message));
  if (message.html !== lastHtml) {
    lastHtml = message.html;
    lastHtmlJson = Buffer.from(JSON.stringify(message.html));
  }
  const head = `{"type":"patch","id":${JSON.stringify(message.id)},"offset":${message.offset},"html":`;
  return Buffer.concat([Buffer.from(head), lastHtmlJson, CLOSE_BRACE]);
}
