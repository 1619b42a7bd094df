// The subscription registry: page groups and their subscribers, indexed so that a fact finds only the groups
// whose reads it can affect.
//
// A *page group* is every open page with the same URL and identity signature. Pages in one group were (or
// would be) rendered from the same inputs, so they share one dependency set, one replay and one rendered body.

import type { QueryDependency } from "../analysis/types.ts";
import type { FrameCapture, FrameKind } from "../capture/context.ts";
import type { Fact } from "../ledger/types.ts";
import { depsKey } from "../plan/planner.ts";
import type { Sink } from "../protocol.ts";
import { type DataDocument, documentText, withProps } from "../render/data.ts";
import type { AnyRecipe } from "../render/frames.ts";
import { idCounts } from "../render/scan.ts";
import { type PageParts, PageText } from "./page-text.ts";
import { type MatchReport, ReverseIndex } from "./reverse-index.ts";

export interface Subscriber {
  /** The id the client chose (unique within its connection). */
  readonly id: string;
  readonly sink: Sink;
  /** Headers of the connecting request: the viewer's inputs for replays. */
  readonly headers: Record<string, string>;
  /** The highest offset whose effects this subscriber's page shows. */
  offset: number;
  /** The version of the group's HTML this subscriber's page shows, when known exactly (patches are then narrowed
   *  against it). */
  surface: PageText | null;
  group: PageGroup;
}

/** What a page group is, as every process can know it (a shared registry would store exactly this). */
/** What a group's pages are: HTML (Turbo), an Inertia page object, or a live JSON resource. */
export type PageFormat = "html" | "inertia" | "json";

export interface PageGroupRecord {
  readonly key: string;
  readonly url: string;
  readonly format: PageFormat;
  readonly identity: string;
  /** Names of the ambient inputs the latest render read. */
  inputs: string[];
  /** Origin used for replays (the page's scheme and host). */
  readonly origin: string;
  /** Ledger head before the latest render's first read; -1 before any render (dependencies unknown). */
  renderOffset: number;
  /** What the latest render read. */
  deps: QueryDependency[];
  /** The latest render's full HTML, with the frames rendered since replaced (null before any render). */
  page: PageText | null;
  /** A fact after renderOffset matched the page frame's own reads: the next render must replay the page. */
  dirty: boolean;
  /** The frames of the latest render, page frame first, each parent before its children (see GroupFrame). */
  frames: GroupFrame[];
  /** Last time the group had a subscriber or a render (ms epoch); idle groups are swept. */
  touchedAt: number;
}

/**
 * One frame of a group's latest render: the page frame, or a fragment, collection or member the page rendered.
 * The planner matches facts against each frame's own reads; a dirty frame is rendered again on its own when no
 * ancestor is dirty (deliver/frames.ts). A frame that cannot be rendered on its own (no recipe, an id that is not
 * unique in the page) is folded: its reads count as its parent's.
 */
export interface GroupFrame {
  readonly group: PageGroup;
  readonly kind: FrameKind;
  /** The id of its root element ("" for the page frame). */
  id: string;
  readonly parent: GroupFrame | null;
  children: GroupFrame[];
  /** Its own reads (folded descendants' included). */
  deps: QueryDependency[];
  /** Names of the inputs it and its descendants read. */
  inputs: string[];
  /** The page frame: names of the inputs the page read outside its frames (data mode shares props by them). */
  ownInputs?: string[];
  readonly recipe: AnyRecipe | null;
  /** Its current outer HTML ("" for the page frame: the group's page). */
  html: string;
  /** The planner position its latest render started at. */
  renderOffset: number;
  /** A fact after renderOffset matched its own reads. */
  dirty: boolean;
  /** The key under which its renders are shared between groups (see deliver/hub.ts), once computed. */
  shareKey?: string;
  /** Its reads as one interned key (set when indexed; frames with equal keys are planned once per fact). */
  depsKey?: string;
  /** For a collection: its members in page order, with the row each was rendered from. */
  members?: MemberState[];
  /** Set once a render of an ancestor replaced it: it is no longer part of the page. */
  removed?: true;
}

export interface MemberState {
  id: string;
  html: string;
  rowKey: string;
  /** The member's own frame (null when it was folded into the collection). */
  frame: GroupFrame | null;
}

/** What only this process holds for a group: its subscribers (with their connections), the replay it is running,
 *  and caches. Never shared between processes. */
/** A token signed for a group's render, with what it was signed for (deliver/token.ts reuses it while they match). */
export interface GroupToken {
  offset: number;
  exp: number;
  rendered: string;
  /** The claims' tables, joined (absent: none claimed). */
  tables?: string;
  value: string;
}

export interface GroupRuntime {
  readonly subscribers: Set<Subscriber>;
  rendering: Promise<void> | null;
  /** The last token signed for a render of the group (reused by pages rendered at the same offset). */
  token: GroupToken | null;
  /** Digest of `html`, computed when first needed. */
  htmlDigest: string | null;
  /** Frames (not the page frame) that a fact made dirty, waiting to be rendered again. */
  readonly dirtyFrames: Set<GroupFrame>;
  /** How many elements of the page carry each id (frames are patched by id only when it is unique). */
  ids: Map<string, number> | null;
  /** Where the frames rendered on their own sit among the page's parts (created at the first frame render). */
  parts: PageParts | null;
}

export interface PageGroup extends PageGroupRecord {
  /** This process's part of the group. */
  readonly local: GroupRuntime;
}

/**
 * Where the hub keeps page groups. In memory here; a shared store (for instance in PostgreSQL, so that every
 * process knows every page's reads) implements the same interface. Subscribers are always local to a process.
 */
export interface PageRegistry {
  /** Every page group known. */
  groups(): Iterable<PageGroup>;
  /** The group for a URL, identity signature and format, created (with unknown reads) when missing. */
  ensure(url: string, identity: string, origin: string, format?: PageFormat): PageGroup;
  /** Record a render of the group; false (and nothing changes) when an equal or newer render is recorded. */
  recordRender(group: PageGroup, render: RenderRecord): boolean;
  drop(group: PageGroup): void;
  /** Forget groups that have had no subscriber and no render for `idleMs`; returns how many. */
  sweep(idleMs: number, now?: number): number;
  /** Visits the frames whose reads the fact may affect: a superset of the affected ones (matching decides); a frame
   *  may be visited more than once. */
  forEachCandidate(fact: Fact, visit: (frame: GroupFrame) => void): void;
  /** Candidates, matches and miss reasons for a fact (see upkeep/testing). */
  explain(fact: Fact): MatchReport<GroupFrame>;
  /** Registers (again) the reads of frames whose render changed. */
  index(frames: Iterable<GroupFrame>): void;
  /** Forgets frames that are no longer part of their page. */
  unindex(frames: Iterable<GroupFrame>): void;
}

export interface RenderRecord {
  offset: number;
  html: string;
  inputs: string[];
  deps: QueryDependency[];
  /** The render's frame tree (absent: the page frame alone holds every read). */
  root?: FrameCapture;
  /** Data mode: the document `html` is the text of (render/data.ts). */
  doc?: DataDocument;
}

/**
 * The group frames of a render: one per frame of the capture that can be rendered on its own, the rest folded into
 * their nearest such ancestor. A frame can be rendered on its own when it has a recipe and an id that no other
 * element of the page carries (a patch targets it by id).
 */
export function buildFrames(
  group: PageGroup,
  capture: FrameCapture,
  parent: GroupFrame | null,
  offset: number,
  ids: Map<string, number>,
  out: GroupFrame[],
): GroupFrame {
  const own =
    capture.kind === "page" ||
    (parent !== null && !capture.folded && capture.recipe !== null && capture.id !== "" && ids.get(capture.id) === 1);
  let frame: GroupFrame;
  if (own) {
    frame = {
      group,
      kind: capture.kind,
      id: capture.id,
      parent,
      children: [],
      deps: [...capture.queries],
      inputs: [...capture.inputs],
      ...(capture.kind === "page" ? { ownInputs: [...capture.ownInputs] } : {}),
      recipe: capture.kind === "page" ? null : (capture.recipe as AnyRecipe),
      html: capture.html,
      renderOffset: offset,
      dirty: false,
    };
    parent?.children.push(frame);
    out.push(frame);
  } else {
    frame = parent as GroupFrame;
    frame.deps.push(...capture.queries);
  }
  const built = capture.children.map((child) => buildFrames(group, child, frame, offset, ids, out));
  if (own && capture.kind === "collection") {
    frame.members = capture.children.map((member, i) => ({
      id: member.id,
      html: member.html,
      rowKey: (member.recipe as { rowKey?: string } | null)?.rowKey ?? "",
      frame: built[i] !== frame ? (built[i] as GroupFrame) : null,
    }));
  }
  return frame;
}

export class MemoryRegistry implements PageRegistry {
  readonly #groups = new Map<string, PageGroup>();
  readonly #index = new ReverseIndex<GroupFrame>();
  /** The reads each frame is indexed under (see index()). */
  readonly #indexed = new WeakMap<GroupFrame, string>();

  static key(url: string, identity: string, origin: string, format: PageFormat = "html"): string {
    return format === "html" ? `${identity} ${origin}${url}` : `${identity} ${format}:${origin}${url}`;
  }

  groups(): Iterable<PageGroup> {
    return this.#groups.values();
  }

  forEachCandidate(fact: Fact, visit: (frame: GroupFrame) => void): void {
    this.#index.forEachCandidate(fact, visit);
  }

  explain(fact: Fact): MatchReport<GroupFrame> {
    return this.#index.explain(fact);
  }

  index(frames: Iterable<GroupFrame>): void {
    for (const frame of frames) {
      // A frame rendered again usually reads exactly what it read before: its placements stay as they are.
      const key = depsKey(frame.deps);
      frame.depsKey = key;
      if (this.#indexed.get(frame) === key) continue;
      this.#indexed.set(frame, key);
      if (frame.deps.length > 0) this.#index.set(frame, frame.deps);
      else this.#index.delete(frame);
    }
  }

  unindex(frames: Iterable<GroupFrame>): void {
    for (const frame of frames) {
      this.#index.delete(frame);
      this.#indexed.delete(frame);
      frame.removed = true;
      frame.group.local.dirtyFrames.delete(frame);
    }
  }

  ensure(url: string, identity: string, origin: string, format: PageFormat = "html"): PageGroup {
    const key = MemoryRegistry.key(url, identity, origin, format);
    let group = this.#groups.get(key);
    if (!group) {
      group = {
        key,
        url,
        format,
        identity,
        inputs: [],
        origin,
        renderOffset: -1,
        deps: [],
        page: null,
        dirty: false,
        frames: [],
        touchedAt: Date.now(),
        local: {
          subscribers: new Set(),
          rendering: null,
          token: null,
          htmlDigest: null,
          dirtyFrames: new Set(),
          ids: null,
          parts: null,
        },
      };
      this.#groups.set(key, group);
    }
    return group;
  }

  recordRender(group: PageGroup, render: RenderRecord): boolean {
    if (render.offset < group.renderOffset) return false;
    group.renderOffset = render.offset;
    // Data mode: props the group's browsers loaded themselves (deferred, optional) that this render did not evaluate
    // (a first visit defers them) stay with the group — their frames indexed, their values in its document — so a
    // new visitor's registration neither stops them being live nor makes the others' pages look changed.
    const before = group.page?.data;
    const fresh = render.doc;
    const carried =
      fresh?.kind === "inertia" && before
        ? group.frames.filter(
            (f) => f.kind === "prop" && !f.removed && fresh.skipped?.has(f.id) === true && before.props.has(f.id),
          )
        : [];
    let doc = fresh;
    let html = render.html;
    if (fresh && before && carried.length > 0) {
      const names = new Set(carried.map((f) => f.id));
      doc = withProps(
        fresh,
        new Map([...before.props].filter(([name]) => names.has(name))),
        new Set([...before.reloadOnly].filter((name) => names.has(name))),
      );
      html = documentText(doc);
    }
    // The same HTML as the group's current version keeps that version (and its digest): subscribers showing it
    // still show exactly the group's page.
    if (group.page?.text !== html) {
      group.local.htmlDigest = null;
      group.page = PageText.of(html);
      if (doc) group.page.data = doc;
    }
    group.local.parts = null;
    group.inputs = render.inputs;
    group.deps = render.deps;
    group.touchedAt = Date.now();
    this.unindex(carried.length > 0 ? group.frames.filter((f) => !carried.includes(f)) : group.frames);
    const frames: GroupFrame[] = [];
    // A data document's frames are its props, each named once.
    group.local.ids = !render.root
      ? null
      : render.doc
        ? new Map([...render.doc.props.keys()].map((name) => [name, 1]))
        : idCounts(render.html);
    if (render.root && group.local.ids) buildFrames(group, render.root, null, render.offset, group.local.ids, frames);
    else
      frames.push({
        group,
        kind: "page",
        id: "",
        parent: null,
        children: [],
        deps: [...render.deps],
        inputs: [...render.inputs],
        recipe: null,
        html: "",
        renderOffset: render.offset,
        dirty: false,
      });
    const page = frames[0] as GroupFrame;
    for (const frame of carried) {
      (frame as { parent: GroupFrame | null }).parent = page;
      page.children.push(frame);
      frames.push(frame);
    }
    group.frames = frames;
    group.local.dirtyFrames.clear();
    for (const frame of carried) if (frame.dirty) group.local.dirtyFrames.add(frame);
    this.index(frames);
    return true;
  }

  drop(group: PageGroup): void {
    if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
    this.unindex(group.frames);
  }

  sweep(idleMs: number, now = Date.now()): number {
    let dropped = 0;
    for (const group of this.#groups.values()) {
      if (group.local.subscribers.size === 0 && !group.local.rendering && now - group.touchedAt > idleMs) {
        this.drop(group);
        dropped++;
      }
    }
    return dropped;
  }
}
