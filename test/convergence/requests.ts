// What a browser requests of a live page, for the oracle's subscribers (clients.ts): the GET that opens it (an HTML
// page with its live marker, a live JSON resource with its headers, an Inertia visit with its deferred props loaded
// right after), a partial reload, and the fresh request by the same viewer a settled page is compared with — every
// result canonical, so that two equal renderings compare equal.
import { WIRE } from "../../src/constants.ts";
import { normalizeBody } from "../../src/testing/dom.ts";
import type { PageSpec } from "./clients.ts";
import { http } from "./world.ts";

export type Props = Record<string, unknown>;

/** Who requests: the viewer's cookie headers and the server. */
export interface Requester {
  readonly base: string;
  headers(extra?: Record<string, string>): Record<string, string>;
}

/** Called with every response text: the isolation check. */
export type Check = (text: string, where: string) => void;

/** What a GET gives a page: its state and its subscription. */
export interface Loaded {
  token: string;
  offset: number;
  incarnation: string;
  html?: string;
  props?: Props;
  component?: string;
  value?: unknown;
}

/** JSON with sorted keys: two values print equal exactly when they are deeply equal. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v as object)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

function markerAttribute(html: string, name: string): string {
  const found = new RegExp(`<${WIRE.streamSourceTag}\\b[^>]*\\b${name}="([^"]*)"`).exec(html);
  if (!found) throw new Error(`the page has no live marker (${WIRE.streamSourceTag}): ${html.slice(0, 1500)}`);
  return found[1]!.replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

/** The GET that opens a page, as a browser makes it. */
export async function load(browser: Requester, spec: PageSpec, check: Check): Promise<Loaded> {
  if (spec.kind === "html") {
    const response = await http(browser.base + spec.url, { headers: browser.headers({ accept: "text/html" }) });
    if (response.status !== 200) throw new Error(`GET ${spec.url} answered ${response.status}: ${response.text}`);
    check(response.text, "its GET");
    return {
      html: response.text,
      token: markerAttribute(response.text, WIRE.tokenAttr),
      offset: Number(markerAttribute(response.text, WIRE.offsetAttr)),
      incarnation: markerAttribute(response.text, WIRE.incarnationAttr),
    };
  }
  if (spec.kind === "json") {
    const response = await http(browser.base + spec.url, {
      headers: browser.headers({ accept: "application/json", [WIRE.liveHeader]: "1" }),
    });
    if (response.status !== 200) throw new Error(`GET ${spec.url} answered ${response.status}: ${response.text}`);
    check(response.text, "its GET");
    const token = response.headers[WIRE.tokenHeader];
    if (!token) throw new Error(`the JSON resource ${spec.url} is not live (no ${WIRE.tokenHeader})`);
    return {
      value: JSON.parse(response.text),
      token,
      offset: Number(response.headers[WIRE.offsetHeader]),
      incarnation: response.headers[WIRE.incarnationHeader] ?? "",
    };
  }
  const page = await inertiaVisit(browser, spec.url, check);
  const live = page.upkeep as { token: string; offset: number; incarnation: string } | undefined;
  if (!live) throw new Error(`the Inertia page ${spec.url} is not live (no "${WIRE.pageKey}" key)`);
  return { props: page.props, component: page.component, ...live };
}

/** A partial reload of an Inertia page's props (the page's own, or the ones the server names). */
export async function partialReload(
  browser: Requester,
  url: string,
  component: string,
  only: string[],
  check: Check,
): Promise<Props> {
  const response = await http(browser.base + url, {
    headers: browser.headers({
      accept: "text/html, application/xhtml+xml",
      "x-inertia": "true",
      "x-inertia-version": "1",
      "x-inertia-partial-component": component,
      "x-inertia-partial-data": only.join(","),
    }),
  });
  check(response.text, "a partial reload");
  return (JSON.parse(response.text) as { props: Props }).props;
}

/** What a fresh request of the same URL by the same viewer shows now, canonical. */
export async function fresh(browser: Requester, spec: PageSpec): Promise<string> {
  if (spec.kind === "html") {
    const response = await http(browser.base + spec.url, { headers: browser.headers({ accept: "text/html" }) });
    return normalizeBody(response.text);
  }
  if (spec.kind === "json") {
    const response = await http(browser.base + spec.url, {
      headers: browser.headers({ accept: "application/json", [WIRE.liveHeader]: "1" }),
    });
    return canonical(JSON.parse(response.text));
  }
  return canonical((await inertiaVisit(browser, spec.url, () => {})).props);
}

/** An Inertia visit as the client makes it, with the deferred props loaded right after (one partial reload per
 *  group, as @inertiajs/core does). */
async function inertiaVisit(
  browser: Requester,
  url: string,
  check: Check,
): Promise<{ component: string; props: Props; upkeep?: unknown }> {
  const headers = browser.headers({ accept: "text/html, application/xhtml+xml", "x-inertia": "true" });
  const response = await http(browser.base + url, { headers });
  if (response.status !== 200) throw new Error(`Inertia visit of ${url} answered ${response.status}: ${response.text}`);
  check(response.text, "its visit");
  const page = JSON.parse(response.text) as {
    component: string;
    props: Props;
    upkeep?: unknown;
    deferredProps?: Record<string, string[]>;
  };
  for (const names of Object.values(page.deferredProps ?? {})) {
    const partial = await http(browser.base + url, {
      headers: {
        ...headers,
        "x-inertia-version": "1",
        "x-inertia-partial-component": page.component,
        "x-inertia-partial-data": names.join(","),
      },
    });
    check(partial.text, "a deferred props load");
    page.props = { ...page.props, ...(JSON.parse(partial.text) as { props: Props }).props };
  }
  return page;
}
