// `upkeep/testing`: helpers for users' own test suites. Render a page as a live subscriber, write, await
// settling, then compare the patched DOM with a fresh GET, and ask why a subscription did or did not react.

import type { MissReason } from "../analysis/types.ts";
import { WIRE } from "../constants.ts";
import type { ServerMessage } from "../deliver/types.ts";
import type { Fact } from "../ledger/types.ts";
import type { GroupFrame, PageGroup } from "../register/registry.ts";
import type { FetchApp } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";
import { normalizeBody, PatchedDocument } from "./dom.ts";

export { freshJson, freshProps, type LiveData, openLiveProps, openLiveResource } from "./data.ts";
export { normalizeBody, PatchedDocument };

export interface LivePageOptions {
  /** Request headers of the viewer (cookies, accept-language …), used for the GET and the subscription. */
  headers?: Record<string, string>;
}

export interface LivePage {
  readonly url: string;
  /** Every message the subscription received, in order. */
  readonly messages: ServerMessage[];
  /** The offset the page shows (render offset, then each applied patch's). */
  readonly offset: number;
  /** Normalised body of the initial HTML with every delivered patch applied. */
  body(): string;
  /** True when the server told the page to reload (it could not be brought up to date by patches). */
  readonly reloaded: boolean;
  close(): void;
}

function attribute(html: string, name: string): string {
  const marker = new RegExp(`<${WIRE.streamSourceTag}\\b[^>]*\\b${name}="([^"]*)"`).exec(html);
  if (!marker) throw new Error(`the page has no live marker (${WIRE.streamSourceTag}): is it live?`);
  return marker[1]!.replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

/** GET the page through the app (with the upkeep middleware installed) and subscribe to it in-process. */
export async function openLivePage(
  upkeep: Upkeep,
  app: FetchApp,
  url: string,
  options: LivePageOptions = {},
): Promise<LivePage> {
  upkeep.use(app);
  const headers = { host: "localhost", accept: "text/html", ...lower(options.headers ?? {}) };
  const response = await app.fetch(new Request(new URL(url, "http://localhost"), { headers }));
  const html = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${html.slice(0, 500)}`);
  const document = new PatchedDocument(html);
  const messages: ServerMessage[] = [];
  let offset = Number(attribute(html, WIRE.offsetAttr));
  let reloaded = false;
  const id = `test_${Math.random().toString(36).slice(2)}`;
  const unsubscribe = await upkeep.hub.subscribe(
    {
      id,
      token: attribute(html, WIRE.tokenAttr),
      offset,
      incarnation: attribute(html, WIRE.incarnationAttr),
      headers,
    },
    {
      send(message) {
        messages.push(message);
        if (message.type === "patch") {
          document.apply(message.html);
          offset = message.offset;
        } else if (message.type === "reload") {
          reloaded = true;
        }
        return true;
      },
    },
  );
  return {
    url,
    messages,
    get offset() {
      return offset;
    },
    get reloaded() {
      return reloaded;
    },
    body: () => normalizeBody(document.body()),
    close: unsubscribe,
  };
}

/** The normalised body of a fresh GET of the page by the same viewer. */
export async function freshBody(app: FetchApp, url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await app.fetch(
    new Request(new URL(url, "http://localhost"), {
      headers: { host: "localhost", accept: "text/html", ...lower(headers) },
    }),
  );
  return normalizeBody(await response.text());
}

/** A page group as a match report names it. */
export interface PageRef {
  url: string;
  /** The identity signature (digest of the ambient inputs the render read). */
  identity: string;
  subscribers: number;
}

/** A frame of a page as a match report names it. */
export interface FrameRef {
  /** "page", "fragment", "collection" or "member". */
  kind: string;
  /** The id of the frame's element ("" for the page frame). */
  id: string;
  /** The partial that renders it (fragments and members) or its members (collections). */
  partial?: string;
}

export interface MatchExplanation {
  /** Frames the reverse index offered for the fact, with their pages. */
  candidates: Array<{ page: PageRef; frame: FrameRef }>;
  /** Frames whose own reads the fact can affect: these react (a frame inside one that reacts is rendered with it). */
  matched: Array<{ page: PageRef; frame: FrameRef; why: string }>;
  /** Every other registered frame, with the reason the fact cannot affect it. */
  misses: Array<{ page: PageRef; frame: FrameRef; reason: MissReason }>;
  /** Set when no frame matched. */
  reason?: "no_matching_subscriber";
}

/** Why each registered frame of each page did or did not react to a fact: candidates, matches and miss reasons. */
export function explain(upkeep: Upkeep, fact: Pick<Fact, "table" | "op" | "old" | "new">): MatchExplanation {
  const report = upkeep.hub.explain(fact as Fact);
  const page = (group: PageGroup): PageRef => ({
    url: group.url,
    identity: group.identity,
    subscribers: group.local.subscribers.size,
  });
  const frame = (f: GroupFrame): FrameRef => {
    const recipe = f.recipe;
    const partial =
      recipe?.kind === "fragment"
        ? recipe.partial.partialName
        : recipe?.kind === "member"
          ? recipe.collection.item.partialName
          : recipe?.kind === "collection"
            ? recipe.item.partialName
            : undefined;
    return { kind: f.kind, id: f.id, ...(partial ? { partial } : {}) };
  };
  return {
    candidates: report.candidates.map((f) => ({ page: page(f.group), frame: frame(f) })),
    matched: report.matched.map((f) => ({ page: page(f.group), frame: frame(f), why: report.why.get(f) ?? "" })),
    misses: report.misses.map((m) => ({ page: page(m.subject.group), frame: frame(m.subject), reason: m.reason })),
    ...(report.reason ? { reason: report.reason } : {}),
  };
}

function lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}
