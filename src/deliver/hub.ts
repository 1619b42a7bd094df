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
import { createCapture, deriveIdentity, type PageCapture } from "../capture/context.ts";
import { DELIVERY_TUNING, LEDGER_TUNING } from "../constants.ts";
import { NotSettledError } from "../errors.ts";
import type { Fact, Ledger } from "../ledger/types.ts";
import { affects, intern } from "../plan/planner.ts";
import type { ReloadReason } from "../protocol.ts";
import { PageParts, type PageText, replaceOnce } from "../register/page-text.ts";
import {
  buildFrames,
  type GroupFrame,
  type MemberState,
  MemoryRegistry,
  type PageGroup,
  type PageRegistry,
  type Subscriber,
} from "../register/registry.ts";
import { renderAgain, renderNewMember, rerunCollection } from "../render/frames.ts";
import { type FetchApp, pageStream, replayPage } from "../render/page.ts";
import { idCounts } from "../render/scan.ts";
import { admit } from "./admission.ts";
import { Follower } from "./follower.ts";
import {
  type CollectionDeoptimization,
  diffMembers,
  type FrameActions,
  NO_ACTIONS,
  replaceFrame,
  updateCollection,
} from "./frames.ts";
import { affectedBetween, digestOf, htmlDigest, narrowPatch, originOf } from "./patch.ts";
import type { Deoptimization, HubStats } from "./stats.ts";
import { groupToken } from "./token.ts";
import type { ServerMessage, Sink, SubscribeRequest, SubscriptionHub } from "./types.ts";

export type Mode = "development" | "test" | "production";
export type { Deoptimization, HubStats } from "./stats.ts";

/** Renders shared by every group that needs the same frame at the same planner position (see renderFrames). */
class SharedRenders {
  #position = -1;
  readonly #cache = new Map<string, Promise<unknown>>();
  get<T>(position: number, key: string, make: () => Promise<T>): Promise<T> {
    if (position !== this.#position) {
      this.#position = position;
      this.#cache.clear();
    }
    let promise = this.#cache.get(key) as Promise<T> | undefined;
    if (!promise) {
      promise = make();
      promise.catch(() => {});
      this.#cache.set(key, promise);
    }
    return promise;
  }
}

/** A frame rendered again, ready to be spliced into its page and sent: or the reason the page must be replayed. */
type FrameStep =
  | {
      frame: GroupFrame;
      html: string;
      actions: FrameActions;
      /** How many more (or fewer) elements carry each id once the patch is applied. */
      idDelta: Map<string, number>;
      commit(ids: Map<string, number>): { changed: GroupFrame[]; removed: GroupFrame[] };
    }
  | { fallback: Deoptimization };

export interface HubOptions {
  ledger: Ledger;
  secret: string;
  mode: Mode;
  tokenTtlMs?: number;
  /** Idle page groups (no subscriber, no render) are forgotten after this long. */
  idleGroupMs?: number;
  /** After a batch makes a page dirty, facts committed within this window join the same replay. */
  coalesceMs?: number;
  /** Where page groups are kept (default: in memory). */
  registry?: PageRegistry;
  /** Render frames on their own (default). false: every write replays the whole page (for comparison). */
  frames?: boolean;
  /** Origins (scheme://host[:port]) pages may subscribe from; a subscribe whose Origin header is not listed is
   *  refused. Default: any (tokens are bound to the page's own origin either way). */
  origins?: string[];
  log?: (level: "warn" | "error", message: string) => void;
}

export interface RegisteredRender {
  token: string;
  offset: number;
  incarnation: string;
}

export class Hub implements SubscriptionHub {
  readonly registry: PageRegistry;
  readonly stats: HubStats = {
    renders: 0,
    messages: 0,
    bytes: 0,
    factsPlanned: 0,
    factsTableWide: 0,
    resyncs: 0,
    frameRenders: 0,
    deoptimizations: {
      html_not_known: 0,
      change_not_covered_by_id: 0,
      collection_multi_change: 0,
      collection_member_id_not_unique: 0,
      frame_not_located: 0,
      frame_inputs_changed: 0,
      frame_ids_collide: 0,
      frame_refused: 0,
    },
  };
  /** Names this process's position hold in the ledger. */
  readonly processId = randomUUID();
  /** Reads the ledger and plans each batch (follower.ts). */
  private readonly follower: Follower;
  app: FetchApp | null = null;
  private readonly options: Required<Omit<HubOptions, "log" | "registry" | "origins" | "frames">> &
    Pick<HubOptions, "log" | "origins">;
  private catchUps = 0;
  private readonly pendingCatchUps = new Set<Promise<void>>();
  private holdTimer: NodeJS.Timeout | null = null;
  private readonly logged = new Set<string>();
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Groups that may be due a render (a flag was set since they were last scheduled). */
  private readonly due = new Set<PageGroup>();
  /** Groups whose render is running. */
  private readonly rendering = new Set<PageGroup>();
  private readonly shared = new SharedRenders();
  /** Whether frames are rendered on their own (HubOptions.frames). */
  readonly frames: boolean;

  /** Offset of the last fact planned. */
  get position(): number {
    return this.follower.position;
  }

  constructor(options: HubOptions) {
    this.registry = options.registry ?? new MemoryRegistry();
    this.options = {
      ...options,
      tokenTtlMs: options.tokenTtlMs ?? DELIVERY_TUNING.tokenTtlMs,
      idleGroupMs: options.idleGroupMs ?? DELIVERY_TUNING.pendingRegistrationMs,
      coalesceMs: options.coalesceMs ?? DELIVERY_TUNING.coalesceMs,
    };
    this.frames = options.frames ?? true;
    this.follower = new Follower({
      ledger: options.ledger,
      registry: this.registry,
      stats: this.stats,
      coalesceMs: this.options.coalesceMs,
      log: (level, message) => this.options.log?.(level, message),
      logOnce: (level, key, message) => this.logOnce(level, key, message),
      renderDirty: () => this.renderDirty(),
      dirtied: (frames) => this.dirtied(frames),
      markPageDirty: (group) => this.markPageDirty(group),
      renderDue: () => this.renderDue(),
      reloadAll: (group, reason) => this.reloadAll(group, reason),
      checkIdle: () => this.checkIdle(),
    });
  }

  get ledger(): Ledger {
    return this.options.ledger;
  }

  async start(): Promise<void> {
    this.follower.start(await this.ledger.head());
    this.sweepTimer = setInterval(() => this.registry.sweep(this.options.idleGroupMs), this.options.idleGroupMs);
    this.sweepTimer.unref();
    // Pruning (by any process) never cuts below what this process still needs, while it lives.
    await this.holdPosition();
    this.holdTimer = setInterval(() => void this.holdPosition(), LEDGER_TUNING.holdLeaseMs / 4);
    this.holdTimer.unref();
  }

  /** Records (renews) this process's position hold at the lowest offset it still needs. */
  async holdPosition(): Promise<void> {
    if (this.closed) return;
    await this.ledger.holdPosition(this.processId, this.lowestOffset()).catch((error) => {
      this.logOnce(
        "warn",
        `hold:${(error as Error).message}`,
        `upkeep: could not record this process's position in the ledger: ${(error as Error).message}`,
      );
    });
  }

  /**
   * Stops all work: after it resolves no replay, catch-up, ledger read or timer starts, and the running ones have
   * finished.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.holdTimer) clearInterval(this.holdTimer);
    await this.follower.stop();
    for (;;) {
      const running = [...this.pendingCatchUps];
      for (const group of this.registry.groups()) if (group.local.rendering) running.push(group.local.rendering);
      if (running.length === 0) break;
      await Promise.allSettled(running);
    }
    await this.ledger.releasePosition(this.processId).catch(() => {});
  }

  private logOnce(level: "warn" | "error", key: string, message: string): void {
    if (this.logged.has(key)) return;
    if (this.logged.size > 1000) this.logged.clear();
    this.logged.add(key);
    this.options.log?.(level, message);
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
    group.local.rendering = (group.dirty ? this.render(group) : this.renderFrames(group))
      .catch((error) => {
        this.options.log?.("error", `upkeep: replay of ${group.url} failed: ${(error as Error).stack}`);
        this.reloadAll(group, "render_failed");
      })
      .finally(() => {
        group.local.rendering = null;
        this.rendering.delete(group);
        this.scheduleReplay(group);
        this.checkIdle();
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
    const result = await replayPage(app, group.origin, group.url, representative.headers);
    const capture = result.capture;
    if (result.status !== 200 || !capture || capture.refusals.length > 0) {
      // A fresh GET would no longer show a live page (gone, redirected, or now refused): the browser reloads.
      this.reloadAll(group, result.status !== 200 ? `status_${result.status}` : "not_live");
      return;
    }
    const inputs = [...capture.inputs.keys()];
    // The render may have read inputs the group's identity does not cover. Each subscriber whose values for
    // those inputs differ from the representative's moves to its own group, rendered separately.
    const identity = deriveIdentity(inputs, representative.headers).digest;
    let target = group;
    if (identity !== group.identity) {
      target = this.registry.ensure(group.url, identity, group.origin);
      for (const subscriber of [...group.local.subscribers]) {
        const own = deriveIdentity(inputs, subscriber.headers).digest;
        const destination = own === identity ? target : this.registry.ensure(group.url, own, group.origin);
        if (destination === group) {
          this.markPageDirty(group); // still this group's identity, but this render was not made for it
          continue;
        }
        group.local.subscribers.delete(subscriber);
        destination.local.subscribers.add(subscriber);
        subscriber.group = destination;
        if (destination !== target) {
          this.markPageDirty(destination);
          this.scheduleReplay(destination);
        }
      }
    }
    const recorded = this.registry.recordRender(target, {
      offset: capture.renderOffset,
      html: result.html,
      inputs,
      deps: capture.queries,
      root: this.frames ? capture.root : undefined,
    });
    // Facts planned while the replay ran were matched against the old reads (or none): plan them again.
    if (recorded && capture.renderOffset < this.position) this.catchUp(target, capture.renderOffset, this.position);
    this.deliver(target);
  }

  // ── frames ─────────────────────────────────────────────────────────────────────────────────────────────
  //
  // A group whose page frame is clean but some of whose frames are dirty renders only the topmost dirty frames
  // (a dirty frame inside a dirty frame is rendered as part of it). Each frame is rendered for a representative
  // subscriber (every subscriber of the group has the same inputs). A render is shared by every group that needs
  // the same frame at the same planner position: the key is the frame's recipe (its shape and props) and the digest
  // of the values of the inputs the frame read, so groups of different viewers share a frame that read no input of
  // theirs, and never one that did. The new HTML is spliced into the group's page (the frame's old HTML occurs
  // exactly once in it, or the page is replayed instead), the frame's reads are registered again, and the facts
  // planned while it rendered are planned again against them (as for a page replay, hub step 2).

  private frameCapture(url: string, offset: number, headers: Record<string, string>): PageCapture {
    const capture = createCapture(url, offset);
    const lower = new Map<string, string>();
    for (const [name, value] of Object.entries(headers)) lower.set(name.toLowerCase(), value);
    capture.headers = (name) => lower.get(name) ?? null;
    return capture;
  }

  private async renderFrames(group: PageGroup): Promise<void> {
    const [representative] = group.local.subscribers;
    if (!representative) return;
    const dirty = new Set<GroupFrame>();
    for (const frame of group.local.dirtyFrames) {
      frame.dirty = false;
      if (!frame.removed) dirty.add(frame);
    }
    group.local.dirtyFrames.clear();
    const top = [...dirty].filter((frame) => {
      for (let p = frame.parent; p; p = p.parent) if (dirty.has(p)) return false;
      return true;
    });
    const before = group.page;
    const frames = group.frames;
    if (before === null || top.length === 0) return;
    const offset = this.position;
    const steps = await Promise.all(
      top.map((frame) => this.frameStep(group, frame, offset, representative.headers, dirty)),
    );
    // A newer render of the page was recorded meanwhile: it shows these facts, or its catch-up plans them again.
    if (group.frames !== frames || group.page !== before) return;
    // Each frame's HTML is part of each ancestor's, updated here, and of the page, spliced below.
    const located: Extract<FrameStep, { frame: GroupFrame }>[] = [];
    const edits: { frame: GroupFrame; old: string; html: string }[] = [];
    for (const step of steps) {
      if ("fallback" in step) return this.replayInstead(group, step.fallback);
      const frame = step.frame;
      if (step.html !== frame.html) {
        for (let p = frame.parent; p && p.kind !== "page"; p = p.parent) {
          const inner = replaceOnce(p.html, frame.html, step.html);
          if (inner === null) return this.replayInstead(group, "frame_not_located");
          p.html = inner;
        }
        edits.push({ frame, old: frame.html, html: step.html });
      }
      located.push(step);
    }
    // Frames render the state at or after the position they started at, so two frames of one page can show two
    // moments: a card moved between columns may already be in its new column while the old column (no fact about
    // it planned yet) still shows it. Such a page would carry one id twice, and an action targeting that id would
    // be ambiguous: the page is replayed instead, which renders every frame from one pass.
    const ids = group.local.ids ?? idCounts(before.text);
    const delta = new Map<string, number>();
    for (const step of located) for (const [id, n] of step.idDelta) delta.set(id, (delta.get(id) ?? 0) + n);
    for (const [id, n] of delta)
      if (n > 0 && (ids.get(id) ?? 0) + n > 1) return this.replayInstead(group, "frame_ids_collide");
    // The new version of the page (register/page-text.ts): the frames' parts replaced, no copy of the page made.
    if (group.local.parts === null) group.local.parts = new PageParts(before);
    const parts = group.local.parts;
    const page = edits.length === 0 ? before : parts.splice(edits);
    if (page === null) {
      group.local.parts = null;
      return this.replayInstead(group, "frame_not_located");
    }
    for (const [id, n] of delta) {
      const count = (ids.get(id) ?? 0) + n;
      if (count > 0) ids.set(id, count);
      else ids.delete(id);
    }
    const changed: GroupFrame[] = [];
    const removed: GroupFrame[] = [];
    let removes = "";
    let replaces = "";
    let inserts = "";
    for (const step of located) {
      const result = step.commit(ids);
      changed.push(...result.changed);
      removed.push(...result.removed);
      removes += step.actions.removes;
      replaces += step.actions.replaces;
      inserts += step.actions.inserts;
    }
    const actions = removes + replaces + inserts;
    this.registry.unindex(removed);
    this.registry.index(changed);
    for (const frame of removed) parts.forget(frame);
    group.frames = flatten(group.frames[0] as GroupFrame);
    if (page !== before) group.local.htmlDigest = null;
    group.page = page;
    group.local.ids = ids;
    group.renderOffset = Math.max(group.renderOffset, offset);
    group.touchedAt = Date.now();
    if (offset < this.position) this.catchUpFrames(group, changed, offset, this.position);
    this.deliver(group, { before, actions });
  }

  private replayInstead(group: PageGroup, reason: Deoptimization): void {
    this.stats.deoptimizations[reason]++;
    this.markPageDirty(group);
  }

  /** Renders one dirty frame again (shared between groups; see above) and prepares its patch. */
  private async frameStep(
    group: PageGroup,
    frame: GroupFrame,
    offset: number,
    headers: Record<string, string>,
    dirty: ReadonlySet<GroupFrame>,
  ): Promise<FrameStep> {
    const recipe = frame.recipe;
    if (!recipe) return { fallback: "frame_not_located" };
    // The frame's share key, kept on the frame (its inputs' values are the group's, fixed) and interned, so that
    // every group's lookups of one shared render use one string.
    if (frame.shareKey === undefined) {
      frame.shareKey = intern(`${recipe.key}\0${deriveIdentity(frame.inputs, headers).digest}`);
    }
    const shareKey = frame.shareKey;
    const covered = (inputs: Iterable<string>) => {
      for (const name of inputs) if (!frame.inputs.includes(name)) return false;
      return true;
    };
    if (recipe.kind === "collection") {
      const rerun = await this.shared.get(offset, shareKey, async () => {
        this.stats.frameRenders++;
        const capture = this.frameCapture(group.url, offset, headers);
        return { capture, ...(await rerunCollection(capture.root, recipe, frame.id)) };
      });
      if (rerun.capture.refusals.length > 0) return { fallback: "frame_refused" };
      if (!covered(rerun.frame.inputs)) return { fallback: "frame_inputs_changed" };
      const old = frame.members;
      if (!old) return { fallback: "frame_not_located" };
      const pool = new Map<string, MemberState[]>();
      for (const member of old) {
        if (member.rowKey === "") continue;
        const same = pool.get(member.rowKey);
        if (same) same.push(member);
        else pool.set(member.rowKey, [member]);
      }
      const rerendered: number[] = [];
      const next = await Promise.all(
        rerun.rows.map(async ({ row, rowKey }, i) => {
          // A member whose row is unchanged keeps its HTML, unless its own reads (or a descendant's) changed too.
          const kept = rowKey === "" ? undefined : pool.get(rowKey)?.shift();
          if (kept && !(kept.frame && anyDirty(kept.frame, dirty))) return { member: { ...kept }, capture: null };
          if (kept) rerendered.push(i);
          const capture = await this.shared.get(offset, `row ${shareKey}\0${rowKey}`, async () => {
            this.stats.frameRenders++;
            return renderNewMember(rerun.frame, recipe, row);
          });
          return { member: { id: capture.id, html: capture.html, rowKey, frame: null } as MemberState, capture };
        }),
      );
      if (rerun.capture.refusals.length > 0) return { fallback: "frame_refused" };
      for (const { capture } of next)
        if (capture && !covered(capture.inputs)) return { fallback: "frame_inputs_changed" };
      const members = next.map((n) => n.member);
      // Every group whose collection showed the same HTML gets the same patch: worked out once.
      // (Keyed by the old HTML itself, in a map of its own: a string's hash is computed once per string, and
      // every group patched from one shared view holds the same string.)
      const views = await this.shared.get(
        offset,
        rerendered.length === 0 ? `view ${shareKey}` : `view ${shareKey}\0${rerendered.join(",")}`,
        async () => new Map<string, ReturnType<typeof collectionView>>(),
      );
      let view = views.get(frame.html);
      if (!view) {
        view = collectionView(frame.id, recipe.open, recipe.close, old, members);
        views.set(frame.html, view);
      }
      if (view.deoptimization) this.stats.deoptimizations[view.deoptimization]++;
      const { html, actions, idDelta } = view;
      return {
        frame,
        html,
        actions,
        idDelta,
        commit: (ids) => {
          const kept = new Set(members.map((m) => m.frame).filter((f) => f !== null));
          const removed: GroupFrame[] = [];
          for (const child of frame.children) if (!kept.has(child)) collect(child, removed);
          const changed: GroupFrame[] = [frame];
          frame.children = [];
          next.forEach(({ member, capture }) => {
            if (member.frame) frame.children.push(member.frame);
            else if (capture) {
              const out: GroupFrame[] = [];
              const built = buildFrames(group, capture, frame, offset, ids, out);
              member.frame = built !== frame ? built : null;
              changed.push(...out);
            }
          });
          frame.deps = [...rerun.frame.queries];
          frame.html = html;
          frame.members = members;
          frame.renderOffset = offset;
          return { changed, removed };
        },
      };
    }
    const made = await this.shared.get(offset, shareKey, async () => {
      this.stats.frameRenders++;
      const capture = this.frameCapture(group.url, offset, headers);
      return { capture, frame: await renderAgain(capture.root, recipe) };
    });
    if (made.capture.refusals.length > 0 || made.frame.id === "") return { fallback: "frame_refused" };
    if (!covered(made.frame.inputs)) return { fallback: "frame_inputs_changed" };
    const html = made.frame.html;
    const idDelta = new Map<string, number>();
    if (html !== frame.html) {
      for (const [id, n] of idCounts(frame.html)) idDelta.set(id, -n);
      for (const [id, n] of idCounts(html)) idDelta.set(id, (idDelta.get(id) ?? 0) + n);
    }
    return {
      frame,
      html,
      actions: html === frame.html ? NO_ACTIONS : { ...NO_ACTIONS, replaces: replaceFrame(frame.id, html) },
      idDelta,
      commit: (ids) => {
        const removed: GroupFrame[] = [];
        for (const child of frame.children) collect(child, removed);
        const out: GroupFrame[] = [];
        const oldId = frame.id;
        const oldHtml = frame.html;
        frame.children = [];
        frame.id = made.frame.id;
        frame.html = html;
        frame.deps = [...made.frame.queries];
        frame.inputs = [...made.frame.inputs];
        frame.shareKey = undefined;
        frame.renderOffset = offset;
        for (const child of made.frame.children) buildFrames(group, child, frame, offset, ids, out);
        const parent = frame.parent;
        if (parent?.members) {
          const member = parent.members.find((m) => m.frame === frame || (m.id === oldId && m.html === oldHtml));
          if (member) {
            member.id = frame.id;
            member.html = html;
          }
        }
        return { changed: [frame, ...out], removed };
      },
    };
  }

  /** Plans the facts (from, to] again against frames whose reads were just registered. */
  private catchUpFrames(group: PageGroup, frames: GroupFrame[], from: number, to: number): void {
    if (this.closed) return;
    this.catchUps++;
    const running: Promise<void> = (async () => {
      let after = from;
      while (after < to && !this.closed) {
        const facts = await this.ledger.read(after, { incarnation: this.ledger.incarnation });
        if (facts.length === 0) break;
        for (const fact of facts) {
          if (fact.offset > to) break;
          const hit = frames.filter((f) => !f.dirty && !f.removed && affects(f.deps, fact));
          for (const f of hit) f.dirty = true;
          this.dirtied(hit);
        }
        after = (facts[facts.length - 1] as Fact).offset;
      }
    })();
    this.trackCatchUp(group, running);
  }

  /**
   * Send the group's latest render to every subscriber whose page is older than it: narrowed to the elements that
   * changed when the subscriber's HTML is known exactly (render/diff.ts), the whole-body morph otherwise. A
   * subscriber whose page already shows identical HTML gets no message.
   */
  private deliver(group: PageGroup, frames?: { before: PageText; actions: string }): void {
    const latest = group.page;
    if (latest === null) return;
    let full: string | null = null;
    const narrowed = new Map<PageText, string | null>();
    for (const subscriber of group.local.subscribers) {
      if (subscriber.offset >= group.renderOffset) continue;
      let html: string | null = null;
      // A page showing the version the frames were patched from gets the frames' patch.
      const surface = subscriber.surface;
      if (frames && surface === frames.before) html = frames.actions;
      else if (surface !== null) {
        if (!narrowed.has(surface)) narrowed.set(surface, narrowPatch(surface.text, latest.text));
        html = narrowed.get(surface) ?? null;
      }
      if (html === null) {
        this.stats.deoptimizations[surface === null ? "html_not_known" : "change_not_covered_by_id"]++;
        html = full ??= pageStream(latest.text);
      }
      subscriber.offset = group.renderOffset;
      subscriber.surface = latest;
      if (html === "") continue;
      this.send(subscriber, { type: "patch", id: subscriber.id, offset: group.renderOffset, html });
    }
  }

  private send(subscriber: Subscriber, message: ServerMessage): void {
    // Counted only when handed to an open connection.
    if (subscriber.sink.send(message) && message.type === "patch") {
      this.stats.messages++;
      this.stats.bytes += Buffer.byteLength(message.html);
    }
  }

  private reloadAll(group: PageGroup, reason: ReloadReason): void {
    for (const subscriber of group.local.subscribers)
      this.send(subscriber, { type: "reload", id: subscriber.id, reason });
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
    html: string,
    headers: Record<string, string>,
    origin: string,
  ): RegisteredRender {
    const inputs = [...capture.inputs.keys()];
    const identity = deriveIdentity(inputs, headers).digest;
    const group = this.registry.ensure(capture.url, identity, origin);
    const offset = capture.renderOffset;
    if (
      this.registry.recordRender(group, {
        offset,
        html,
        inputs,
        deps: capture.queries,
        root: this.frames ? capture.root : undefined,
      })
    ) {
      group.dirty = false;
      // Subscribers of the group showing an older render get this one (same identity: same bytes).
      this.deliver(group);
      if (offset < this.position) this.catchUp(group, offset, this.position);
    }
    // The same HTML as the group's latest render (the common case) reuses its digest: compare, do not hash.
    const rendered = (html === group.page?.text ? htmlDigest(group) : null) ?? digestOf(html);
    const claims = {
      url: capture.url,
      origin,
      identity,
      inputs,
      incarnation: this.ledger.incarnation,
      offset,
      rendered,
    };
    const token = groupToken(group, claims, this.options.secret, this.options.tokenTtlMs);
    return { token: token.value, offset, incarnation: this.ledger.incarnation };
  }

  /** Plan the facts (from, to] that the loop planned before the group's dependencies were registered. */
  private catchUp(group: PageGroup, from: number, to: number): void {
    if (this.closed) return;
    this.catchUps++;
    const renderOffset = group.renderOffset;
    const running: Promise<void> = (async () => {
      const stillCurrent = () => !group.dirty && group.renderOffset === renderOffset && !this.closed;
      if (await affectedBetween(this.ledger, group.deps, from, to, stillCurrent)) this.markPageDirty(group);
    })();
    this.trackCatchUp(group, running);
  }

  /** Counts a catch-up as running until it ends; facts it could not read make the page replay (never missed). */
  private trackCatchUp(group: PageGroup, running: Promise<void>): void {
    const tracked: Promise<void> = running
      .catch(() => this.markPageDirty(group))
      .finally(() => {
        this.catchUps--;
        this.pendingCatchUps.delete(tracked);
        this.scheduleReplay(group);
        this.checkIdle();
      });
    this.pendingCatchUps.add(tracked);
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
    const group = this.registry.ensure(claims.url, identity, origin);
    // The page shows exactly the group's latest render when it was served that HTML at that offset.
    const surface =
      group.page !== null && offset === group.renderOffset && claims.rendered === htmlDigest(group) ? group.page : null;
    const subscriber: Subscriber = { id: request.id, sink, headers: request.headers, offset, surface, group };
    group.local.subscribers.add(subscriber);
    group.touchedAt = Date.now();
    sink.send({ type: "subscribed", id: request.id, offset });
    if (group.renderOffset < 0)
      this.markPageDirty(group); // this process never saw the page: replay to learn its reads
    else if (offset < group.renderOffset) this.deliver(group);
    this.due.add(group);
    this.scheduleReplay(group);
    return () => {
      const current = subscriber.group;
      current.local.subscribers.delete(subscriber);
      current.touchedAt = Date.now();
    };
  }

  // ── settling ───────────────────────────────────────────────────────────────────────────────────────────

  private busy(): boolean {
    return this.catchUps > 0 || this.rendering.size > 0 || this.renderDue();
  }

  private checkIdle(): void {
    if (this.busy()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Resolves once every fact committed before the call has been planned, and every render it caused has been
   * sent. For tests and benchmarks.
   */
  async settle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = await this.ledger.sync();
    for (;;) {
      if (this.position >= target && !this.busy()) return;
      if (Date.now() > deadline) {
        const why = this.app ? "" : "; no app to replay pages through: call upkeep.serve(app) or upkeep.use(app)";
        throw new NotSettledError(
          `not settled after ${timeoutMs} ms (planned ${this.position} of ${target}${why})`,
          this.app
            ? "a replay is still running or failing: check the log for replay errors"
            : "call upkeep.serve(app) or upkeep.use(app)",
        );
      }
      this.ledger.poke();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The lowest offset this process still needs: the planner's position or an older subscriber's. */
  lowestOffset(): number {
    let lowest = this.position;
    for (const group of this.registry.groups()) {
      for (const subscriber of group.local.subscribers) lowest = Math.min(lowest, subscriber.offset);
      if (group.local.subscribers.size === 0 && group.renderOffset >= 0) lowest = Math.min(lowest, group.renderOffset);
    }
    return lowest;
  }

  /** Why each page group did or did not react to a fact (see upkeep/testing). */
  explain(fact: Fact) {
    return this.registry.explain(fact);
  }
}

/** Appends a frame and all its descendants to `out`, each parent before its children. */
function collect(frame: GroupFrame, out: GroupFrame[]): GroupFrame[] {
  out.push(frame);
  for (const child of frame.children) collect(child, out);
  return out;
}

/** Every frame of a page, each parent before its children. */
function flatten(root: GroupFrame): GroupFrame[] {
  return collect(root, []);
}

/** Whether the frame or a descendant is in `dirty`. */
function anyDirty(frame: GroupFrame, dirty: ReadonlySet<GroupFrame>): boolean {
  if (dirty.has(frame)) return true;
  for (const child of frame.children) if (anyDirty(child, dirty)) return true;
  return false;
}

/** A collection's new HTML, its patch from `old` to `members`, and how the page's id counts change. */
function collectionView(
  id: string,
  open: string,
  close: string,
  old: readonly MemberState[],
  members: readonly MemberState[],
): { html: string; actions: FrameActions; idDelta: Map<string, number>; deoptimization?: CollectionDeoptimization } {
  const html = open + members.map((m) => m.html).join("") + close;
  const idDelta = new Map<string, number>();
  const count = (markup: string, sign: number) => {
    for (const [key, n] of idCounts(markup)) idDelta.set(key, (idDelta.get(key) ?? 0) + sign * n);
  };
  const oldById = new Map(old.map((m) => [m.id, m]));
  const newIds = new Set(members.map((m) => m.id));
  for (const m of old) if (!newIds.has(m.id)) count(m.html, -1);
  for (const m of members) {
    const was = oldById.get(m.id);
    if (was?.html === m.html) continue;
    if (was) count(was.html, -1);
    count(m.html, 1);
  }
  const diff = diffMembers(id, old, members);
  if ("deoptimization" in diff) {
    return {
      html,
      actions: { ...NO_ACTIONS, replaces: updateCollection(id, members) },
      idDelta,
      deoptimization: diff.deoptimization,
    };
  }
  return { html, actions: diff.actions, idDelta };
}
