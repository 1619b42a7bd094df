// The subscription hub: follows the ledger, plans each batch of facts against the registry, replays each dirty
// page group once, and sends the result to every subscriber of the group, in offset order.
//
// Why no committed fact is missed (DESIGN: "the render → subscribe race").
//  1. Render offsets are lower bounds. A render (a GET or a replay) takes the planner's position as its render
//     offset when it starts, before its first read. Every fact the render cannot see commits after its reads,
//     hence after every fact the planner had read, so its offset is above the render offset. (The render offset
//     may be too low — the render may already show some later facts — which costs at most a redundant replay,
//     never a missed fact.)
//  2. Every fact above a group's render offset is planned against the reads of that render. Facts the loop plans
//     after the reads are registered reach them through the reverse index. Facts the loop planned between the
//     render's start and its registration were matched against the group's previous reads (or none): the hub
//     reads them again from the ledger and matches them against the new reads ("catch-up").
//  3. A group with a matched fact is dirty until a replay whose render offset is at or above that fact runs. A
//     browser subscribes with the render offset of the render it shows; it is sent the group's latest render when
//     that is newer, and every later replay; replays render current state and the morph is idempotent, so
//     repeating a fact is harmless.
// test/live/live.test.ts ("a write landing between the GET and the subscribe", "resumes on another process")
// and the convergence oracle fail if any step of this argument is wrong.

import { randomUUID } from "node:crypto";
import { deriveIdentity, type PageCapture } from "../capture/context.ts";
import { DELIVERY_TUNING } from "../constants.ts";
import { FaultLog } from "../ledger/core.ts";
import type { Fact, Ledger } from "../ledger/types.ts";
import type { ReloadReason } from "../protocol.ts";
import type { PageText } from "../register/page-text.ts";
import {
  type GroupFrame,
  MemoryRegistry,
  type PageGroup,
  type PageRegistry,
  type Subscriber,
} from "../register/registry.ts";
import { type DataDocument, documentText } from "../render/data.ts";
import { type FetchApp, replayPage } from "../render/page.ts";
import { admit, tablesRead } from "./admission.ts";
import { CatchUps } from "./catch-up.ts";
import { deliverData, groupOfPartial, mergeProps, PropRenderer, propsOf } from "./data.ts";
import { Follower } from "./follower.ts";
import { FrameRenderer } from "./frame-render.ts";
import { lowestNeeded, PositionHold } from "./hold.ts";
import { deliverLatest, htmlDigest, originOf, sendTo } from "./patch.ts";
import { regroup, replayRequest } from "./replay.ts";
import { Settling } from "./settle.ts";
import { createStats, type Deoptimization, type HubStats } from "./stats.ts";
import { pageToken } from "./token.ts";
import {
  type HubInstruments,
  type HubOptions,
  NO_INSTRUMENTS,
  type RegisteredRender,
  type Sink,
  type SubscribeRequest,
  type SubscriptionHub,
} from "./types.ts";

export type { Deoptimization, HubStats } from "./stats.ts";
export type { HubOptions, Mode, RegisteredRender } from "./types.ts";

export class Hub implements SubscriptionHub {
  readonly registry: PageRegistry;
  readonly stats: HubStats = createStats();
  /** Names this process's position hold in the ledger. */
  readonly processId = randomUUID();
  /** Reads the ledger and plans each batch (follower.ts). */
  private readonly follower: Follower;
  app: FetchApp | null = null;
  private readonly options: Required<Omit<HubOptions, "log" | "registry" | "origins" | "frames" | "instruments">> &
    Pick<HubOptions, "log" | "origins">;
  /** Spans and delivery latency (src/telemetry.ts); set by createUpkeep when OpenTelemetry is present. */
  instruments: HubInstruments;
  /** Facts planned again after a render registered its reads (catch-up.ts). */
  private readonly catchUps: CatchUps;
  /** This process's hold on the ledger (hold.ts). */
  private readonly hold: PositionHold;
  /** Faults logged once each (the ledger's FaultLog). */
  private readonly faults: FaultLog;
  private closed = false;
  /** Waiters of settle() (settle.ts). */
  private readonly settling: Settling;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Groups that may be due a render (a flag was set since they were last scheduled). */
  private readonly due = new Set<PageGroup>();
  /** Groups whose render is running. */
  private readonly rendering = new Set<PageGroup>();
  /** Renders dirty frames, sharing renders between groups. */
  private readonly frameRenderer: FrameRenderer;
  /** Data mode: evaluates dirty props, sharing evaluations between groups. */
  private readonly propRenderer: PropRenderer;
  /** Whether frames are rendered on their own (HubOptions.frames). */
  readonly frames: boolean;
  /** The last facts planned, oldest first (the inspector shows them with the frames each reached). */
  get recentFacts(): readonly Fact[] {
    return this.follower.recent;
  }
  /** Told when subscribers join and leave (src/presence.ts), when presence is on. */
  presence: { joined(subscriber: Subscriber): void; left(subscriber: Subscriber): void } | null = null;

  /** Offset of the last fact planned. */
  get position(): number {
    return this.follower.position;
  }

  /** The incarnation `position` belongs to (the ledger's may be newer until the follower resyncs). A render whose
   *  offset was taken in another incarnation than this is stale: not registered, and its page reloads. */
  get incarnation(): string {
    return this.follower.incarnation;
  }
  private stale = (capture: PageCapture) =>
    capture.incarnation !== undefined && capture.incarnation !== this.incarnation;

  constructor(options: HubOptions) {
    this.registry = options.registry ?? new MemoryRegistry();
    this.options = {
      ...options,
      tokenTtlMs: options.tokenTtlMs ?? DELIVERY_TUNING.tokenTtlMs,
      idleGroupMs: options.idleGroupMs ?? DELIVERY_TUNING.pendingRegistrationMs,
      coalesceMs: options.coalesceMs ?? DELIVERY_TUNING.coalesceMs,
    };
    this.frames = options.frames ?? true;
    this.instruments = options.instruments ?? NO_INSTRUMENTS;
    this.frameRenderer = new FrameRenderer(this.stats, this.registry);
    this.propRenderer = new PropRenderer(this.stats, this.registry);
    this.faults = new FaultLog((level, message) => this.options.log?.(level, message));
    // One host for the catch-ups and the follower: the hub's scheduling, seen from each.
    const host = {
      ledger: options.ledger,
      registry: this.registry,
      stats: this.stats,
      coalesceMs: this.options.coalesceMs,
      isClosed: () => this.closed,
      log: (level: "warn" | "error", message: string) => this.options.log?.(level, message),
      logOnce: (level: "warn" | "error", key: string, message: string) => this.faults.once(level, key, message),
      markPageDirty: (group: PageGroup) => this.markPageDirty(group),
      dirtied: (frames: readonly GroupFrame[]) => this.dirtied(frames),
      scheduleReplay: (group: PageGroup) => this.scheduleReplay(group),
      renderDirty: () => this.renderDirty(),
      renderDue: () => this.renderDue(),
      reloadAll: (group: PageGroup, reason: ReloadReason) => this.reloadAll(group, reason),
      checkIdle: () => this.settling.check(),
    };
    this.hold = new PositionHold(
      options.ledger,
      this.processId,
      () => this.lowestOffset(),
      (key, message) => this.faults.once("warn", key, message),
    );
    this.settling = new Settling({
      ledger: options.ledger,
      position: () => this.position,
      busy: () => this.busy(),
      hasApp: () => this.app !== null,
    });
    this.catchUps = new CatchUps(host);
    this.follower = new Follower(host);
  }

  get ledger(): Ledger {
    return this.options.ledger;
  }

  async start(): Promise<void> {
    this.follower.start(await this.ledger.head(), this.ledger.incarnation);
    this.sweepTimer = setInterval(() => this.registry.sweep(this.options.idleGroupMs), this.options.idleGroupMs);
    this.sweepTimer.unref();
    await this.hold.start();
  }

  /** Records (renews) this process's position hold at the lowest offset it still needs. */
  holdPosition(): Promise<void> {
    return this.hold.renew();
  }

  /**
   * Stops all work: after it resolves no replay, catch-up, ledger read or timer starts, and the running ones have
   * finished.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.follower.stop();
    for (;;) {
      const running = [...this.catchUps.running];
      for (const group of this.registry.groups()) if (group.local.rendering) running.push(group.local.rendering);
      if (running.length === 0) break;
      await Promise.allSettled(running);
    }
    await this.hold.stop();
  }

  /** Frames a batch made dirty: a page frame makes its group due a replay, any other frame a frame render. */
  private dirtied(frames: readonly GroupFrame[]): void {
    for (const frame of frames) {
      if (frame.removed) continue;
      if (frame.kind === "page") this.markPageDirty(frame.group);
      else {
        frame.group.local.dirtyFrames.add(frame);
        this.due.add(frame.group);
      }
    }
  }

  private markPageDirty(group: PageGroup): void {
    group.dirty = true;
    this.due.add(group);
  }

  private needsRender(group: PageGroup): boolean {
    return group.dirty || group.local.dirtyFrames.size > 0;
  }

  private renderDue(): boolean {
    for (const group of this.due) if (group.local.subscribers.size > 0 && this.needsRender(group)) return true;
    return false;
  }

  private async renderDirty(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const group of [...this.due]) {
      this.scheduleReplay(group);
      if (group.local.rendering) pending.push(group.local.rendering);
    }
    await Promise.all(pending);
  }

  /**
   * Start a render of the group if it is due one, has subscribers and none is running: a replay of the page when
   * its page frame is dirty, otherwise a render of its dirty frames. A group without subscribers keeps its flags
   * (a subscribe schedules it again).
   */
  private scheduleReplay(group: PageGroup): void {
    if (this.closed || !this.app || group.local.rendering) return;
    if (!this.needsRender(group) || group.local.subscribers.size === 0) {
      this.due.delete(group);
      return;
    }
    this.due.delete(group);
    this.rendering.add(group);
    const kind = group.dirty ? "page" : group.format === "html" ? "frames" : "props";
    group.local.rendering = this.instruments
      .span("upkeep.render", { "upkeep.url": group.url, "upkeep.kind": kind }, () =>
        kind === "page" ? this.render(group) : this.renderFrames(group),
      )
      .catch((error) => {
        this.options.log?.("error", `upkeep: replay of ${group.url} failed: ${(error as Error).stack}`);
        this.reloadAll(group, "render_failed");
      })
      .finally(() => {
        group.local.rendering = null;
        this.rendering.delete(group);
        this.scheduleReplay(group);
        this.settling.check();
      });
  }

  private async render(group: PageGroup): Promise<void> {
    const [representative] = group.local.subscribers;
    const app = this.app;
    if (!representative || !app) return;
    group.dirty = false;
    // The replay renders every frame of the page again.
    for (const frame of group.frames) frame.dirty = false;
    group.local.dirtyFrames.clear();
    this.stats.renders++;
    const data = replayRequest(group);
    const result = await replayPage(app, group.origin, group.url, representative.headers, data);
    const capture = result.capture;
    if (capture && this.stale(capture)) return; // the group was dropped with its incarnation: its pages reload
    if (result.status !== 200 || !capture || capture.refusals.length > 0 || (data && !result.doc)) {
      // A fresh GET would no longer show a live page (gone, redirected, or now refused): the browser reloads.
      this.reloadAll(group, result.status !== 200 ? `status_${result.status}` : "not_live");
      return;
    }
    const inputs = [...capture.inputs.keys()];
    // The render may have read inputs the group's identity does not cover (replay.ts).
    const { target, replay, stay } = regroup(this.registry, group, inputs, representative);
    if (stay) this.markPageDirty(group);
    for (const other of replay) {
      this.markPageDirty(other);
      this.scheduleReplay(other);
    }
    const recorded = this.registry.recordRender(target, {
      offset: capture.renderOffset,
      html: result.doc ? documentText(result.doc) : result.html,
      inputs,
      deps: capture.queries,
      root: this.frames || result.doc ? capture.root : undefined,
      ...(result.doc ? { doc: result.doc } : {}),
    });
    // Facts planned while the replay ran were matched against the old reads (or none): plan them again.
    if (recorded && capture.renderOffset < this.position)
      this.catchUps.page(target, capture.renderOffset, this.position);
    this.deliver(target);
    this.delivered();
  }

  /** A render caused by planned facts was sent: its latency from the newest fact's commit. */
  private delivered(): void {
    if (this.stats.lastCommitAt > 0) this.instruments.delivered(Date.now() - this.stats.lastCommitAt);
  }

  /** Sends the group's latest render to the subscribers showing an older one (a patch, or data mode's delta). */
  private deliver(group: PageGroup, frames?: { before: PageText; actions: string }): void {
    if (group.format === "html") deliverLatest(group, this.stats, frames);
    else deliverData(group, this.stats);
  }

  /** Renders the group's dirty frames — components (deliver/frame-render.ts) or props (deliver/data.ts) — and sends
   *  the result. */
  private async renderFrames(group: PageGroup): Promise<void> {
    const offset = this.position;
    const result =
      group.format === "html"
        ? await this.frameRenderer.render(group, offset)
        : this.app && (await this.propRenderer.render(group, this.app, offset));
    if (!result) return;
    if ("fallback" in result) return this.replayInstead(group, result.fallback);
    if (offset < this.position) this.catchUps.frames(group, result.changed, offset, this.position);
    if ("actions" in result) {
      for (const [, action] of result.actions.matchAll(/<turbo-stream action="([a-z]+)"/g))
        this.stats.actions[action as string] = (this.stats.actions[action as string] ?? 0) + 1;
    }
    this.deliver(group, "actions" in result ? { before: result.before, actions: result.actions } : undefined);
    this.delivered();
  }

  private replayInstead(group: PageGroup, reason: Deoptimization): void {
    this.stats.deoptimizations[reason]++;
    this.markPageDirty(group);
  }

  private reloadAll(group: PageGroup, reason: ReloadReason): void {
    for (const subscriber of group.local.subscribers) {
      sendTo(subscriber, { type: "reload", id: subscriber.id, reason }, this.stats);
      this.presence?.left(subscriber);
    }
    group.local.subscribers.clear();
    this.registry.drop(group);
  }

  // ── registration at GET ────────────────────────────────────────────────────────────────────────────────

  /**
   * A live GET finished: register its dependencies and return what goes into the live marker. `headers` are
   * the GET's request headers (for the identity signature), `origin` its scheme and host.
   */
  registerRender(
    capture: PageCapture,
    body: string | DataDocument,
    headers: Record<string, string>,
    origin: string,
  ): RegisteredRender {
    const inputs = [...capture.inputs.keys()];
    const identity = deriveIdentity(inputs, headers).digest;
    const doc = typeof body === "string" ? null : body;
    const html = doc ? documentText(doc) : (body as string);
    const group = this.registry.ensure(capture.url, identity, origin, doc?.kind ?? "html");
    const offset = capture.renderOffset;
    // A stale render is not recorded; its token names its own incarnation, so its browser reloads at subscribe.
    if (
      !this.stale(capture) &&
      this.registry.recordRender(group, {
        offset,
        html,
        inputs,
        deps: capture.queries,
        root: this.frames || doc ? capture.root : undefined,
        ...(doc ? { doc } : {}),
      })
    ) {
      group.dirty = false;
      // Subscribers of the group showing an older render get this one (same identity: same bytes).
      this.deliver(group);
      if (offset < this.position) this.catchUps.page(group, offset, this.position);
    }
    const incarnation = capture.incarnation ?? this.ledger.incarnation;
    const claims = {
      url: capture.url,
      origin,
      identity,
      inputs,
      incarnation,
      offset,
      tables: tablesRead(capture.queries),
      ...(doc ? { format: doc.kind } : {}),
    };
    const token = pageToken(group, claims, html, this.options.secret, this.options.tokenTtlMs);
    return { token, offset, incarnation };
  }

  /**
   * Data mode: a browser's own partial reload (a deferred, optional or reload-only prop) was captured. Its props join
   * the page's group, so that they are live too; nothing is registered when the group is not known here or the
   * partial render read an input the group's identity does not cover.
   */
  registerPartial(capture: PageCapture, partial: DataDocument, headers: Record<string, string>, origin: string): void {
    if (this.stale(capture)) return;
    const group = groupOfPartial(this.registry, capture.url, origin, headers);
    const result = group && mergeProps(group, propsOf(capture, partial), this.registry);
    if (group && result && !("fallback" in result) && result.offset < this.position)
      this.catchUps.frames(group, result.changed, result.offset, this.position);
  }

  // ── subscriptions ──────────────────────────────────────────────────────────────────────────────────────

  async subscribe(request: SubscribeRequest, sink: Sink): Promise<() => void> {
    const admitted = await admit(request, {
      secret: this.options.secret,
      origins: this.options.origins,
      ledger: this.ledger,
      position: this.position,
    });
    if ("reload" in admitted) {
      sink.send({ type: "reload", id: request.id, reason: admitted.reload });
      return () => {};
    }
    const { claims, identity, offset } = admitted;
    const origin = originOf(claims, request.headers);
    const group = this.registry.ensure(claims.url, identity, origin, claims.format ?? "html");
    // The page shows exactly the group's latest render when it was served that HTML at that offset.
    const surface =
      group.page !== null && offset === group.renderOffset && claims.rendered === htmlDigest(group) ? group.page : null;
    const subscriber: Subscriber = { id: request.id, sink, headers: request.headers, offset, surface, group };
    group.local.subscribers.add(subscriber);
    group.touchedAt = Date.now();
    sink.send({ type: "subscribed", id: request.id, offset });
    this.presence?.joined(subscriber);
    if (group.renderOffset < 0)
      this.markPageDirty(group); // this process never saw the page: replay to learn its reads
    else if (offset < group.renderOffset) this.deliver(group); // a resume behind the latest render catches up
    this.due.add(group);
    this.scheduleReplay(group);
    return () => {
      const current = subscriber.group;
      if (current.local.subscribers.delete(subscriber)) this.presence?.left(subscriber);
      current.touchedAt = Date.now();
    };
  }

  // ── settling ───────────────────────────────────────────────────────────────────────────────────────────

  private busy(): boolean {
    return this.catchUps.running.size > 0 || this.rendering.size > 0 || this.renderDue();
  }

  /** Resolves once every fact committed before the call is planned and its renders sent (settle.ts). */
  settle(timeoutMs = 30_000): Promise<void> {
    return this.settling.settle(timeoutMs);
  }

  /** The lowest offset this process still needs: the planner's position or an older subscriber's. */
  lowestOffset(): number {
    return lowestNeeded(this.registry, this.position);
  }

  /** Why each page group did or did not react to a fact (see upkeep/testing). */
  explain(fact: Fact) {
    return this.registry.explain(fact);
  }
}
