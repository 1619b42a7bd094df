// The web adapters' common core, free of any framework: which requests are live candidates, opening a request's
// capture, turning the finished response (HTML, or a live JSON resource) into the live one — registered with the hub
// and marked — or handing it to the replay that asked for it, refusals, and Upkeep's own paths (the browser client,
// Turbo, the event stream). Each adapter (hono, express, fastify, node) only translates its request and response.
//
//   adapter: isLiveCandidate → openCapture → run the app's handler inside runWithCapture → finishResponse → send

import { readFile } from "node:fs/promises";
import * as nodeModule from "node:module";
import { createCapture, type PageCapture, parseCookies, recordInput } from "../capture/context.ts";
import { CHANGES_PATH, handleChanges } from "../changefeed/http.ts";
import { WIRE } from "../constants.ts";
import { handleEventStream } from "../deliver/sse.ts";
import type { RefusedBoundaryError } from "../errors.ts";
import { handleInspect } from "../inspect/http.ts";
import type { DataDocument } from "../render/data.ts";
import { escapeHtml, injectMarker, liveMarker, type ReplaySlot } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";

/** What kind of live response a request may become: an HTML page, a live JSON resource, or none. */
export type LiveKind = "html" | "json" | null;

/** A GET is a live candidate when it accepts HTML, or when the client that follows JSON resources asks for it. */
export function liveKind(method: string, header: (name: string) => string | null | undefined): LiveKind {
  if (method !== "GET") return null;
  if (header(WIRE.liveHeader) === "1") return "json";
  const accept = header("accept") ?? "";
  return accept === "" || accept.includes("text/html") || accept.includes("*/*") ? "html" : null;
}

/**
 * The capture of a live candidate. Its render offset is taken before the first read (see deliver/hub.ts): the hub's
 * planned position is a lower bound of the ledger head that costs no query — every fact this render cannot see
 * commits after its reads, so its offset is above the head at that moment and hence above this value; facts between
 * the two are planned again, never missed. `rawHeader` reads a request header without recording it.
 */
export function openCapture(upkeep: Upkeep, url: URL, rawHeader: (name: string) => string | null): PageCapture {
  const capture = createCapture(url.pathname + url.search);
  capture.renderOffset = upkeep.hub.position;
  capture.incarnation = upkeep.hub.incarnation;
  capture.headers = rawHeader;
  return capture;
}

/** Read one cookie of the request, recording exactly that cookie (not the whole Cookie header) as an input. */
export function readCookie(rawHeader: (name: string) => string | null, name: string): string | undefined {
  const value = parseCookies(rawHeader("cookie") ?? "").get(name);
  recordInput(`cookie:${name}`, value ?? null);
  return value;
}

/** Read one request header as an input. */
export function readHeader(rawHeader: (name: string) => string | null, name: string): string | undefined {
  const lower = name.toLowerCase();
  const value = rawHeader(lower);
  recordInput(`header:${lower}`, value);
  return value ?? undefined;
}

/**
 * Headers a framework reads for HTTP itself, never for what a page shows: conditional requests (a 304 is not a
 * page), the body's framing, the connection. Reads of them are not inputs (Express reads If-None-Match on every
 * `res.send`; a browser's WebSocket never sends it, so recording it would refuse every subscription).
 */
const HTTP_MACHINERY = new Set([
  "if-none-match",
  "if-modified-since",
  "if-match",
  "if-unmodified-since",
  "if-range",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "expect",
  "te",
]);

/** True for headers whose reads are not inputs (see HTTP_MACHINERY). */
export function isHttpMachinery(name: string): boolean {
  return HTTP_MACHINERY.has(name.toLowerCase());
}

/** A plain header object (Node's `req.headers`) whose reads are recorded as inputs of the current capture. */
export function recordedHeaders<T extends Record<string, string | string[] | undefined>>(headers: T): T {
  const value = (v: string | string[] | undefined) => (v === undefined ? null : Array.isArray(v) ? v.join(", ") : v);
  const read = (name: string) => {
    const lower = name.toLowerCase();
    if (!HTTP_MACHINERY.has(lower)) recordInput(`header:${lower}`, value(headers[lower]));
  };
  const readAll = () => {
    for (const name of Object.keys(headers)) read(name);
  };
  return new Proxy(headers, {
    get(target, key, receiver) {
      if (typeof key === "string") read(key);
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      if (typeof key === "string") read(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      readAll();
      return Reflect.ownKeys(target);
    },
  });
}

/** A response the adapter sends instead of the app's (status, headers to set, body). */
export interface LiveResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The app's response, as the core needs it. */
export interface AppResponse {
  status: number;
  contentType: string;
  /** The body (read only when the response may become live). */
  body(): string | Promise<string>;
}

export interface FinishContext {
  upkeep: Upkeep;
  /** The replay this request is, if any (render/page.ts replayOf). */
  replay: ReplaySlot | undefined;
  capture: PageCapture;
  kind: Exclude<LiveKind, null>;
  /** Every request header (lower-case names), read without recording them: the identity of a registration. */
  headers(): Record<string, string>;
  origin: string;
}

/**
 * The live response for a finished live candidate: the page marked (or the resource's headers set) once registered;
 * null to send the app's response unchanged (not a page, a replay, a refusal served as an ordinary page). A replay
 * gets its result through the async context instead. A refusal throws in test mode.
 */
export async function finishResponse(context: FinishContext, response: AppResponse): Promise<LiveResponse | null> {
  const { upkeep, capture, kind, replay } = context;
  const type = response.contentType;
  if (kind === "json" && response.status === 200 && type.includes("application/json")) {
    return finishJson(context, await response.body());
  }
  if (response.status !== 200 || !type.includes("text/html")) {
    // Not a page (any more): a replay reports it so that the hub tells the browsers to reload.
    if (replay) replay.result = { status: response.status === 200 ? 406 : response.status, html: "", capture: null };
    return null;
  }
  const html = await response.body();
  if (replay) {
    replay.result = { status: 200, html, capture };
    return null;
  }
  if (capture.refusals.length > 0) return refuse(upkeep, capture);
  const marker = upkeep.hub.registerRender(
    capture,
    html,
    capture.inputs.size > 0 ? context.headers() : {},
    context.origin,
  );
  const id = `upkeep_${crypto.randomUUID()}`;
  return {
    status: 200,
    headers: { "content-type": type, "cache-control": "no-store" },
    body: injectMarker(html, liveMarker({ id, ...marker })),
  };
}

/** A live JSON resource: registered, its subscription in the response headers. */
function finishJson(context: FinishContext, json: string): LiveResponse | null {
  const { upkeep, capture } = context;
  let text: string;
  try {
    text = JSON.stringify(JSON.parse(json));
  } catch {
    return null; // not JSON after all: served as it is, not live
  }
  const doc: DataDocument = {
    kind: "json",
    component: "",
    url: capture.url,
    version: "",
    props: new Map([["", text]]),
    reloadOnly: new Set(),
  };
  const replay = context.replay;
  if (replay) {
    replay.result = { status: 200, html: "", capture, doc };
    return null;
  }
  if (capture.refusals.length > 0) return refuse(upkeep, capture);
  const marker = upkeep.hub.registerRender(
    capture,
    doc,
    capture.inputs.size > 0 ? context.headers() : {},
    context.origin,
  );
  return {
    status: 200,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      [WIRE.tokenHeader]: marker.token,
      [WIRE.offsetHeader]: String(marker.offset),
      [WIRE.incarnationHeader]: marker.incarnation,
    },
    body: json,
  };
}

/** Refusals already warned about, per Upkeep instance (production warns once per reason and SQL). */
const warnedRefusals = new WeakMap<Upkeep, Set<string>>();

/**
 * A page Upkeep cannot keep live: tests get the error thrown; a developer's browser a page that says what and how
 * to fix it (returned); production serves the response as it is, an ordinary page (null), and warns once per reason
 * and SQL.
 */
export function refuse(upkeep: Upkeep, capture: PageCapture): LiveResponse | null {
  const refusal = capture.refusals[0] as RefusedBoundaryError;
  const counts = upkeep.hub.stats.refusals;
  counts[refusal.code] = (counts[refusal.code] ?? 0) + 1;
  if (upkeep.refusals === "throw") {
    if (upkeep.mode !== "development") throw refusal;
    upkeep.logger.error(refusalRecord(refusal, capture.url));
    return {
      status: 500,
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      body: refusalPage(refusal, capture.url),
    };
  }
  const key = `${refusal.code} ${refusal.sql}`;
  let warned = warnedRefusals.get(upkeep);
  if (!warned) {
    warned = new Set();
    warnedRefusals.set(upkeep, warned);
  }
  if (!warned.has(key)) {
    warned.add(key);
    upkeep.logger.warn(
      { ...refusalRecord(refusal, capture.url), level: "warn" },
      `${refusal.message}\n  page: ${capture.url} (served as an ordinary, non-live page)`,
    );
  }
  return null;
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
its rewrite: docs/codes.md and docs/guide/3-refusals.md.</p></body></html>`;
}

// ── Upkeep's own paths ───────────────────────────────────────────────────────────────────────────────────────

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

/** True for paths Upkeep serves itself (the adapter hands such requests to serveOwn first). */
export function isOwnPath(path: string): boolean {
  return path.startsWith("/upkeep/");
}

/** Upkeep's own paths: the event stream, Turbo and the browser client; null for any other path. `remoteAddress`
 *  is the connection's own remote address (the socket's, never a header), undefined when there is no socket. */
export async function serveOwn(
  upkeep: Upkeep,
  request: Request,
  path: string,
  remoteAddress: string | undefined,
): Promise<Response | null> {
  if (path === WIRE.eventsPath) return handleEventStream(request, upkeep.hub);
  const inspected = await handleInspect(upkeep, request, path, remoteAddress);
  if (inspected) return inspected;
  if (path === CHANGES_PATH) {
    if (upkeep.changefeed) return handleChanges(request, upkeep.ledger, upkeep.changefeed);
    return new Response(
      JSON.stringify({
        error: "changefeed_off",
        message: "the changefeed is off; pass createUpkeep({ changefeed: { authorize } }) to serve it",
      }),
      { status: 404, headers: { "content-type": "application/json" } },
    );
  }
  if (path === WIRE.turboScriptPath) return javascript(await staticFile(turboPath));
  if (path.startsWith(WIRE.clientPath)) {
    const name = path.slice(WIRE.clientPath.length);
    const module = /^([a-z0-9-]+)\.(js|ts)$/.exec(name);
    if (!module || module[1]?.endsWith("test")) return new Response("not found", { status: 404 });
    const source = await clientModule(module[1] as string);
    return source === null ? new Response("not found", { status: 404 }) : javascript(source);
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
