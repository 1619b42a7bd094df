// Data mode delivery: evaluating a group's dirty props again, merging them into the group's document, and sending
// each browser the difference between the document it shows and the group's latest (render/data.ts).
//
// A dirty prop is evaluated through an Inertia partial reload of its page, run in-process with the viewer's
// inputs: the app's handler runs, and only the dirty props' functions are called (Inertia's own contract: put the
// work of a prop inside its function). The partial render's reads replace the props' frames; facts planned while it
// ran are planned again (catch-up). The partial render may not read an input the group's identity does not cover:
// then the page is replayed whole, which re-derives the identity (frame_inputs_changed).

import { deriveIdentity, type FrameCapture, type PageCapture } from "../capture/context.ts";
import { intern } from "../plan/planner.ts";
import { PageText } from "../register/page-text.ts";
import {
  buildFrames,
  type GroupFrame,
  type PageGroup,
  type PageRegistry,
  type Subscriber,
} from "../register/registry.ts";
import { type DataDelta, type DataDocument, dataDelta, documentText, withProps } from "../render/data.ts";
import { type FetchApp, type ReplayResult, replayPage } from "../render/page.ts";
import { SharedRenders } from "./frame-render.ts";
import { sendTo } from "./patch.ts";
import type { Deoptimization, HubStats } from "./stats.ts";

export type PropsRender = null | { fallback: Deoptimization } | { changed: GroupFrame[]; offset: number };

/** One prop evaluated again: its JSON and the frame its evaluation captured. */
export interface PropValue {
  json: string;
  frame: FrameCapture;
  reloadOnly: boolean;
  /** The planner position the evaluation started at. */
  offset: number;
  /** The inputs the page read outside its props during the evaluation. */
  pageInputs: ReadonlySet<string>;
}

type Evaluated = PropValue | { fallback: Deoptimization };

/**
 * Evaluates dirty props again, sharing each evaluation between the groups that need the same prop at the same
 * planner position with the same values of the inputs it depends on.
 *
 * Why sharing is sound. A prop's value is a function of the database at the evaluation's position, the page's URL and
 * the inputs the evaluation read: those the prop's own function read, and those the page's handler read outside its
 * props (a prop's function may close over values the handler derived from them). The share key holds the URL, the
 * prop's name and the digest of both sets of inputs' values as the group's latest render recorded them; an evaluation
 * that read any input outside those sets is not reused (the group's page is replayed instead, which re-derives its
 * identity). So a board's props that read no viewer input are evaluated once for every signed-in viewer, and a prop
 * that read the viewer's cookie is evaluated per distinct cookie value.
 */
export class PropRenderer {
  readonly #shared = new SharedRenders();
  readonly #stats: HubStats;
  readonly #registry: PageRegistry;

  constructor(stats: HubStats, registry: PageRegistry) {
    this.#stats = stats;
    this.#registry = registry;
  }

  async render(group: PageGroup, app: FetchApp, position: number): Promise<PropsRender> {
    const dirty = [...group.local.dirtyFrames].filter((f) => !f.removed);
    group.local.dirtyFrames.clear();
    for (const frame of dirty) frame.dirty = false;
    const doc = group.page?.data;
    const pageFrame = group.frames[0];
    const [representative] = group.local.subscribers;
    if (dirty.length === 0 || !representative || !pageFrame) return null;
    if (doc?.kind !== "inertia" || dirty.some((f) => f.kind !== "prop")) return { fallback: "frame_not_located" };
    const pageInputs = pageFrame.ownInputs ?? pageFrame.inputs;
    const keyOf = (frame: GroupFrame) => {
      frame.shareKey ??= intern(
        `prop ${group.origin}${group.url}\0${frame.id}\0${deriveIdentity([...pageInputs, ...frame.inputs], representative.headers).digest}`,
      );
      return frame.shareKey;
    };
    // The props no other group is evaluating at this position are evaluated together, in one partial reload. (Every
    // lookup happens before the first await: the shared cache cannot move to another position in between.)
    const missing = dirty.filter((f) => !this.#shared.has(position, keyOf(f)));
    const run =
      missing.length === 0
        ? null
        : replayPage(app, group.origin, group.url, representative.headers, {
            kind: "inertia",
            component: doc.component,
            version: doc.version,
            only: missing.map((f) => f.id),
          });
    if (run) this.#stats.frameRenders += missing.length;
    const pending = dirty.map((frame) =>
      this.#shared.get<Evaluated>(position, keyOf(frame), async () =>
        run ? pick(await run, frame.id) : { fallback: "frame_not_located" },
      ),
    );
    const values = new Map<string, PropValue>();
    for (const [i, frame] of dirty.entries()) {
      const value = await (pending[i] as Promise<Evaluated>);
      if ("fallback" in value) return value;
      // Reused only when it read no input beyond those its share key covers (see the class comment).
      for (const name of value.frame.inputs)
        if (!frame.inputs.includes(name)) return { fallback: "frame_inputs_changed" };
      for (const name of value.pageInputs) if (!pageInputs.includes(name)) return { fallback: "frame_inputs_changed" };
      values.set(frame.id, value);
    }
    return mergeProps(group, values, this.#registry);
  }
}

/** One prop of a partial reload's result. */
function pick(result: ReplayResult, name: string): Evaluated {
  const capture = result.capture;
  if (result.status !== 200 || !capture || !result.doc || capture.refusals.length > 0)
    return { fallback: "frame_refused" };
  const json = result.doc.props.get(name);
  const frame = capture.root.children.find((f) => f.kind === "prop" && f.id === name);
  if (json === undefined || !frame) return { fallback: "frame_not_located" }; // the page no longer has the prop
  return {
    json,
    frame,
    reloadOnly: result.doc.reloadOnly.has(name),
    offset: capture.renderOffset,
    pageInputs: capture.root.ownInputs,
  };
}

/** The props of a captured partial render (a browser's own partial reload of a deferred or optional prop). */
export function propsOf(capture: PageCapture, partial: DataDocument): Map<string, PropValue> {
  const values = new Map<string, PropValue>();
  for (const frame of capture.root.children) {
    const json = frame.kind === "prop" ? partial.props.get(frame.id) : undefined;
    if (json === undefined) continue;
    values.set(frame.id, {
      json,
      frame,
      reloadOnly: partial.reloadOnly.has(frame.id),
      offset: capture.renderOffset,
      pageInputs: capture.root.ownInputs,
    });
  }
  return values;
}

/** The Inertia group a browser's own partial reload belongs to: its URL's, with the identity its headers give. */
export function groupOfPartial(
  registry: PageRegistry,
  url: string,
  origin: string,
  headers: Record<string, string>,
): PageGroup | null {
  for (const group of registry.groups()) {
    if (group.format !== "inertia" || group.url !== url || group.origin !== origin || group.renderOffset < 0) continue;
    if (deriveIdentity(group.inputs, headers).digest === group.identity) return group;
  }
  return null;
}

/**
 * Merges props evaluated again into the group: its document and its prop frames (the new frames replace the old
 * ones in the reverse index). Props must not have read an input the group's identity does not cover.
 */
export function mergeProps(
  group: PageGroup,
  values: ReadonlyMap<string, PropValue>,
  registry: PageRegistry,
): PropsRender {
  const doc = group.page?.data;
  const pageFrame = group.frames[0];
  if (!doc || !pageFrame || values.size === 0) return null;
  let offset = Number.POSITIVE_INFINITY;
  for (const value of values.values()) {
    for (const input of value.frame.inputs)
      if (!group.inputs.includes(input)) return { fallback: "frame_inputs_changed" };
    offset = Math.min(offset, value.offset);
  }
  const existing = new Map(pageFrame.children.filter((f) => f.kind === "prop").map((f) => [f.id, f]));
  // A newer evaluation of these props is merged already.
  for (const name of values.keys()) if ((existing.get(name)?.renderOffset ?? -1) > offset) return null;
  const changed: GroupFrame[] = [];
  const added = new Map<string, PropValue>();
  let same = true;
  for (const [name, value] of values) {
    const frame = existing.get(name);
    if (doc.props.get(name) !== value.json || doc.reloadOnly.has(name) !== value.reloadOnly) same = false;
    if (!frame) {
      added.set(name, value);
      continue;
    }
    // The prop's frame stays the same object: reading what it read before, it keeps its place in the index.
    frame.deps = [...value.frame.queries];
    if (frame.inputs.length !== value.frame.inputs.size || !frame.inputs.every((i) => value.frame.inputs.has(i))) {
      frame.inputs = [...value.frame.inputs];
      frame.shareKey = undefined;
    }
    frame.renderOffset = offset;
    changed.push(frame);
  }
  if (added.size > 0) {
    const ids = new Map([...added.keys()].map((name) => [name, 1]));
    const built: GroupFrame[] = [];
    for (const value of added.values()) buildFrames(group, value.frame, pageFrame, offset, ids, built);
    group.frames = [...group.frames, ...built];
    changed.push(...built);
  }
  registry.index(changed);
  if (!same) {
    const json = new Map([...values].map(([name, value]) => [name, value.json]));
    const reloadOnly = new Set([...values].filter(([, value]) => value.reloadOnly).map(([name]) => name));
    const next = withProps(doc, json, reloadOnly);
    group.page = PageText.ofData(next, () => documentText(next));
    group.local.htmlDigest = null;
  }
  group.renderOffset = Math.max(group.renderOffset, offset);
  return { changed, offset };
}

/**
 * What a browser whose document the server does not know is sent: every prop, and the deferred and optional props
 * the group does not follow — a browser resuming on a process that never saw it load them may hold them, and would
 * otherwise keep them without their ever changing again. It reloads those it holds, which registers them here.
 */
function unknownSurfaceDelta(doc: DataDocument, unfollowed: string[]): DataDelta {
  const delta = dataDelta(null, doc);
  if (unfollowed.length === 0 || (delta.kind !== "props" && delta.kind !== "none")) return delta;
  return { ...(delta.kind === "props" ? delta : { kind: "props" }), reloadIfHeld: unfollowed };
}

/** The deferred and optional props an Inertia document left out that the group does not follow. */
function unfollowedProps(doc: DataDocument): string[] {
  return doc.kind === "inertia" ? [...(doc.skipped ?? [])].filter((name) => !doc.props.has(name)) : [];
}

/** Subscribers told which props to reload if they hold them, while already at the group's offset. */
const told = new WeakSet<Subscriber>();

/** Each delta's size and counts, measured once (equal deltas are one object: render/data.ts). */
const measured = new WeakMap<DataDelta, { bytes: number; values: number; reloads: number }>();

/**
 * Sends the group's latest document to every subscriber showing an older one — behind the group's offset, or known to
 * show another version of it: the difference from the document it shows when that is known exactly, every prop
 * otherwise. Subscribers showing the same version share one message.
 */
export function deliverData(group: PageGroup, stats: HubStats): void {
  const latest = group.page;
  const doc = latest?.data;
  if (!latest || !doc) return;
  const deltas = new Map<PageText | null, { delta: DataDelta; bytes: number; values: number; reloads: number }>();
  const unfollowed = unfollowedProps(doc);
  for (const subscriber of group.local.subscribers) {
    const surface = subscriber.surface?.data ? subscriber.surface : null;
    // A browser at the group's offset is up to date unless the document it is known to show is not the latest: a
    // prop evaluated again at that same offset (one a new visit carried with its old value) changed it.
    if (subscriber.offset >= group.renderOffset && (surface === null || surface === latest)) {
      // A browser at this offset whose document is not known (it resumed here) may hold props the group does not
      // follow: it is told once, with no other change.
      if (unfollowed.length > 0 && surface === null && !told.has(subscriber)) {
        told.add(subscriber);
        const id = subscriber.id;
        sendTo(subscriber, { type: "props", id, offset: subscriber.offset, reloadIfHeld: unfollowed }, stats);
      }
      continue;
    }
    let known = deltas.get(surface);
    if (!known) {
      if (surface === null) stats.deoptimizations.html_not_known++;
      const delta = surface === null ? unknownSurfaceDelta(doc, unfollowed) : dataDelta(surface.data ?? null, doc);
      let size = measured.get(delta);
      if (!size) {
        const body = delta.kind === "props" || delta.kind === "value" ? JSON.stringify(delta) : "";
        size = {
          bytes: Buffer.byteLength(body),
          values:
            delta.kind === "props"
              ? Object.keys(delta.props ?? {}).length + Object.keys(delta.patches ?? {}).length
              : delta.kind === "value"
                ? 1
                : 0,
          reloads: delta.kind === "props" ? (delta.reload?.length ?? 0) : 0,
        };
        measured.set(delta, size);
      }
      known = { delta, ...size };
      deltas.set(surface, known);
    }
    const { delta } = known;
    const offset = group.renderOffset;
    subscriber.offset = offset;
    subscriber.surface = latest;
    const id = subscriber.id;
    if (delta.kind === "none") continue;
    let sent: boolean;
    if (delta.kind === "visit") sent = sendTo(subscriber, { type: "reload", id, reason: "page_changed" }, stats);
    else if (delta.kind === "value") {
      const { kind: _, ...rest } = delta;
      sent = sendTo(subscriber, { type: "value", id, offset, ...rest }, stats, known.bytes);
    } else {
      const { kind: _, ...rest } = delta;
      sent = sendTo(subscriber, { type: "props", id, offset, ...rest }, stats, known.bytes);
    }
    if (sent) {
      stats.propsPushed += known.values;
      stats.propsReloaded += known.reloads;
    }
  }
}
