// Subscription tokens: the page's live marker carries a signed, expiring statement of what was rendered for whom.
// Format: base64url(JSON claims) + "." + base64url(HMAC-SHA256(secret, payload part)). The MAC is checked in
// constant time before the payload is parsed, so nothing an attacker controls reaches JSON.parse unverified.
import { createHmac, timingSafeEqual } from "node:crypto";
import { ConfigError, SubscriptionTokenError } from "../errors.ts";
import type { GroupToken, PageGroup } from "../register/registry.ts";
import { digestOf, htmlDigest } from "./patch.ts";

export interface TokenClaims {
  /** The page URL (path and query) the token subscribes to. */
  url: string;
  /** Identity signature (a digest of the ambient inputs the render read). */
  identity: string;
  /** Names of the ambient inputs the render read, e.g. "cookie:session"; re-read on subscribe. */
  inputs: string[];
  /** Ledger incarnation of `offset`. */
  incarnation: string;
  /** Ledger head recorded before the render's first read. */
  offset: number;
  /** Expiry, milliseconds since the epoch. */
  exp: number;
  /** Scheme and host of the GET (as the app saw it): replays run against it, whatever Host a subscriber sends. */
  origin?: string;
  /** Digest of the HTML the page was served with: lets the first patch be narrowed against exactly that HTML. */
  rendered?: string;
  /** Data mode: "inertia" or "json" (absent: an HTML page). */
  format?: "inertia" | "json";
  /** The tables the render read: a resume from `offset` is too old only below one of their horizons (absent: a
   *  token from before tables were recorded; every table's horizon applies). */
  tables?: string[];
}

/** Longest token accepted; anything longer is refused before any work is done. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const MAC_LENGTH = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function checkSecret(secret: string): void {
  if (typeof secret !== "string" || secret.length === 0) {
    throw new ConfigError(
      "The subscription token secret is empty.",
      "pass `secret` (a long random string, the same in every process serving the app) to createUpkeep()",
    );
  }
}

function mac(payload: string, secret: string): Buffer {
  return createHmac("sha256", secret).update(payload).digest();
}

export function signToken(claims: TokenClaims, secret: string): string {
  checkSecret(secret);
  const body: TokenClaims = {
    url: claims.url,
    identity: claims.identity,
    inputs: [...claims.inputs],
    incarnation: claims.incarnation,
    offset: claims.offset,
    exp: claims.exp,
    ...(claims.origin === undefined ? {} : { origin: claims.origin }),
    ...(claims.rendered === undefined ? {} : { rendered: claims.rendered }),
    ...(claims.format === undefined ? {} : { format: claims.format }),
    ...(claims.tables === undefined ? {} : { tables: [...claims.tables] }),
  };
  if (!isClaims(body)) {
    throw new ConfigError(
      `Cannot sign malformed token claims: ${JSON.stringify(body)}`,
      "claims need string url/identity/incarnation, string[] inputs, a non-negative integer offset and a numeric exp",
    );
  }
  const payload = Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
  return `${payload}.${mac(payload, secret).toString("base64url")}`;
}

/** Verifies and decodes a token. Throws SubscriptionTokenError (malformed / forged / expired); never anything else. */
export function verifyToken(token: string, secret: string, now: number = Date.now()): TokenClaims {
  checkSecret(secret);
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new SubscriptionTokenError("malformed", "the token is missing, not a string or too long");
  }
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".") || dot === token.length - 1) {
    throw new SubscriptionTokenError("malformed", "expected two base64url parts separated by one '.'");
  }
  const payload = token.slice(0, dot);
  const signature = token.slice(dot + 1);
  if (!BASE64URL.test(payload) || !BASE64URL.test(signature)) {
    throw new SubscriptionTokenError("malformed", "the token contains characters outside base64url");
  }
  const given = Buffer.from(signature, "base64url");
  // Length is not secret (every valid MAC is 32 bytes); only the comparison of equal-length MACs must be constant-time.
  // A non-canonical encoding (altered padding bits) decodes to the same bytes: refuse it so a token has one spelling.
  if (
    given.length !== MAC_LENGTH ||
    given.toString("base64url") !== signature ||
    !timingSafeEqual(given, mac(payload, secret))
  ) {
    throw new SubscriptionTokenError("forged", "the signature does not match the server's secret");
  }
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new SubscriptionTokenError("malformed", "the signed payload is not JSON");
  }
  if (!isClaims(claims)) {
    throw new SubscriptionTokenError("malformed", "the signed payload lacks the expected claims");
  }
  if (!(now < claims.exp)) {
    throw new SubscriptionTokenError("expired", `the token expired at ${new Date(claims.exp).toISOString()}`);
  }
  return claims;
}

function isClaims(value: unknown): value is TokenClaims {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c.url === "string" &&
    typeof c.identity === "string" &&
    typeof c.incarnation === "string" &&
    Array.isArray(c.inputs) &&
    c.inputs.every((i) => typeof i === "string") &&
    Number.isSafeInteger(c.offset) &&
    (c.offset as number) >= 0 &&
    typeof c.exp === "number" &&
    Number.isFinite(c.exp) &&
    (c.format === undefined || c.format === "inertia" || c.format === "json") &&
    (c.rendered === undefined || typeof c.rendered === "string") &&
    (c.tables === undefined || (Array.isArray(c.tables) && c.tables.every((t) => typeof t === "string"))) &&
    (c.origin === undefined || typeof c.origin === "string")
  );
}

/**
 * The token of a page rendered into `group` as `html` (the same HTML as the group's latest render, the common case,
 * reuses its digest: compared, not hashed).
 */
export function pageToken(
  group: PageGroup,
  claims: Omit<TokenClaims, "exp" | "rendered">,
  html: string,
  secret: string,
  ttlMs: number,
): string {
  const rendered = (html === group.page?.text ? htmlDigest(group) : null) ?? digestOf(html);
  return groupToken(group, { ...claims, rendered }, secret, ttlMs).value;
}

/**
 * The token for a page of `group` rendered with `claims`: pages of one group rendered at the same offset with the
 * same HTML get the same claims, so the group's last token is reused until half its lifetime has passed.
 */
export function groupToken(
  group: { local: { token: GroupToken | null } },
  claims: Omit<TokenClaims, "exp"> & { rendered: string },
  secret: string,
  ttlMs: number,
): GroupToken {
  const now = Date.now();
  const cached = group.local.token;
  const tables = claims.tables?.join("\0");
  if (
    cached &&
    cached.offset === claims.offset &&
    cached.rendered === claims.rendered &&
    cached.tables === tables &&
    cached.exp - now >= ttlMs / 2
  ) {
    return cached;
  }
  const exp = now + ttlMs;
  const value = signToken({ ...claims, exp }, secret);
  const token: GroupToken = { offset: claims.offset, exp, rendered: claims.rendered, value };
  if (tables !== undefined) token.tables = tables;
  group.local.token = token;
  return token;
}
