// Real sockets for transport tests: a node:http server on 127.0.0.1:0 and `ws` clients that queue what they receive.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocket } from "ws";
import { WIRE } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";

export async function listen(handler?: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer(handler ?? ((_req, res) => res.writeHead(404).end()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

export async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A `ws` client that records every message and its close code. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: ServerMessage[] = [];
  closed: { code: number; reason: string } | null = null;
  #waiters: Array<() => void> = [];

  constructor(url: string, options?: ConstructorParameters<typeof WebSocket>[2]) {
    this.ws = new WebSocket(url, options);
    this.ws.on("message", (data) => {
      this.received.push(JSON.parse(String(data)));
      this.#notify();
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.#notify();
    });
    this.ws.on("error", () => this.#notify());
  }

  static async open(
    port: number,
    path: string = WIRE.socketPath,
    headers?: Record<string, string>,
  ): Promise<TestClient> {
    const client = new TestClient(`ws://127.0.0.1:${port}${path}`, { headers });
    await new Promise<void>((resolve, reject) => {
      client.ws.once("open", () => resolve());
      client.ws.once("error", reject);
    });
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  subscribe(id: string, token = `token-${id}`, offset = 0, incarnation = "inc"): void {
    this.send({ type: WIRE.msg.subscribe, id, token, offset, incarnation });
  }

  /** Resolves with the first received message (from index `from`) matching `predicate`. */
  async next(predicate: (m: ServerMessage) => boolean, from = 0): Promise<ServerMessage> {
    for (;;) {
      const found = this.received.slice(from).find(predicate);
      if (found) return found;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before the message`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async untilClosed(): Promise<{ code: number; reason: string }> {
    while (!this.closed) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
