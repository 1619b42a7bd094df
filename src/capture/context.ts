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
  queries: QueryDependency[];
  /** Ambient inputs the render read: `cookie:<name>`, `header:<lower-name>`, `session:<key>`, `user`, … */
  inputs: Map<string, string | null>;
  refusals: RefusedBoundaryError[];
}

const storage = new AsyncLocalStorage<PageCapture>();

export function createCapture(url: string, renderOffset = 0): PageCapture {
  return { url, renderOffset, queries: [], inputs: new Map(), refusals: [] };
}

/** Runs fn with capture as the current capture (for everything fn awaits, too). */
export function runWithCapture<T>(capture: PageCapture, fn: () => T): T {
  return storage.run(capture, fn);
}

/** Runs fn outside any capture (Upkeep's own bookkeeping queries). */
export function runWithoutCapture<T>(fn: () => T): T {
  return storage.exit(fn);
}

export function currentCapture(): PageCapture | undefined {
  return storage.getStore();
}

/** Records an ambient input the render read. The first value read wins (a render sees one request). */
export function recordInput(name: string, value: string | null): void {
  const capture = storage.getStore();
  if (capture && !capture.inputs.has(name)) capture.inputs.set(name, value);
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
