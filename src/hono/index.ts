// `upkeep/hono`: the middleware that makes a Hono app's HTML GETs live.
//
//   app.use(upkeepMiddleware(upkeep));   // register it first, before middleware that reads cookies or headers
//
// For each HTML GET it opens a page capture (reads through upkeep.db() are recorded), records the ledger head
// before the first read, records the cookies and headers the render reads, and — when every read could be
// analysed — registers the page and injects the live marker. It also serves the browser client, Turbo and the
// SSE endpoint under /upkeep/. The framework-free part is src/web/live.ts, shared with the other adapters.

import type { Context, MiddlewareHandler } from "hono";
import { HtmlEscapedCallbackPhase, resolveCallback } from "hono/utils/html";
import { type PageCapture, recordInput, runWithCapture, runWithRequest } from "../capture/context.ts";
import type { DataDocument } from "../render/data.ts";
import { currentReplay } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";
import {
  finishResponse,
  isHttpMachinery,
  isOwnPath,
  type LiveResponse,
  liveKind,
  openCapture,
  readCookie,
  readHeader,
  refuse,
  serveOwn,
} from "../web/live.ts";

export { clientModule, refusalPage, refusalRecord } from "../web/live.ts";

/** The request's own header accessors, saved before instrumenting (reads through them are not recorded). */
interface RawHeaders {
  get(name: string): string | null;
  forEach(callback: (value: string, name: string) => void): void;
}
const uninstrumented = new WeakMap<Headers, RawHeaders>();

/**
 * Make the request's header reads visible to the capture: each header read becomes an ambient input. The
 * accessors are bound from the instance itself, because adapters (such as @hono/node-server) give requests their
 * own Headers implementation.
 */
function instrumentHeaders(headers: Headers): RawHeaders {
  const known = uninstrumented.get(headers);
  if (known) return known;
  const get = headers.get.bind(headers);
  const has = headers.has.bind(headers);
  const forEach = headers.forEach.bind(headers);
  const entries = headers.entries.bind(headers);
  const keys = headers.keys.bind(headers);
  const values = headers.values.bind(headers);
  const raw: RawHeaders = { get, forEach };
  uninstrumented.set(headers, raw);
  const record = (name: string, value: string | null) => {
    if (!isHttpMachinery(name)) recordInput(`header:${name.toLowerCase()}`, value);
  };
  const readAll = () => forEach((value, name) => record(name, value));
  Object.assign(headers, {
    get(name: string) {
      const value = get(name);
      record(name, value);
      return value;
    },
    has(name: string) {
      record(name, get(name));
      return has(name);
    },
    forEach(callback: (value: string, name: string, parent: Headers) => void, thisArg?: unknown) {
      readAll();
      forEach(callback, thisArg);
    },
    entries() {
      readAll();
      return entries();
    },
    keys() {
      readAll();
      return keys();
    },
    values() {
      readAll();
      return values();
    },
    [Symbol.iterator]() {
      readAll();
      return entries();
    },
  });
  return raw;
}

/** A header read without recording it (the instrumented accessor would record the whole header as an input). */
export function rawHeader(c: Context, name: string): string | null {
  const headers = c.req.raw.headers;
  const raw = uninstrumented.get(headers);
  return raw ? raw.get(name) : headers.get(name);
}

/** Read one cookie, recording exactly that cookie (not the whole Cookie header) as an input of the page. */
export function cookie(c: Context, name: string): string | undefined {
  return readCookie((n) => rawHeader(c, n), name);
}

/** Read one request header as an input of the page. */
export function header(c: Context, name: string): string | undefined {
  return readHeader((n) => rawHeader(c, n), name);
}

function headerRecord(headers: RawHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/**
 * Remember the HTML string each `c.html()` response was made from, so that injecting the live marker does not
 * have to read the response body back through a stream. Same resolution as Hono's own `c.html`.
 */
function rememberHtml(c: Context, bodies: WeakMap<Response, string>): void {
  const original = c.html.bind(c) as (html: string, ...rest: unknown[]) => Response;
  const finish = (html: unknown, rest: unknown[]) => {
    const response = original(html as string, ...rest);
    bodies.set(response, String(html));
    return response;
  };
  c.html = ((html: unknown, ...rest: unknown[]) =>
    typeof html === "object" && html !== null
      ? resolveCallback(html as unknown as string, HtmlEscapedCallbackPhase.Stringify, false, {}).then((s) =>
          finish(s, rest),
        )
      : finish(html, rest)) as Context["html"];
}

/** Replace Hono's response with a live one (clearing first keeps a string body: Hono's setter would re-wrap it). */
function send(c: Context, live: LiveResponse | null): void {
  if (!live) return;
  const headers = new Headers(c.res.headers);
  headers.delete("content-length");
  for (const [name, value] of Object.entries(live.headers)) headers.set(name, value);
  c.res = undefined;
  c.res = new Response(live.body, { status: live.status, headers });
}

/** The connection's remote address under @hono/node-server (its bindings are `c.env.incoming`); undefined on a
 *  runtime that gives no socket, and for in-process `app.fetch()` calls. */
function socketAddress(c: Context): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress;
}

export function upkeepMiddleware(upkeep: Upkeep): MiddlewareHandler {
  return async (c, next) => {
    const path = c.req.path;
    if (isOwnPath(path)) {
      const served = await serveOwn(upkeep, c.req.raw, path, socketAddress(c));
      if (served) return served;
    }
    const kind = liveKind(c.req.method, (name) => c.req.raw.headers.get(name));
    if (!kind) {
      // Not a live candidate: cookie() and header() still read this request.
      await runWithRequest(
        (name) => c.req.raw.headers.get(name),
        () => next(),
      );
      return;
    }
    const url = new URL(c.req.url);
    const rawHeaders = instrumentHeaders(c.req.raw.headers);
    const capture = openCapture(upkeep, url, (name) => rawHeaders.get(name));
    const bodies = new WeakMap<Response, string>();
    rememberHtml(c, bodies);
    await runWithCapture(capture, () => next());

    if (capture.data) return finishData(c, upkeep, capture, capture.data, rawHeaders, url.origin);
    const response = c.res;
    const live = await finishResponse(
      { upkeep, capture, kind, replay: currentReplay(), headers: () => headerRecord(rawHeaders), origin: url.origin },
      {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        body: () => bodies.get(response) ?? response.clone().text(),
      },
    );
    send(c, live);
  };
}

/** Data mode: a response an adapter made from a data document (upkeep/inertia): register it, or hand it to the
 *  replay that asked for it. */
async function finishData(
  c: Context,
  upkeep: Upkeep,
  capture: PageCapture,
  data: NonNullable<PageCapture["data"]>,
  rawHeaders: RawHeaders,
  origin: string,
): Promise<void> {
  const replay = currentReplay();
  const doc = data.doc as DataDocument;
  if (replay) {
    replay.result = { status: 200, html: "", capture, doc };
    return;
  }
  if (capture.refusals.length > 0) return send(c, refuse(upkeep, capture));
  if (data.partial) {
    upkeep.hub.registerPartial(capture, doc, headerRecord(rawHeaders), origin);
    return;
  }
  const marker = upkeep.hub.registerRender(
    capture,
    doc,
    capture.inputs.size > 0 ? headerRecord(rawHeaders) : {},
    origin,
  );
  c.res = undefined;
  c.res = await data.respond(marker);
}
