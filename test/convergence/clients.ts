// The oracle's subscribers: what a browser does with a live page, over the real transports. A viewer's browser holds
// its cookies and one WebSocket for all its pages (as a browser's tabs share one); some pages follow over SSE
// instead, a stream each. An HTML page applies every patch to its document (src/testing/dom.ts, Turbo's actions on
// happy-dom); an Inertia page applies props, JSON patches and the partial reloads it is asked for; a JSON resource
// its values and patches. Every frame received is checked for another viewer's marker text (isolation), and a
// reload or error is recorded as a failure — after which the page reloads as a browser would, so the sequence goes
// on.
import { type ClientRequest, request } from "node:http";
import { WebSocket } from "ws";
import { CLIENT_TUNING } from "../../src/client/constants.ts";
import { applyJsonPatch } from "../../src/client/json-patch.ts";
import { WIRE } from "../../src/constants.ts";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { PatchedDocument } from "../../src/testing/dom.ts";
import { canonical, fresh, type Loaded, load, type Props, partialReload } from "./requests.ts";

export type PageKind = "html" | "json" | "props";
export type Transport = "websocket" | "sse";

export interface PageSpec {
  url: string;
  /** The viewer cookie's value; null for a guest (no cookie). */
  viewer: string | null;
  kind: PageKind;
}

/** Something a page went through that a converging page never does. */
export interface PageEvent {
  kind: "reload" | "error" | "isolation" | "apply" | "open";
  detail: string;
}

/** How long a subscription may go unanswered (acknowledged, or told to reload) on a loaded machine. */
const ACK_BOUND_MS = 30_000;

let nextId = 0;
/** Subscription ids unique in the run: the settle point reports each subscription's offset by its id. */
const newId = () => `p${++nextId}`;

/** One viewer's browser: cookies, and one WebSocket its pages share. */
export class Browser {
  readonly viewer: string | null;
  readonly base: string;
  /** Text this viewer's pages must never receive (other viewers' own). */
  readonly foreign: readonly string[];
  readonly pages = new Set<LivePage>();
  #socket: WebSocket | null = null;
  #opening: Promise<void> | null = null;

  constructor(base: string, viewer: string | null, foreign: readonly string[]) {
    this.base = base;
    this.viewer = viewer;
    this.foreign = foreign;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.viewer ? { cookie: `viewer=${this.viewer}` } : {}), ...extra };
  }

  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Opens the browser's WebSocket (once; again after it was lost). */
  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    this.#opening ??= new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(`${this.base.replace(/^http/, "ws")}${WIRE.socketPath}`, {
        headers: this.headers(),
      });
      socket.on("open", () => {
        this.#socket = socket;
        this.#opening = null;
        resolve();
      });
      socket.on("error", (error) => {
        this.#opening = null;
        reject(error);
      });
      socket.on("message", (data) => {
        const text = String(data);
        const message = JSON.parse(text) as ServerMessage;
        for (const page of this.pages) if (page.transport === "websocket") page.receive(message, text);
      });
      socket.on("close", () => {
        if (this.#socket === socket) this.#socket = null;
      });
    });
    return this.#opening;
  }

  send(message: unknown): void {
    if (!this.connected) throw new Error("the browser's socket is not open");
    this.#socket!.send(JSON.stringify(message));
  }

  /** Drops the socket mid-sequence (as a network would): its pages resume when it is opened again. */
  drop(): void {
    this.#socket?.terminate();
    this.#socket = null;
  }

  /** Opens the socket again and resumes every WebSocket page from the offset it shows. */
  async resume(): Promise<void> {
    await this.connect();
    await Promise.all([...this.pages].filter((p) => p.transport === "websocket").map((p) => p.subscribe()));
  }

  /** Resolves once every message the server sent on the socket before the call has arrived (a ping's pong follows
   *  them on the same connection). */
  barrier(): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off("pong", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("pong", done);
      socket.on("close", done);
      socket.ping();
    });
  }

  close(): void {
    for (const page of this.pages) page.close();
    this.#socket?.close();
    this.#socket = null;
  }
}

/** A live page of a browser, followed over its socket or an event stream of its own. */
export class LivePage {
  readonly spec: PageSpec;
  readonly transport: Transport;
  readonly browser: Browser;
  /** The current subscription's id (a new one each time it subscribes). */
  id = "";
  token = "";
  incarnation = "";
  /** The offset the page shows: its render's, then each applied message's. */
  offset = 0;
  /** Every message received, in order (for failure reports). */
  readonly messages: ServerMessage[] = [];
  readonly events: PageEvent[] = [];
  #document: PatchedDocument | null = null;
  #props: Props = {};
  #component = "";
  #value: unknown = null;
  #acknowledged: (() => void) | null = null;
  #stream: ClientRequest | null = null;
  readonly #pending = new Set<Promise<void>>();
  #closed = false;
  #reloads = 0;
  /** Woken on every message (SSE pages wait for a message that may still be on its way). */
  #waiters: Array<() => void> = [];

  constructor(browser: Browser, spec: PageSpec, transport: Transport) {
    this.browser = browser;
    this.spec = spec;
    this.transport = transport;
  }

  /** GET the page as a browser would and subscribe to it; resolves once the subscription is acknowledged. */
  async open(): Promise<void> {
    this.browser.pages.add(this);
    this.#load(await load(this.browser, this.spec, this.#isolated.bind(this)));
    await this.subscribe();
  }

  #load(loaded: Loaded): void {
    this.token = loaded.token;
    this.offset = loaded.offset;
    this.incarnation = loaded.incarnation;
    if (loaded.html !== undefined) this.#document = new PatchedDocument(loaded.html);
    if (loaded.props !== undefined) {
      this.#props = loaded.props;
      this.#component = loaded.component ?? "";
    }
    if (loaded.value !== undefined) this.#value = loaded.value;
  }

  /** Subscribes (again) with the page's token and the offset it shows; resolves on the acknowledgement, or when
   *  the server answers with a reload or an error instead. */
  async subscribe(): Promise<void> {
    if (this.#closed) return;
    this.#stream?.destroy();
    this.#stream = null;
    this.id = newId();
    const acknowledged = new Promise<void>((resolve) => {
      this.#acknowledged = resolve;
    });
    if (this.transport === "websocket") {
      await this.browser.connect();
      this.browser.send({
        type: WIRE.msg.subscribe,
        id: this.id,
        token: this.token,
        offset: this.offset,
        incarnation: this.incarnation,
      });
    } else {
      this.#openStream();
    }
    // A bound on waiting, not an assertion on time: a subscription never answered is a failure, not a hang.
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      acknowledged.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ACK_BOUND_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!answered) this.events.push({ kind: "open", detail: `subscription ${this.id} not answered` });
  }

  #openStream(): void {
    const query = new URLSearchParams({
      token: this.token,
      offset: String(this.offset),
      incarnation: this.incarnation,
      id: this.id,
    });
    const id = this.id;
    const stream = request(`${this.browser.base}${WIRE.eventsPath}?${query}`, {
      headers: this.browser.headers({ accept: "text/event-stream" }),
      agent: false,
    });
    this.#stream = stream;
    stream.on("response", (res) => {
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data: "))
            .map((line) => line.slice(6))
            .join("\n");
          if (data === "" || this.id !== id) continue;
          this.receive(JSON.parse(data) as ServerMessage, data);
        }
      });
      res.on("error", () => {});
    });
    stream.on("error", () => {}); // a killed server or a dropped stream: the harness resumes it
    stream.end();
  }

  /** Drops the page's event stream (as a network would); resume() opens it again from the offset it shows. */
  dropStream(): void {
    this.#stream?.destroy();
    this.#stream = null;
  }

  /** A message from the server (on the browser's socket: maybe for another page). */
  receive(message: ServerMessage, text: string): void {
    if ("id" in message && message.id !== this.id) return;
    this.messages.push(message);
    this.#isolated(text, `a ${message.type} message`);
    try {
      this.#apply(message);
    } catch (error) {
      this.events.push({ kind: "apply", detail: `${message.type}: ${(error as Error).message}` });
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #apply(message: ServerMessage): void {
    switch (message.type) {
      case "subscribed":
        this.#acknowledged?.();
        return;
      case "patch":
        this.#document!.apply(message.html);
        this.offset = message.offset;
        return;
      case "value":
        this.#value = message.patch ? applyJsonPatch(this.#value, message.patch) : message.value;
        this.offset = message.offset;
        return;
      case "props": {
        const next = { ...this.#props, ...message.props };
        const held = this.#props;
        const reloads = [...(message.reload ?? []), ...(message.reloadIfHeld ?? []).filter((name) => name in held)];
        for (const [name, patch] of Object.entries(message.patches ?? {})) {
          try {
            next[name] = applyJsonPatch(this.#props[name], patch);
          } catch {
            reloads.push(name);
          }
        }
        this.#props = next;
        this.offset = message.offset;
        if (reloads.length > 0) this.#track(this.#partialReload(reloads));
        return;
      }
      case "reload":
        this.events.push({ kind: "reload", detail: message.reason });
        this.#acknowledged?.();
        // As a browser does: load the page again and follow the new render — at most CLIENT_TUNING.maxReloads times, as the
        // browser client stops a server that keeps asking (CLIENT_TUNING.maxReloads).
        if (++this.#reloads <= CLIENT_TUNING.maxReloads) this.#track(this.#reopen());
        return;
      case "error":
        this.events.push({ kind: "error", detail: `${message.code}: ${message.message}` });
        this.#acknowledged?.();
        return;
    }
  }

  async #partialReload(only: string[]): Promise<void> {
    const loaded = await partialReload(this.browser, this.spec.url, this.#component, only, this.#isolated.bind(this));
    this.#props = { ...this.#props, ...loaded };
  }

  async #reopen(): Promise<void> {
    if (this.#closed) return;
    this.#load(await load(this.browser, this.spec, this.#isolated.bind(this)));
    await this.subscribe();
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => {
      this.events.push({ kind: "open", detail: String((error as Error)?.stack ?? error) });
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  #isolated(text: string, where: string): void {
    for (const foreign of this.browser.foreign) {
      if (text.includes(foreign)) {
        this.events.push({ kind: "isolation", detail: `${where} carried ${foreign}: ${text.slice(0, 600)}` });
      }
    }
  }

  /** Resolves once the partial reloads and reloads it started have finished. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Resolves on the next message, or after `ms` (a bound on waiting for one that may be on its way). */
  nextMessage(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** What the page shows now, canonical. */
  actual(): string {
    if (this.spec.kind === "html") return this.#document!.body();
    if (this.spec.kind === "json") return canonical(this.#value);
    return canonical(this.#props);
  }

  /** What a fresh request of the same URL by the same viewer shows now, canonical. */
  expected(): Promise<string> {
    return fresh(this.browser, this.spec);
  }

  /** True once the browser left the page. */
  get left(): boolean {
    return this.#closed;
  }

  /** Leaves the page (unsubscribes; a stream is closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.browser.pages.delete(this);
    this.#stream?.destroy();
    if (this.transport === "websocket" && this.browser.connected) {
      this.browser.send({ type: WIRE.msg.unsubscribe, id: this.id });
    }
  }
}
