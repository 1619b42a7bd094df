// Replays for Node's own request listeners (node:http, Express): a fetch-style app over a listener. Each request is
// made over a loopback connection to a private server running the same listener (created on first use, bound to
// 127.0.0.1 on a free port, not keeping the process alive). A replay leaves the async context that way, so it names
// itself with a random id in REPLAY_HEADER (render/page.ts), which the middleware resolves and removes before the
// app sees the request.
//
// (In-process injection libraries rewire Express's request and response prototypes for the whole app, which breaks
// the app's real server; a loopback request costs a little more and leaves the app as it is.)
import { AsyncLocalStorage } from "node:async_hooks";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type FetchApp, lendReplay, REPLAY_HEADER } from "../render/page.ts";

export type NodeListener = (req: IncomingMessage, res: ServerResponse) => void;

const privateServers = new WeakMap<NodeListener, Promise<string>>();

/**
 * The async context outside every request, taken when this module loads. A server's requests run in the context
 * its listening socket was made in, and the private server is made on first use, which is usually a replay: made
 * there, every later request to it would inherit that first replay's context (its replay slot, its capture) and
 * answer into it. Made here, its requests start with no context, and each names its replay by REPLAY_HEADER.
 */
const outsideRequests = AsyncLocalStorage.snapshot();

function privateServer(listener: NodeListener): Promise<string> {
  let address = privateServers.get(listener);
  if (!address) {
    address = outsideRequests(
      () =>
        new Promise<string>((resolve, reject) => {
          const server: Server = createServer(listener);
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => {
            server.unref();
            resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
          });
        }),
    );
    privateServers.set(listener, address);
  }
  return address;
}

/** A fetch-style app that runs `listener` for each request, over a private loopback server. */
export function fetchAppOf(listener: NodeListener): FetchApp {
  return {
    async fetch(request: Request): Promise<Response> {
      const base = await privateServer(listener);
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      if (!headers.has("host")) headers.set("host", url.host);
      const lent = lendReplay();
      if (lent) headers.set(REPLAY_HEADER, lent.id);
      try {
        const {
          statusCode,
          headers: head,
          body,
        } = await loopback(
          new URL(url.pathname + url.search, base),
          request.method,
          headers,
          request.method === "GET" || request.method === "HEAD" ? undefined : Buffer.from(await request.arrayBuffer()),
        );
        const out = new Headers();
        for (const [name, value] of Object.entries(head)) {
          if (value === undefined) continue;
          for (const v of Array.isArray(value) ? value : [value]) out.append(name, v);
        }
        const empty = statusCode === 204 || statusCode === 304 || request.method === "HEAD";
        return new Response(empty ? null : new Uint8Array(body), { status: statusCode, headers: out });
      } finally {
        lent?.done();
      }
    },
  };
}

/** One HTTP request over the loopback, with the Host header as given (fetch would replace it). */
async function loopback(url: URL, method: string, headers: Headers, body: Buffer | undefined) {
  const { request } = await import("node:http");
  return new Promise<{ statusCode: number; headers: IncomingMessage["headers"]; body: Buffer }>((resolve, reject) => {
    const outgoing: Record<string, string> = {};
    headers.forEach((value, name) => {
      outgoing[name] = value;
    });
    const req = request(url, { method, headers: outgoing, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ statusCode: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
