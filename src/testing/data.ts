// `upkeep/testing` for data mode: follow an Inertia page's props or a live JSON resource as a browser would (apply
// every pushed value and patch, perform the partial reloads it is asked for), then compare with a fresh visit.

import { applyJsonPatch } from "../client/json-patch.ts";
import { WIRE } from "../constants.ts";
import type { ServerMessage } from "../deliver/types.ts";
import type { FetchApp } from "../render/page.ts";
import type { Upkeep } from "../upkeep.ts";

export interface LiveData<T> {
  readonly url: string;
  readonly messages: ServerMessage[];
  readonly offset: number;
  /** The props (Inertia) or value (JSON resource) as the browser holds them now. */
  current(): T;
  /** True when the server told the browser to visit the page anew. */
  readonly reloaded: boolean;
  /** Partial reloads the browser made because the server named props for it. */
  readonly partialReloads: number;
  /** Resolves once every partial reload asked for so far has been applied. */
  idle(): Promise<void>;
  close(): void;
}

type Props = Record<string, unknown>;

function inertiaHeaders(headers: Record<string, string>): Record<string, string> {
  return {
    host: "localhost",
    accept: "text/html, application/xhtml+xml",
    "x-inertia": "true",
    ...lower(headers),
  };
}

async function visit(app: FetchApp, url: string, headers: Record<string, string>) {
  const response = await app.fetch(new Request(new URL(url, "http://localhost"), { headers }));
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 500)}`);
  return { response, text };
}

/** The props of a fresh Inertia visit of the page by the same viewer (the `upkeep` key removed). */
export async function freshProps(app: FetchApp, url: string, headers: Record<string, string> = {}): Promise<Props> {
  const { text } = await visit(app, url, inertiaHeaders(headers));
  return (JSON.parse(text) as { props: Props }).props;
}

/** Visit an Inertia page (X-Inertia) through the app and follow its props in-process. */
export async function openLiveProps(
  upkeep: Upkeep,
  app: FetchApp,
  url: string,
  options: { headers?: Record<string, string> } = {},
): Promise<LiveData<Props>> {
  upkeep.use(app);
  const headers = inertiaHeaders(options.headers ?? {});
  const { text } = await visit(app, url, headers);
  const page = JSON.parse(text) as { component: string; props: Props; upkeep?: { token: string; offset: number } };
  if (!page.upkeep) throw new Error(`the Inertia page ${url} carries no "${WIRE.pageKey}" key: is it live?`);
  let props = page.props;
  const pending = new Set<Promise<void>>();
  let partialReloads = 0;
  const reload = (only: string[]) => {
    partialReloads++;
    const run = visit(app, url, {
      ...headers,
      "x-inertia-partial-component": page.component,
      "x-inertia-partial-data": only.join(","),
    }).then(({ text }) => {
      props = { ...props, ...(JSON.parse(text) as { props: Props }).props };
    });
    pending.add(run);
    void run.finally(() => pending.delete(run));
  };
  return follow(upkeep, url, page.upkeep, headers, () => props, {
    onMessage(message) {
      if (message.type !== "props") return;
      const next = { ...props, ...message.props };
      // Deferred and optional props the server does not follow are reloaded when the page holds them.
      const reloads = [...(message.reload ?? []), ...(message.reloadIfHeld ?? []).filter((name) => name in props)];
      for (const [name, patch] of Object.entries(message.patches ?? {})) {
        try {
          next[name] = applyJsonPatch(props[name], patch);
        } catch {
          reloads.push(name);
        }
      }
      props = next;
      if (reloads.length > 0) reload(reloads);
    },
    pending,
    partialReloads: () => partialReloads,
  });
}

/** GET a JSON resource as a live client does and follow its value in-process. */
export async function openLiveResource<T = unknown>(
  upkeep: Upkeep,
  app: FetchApp,
  url: string,
  options: { headers?: Record<string, string> } = {},
): Promise<LiveData<T>> {
  upkeep.use(app);
  const headers = {
    host: "localhost",
    accept: "application/json",
    [WIRE.liveHeader]: "1",
    ...lower(options.headers ?? {}),
  };
  const { response, text } = await visit(app, url, headers);
  const token = response.headers.get(WIRE.tokenHeader);
  if (!token) throw new Error(`the JSON resource ${url} carries no ${WIRE.tokenHeader} header: is it live?`);
  let value = JSON.parse(text) as T;
  const marker = { token, offset: Number(response.headers.get(WIRE.offsetHeader)) };
  return follow(upkeep, url, marker, headers, () => value, {
    onMessage(message) {
      if (message.type !== "value") return;
      value = message.patch ? applyJsonPatch<T>(value, message.patch) : (message.value as T);
    },
    pending: new Set(),
    partialReloads: () => 0,
  });
}

/** The value of a fresh GET of a JSON resource by the same viewer. */
export async function freshJson(app: FetchApp, url: string, headers: Record<string, string> = {}): Promise<unknown> {
  const { text } = await visit(app, url, { host: "localhost", accept: "application/json", ...lower(headers) });
  return JSON.parse(text);
}

async function follow<T>(
  upkeep: Upkeep,
  url: string,
  marker: { token: string; offset: number },
  headers: Record<string, string>,
  current: () => T,
  handlers: { onMessage(message: ServerMessage): void; pending: Set<Promise<void>>; partialReloads(): number },
): Promise<LiveData<T>> {
  const messages: ServerMessage[] = [];
  let offset = marker.offset;
  let reloaded = false;
  const unsubscribe = await upkeep.hub.subscribe(
    {
      id: `test_${Math.random().toString(36).slice(2)}`,
      token: marker.token,
      offset,
      incarnation: upkeep.ledger.incarnation,
      headers,
    },
    {
      send(message) {
        messages.push(message);
        if (message.type === "props" || message.type === "value") {
          handlers.onMessage(message);
          offset = message.offset;
        } else if (message.type === "reload") reloaded = true;
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
    get partialReloads() {
      return handlers.partialReloads();
    },
    current,
    async idle() {
      while (handlers.pending.size > 0) await Promise.all([...handlers.pending]);
    },
    close: unsubscribe,
  };
}

function lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}
