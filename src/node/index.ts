// `upkeep/node`: Node's own `http` server. `live(upkeep, listener)` wraps a request listener so that its HTML GETs
// (and JSON GETs asked for live) are live, and serves Upkeep's own paths; `upkeep.attach(server, listener)` adds the
// WebSocket endpoint and runs replays through the listener in-process.
//
//   const server = createServer(live(upkeep, (req, res) => { … res.setHeader("content-type", "text/html"); res.end(html) }));
//   upkeep.attach(server, server.listeners("request")[0]);   // or keep the wrapped listener and pass it
//
// The Express adapter (upkeep/express) is this, as a middleware.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { runWithCapture, runWithRequest } from "../capture/context.ts";
import { REPLAY_HEADER, replayOf } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";
import type { NodeListener } from "../web/inject.ts";
import {
  finishResponse,
  isOwnPath,
  type LiveKind,
  liveKind,
  openCapture,
  readCookie,
  readHeader,
  recordedHeaders,
  serveOwn,
} from "../web/live.ts";

/** The raw (unrecorded) headers of requests made live, for cookie() and header() below. */
const rawHeaders = new WeakMap<IncomingMessage, IncomingMessage["headers"]>();

function raw(req: IncomingMessage): IncomingMessage["headers"] {
  return rawHeaders.get(req) ?? req.headers;
}

function headerOf(req: IncomingMessage, name: string): string | null {
  const value = raw(req)[name.toLowerCase()];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

/** Read one cookie of the request, recording exactly that cookie as an input of the page. */
export function cookie(req: IncomingMessage, name: string): string | undefined {
  return readCookie((n) => headerOf(req, n), name);
}

/** Read one request header as an input of the page. */
export function header(req: IncomingMessage, name: string): string | undefined {
  return readHeader((n) => headerOf(req, n), name);
}

function originOf(req: IncomingMessage): string {
  const encrypted = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true;
  return `${encrypted ? "https" : "http"}://${headerOf(req, "host") ?? "localhost"}`;
}

/** The request as a fetch Request whose signal aborts when the connection closes (an event stream's hub
 *  subscription ends with it). */
function toRequest(req: IncomingMessage, res: ServerResponse, url: URL): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw(req))) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return new Request(url, { method: req.method ?? "GET", headers, signal: closeSignal(res) });
}

/** Aborts when the response's connection closes: the client left, or the response ended. */
function closeSignal(res: ServerResponse): AbortSignal {
  const closed = new AbortController();
  if (res.closed) closed.abort();
  else res.once("close", () => closed.abort());
  return closed.signal;
}

/** Send a fetch Response on a Node response (streams, such as the event stream, are piped; a client that leaves
 *  cancels the stream). */
export async function sendResponse(res: ServerResponse, response: Response): Promise<void> {
  res.statusCode = response.status;
  response.headers.forEach((value, name) => {
    res.setHeader(name, value);
  });
  if (!response.body) {
    res.end();
    return;
  }
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
  res.once("close", () => body.destroy());
  body.pipe(res);
}

/**
 * Serve one request: Upkeep's own paths; a live candidate inside its capture, with its response held back until it
 * ends and then made live; anything else straight through `proceed`.
 */
export async function handleNode(
  upkeep: Upkeep,
  req: IncomingMessage,
  res: ServerResponse,
  proceed: () => void,
): Promise<void> {
  const url = new URL(req.url ?? "/", originOf(req));
  if (isOwnPath(url.pathname)) {
    const served = await serveOwn(upkeep, toRequest(req, res, url), url.pathname, req.socket?.remoteAddress);
    if (served) return sendResponse(res, served);
  }
  const kind = liveKind(req.method ?? "GET", (name) => headerOf(req, name));
  // Not a live candidate: cookie() and header() still read this request.
  if (!kind) return runWithRequest((name) => headerOf(req, name), proceed);
  // A replay over the loopback (web/inject.ts) names itself; the app never sees the header.
  const replay = replayOf(headerOf(req, REPLAY_HEADER));
  delete req.headers[REPLAY_HEADER];
  rawHeaders.set(req, req.headers);
  const capture = openCapture(upkeep, url, (name) => headerOf(req, name));
  req.headers = recordedHeaders(req.headers);
  hold(res, kind, async (status, contentType, body) =>
    finishResponse(
      { upkeep, capture, kind, replay, headers: () => record(raw(req)), origin: url.origin },
      { status, contentType, body: () => body },
    ),
  );
  runWithCapture(capture, proceed);
}

function record(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

type Finish = (
  status: number,
  contentType: string,
  body: string,
) => Promise<{ status: number; headers: Record<string, string>; body: string } | null>;

/**
 * Hold back a response that may become live: its writes are buffered (only while its content type is HTML or
 * JSON — any other response, a stream for instance, passes straight through) and, when it ends, `finish` decides
 * what is sent.
 */
function hold(res: ServerResponse, kind: Exclude<LiveKind, null>, finish: Finish): void {
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  const chunks: Buffer[] = [];
  let passing = false;
  const holdable = () => {
    const type = String(res.getHeader("content-type") ?? "");
    return type.includes("text/html") || (kind === "json" && type.includes("application/json"));
  };
  const collect = (chunk: unknown, encoding?: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === "function") return;
    chunks.push(
      Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk as string, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8"),
    );
  };
  res.write = ((chunk: unknown, encoding?: unknown, callback?: unknown) => {
    if (passing || (!res.headersSent && chunks.length === 0 && !holdable())) {
      passing = true;
      return write(chunk, encoding, callback);
    }
    collect(chunk, encoding);
    if (typeof encoding === "function") (encoding as () => void)();
    else if (typeof callback === "function") (callback as () => void)();
    return true;
  }) as ServerResponse["write"];
  res.end = ((chunk?: unknown, encoding?: unknown, callback?: unknown) => {
    if (passing || !holdable()) {
      passing = true;
      if (chunks.length > 0) write(Buffer.concat(chunks));
      return end(chunk, encoding, callback);
    }
    collect(chunk, encoding);
    const body = Buffer.concat(chunks).toString("utf8");
    const done = typeof encoding === "function" ? encoding : callback;
    finish(res.statusCode, String(res.getHeader("content-type") ?? ""), body).then(
      (live) => {
        if (live) {
          res.statusCode = live.status;
          for (const [name, value] of Object.entries(live.headers)) res.setHeader(name, value);
        }
        const out = live ? live.body : body;
        res.setHeader("content-length", Buffer.byteLength(out));
        // From here writes pass through (a response's own end may write its last chunk through write()).
        passing = true;
        end(out, done);
      },
      (error: unknown) => {
        // A refusal in test mode (or a bug): the app's response never goes out half-live.
        res.statusCode = 500;
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.removeHeader("content-length");
        passing = true;
        end(String((error as Error)?.stack ?? error));
        res.emit("upkeep:error", error);
      },
    );
    return res;
  }) as ServerResponse["end"];
}

/** Wraps a Node request listener so that its pages are live (register it as the server's listener). */
export function live(upkeep: Upkeep, listener: NodeListener): NodeListener {
  const wrapped: NodeListener = (req, res) => {
    handleNode(upkeep, req, res, () => listener(req, res)).catch((error: unknown) => {
      if (!res.headersSent) res.statusCode = 500;
      res.end();
      upkeep.logger.error(
        { event: "upkeep.request_failed", url: req.url, err: (error as Error)?.message ?? String(error) },
        `upkeep: ${req.url}: ${(error as Error)?.stack ?? error}`,
      );
    });
  };
  return wrapped;
}

export { fetchAppOf } from "../web/inject.ts";
