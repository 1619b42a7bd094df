// `upkeep/fastify`: the Fastify 5 plugin that makes an app's HTML GETs live (and JSON GETs asked for live), serves
// Upkeep's own paths under /upkeep/, attaches the WebSocket endpoint to the app's server and runs replays through
// `fastify.inject()` in-process.
//
//   await app.register(upkeepFastify, { upkeep });   // before the routes
//
// The plugin is not encapsulated (its hooks apply to every route of the app). `cookie(request, name)` and
// `header(request, name)` read exactly one cookie or header as an input of the page.
import type { IncomingMessage } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type PageCapture, runWithCapture, runWithRequest } from "../capture/context.ts";
import { cookie as nodeCookie, header as nodeHeader, sendResponse } from "../node/index.ts";
import { replayOf } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";
import {
  finishResponse,
  isOwnPath,
  type LiveKind,
  liveKind,
  openCapture,
  recordedHeaders,
  serveOwn,
} from "../web/live.ts";

export interface UpkeepFastifyOptions {
  upkeep: Upkeep;
}

interface Live {
  capture: PageCapture;
  kind: Exclude<LiveKind, null>;
  url: URL;
  headers: IncomingMessage["headers"];
}

const live = new WeakMap<FastifyRequest, Live>();

/** Read one cookie of the request, recording exactly that cookie as an input of the page. */
export function cookie(request: FastifyRequest, name: string): string | undefined {
  return nodeCookie(request.raw, name);
}

/** Read one request header as an input of the page. */
export function header(request: FastifyRequest, name: string): string | undefined {
  return nodeHeader(request.raw, name);
}

function headerOf(headers: IncomingMessage["headers"], name: string): string | null {
  const value = headers[name.toLowerCase()];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

function record(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(headers)) out[name] = headerOf(headers, name) as string;
  return out;
}

async function plugin(fastify: FastifyInstance, options: UpkeepFastifyOptions): Promise<void> {
  const { upkeep } = options;
  if (!upkeep) throw new TypeError("upkeepFastify needs { upkeep }: app.register(upkeepFastify, { upkeep })");
  // Replays run through the app in-process; the WebSocket endpoint shares the app's server.
  upkeep.attach(fastify.server, {
    async fetch(request: Request): Promise<Response> {
      const url = new URL(request.url);
      const headers: Record<string, string> = {};
      request.headers.forEach((value, name) => {
        headers[name] = value;
      });
      headers.host ??= url.host;
      const payload = request.method === "GET" || request.method === "HEAD" ? undefined : await request.text();
      const response = await fastify.inject({
        method: request.method as "GET",
        url: url.pathname + url.search,
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
      const out = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v));
      }
      const empty = response.statusCode === 204 || response.statusCode === 304;
      return new Response(empty ? null : new Uint8Array(response.rawPayload), {
        status: response.statusCode,
        headers: out,
      });
    },
  });

  fastify.addHook("onRequest", (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const raw = request.raw;
    const url = new URL(raw.url ?? "/", `${request.protocol}://${headerOf(raw.headers, "host") ?? "localhost"}`);
    if (isOwnPath(url.pathname)) {
      const headers = new Headers();
      for (const [name, value] of Object.entries(record(raw.headers))) headers.set(name, value);
      // The socket's address, not request.ip (which follows X-Forwarded-For when trustProxy is set).
      const remote = raw.socket?.remoteAddress;
      // Aborted when the connection closes: an event stream's subscription ends with it.
      const closed = new AbortController();
      reply.raw.once("close", () => closed.abort());
      const own = new Request(url, { method: raw.method ?? "GET", headers, signal: closed.signal });
      serveOwn(upkeep, own, url.pathname, remote).then(
        (served) => {
          if (!served) return done();
          reply.hijack();
          void sendResponse(reply.raw, served);
        },
        (error: Error) => done(error),
      );
      return;
    }
    const kind = liveKind(raw.method ?? "GET", (name) => headerOf(raw.headers, name));
    // Not a live candidate: cookie() and header() still read this request.
    if (!kind)
      return runWithRequest(
        (name) => headerOf(raw.headers, name),
        () => done(),
      );
    const headers = raw.headers;
    const capture = openCapture(upkeep, url, (name) => headerOf(headers, name));
    live.set(request, { capture, kind, url, headers });
    raw.headers = recordedHeaders(headers);
    // The rest of the request (hooks, handler, everything it awaits) runs inside the capture.
    runWithCapture(capture, () => done());
  });

  fastify.addHook("onSend", async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const state = live.get(request);
    if (!state || !(typeof payload === "string" || Buffer.isBuffer(payload))) return payload;
    const body = typeof payload === "string" ? payload : payload.toString("utf8");
    const result = await finishResponse(
      {
        upkeep,
        replay: replayOf(null),
        capture: state.capture,
        kind: state.kind,
        headers: () => record(state.headers),
        origin: state.url.origin,
      },
      { status: reply.statusCode, contentType: String(reply.getHeader("content-type") ?? ""), body: () => body },
    );
    if (!result) return payload;
    reply.code(result.status);
    for (const [name, value] of Object.entries(result.headers)) reply.header(name, value);
    reply.removeHeader("content-length");
    return result.body;
  });
}

/** The plugin; its hooks apply to the whole app (it is not encapsulated, as fastify-plugin would mark it). */
export const upkeepFastify = Object.assign(plugin, {
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "upkeep",
});
