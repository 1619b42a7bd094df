// `upkeep/inertia`: the Inertia protocol (v3, as `@inertiajs/core` speaks it) for Hono, with every prop live.
//
//   const inertia = createInertia({ version: "1", html: (page) => `<!doctype html>…<body>${page}</body></html>` });
//   app.use(upkeepMiddleware(upkeep));
//   app.get("/boards/:id", (c) => inertia.render(c, "Board", { board: () => …, cards: async () => … }));
//
// The first visit answers the HTML shell with the page object in `<script data-page="app" type="application/json">`;
// `X-Inertia` visits answer the page object as JSON; partial reloads (`X-Inertia-Partial-Component`, `-Data`,
// `-Except`) evaluate only the props asked for; a stale asset version answers 409 with `X-Inertia-Location`.
//
// Each prop is evaluated in a frame of its own (kind "prop"): the reads and inputs of its function are its own, so a
// write that affects one prop evaluates that prop again, alone, with each viewer's inputs (deliver/data.ts). Put a
// prop's work inside its function: the handler's own reads belong to the page, and a write to them replays the page.

import type { Context } from "hono";
import { currentFrame, openFrame, runInFrame } from "../capture/context.ts";
import { WIRE } from "../constants.ts";
import { ConfigError } from "../errors.ts";
import { rawHeader } from "../hono/index.ts";
import type { DataDocument } from "../render/data.ts";
import type { PropRecipe } from "../render/frames.ts";
import { currentReplay } from "../render/page.ts";

/** A prop's value (plain data), or a function of the request's context that computes it (sync or async). */
export type PropSource<T = unknown> =
  | ((c: Context) => T | Promise<T>)
  | string
  | number
  | boolean
  | null
  | readonly unknown[]
  | { readonly [key: string]: unknown };

type PropKind = "defer" | "optional" | "always" | "reloadOnly";

/** A prop with a rule for when it is evaluated (see defer, optional, always, reloadOnly). */
export class InertiaProp<T = unknown> {
  readonly kind: PropKind;
  readonly source: PropSource<T>;
  readonly group: string;
  constructor(kind: PropKind, source: PropSource<T>, group = "default") {
    this.kind = kind;
    this.source = source;
    this.group = group;
  }
}

/** Left out of the first visit; the client loads it right after (grouped by `group` into one request). */
export function defer<T>(source: PropSource<T>, group = "default"): InertiaProp<T> {
  return new InertiaProp("defer", source, group);
}
/** Only evaluated when a partial reload asks for it. */
export function optional<T>(source: PropSource<T>): InertiaProp<T> {
  return new InertiaProp("optional", source);
}
/** Evaluated on every visit, partial reloads included. */
export function always<T>(source: PropSource<T>): InertiaProp<T> {
  return new InertiaProp("always", source);
}
/** Live, but never pushed: when it changes, browsers fetch it with a partial reload of their own (for large or
 *  sensitive values you want fetched through your own route). */
export function reloadOnly<T>(source: PropSource<T>): InertiaProp<T> {
  return new InertiaProp("reloadOnly", source);
}

export interface InertiaOptions {
  /** The asset version: a visit made with another one answers 409 and the browser loads the page anew. */
  version?: string | (() => string);
  /** The HTML document of a first visit; `page` is the markup Inertia mounts from (the page object and its root). */
  html: (page: string, c: Context) => string | Promise<string>;
  /** Props of every page: values, or functions of the request's context. A page's own prop of the same name wins. */
  share?: Record<string, PropSource | InertiaProp>;
  /** The root element's id (default "app", as createInertiaApp expects). */
  id?: string;
}

export interface Inertia {
  /** Answers an Inertia visit of `component` with `props`. */
  render(c: Context, component: string, props?: Record<string, PropSource | InertiaProp>): Promise<Response>;
  /** Redirects after a form: 303 after a non-GET (so the browser follows with a GET), 302 otherwise. */
  redirect(c: Context, url: string): Response;
  /** Sends the browser to a URL outside the Inertia app (a full page load). */
  location(c: Context, url: string): Response;
}

function list(value: string | null): string[] | null {
  if (value === null) return null;
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** JSON safe inside a <script> element. */
function scriptJson(json: string): string {
  return json
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

function serialise(name: string, value: unknown): string {
  try {
    return JSON.stringify(value === undefined ? null : value) ?? "null";
  } catch (error) {
    throw new ConfigError(
      `The Inertia prop "${name}" cannot be sent as JSON: ${(error as Error).message}`,
      "return plain data from the prop (convert BigInt, Map, Set and class instances; break cycles)",
    );
  }
}

export function createInertia(options: InertiaOptions): Inertia {
  const id = options.id ?? "app";
  const versionOf = () => (typeof options.version === "function" ? options.version() : (options.version ?? ""));

  async function render(c: Context, component: string, pageProps: Record<string, PropSource | InertiaProp> = {}) {
    const header = (name: string) => rawHeader(c, name);
    const isInertia = header("x-inertia") === "true";
    const version = versionOf();
    const url = new URL(c.req.url);
    const pageUrl = url.pathname + url.search;
    const asked = header("x-inertia-version");
    if (c.req.method === "GET" && isInertia && asked !== null && asked !== version) {
      return new Response(null, { status: 409, headers: { "x-inertia-location": c.req.url } });
    }
    const partial = isInertia && header("x-inertia-partial-component") === component;
    const only = partial ? list(header("x-inertia-partial-data")) : null;
    const except = partial ? (list(header("x-inertia-partial-except")) ?? []) : [];
    const include = new Set(currentReplay()?.data?.include ?? []);

    const all: Record<string, PropSource | InertiaProp> = { errors: always({}), ...options.share, ...pageProps };
    const chosen: Array<[string, PropSource, boolean]> = [];
    const deferred: Record<string, string[]> = {};
    const skipped = new Set<string>();
    for (const [name, entry] of Object.entries(all)) {
      const rule = entry instanceof InertiaProp ? entry : null;
      const source = rule ? rule.source : (entry as PropSource);
      const reload = rule?.kind === "reloadOnly";
      if (rule?.kind === "always") chosen.push([name, source, reload]);
      else if (partial) {
        if ((only === null || only.includes(name)) && !except.includes(name)) chosen.push([name, source, reload]);
      } else if ((rule?.kind === "defer" || rule?.kind === "optional") && !include.has(name)) {
        skipped.add(name);
        if (rule.kind === "defer") {
          const group = deferred[rule.group] ?? [];
          group.push(name);
          deferred[rule.group] = group;
        }
      } else chosen.push([name, source, reload]);
    }

    // Each prop in a frame of its own (when the request is captured), evaluated concurrently.
    const parent = currentFrame();
    const values = await Promise.all(
      chosen.map(async ([name, source]) => {
        const evaluate = () => (typeof source === "function" ? (source as (c: Context) => unknown)(c) : source);
        if (!parent) return serialise(name, await evaluate());
        const frame = openFrame("prop", parent);
        frame.id = name;
        const recipe: PropRecipe = { kind: "prop", key: `prop:${name}`, name };
        frame.recipe = recipe;
        return serialise(name, await runInFrame(frame, evaluate));
      }),
    );
    const props = new Map(chosen.map(([name], i) => [name, values[i] as string]));
    const doc: DataDocument = {
      kind: "inertia",
      component,
      url: pageUrl,
      version,
      props,
      reloadOnly: new Set(chosen.filter(([, , reload]) => reload).map(([name]) => name)),
      skipped,
    };

    const respond = async (marker: unknown): Promise<Response> => {
      let json = `{"component":${JSON.stringify(component)},"props":{`;
      let first = true;
      for (const [name, value] of props) {
        json += `${first ? "" : ","}${JSON.stringify(name)}:${value}`;
        first = false;
      }
      json += `},"url":${JSON.stringify(pageUrl)},"version":${JSON.stringify(version)}`;
      json += `,"clearHistory":false,"encryptHistory":false`;
      if (Object.keys(deferred).length > 0) json += `,"deferredProps":${JSON.stringify(deferred)}`;
      if (marker) json += `,${JSON.stringify(WIRE.pageKey)}:${JSON.stringify(marker)}`;
      json += "}";
      if (isInertia) {
        return new Response(json, {
          headers: {
            "content-type": "application/json",
            "x-inertia": "true",
            vary: "X-Inertia",
            "cache-control": "no-store",
          },
        });
      }
      const markup = `<script data-page="${id}" type="application/json">${scriptJson(json)}</script><div id="${id}"></div>`;
      return new Response(await options.html(markup, c), {
        headers: { "content-type": "text/html; charset=utf-8", vary: "X-Inertia", "cache-control": "no-store" },
      });
    };

    const capture = parent?.page;
    if (capture) capture.data = { doc, partial, respond };
    return respond(null);
  }

  return {
    render,
    redirect(c, url) {
      return c.redirect(url, c.req.method === "GET" ? 302 : 303);
    },
    location(c, url) {
      if (rawHeader(c, "x-inertia") === "true")
        return new Response(null, { status: 409, headers: { "x-inertia-location": url } });
      return c.redirect(url, 302);
    },
  };
}
