// `upkeep/hono`: the middleware that makes a Hono app's HTML GETs live.
//
//   app.use(upkeepMiddleware(upkeep));   // register it first, before middleware that reads cookies or headers
//
// For each HTML GET it opens a page capture (reads through upkeep.db() are recorded), records the ledger head
// before the first read, records the cookies and headers the render reads, and — when every read could be
// analysed — registers the page and injects the live marker. It also serves the browser client, Turbo and the
// SSE endpoint under /upkeep/.

import { readFile } from "node:fs/promises";
import * as nodeModule from "node:module";
import type { Context, MiddlewareHandler } from "hono";
import { HtmlEscapedCallbackPhase, resolveCallback } from "hono/utils/html";
import { createCapture, type PageCapture, parseCookies, recordInput, runWithCapture } from "../capture/context.ts";
import { WIRE } from "../constants.ts";
import { handleEventStream } from "../deliver/sse.ts";
import type { RefusedBoundaryError } from "../errors.ts";
import type { DataDocument } from "../render/data.ts";
import { currentReplay, escapeHtml, injectMarker, liveMarker } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";

const clientDir = new URL("../client/", import.meta.url);
const turboPath = nodeModule.createRequire(import.meta.url).resolve("@hotwired/turbo/dist/turbo.es2017-esm.js");
const staticCache = new Map<string, Promise<string>>();

function staticFile(path: string | URL): Promise<string> {
  const key = String(path);
  let file = staticCache.get(key);
  if (!file) {
    file = readFile(path, "utf8");
    staticCache.set(key, file);
    file.catch(() => staticCache.delete(key));
  }
  return file;
}

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
  const readAll = () => forEach((value, name) => recordInput(`header:${name}`, value));
  Object.assign(headers, {
    get(name: string) {
      const value = get(name);
      recordInput(`header:${name.toLowerCase()}`, value);
      return value;
    },
    has(name: string) {
      recordInput(`header:${name.toLowerCase()}`, get(name));
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
  const value = parseCookies(rawHeader(c, "cookie") ?? "").get(name);
  recordInput(`cookie:${name}`, value ?? null);
  return value;
}

/** Read one request header as an input of the page. */
export function header(c: Context, name: string): string | undefined {
  const value = rawHeader(c, name.toLowerCase());
  recordInput(`header:${name.toLowerCase()}`, value);
  return value ?? undefined;
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

/** Refusals already warned about, per Upkeep instance (production warns once per reason and SQL). */
const warnedRefusals = new WeakMap<Upkeep, Set<string>>();

export function upkeepMiddleware(upkeep: Upkeep): MiddlewareHandler {
  return async (c, next) => {
    const path = c.req.path;
    if (path.startsWith("/upkeep/")) {
      const served = await serveOwn(c, upkeep, path);
      if (served) return served;
    }
    const accept = c.req.raw.headers.get("accept") ?? "";
    // A live JSON resource is asked for by the client that follows it (upkeep/react's useLiveResource).
    const liveJson = c.req.raw.headers.get(WIRE.liveHeader) === "1";
    if (
      c.req.method !== "GET" ||
      (!liveJson && accept !== "" && !accept.includes("text/html") && !accept.includes("*/*"))
    ) {
      await next();
      return;
    }
    const replay = currentReplay();
    const url = new URL(c.req.url);
    const capture = createCapture(url.pathname + url.search);
    // Before the first read (see deliver/hub.ts). The hub's planned position is a lower bound of the ledger head
    // that costs no query: every fact this render cannot see commits after its reads, so its offset is above the
    // head at that moment and hence above this value. Facts between the two are planned again, never missed.
    capture.renderOffset = upkeep.hub.position;
    const rawHeaders = instrumentHeaders(c.req.raw.headers);
    capture.headers = (name) => rawHeaders.get(name);
    const bodies = new WeakMap<Response, string>();
    rememberHtml(c, bodies);
    await runWithCapture(capture, () => next());

    if (capture.data) return finishData(c, upkeep, capture, capture.data, rawHeaders, url.origin);
    const response = c.res;
    const type = response.headers.get("content-type") ?? "";
    if (liveJson && response.status === 200 && type.includes("application/json"))
      return finishJson(c, upkeep, capture, await response.text(), rawHeaders, url.origin);
    if (response.status !== 200 || !type.includes("text/html")) {
      // Not a page (any more): a replay reports it so that the hub tells the browsers to reload.
      if (replay) replay.result = { status: response.status === 200 ? 406 : response.status, html: "", capture: null };
      return;
    }
    const html = bodies.get(response) ?? (await response.text());
    if (replay) {
      replay.result = { status: 200, html, capture };
      return;
    }
    if (capture.refusals.length > 0) {
      c.res = undefined;
      c.res = new Response(html, response);
      refuse(c, upkeep, capture);
      return;
    }
    const marker = upkeep.hub.registerRender(
      capture,
      html,
      capture.inputs.size > 0 ? headerRecord(rawHeaders) : {},
      url.origin,
    );
    const id = `upkeep_${crypto.randomUUID()}`;
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    headers.set("cache-control", "no-store");
    // Clearing first keeps the new body a string: Hono's setter would otherwise re-wrap it as a stream.
    c.res = undefined;
    c.res = new Response(injectMarker(html, liveMarker({ id, ...marker })), { status: 200, headers });
  };
}

/**
 * A page Upkeep cannot keep live: tests get the error thrown; a developer's browser a page that says what and how
 * to fix it; production serves the response as it is (an ordinary page) and warns once per reason and SQL.
 */
function refuse(c: Context, upkeep: Upkeep, capture: PageCapture): void {
  const refusal = capture.refusals[0] as RefusedBoundaryError;
  if (upkeep.refusals === "throw") {
    if (upkeep.mode !== "development") throw refusal;
    console.error(JSON.stringify(refusalRecord(refusal, capture.url)));
    c.res = undefined;
    c.res = new Response(refusalPage(refusal, capture.url), {
      status: 500,
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    });
    return;
  }
  const key = `${refusal.code} ${refusal.sql}`;
  let warned = warnedRefusals.get(upkeep);
  if (!warned) {
    warned = new Set();
    warnedRefusals.set(upkeep, warned);
  }
  if (!warned.has(key)) {
    warned.add(key);
    console.warn(`${refusal.message}\n  page: ${capture.url} (served as an ordinary, non-live page)`);
  }
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
  if (capture.refusals.length > 0) return refuse(c, upkeep, capture);
  const headers = capture.inputs.size > 0 ? headerRecord(rawHeaders) : {};
  if (data.partial) {
    upkeep.hub.registerPartial(capture, doc, headerRecord(rawHeaders), origin);
    return;
  }
  const marker = upkeep.hub.registerRender(capture, doc, headers, origin);
  c.res = undefined;
  c.res = await data.respond(marker);
}

/** Data mode: a live JSON resource (a GET answered with c.json(), asked for with the live header). */
function finishJson(
  c: Context,
  upkeep: Upkeep,
  capture: PageCapture,
  json: string,
  rawHeaders: RawHeaders,
  origin: string,
): void {
  let text: string;
  try {
    text = JSON.stringify(JSON.parse(json));
  } catch {
    return; // not JSON after all: served as it is, not live
  }
  const doc: DataDocument = {
    kind: "json",
    component: "",
    url: capture.url,
    version: "",
    props: new Map([["", text]]),
    reloadOnly: new Set(),
  };
  const replay = currentReplay();
  if (replay) {
    replay.result = { status: 200, html: "", capture, doc };
    return;
  }
  const response = c.res;
  c.res = undefined;
  c.res = new Response(json, response);
  if (capture.refusals.length > 0) {
    refuse(c, upkeep, capture);
    return;
  }
  const marker = upkeep.hub.registerRender(
    capture,
    doc,
    capture.inputs.size > 0 ? headerRecord(rawHeaders) : {},
    origin,
  );
  c.res.headers.set(WIRE.tokenHeader, marker.token);
  c.res.headers.set(WIRE.offsetHeader, String(marker.offset));
  c.res.headers.set(WIRE.incarnationHeader, marker.incarnation);
  c.res.headers.set("cache-control", "no-store");
}

/** A refusal as a structured log record (one JSON object per line for log collectors). */
export function refusalRecord(refusal: RefusedBoundaryError, url: string) {
  return {
    level: "error",
    event: "upkeep.refusal",
    code: refusal.code,
    url,
    sql: refusal.sql || undefined,
    frame: refusal.frame,
    message: refusal.message.split("\n")[0],
    fix: refusal.hint,
  };
}

/** The development page for a refused live page: the code, the page, the SQL or frame, and the rewrite. */
export function refusalPage(refusal: RefusedBoundaryError, url: string): string {
  const row = (label: string, value: string | undefined) =>
    value ? `<tr><th>${label}</th><td><code>${escapeHtml(value)}</code></td></tr>` : "";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upkeep refused ${escapeHtml(url)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}th{text-align:left;vertical-align:top;padding-right:1rem}code{white-space:pre-wrap}</style></head>
<body><h1>Upkeep cannot keep this page live</h1>
<p>${escapeHtml(refusal.message.split("\n")[0] as string)}</p>
<table>${row("code", refusal.code)}${row("page", url)}${row("sql", refusal.sql)}${row("frame", refusal.frame)}${row("fix", refusal.hint)}</table>
<p>In production the page is served as an ordinary, non-live page and this is logged once. Every refusal code and
its rewrite: the README's Public API section and docs/analysis.md.</p></body></html>`;
}

async function serveOwn(c: Context, upkeep: Upkeep, path: string): Promise<Response | null> {
  if (path === WIRE.eventsPath) return handleEventStream(c.req.raw, upkeep.hub);
  if (path === WIRE.turboScriptPath) return javascript(await staticFile(turboPath));
  if (path.startsWith(WIRE.clientPath)) {
    const name = path.slice(WIRE.clientPath.length);
    const module = /^([a-z0-9-]+)\.(js|ts)$/.exec(name);
    if (!module || module[1]?.endsWith("test")) return c.text("not found", 404);
    const source = await clientModule(module[1] as string);
    return source === null ? c.text("not found", 404) : javascript(source);
  }
  return null;
}

/**
 * A module of the browser client as JavaScript. The package ships it compiled (`client/<name>.js`, whose imports
 * name `.js` files); in this repository it is erasable TypeScript (`client/<name>.ts`, importing `.ts` files), served
 * with its types stripped, so the browser requests `.ts` names and gets JavaScript either way.
 */
export function clientModule(name: string): Promise<string | null> {
  const key = `client:${name}`;
  let module = clientModules.get(key);
  if (!module) {
    module = staticFile(new URL(`${name}.js`, clientDir)).catch(async () =>
      // Only in this repository (the package ships JavaScript); a namespace import, so that importing the adapter
      // never fails on a Node without the function.
      nodeModule.stripTypeScriptTypes(await staticFile(new URL(`${name}.ts`, clientDir))),
    );
    module = module.catch(() => null);
    clientModules.set(key, module);
  }
  return module;
}

const clientModules = new Map<string, Promise<string | null>>();

function javascript(source: string): Response {
  return new Response(source, {
    headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" },
  });
}
