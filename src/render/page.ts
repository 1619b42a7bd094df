// Page frames: the whole <body> of a page, replayed by running its GET through the application again with the
// viewer's inputs. Every live page has this frame, so every page has a correct (if broad) fallback.

import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import type { PageCapture } from "../capture/context.ts";
import { WIRE } from "../constants.ts";
import type { DataDocument } from "./data.ts";

/** What a replayed GET produced, handed from the middleware back to the renderer. */
export interface ReplayResult {
  status: number;
  html: string;
  capture: PageCapture | null;
  /** Data mode: the document the replay produced (render/data.ts). */
  doc?: DataDocument;
}

/** Data mode: what a replay of a data page asks for. */
export interface DataReplay {
  kind: "inertia" | "json";
  /** Inertia: the page's component and asset version (a changed version answers 409: the browser visits). */
  component?: string;
  version?: string;
  /** Evaluate only these props (an Inertia partial reload). */
  only?: string[];
  /** Evaluate these props too, although a first visit would defer them (the browsers of the group hold them). */
  include?: string[];
}

export interface ReplaySlot {
  result: ReplayResult | null;
  data?: DataReplay;
}

const replaySlots = new AsyncLocalStorage<ReplaySlot>();

/** The replay in progress, if the current request is one (set by `replayPage`, read by the middleware). */
export function currentReplay(): ReplaySlot | undefined {
  return replaySlots.getStore();
}

/**
 * Replays that leave the process's async context — a Node listener's replay goes over a loopback connection
 * (web/inject.ts) — carry a random id in this header; the middleware finds the replay by it. An id is valid only
 * while its replay runs, and it is 128 random bits, so a client cannot forge one.
 */
export const REPLAY_HEADER = "upkeep-replay";
const lent = new Map<string, ReplaySlot>();

/** Lends the current replay to a request that leaves the async context: the id its REPLAY_HEADER carries. */
export function lendReplay(): { id: string; done(): void } | null {
  const slot = replaySlots.getStore();
  if (!slot) return null;
  const id = randomBytes(16).toString("hex");
  lent.set(id, slot);
  return { id, done: () => lent.delete(id) };
}

/**
 * The replay a request belongs to: the one its REPLAY_HEADER names, else the current one. A request that names a
 * replay has left the replay's async context, so the context it runs in says nothing about it: the header wins.
 */
export function replayOf(header: string | null | undefined): ReplaySlot | undefined {
  return header ? lent.get(header) : replaySlots.getStore();
}

export type FetchApp = { fetch(request: Request): Response | Promise<Response> };

/** Headers a browser sends for the transport, not for the page: never passed to a replayed GET. */
const TRANSPORT_HEADERS = new Set([
  "upkeep-replay",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "last-event-id",
  "cache-control",
  "pragma",
  "content-length",
]);

export function replayHeaders(headers: Record<string, string>, data?: DataReplay): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (!TRANSPORT_HEADERS.has(name.toLowerCase())) out.set(name, value);
  }
  out.set("accept", "text/html");
  if (data?.kind === "json") {
    out.set("accept", "application/json");
    out.set(WIRE.liveHeader, "1");
  } else if (data?.kind === "inertia") {
    out.set("x-inertia", "true");
    if (data.version) out.set("x-inertia-version", data.version);
    if (data.only && data.component !== undefined) {
      out.set("x-inertia-partial-component", data.component);
      out.set("x-inertia-partial-data", data.only.join(","));
    }
  }
  return out;
}

/**
 * Run the page's GET again through the app. The request never leaves the process: the middleware recognises
 * the replay through the async context (not a header, which a client could forge) and hands back the capture.
 */
export async function replayPage(
  app: FetchApp,
  origin: string,
  url: string,
  headers: Record<string, string>,
  data?: DataReplay,
) {
  const slot: ReplaySlot = { result: null, ...(data ? { data } : {}) };
  const response = await replaySlots.run(slot, () =>
    app.fetch(new Request(new URL(url, origin), { headers: replayHeaders(headers, data) })),
  );
  if (slot.result) return slot.result;
  return { status: response.status, html: await response.text(), capture: null } satisfies ReplayResult;
}

const BODY = /<body\b[^>]*>([\s\S]*)<\/body\s*>/i;
const TITLE = /<title\b[^>]*>([\s\S]*?)<\/title\s*>/i;

/** The inner HTML of <body> (the whole document when it has no body tag). */
export function bodyHtml(html: string): string {
  return BODY.exec(html)?.[1] ?? html;
}

export function titleOf(html: string): string | null {
  return TITLE.exec(html)?.[1] ?? null;
}

/** Insert the live marker (and the client script) at the end of <body>. */
export function injectMarker(html: string, marker: string): string {
  const at = html.search(/<\/body\s*>/i);
  return at < 0 ? html + marker : html.slice(0, at) + marker + html.slice(at);
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text as HTML (as hono escapes a string child). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

/** A value for a double-quoted HTML attribute. */
export function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
}

export function liveMarker(attributes: { id: string; token: string; offset: number; incarnation: string }): string {
  const a = escapeAttribute;
  return (
    `<${WIRE.streamSourceTag} id="${a(attributes.id)}" data-turbo-permanent ${WIRE.tokenAttr}="${a(attributes.token)}"` +
    ` ${WIRE.offsetAttr}="${attributes.offset}" ${WIRE.incarnationAttr}="${a(attributes.incarnation)}"></${WIRE.streamSourceTag}>` +
    `<script type="module" src="${WIRE.clientPath}index.js"></script>`
  );
}

/**
 * The Turbo Stream that brings a page's body (and title) to a new render. `update` with method="morph" keeps
 * focus, scroll and the permanent live marker; an element that did not change is not touched.
 */
export function pageStream(html: string): string {
  const title = titleOf(html);
  let out = `<turbo-stream action="update" method="morph" targets="body"><template>${bodyHtml(html)}</template></turbo-stream>`;
  if (title !== null)
    out += `<turbo-stream action="update" targets="head > title"><template>${title}</template></turbo-stream>`;
  return out;
}
