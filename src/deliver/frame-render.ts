// Rendering a page group's dirty frames on their own (docs/frames.md).
//
// A group whose page frame is clean but some of whose frames are dirty renders only the topmost dirty frames
// (a dirty frame inside a dirty frame is rendered as part of it). Each frame is rendered for a representative
// subscriber (every subscriber of the group has the same inputs). A render is shared by every group that needs
// the same frame at the same planner position: the key is the frame's recipe (its shape and props) and the digest
// of the values of the inputs the frame read, so groups of different viewers share a frame that read no input of
// theirs, and never one that did. The new HTML is spliced into the group's page (the frame's old HTML occurs
// exactly once in it, or the page is replayed instead), the frame's reads are registered again, and the facts
// planned while it rendered are planned again against them (as for a page replay, hub step 2).

import { createCapture, deriveIdentity, type PageCapture } from "../capture/context.ts";
import { intern } from "../plan/planner.ts";
import { PageParts, type PageText, replaceOnce } from "../register/page-text.ts";
import type { GroupFrame, MemberState, PageGroup, PageRegistry } from "../register/registry.ts";
import { buildFrames } from "../register/registry.ts";
import { renderAgain, renderNewMember, rerunCollection } from "../render/frames.ts";
import { idCounts } from "../render/scan.ts";
import {
  type CollectionDeoptimization,
  diffMembers,
  type FrameActions,
  NO_ACTIONS,
  replaceFrame,
  updateCollection,
} from "./frames.ts";
import type { Deoptimization, HubStats } from "./stats.ts";

/** Renders shared by every group that needs the same frame at the same planner position (see the module comment). */
export class SharedRenders {
  #position = -1;
  readonly #cache = new Map<string, Promise<unknown>>();
  /** True when a render under `key` at `position` is made (or being made). */
  has(position: number, key: string): boolean {
    return position === this.#position && this.#cache.has(key);
  }
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

/** What rendering a group's frames gave: nothing to send, a patch, or the reason the page must be replayed. */
export type FrameRender =
  | null
  | { before: PageText; actions: string; changed: GroupFrame[] }
  | { fallback: Deoptimization };

export class FrameRenderer {
  readonly #stats: HubStats;
  readonly #registry: PageRegistry;
  readonly #shared = new SharedRenders();

  constructor(stats: HubStats, registry: PageRegistry) {
    this.#stats = stats;
    this.#registry = registry;
  }

  /**
   * Renders the group's topmost dirty frames and makes the page's next version: the patch for browsers showing the
   * previous one, and the frames whose reads were registered again (null: nothing to do, or a newer render of the
   * page was recorded meanwhile; a fallback: the page must be replayed instead).
   */
  async render(group: PageGroup, offset: number): Promise<FrameRender> {
    const [representative] = group.local.subscribers;
    if (!representative) return null;
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
    if (before === null || top.length === 0) return null;
    // How many elements of the page carry each id: actions target members by id only where it is unique.
    const ids = group.local.ids ?? idCounts(before.text);
    const steps = await Promise.all(
      top.map((frame) => this.#step(group, frame, offset, representative.headers, dirty, ids)),
    );
    // A newer render of the page was recorded meanwhile: it shows these facts, or its catch-up plans them again.
    if (group.frames !== frames || group.page !== before) return null;
    // Each frame's HTML is part of each ancestor's, updated here, and of the page, spliced below.
    const located: Extract<FrameStep, { frame: GroupFrame }>[] = [];
    const edits: { frame: GroupFrame; old: string; html: string }[] = [];
    for (const step of steps) {
      if ("fallback" in step) return { fallback: step.fallback };
      const frame = step.frame;
      if (step.html !== frame.html) {
        for (let p = frame.parent; p && p.kind !== "page"; p = p.parent) {
          const inner = replaceOnce(p.html, frame.html, step.html);
          if (inner === null) return { fallback: "frame_not_located" };
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
    const delta = new Map<string, number>();
    for (const step of located) for (const [id, n] of step.idDelta) delta.set(id, (delta.get(id) ?? 0) + n);
    for (const [id, n] of delta) if (n > 0 && (ids.get(id) ?? 0) + n > 1) return { fallback: "frame_ids_collide" };
    // The new version of the page (register/page-text.ts): the frames' parts replaced, no copy of the page made.
    if (group.local.parts === null) group.local.parts = new PageParts(before);
    const parts = group.local.parts;
    const page = edits.length === 0 ? before : parts.splice(edits);
    if (page === null) {
      group.local.parts = null;
      return { fallback: "frame_not_located" };
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
    this.#registry.unindex(removed);
    this.#registry.index(changed);
    for (const frame of removed) parts.forget(frame);
    group.frames = flatten(group.frames[0] as GroupFrame);
    if (page !== before) group.local.htmlDigest = null;
    group.page = page;
    group.local.ids = ids;
    group.renderOffset = Math.max(group.renderOffset, offset);
    group.touchedAt = Date.now();
    return { before, actions, changed };
  }

  /** Renders one dirty frame again (shared between groups; see above) and prepares its patch. */
  async #step(
    group: PageGroup,
    frame: GroupFrame,
    offset: number,
    headers: Record<string, string>,
    dirty: ReadonlySet<GroupFrame>,
    ids: ReadonlyMap<string, number>,
  ): Promise<FrameStep> {
    const recipe = frame.recipe;
    // A prop is rendered by deliver/data.ts, never here.
    if (!recipe || recipe.kind === "prop") return { fallback: "frame_not_located" };
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
      const rerun = await this.#shared.get(offset, shareKey, async () => {
        this.#stats.frameRenders++;
        const capture = frameCapture(group.url, offset, headers);
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
          // A member whose row is unchanged keeps its HTML, unless its own reads (or a descendant's) changed too. A
          // folded member (its id is not unique in the page) has no frame of its own: its reads are the collection's,
          // which may be why the collection renders now, so it is rendered again.
          const kept = rowKey === "" ? undefined : pool.get(rowKey)?.shift();
          if (kept?.frame && !anyDirty(kept.frame, dirty)) return { member: { ...kept }, capture: null };
          if (kept) rerendered.push(i);
          const capture = await this.#shared.get(offset, `row ${shareKey}\0${rowKey}`, async () => {
            this.#stats.frameRenders++;
            return renderNewMember(rerun.frame, recipe, row);
          });
          return { member: { id: capture.id, html: capture.html, rowKey, frame: null } as MemberState, capture };
        }),
      );
      if (rerun.capture.refusals.length > 0) return { fallback: "frame_refused" };
      for (const { capture } of next)
        if (capture && !covered(capture.inputs)) return { fallback: "frame_inputs_changed" };
      const members = next.map((n) => n.member);
      // A member whose id is also elsewhere on the page cannot be targeted by id (an action finds the first element
      // with it): the collection's children are then replaced whole.
      const shared = old.some((m) => (ids.get(m.id) ?? 0) > 1);
      // Every group whose collection showed the same HTML gets the same patch: worked out once.
      // (Keyed by the old HTML itself, in a map of its own: a string's hash is computed once per string, and
      // every group patched from one shared view holds the same string.)
      const views = await this.#shared.get(
        offset,
        `view ${shareKey}\0${rerendered.join(",")}\0${shared ? "whole" : "members"}`,
        async () => new Map<string, ReturnType<typeof collectionView>>(),
      );
      let view = views.get(frame.html);
      if (!view) {
        view = collectionView(frame.id, recipe.open, recipe.close, old, members, shared);
        views.set(frame.html, view);
      }
      if (view.deoptimization) this.#stats.deoptimizations[view.deoptimization]++;
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
          // The collection's own reads first: a member folded into it (its id is not unique in the page) adds its
          // reads to them as it is built.
          frame.deps = [...rerun.frame.queries];
          next.forEach(({ member, capture }) => {
            if (member.frame) frame.children.push(member.frame);
            else if (capture) {
              const out: GroupFrame[] = [];
              const built = buildFrames(group, capture, frame, offset, ids, out);
              member.frame = built !== frame ? built : null;
              changed.push(...out);
            }
          });
          frame.html = html;
          frame.members = members;
          frame.renderOffset = offset;
          return { changed, removed };
        },
      };
    }
    const made = await this.#shared.get(offset, shareKey, async () => {
      this.#stats.frameRenders++;
      const capture = frameCapture(group.url, offset, headers);
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
}

/** A capture for rendering a frame with a subscriber's headers as the request's. */
function frameCapture(url: string, offset: number, headers: Record<string, string>): PageCapture {
  const capture = createCapture(url, offset);
  const lower = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) lower.set(name.toLowerCase(), value);
  capture.headers = (name) => lower.get(name) ?? null;
  return capture;
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
  /** Some old member's id is also elsewhere on the page. */
  shared: boolean,
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
  const diff = shared
    ? ({ deoptimization: "collection_member_id_not_unique" } as const)
    : diffMembers(id, old, members);
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
