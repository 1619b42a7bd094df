// The WebSocket transport's Node adapter: upgrades on the server's path, origin checks, keepalive ticks, and a
// `ws` socket handed to a runtime-free Connection (connection.ts) per browser window.
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { DELIVERY_TUNING, TRANSPORT_TUNING, WIRE } from "../constants.ts";
import type { SubscriptionHub } from "../protocol.ts";
import { Connection, type ConnectionSocket } from "./connection.ts";

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
      const socket: ConnectionSocket = {
        get open() {
          return ws.readyState === WebSocket.OPEN;
        },
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
        send: (frame) => ws.send(frame, { binary: false }),
        close: (code, reason) => ws.close(code, reason),
        terminate: () => ws.terminate(),
        ping: () => ws.ping(),
      };
      const connection = new Connection(socket, headersOf(request), hub, {
        maxSubscriptions,
        maxMessageBytes,
        maxMalformed,
        maxBufferedBytes,
        subscribeBurst,
        subscribesPerSecond,
      });
      ws.on("message", (data, isBinary) => connection.receive(isBinary ? null : rawToString(data), byteLength(data)));
      ws.on("pong", () => connection.pong());
      ws.on("error", () => {}); // protocol errors close the socket; 'close' below cleans up
      ws.on("close", () => connection.endAll());
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
