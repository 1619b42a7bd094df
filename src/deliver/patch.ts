// Patches: what a subscriber is sent for a group's latest render, the digests and origins that decide it, and the
// catch-up that decides whether a newly registered render is already stale.
import { createHash } from "node:crypto";
import type { QueryDependency } from "../analysis/types.ts";
import type { Fact, Ledger } from "../ledger/types.ts";
import { affects } from "../plan/planner.ts";
import type { PageGroup } from "../register/registry.ts";
import { narrowBodyPatch } from "../render/diff.ts";
import { titleOf } from "../render/page.ts";

/** A short digest of a rendered page's HTML (tokens carry it; see deliver()). */
export function digestOf(html: string): string {
  return createHash("sha256").update(html).digest("base64url").slice(0, 22);
}

/** The digest of the group's latest render, computed once per render. */
export function htmlDigest(group: PageGroup): string | null {
  if (group.page === null) return null;
  if (group.local.htmlDigest === null) group.local.htmlDigest = digestOf(group.page.text);
  return group.local.htmlDigest;
}

/** The narrowed stream for a browser showing `before` ("" when nothing changed), or null for the whole body. */
export function narrowPatch(before: string, after: string): string | null {
  if (before === after) return "";
  const body = narrowBodyPatch(before, after);
  if (body === null) return null;
  const title = titleOf(after);
  const titleChanged = title !== null && title !== titleOf(before);
  return titleChanged
    ? `${body}<turbo-stream action="update" targets="head > title"><template>${title}</template></turbo-stream>`
    : body;
}

/**
 * The origin a page's replays run against: the GET's own (scheme and host as the app saw them), which the token
 * carries. A subscriber's Host header never chooses it, so one token cannot fan out into many page groups, and a
 * page served over TLS is replayed as https. Tokens signed before origins were bound fall back to the Host.
 */
export function originOf(claims: { origin?: string }, headers: Record<string, string>): string {
  if (claims.origin !== undefined) return claims.origin;
  return headers.host ? `http://${headers.host}` : "http://localhost";
}

/**
 * Whether a fact in (from, to] may affect `deps`: the catch-up of a page registered after the planner had already
 * planned those facts against its previous reads (see hub.ts, step 2). Stops early when `stillCurrent` turns false
 * (the group became dirty anyway, or was rendered again).
 */
export async function affectedBetween(
  ledger: Pick<Ledger, "read" | "incarnation">,
  deps: QueryDependency[],
  from: number,
  to: number,
  stillCurrent: () => boolean,
): Promise<boolean> {
  let after = from;
  while (after < to && stillCurrent()) {
    const facts = await ledger.read(after, { incarnation: ledger.incarnation });
    if (facts.length === 0) return false;
    for (const fact of facts) {
      if (fact.offset > to) return false;
      if (affects(deps, fact)) return true;
    }
    after = (facts[facts.length - 1] as Fact).offset;
  }
  return false;
}
