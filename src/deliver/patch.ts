// Patches: what a subscriber is sent for a group's latest render, the digests and origins that decide it, and
// handing it to the subscriber's connection.
import { createHash } from "node:crypto";
import type { PageText } from "../register/page-text.ts";
import type { PageGroup, Subscriber } from "../register/registry.ts";
import { narrowBodyPatch } from "../render/diff.ts";
import { pageStream, titleOf } from "../render/page.ts";
import type { HubStats } from "./stats.ts";
import type { ServerMessage } from "./types.ts";

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
 * Send the group's latest render to every subscriber whose page is older than it (behind the group's offset, or known
 * to show another version of it): narrowed to the elements that changed when the subscriber's HTML is known exactly
 * (render/diff.ts), the whole-body morph otherwise. A subscriber whose page already shows identical HTML gets no
 * message.
 */
export function deliverLatest(group: PageGroup, stats: HubStats, frames?: { before: PageText; actions: string }): void {
  const latest = group.page;
  if (latest === null) return;
  let full: string | null = null;
  const narrowed = new Map<PageText, string | null>();
  for (const subscriber of group.local.subscribers) {
    const surface = subscriber.surface;
    // A page at the group's offset is up to date unless the version it is known to show is not the latest.
    if (subscriber.offset >= group.renderOffset && (surface === null || surface === latest)) continue;
    let html: string | null = null;
    // A page showing the version the frames were patched from gets the frames' patch.
    if (frames && surface === frames.before) html = frames.actions;
    else if (surface !== null) {
      if (!narrowed.has(surface)) narrowed.set(surface, narrowPatch(surface.text, latest.text));
      html = narrowed.get(surface) ?? null;
    }
    if (html === null) {
      stats.deoptimizations[surface === null ? "html_not_known" : "change_not_covered_by_id"]++;
      html = full ??= pageStream(latest.text);
    }
    subscriber.offset = group.renderOffset;
    subscriber.surface = latest;
    if (html === "") continue;
    sendTo(subscriber, { type: "patch", id: subscriber.id, offset: group.renderOffset, html }, stats);
  }
}

/**
 * Hands a message to a subscriber's connection; patches are counted only when an open connection took them (a data
 * message's `bytes`, its payload's JSON length, are counted by its sender, which measures it once per group).
 */
export function sendTo(subscriber: Subscriber, message: ServerMessage, stats: HubStats, bytes = 0): boolean {
  const sent = subscriber.sink.send(message);
  if (sent && message.type === "patch") {
    stats.messages++;
    stats.bytes += Buffer.byteLength(message.html);
  } else if (sent && (message.type === "props" || message.type === "value")) {
    stats.messages++;
    stats.bytes += bytes;
  }
  return sent;
}
