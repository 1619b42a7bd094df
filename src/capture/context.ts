// The request context of a captured GET: which reads the render made and which ambient inputs it looked at.
//
// A PageCapture is opened per HTML GET (by the web adapter) and made current with runWithCapture; every query
// executed through the capturing dialect while it is current is analysed and recorded on it, and every ambient
// input read through the request context is recorded with recordInput.
//
// Identity: the recorded `cookie:<name>` and `header:<lower-name>` inputs form the page's identity signature
// (deriveIdentity). Inputs not carried by the request headers — `session:<key>`, `user` — are derived by the
// application from a cookie or header (a session id cookie, an Authorization header). Whoever reads them must
// also record the cookie or header they came from, so that the signature, which is re-derived from a connecting
// request's headers alone, partitions by them. The web adapter does this for its session and user helpers.

import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import type { QueryDependency } from "../analysis/types.ts";
import type { RefusedBoundaryError } from "../errors.ts";

export interface PageCapture {
  url: string;
  /** The ledger head recorded before the first read (goes into the page's live marker). */
  renderOffset: number;
  /** The ledger incarnation renderOffset belongs to, taken with it: a render that started before the hub moved to
   *  another incarnation is not registered (its offset means nothing there) and its page reloads. */
  incarnation?: string;
  /** Every read of the render, whichever frame made it. */
  queries: QueryDependency[];
  /** Ambient inputs the render read: `cookie:<name>`, `header:<lower-name>`, `session:<key>`, `user`, … */
  inputs: Map<string, string | null>;
  refusals: RefusedBoundaryError[];
  /** The page frame: the root of the render's frame tree (render/frames.ts adds the others). */
  root: FrameCapture;
  /** The request headers (lower-case names) the render may read through `cookie()` / `header()` of `upkeep`. */
  headers: ((name: string) => string | null) | null;
  /** Data mode: the response is a data document (an Inertia page object, a JSON resource), set by the adapter
   *  that made it; the web adapter registers it instead of HTML. */
  data: { doc: DataDocumentLike; partial: boolean; respond(marker: unknown): Promise<Response> } | null;
}

/** What capture needs to know of a data document (render/data.ts defines it). */
export interface DataDocumentLike {
  readonly kind: "inertia" | "json";
}

/**
 * Frames: the parts of a response with their own reads, inputs and replay recipe. The page frame is the root;
 * a fragment (`partial`) or a collection render site opens a child frame while it renders, so every read and every
 * input is recorded on the frame that was current when it was made. Inputs are recorded on the frame and on every
 * ancestor, since an ancestor's output contains its descendants' (an identity signature must cover them).
 */
export type FrameKind = "page" | "fragment" | "collection" | "member" | "prop";

/** How a frame is rendered again without its parent (defined in render/frames.ts). */
export interface FrameRecipe {
  /** What the frame renders from, whoever views it: the frame's shape and props, never an input's value. */
  readonly key: string;
}

export interface FrameCapture {
  readonly kind: FrameKind;
  /** The id of the frame's root element ("" for the page frame). */
  id: string;
  readonly parent: FrameCapture | null;
  readonly page: PageCapture;
  /** Reads made while this frame was current (not its children's). */
  readonly queries: QueryDependency[];
  /** Names of the inputs read by this frame and its descendants. */
  readonly inputs: Set<string>;
  /** Names of the inputs read while this frame itself was current (not its descendants). */
  readonly ownInputs: Set<string>;
  readonly children: FrameCapture[];
  recipe: FrameRecipe | null;
  /** The frame's rendered outer HTML ("" for the page frame, whose HTML is the response). */
  html: string;
  /** Set when the frame cannot be replayed on its own: its reads count as its parent's (see render/frames.ts). */
  folded: boolean;
}

const storage = new AsyncLocalStorage<FrameCapture>();

export function createCapture(url: string, renderOffset = 0): PageCapture {
  const page = { url, renderOffset, queries: [], inputs: new Map(), refusals: [], headers: null, data: null } as Omit<
    PageCapture,
    "root"
  > as PageCapture;
  page.root = newFrame("page", "", null, page);
  return page;
}

function newFrame(kind: FrameKind, id: string, parent: FrameCapture | null, page: PageCapture): FrameCapture {
  return {
    kind,
    id,
    parent,
    page,
    queries: [],
    inputs: new Set(),
    ownInputs: new Set(),
    children: [],
    recipe: null,
    html: "",
    folded: false,
  };
}

/** Opens a child frame of `parent` (it becomes current inside runInFrame). */
export function openFrame(kind: Exclude<FrameKind, "page">, parent: FrameCapture): FrameCapture {
  const frame = newFrame(kind, "", parent, parent.page);
  parent.children.push(frame);
  return frame;
}

/** Runs fn with capture as the current capture (for everything fn awaits, too). */
export function runWithCapture<T>(capture: PageCapture, fn: () => T): T {
  return storage.run(capture.root, fn);
}

/** Runs fn with `frame` current: the reads and inputs of fn (and of everything it awaits) are the frame's. */
export function runInFrame<T>(frame: FrameCapture, fn: () => T): T {
  return storage.run(frame, fn);
}

/** Runs fn outside any capture (Upkeep's own bookkeeping queries). */
export function runWithoutCapture<T>(fn: () => T): T {
  return storage.exit(fn);
}

export function currentCapture(): PageCapture | undefined {
  return storage.getStore()?.page;
}

/** The frame current in this async context (undefined outside a capture). */
export function currentFrame(): FrameCapture | undefined {
  return storage.getStore();
}

/** Records an ambient input the render read. The first value read wins (a render sees one request). */
export function recordInput(name: string, value: string | null): void {
  const frame = storage.getStore();
  if (!frame) return;
  if (!frame.page.inputs.has(name)) frame.page.inputs.set(name, value);
  frame.ownInputs.add(name);
  for (let f: FrameCapture | null = frame; f && !f.inputs.has(name); f = f.parent) f.inputs.add(name);
}

/**
 * The headers of the request an adapter is serving, on every request, live or not (a POST, a GET asking for JSON):
 * `cookie()` and `header()` read them where no capture is current. Reading works on every request; recording what
 * was read as an input is what a capture adds.
 */
const requests = new AsyncLocalStorage<(name: string) => string | null>();

/** Runs fn (and everything it awaits) as the handling of a request whose headers `rawHeader` reads (lower-case). */
export function runWithRequest<T>(rawHeader: (name: string) => string | null, fn: () => T): T {
  return requests.run(rawHeader, fn);
}

/** A header of the request being rendered or served: a capture's own request first (a replay's is not the
 *  request of the context that started it), else the request the adapter is serving; null when there is none. */
function requestHeader(name: string): string | null {
  const read = storage.getStore()?.page.headers ?? requests.getStore();
  return read?.(name) ?? null;
}

/** Reads a cookie of the request being rendered or served, as an input of the current frame when one is being
 *  captured (undefined when absent or outside any request). Works in fragments replayed without their page, from
 *  the headers the replay recorded. */
export function cookie(name: string): string | undefined {
  const value = parseCookies(requestHeader("cookie") ?? "").get(name);
  recordInput(`cookie:${name}`, value ?? null);
  return value;
}

/** Reads a header of the request being rendered or served, as an input of the current frame when one is captured. */
export function header(name: string): string | undefined {
  const lower = name.toLowerCase();
  const value = requestHeader(lower);
  recordInput(`header:${lower}`, value);
  return value ?? undefined;
}

/** True for inputs whose values can be re-derived from a request's headers. */
export function isHeaderDerivable(name: string): boolean {
  return name.startsWith("cookie:") || name.startsWith("header:");
}

/** SHA-256 of nothing: the identity signature of a page that read no identity input. */
export const ANONYMOUS_IDENTITY = createHash("sha256").update("").digest("hex");

/**
 * Re-derives the values of the header-derivable inputs among `inputNames` from a request's headers and returns
 * them with their identity digest. Names that are not derivable (session:, user) are skipped: they are covered
 * by the cookie or header they were derived from (see the module comment).
 */
export function deriveIdentity(
  inputNames: string[],
  headers: Record<string, string>,
): { digest: string; values: Map<string, string | null> } {
  // Most pages read no identity input: they share the anonymous signature without hashing anything.
  if (inputNames.length === 0) return { digest: ANONYMOUS_IDENTITY, values: new Map() };
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(headers)) lower.set(k.toLowerCase(), v);
  const cookies = parseCookies(lower.get("cookie") ?? "");
  const values = new Map<string, string | null>();
  for (const name of inputNames) {
    if (name.startsWith("cookie:")) values.set(name, cookies.get(name.slice("cookie:".length)) ?? null);
    else if (name.startsWith("header:"))
      values.set(name, lower.get(name.slice("header:".length).toLowerCase()) ?? null);
  }
  return { digest: identityDigest(values), values };
}

/** The identity digest of recorded inputs (only header-derivable ones count). Equal to deriveIdentity's digest
 *  for a request carrying the same cookie and header values. */
export function identityDigest(inputs: Map<string, string | null>): string {
  const names = [...inputs.keys()].filter(isHeaderDerivable).sort();
  const hash = createHash("sha256");
  // Each pair is length-prefixed so that no two different sets of pairs encode to the same bytes; null (absent)
  // is distinct from the empty string. No pairs hash nothing: ANONYMOUS_IDENTITY.
  for (const name of names) {
    const value = inputs.get(name) ?? null;
    hash.update(`${name.length}:${name}`);
    hash.update(value === null ? "-" : `${Buffer.byteLength(value)}:${value}`);
  }
  return hash.digest("hex");
}

/** Parses a Cookie header like Hono's getCookie: the first occurrence of a name wins, surrounding double quotes
 *  are removed, and percent-encoded values are decoded. */
export function parseCookies(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || out.has(name)) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.includes("%")) {
      try {
        value = decodeURIComponent(value);
      } catch {
        // keep the raw value, as Hono does
      }
    }
    out.set(name, value);
  }
  return out;
}
