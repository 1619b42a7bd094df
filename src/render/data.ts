// Data mode: responses that are data, not HTML — an Inertia page object, a live JSON resource. A data document is
// what a group of such pages shows: its props, each as JSON text (a JSON resource has one prop, ""), and what
// surrounds them. Each Inertia prop is a frame of its own (kind "prop", id = the prop's name): its reads and inputs
// are captured while it is evaluated, and when only its reads are affected it is evaluated again alone, through an
// Inertia partial reload of the page run in-process with the viewer's inputs (deliver/data.ts).
//
// What a browser is sent is the difference between the document it shows and the group's latest: per prop, the new
// value, an RFC 6902 patch when that is shorter, or — for props marked reload-only and values over the size limit —
// the prop's name, which the browser fetches with one partial reload of its own.

import { diffJson, type JsonPatchOperation } from "../client/json-patch.ts";
import { DATA_TUNING } from "../constants.ts";

export interface DataDocument {
  readonly kind: "inertia" | "json";
  /** Inertia: the page component, URL and asset version. Empty for a JSON resource. */
  readonly component: string;
  readonly url: string;
  readonly version: string;
  /** Each prop's value as JSON text. */
  readonly props: ReadonlyMap<string, string>;
  /** Props the browser reloads itself instead of receiving their values. */
  readonly reloadOnly: ReadonlySet<string>;
  /** Inertia: props this render left out on purpose (deferred or optional on a first visit), which browsers may
   *  hold from a load of their own. */
  readonly skipped?: ReadonlySet<string>;
}

/** A document's canonical text: equal documents have equal texts (a group's page version is this text). */
export function documentText(doc: DataDocument): string {
  const props = [...doc.props].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let out = `${JSON.stringify([doc.kind, doc.component, doc.url, doc.version, [...doc.reloadOnly].sort()])}\n`;
  for (const [name, json] of props) out += `${JSON.stringify(name)}:${json}\n`;
  return out;
}

/** `doc` with some props replaced (a partial evaluation merged into the group's document). */
export function withProps(doc: DataDocument, props: ReadonlyMap<string, string>, reloadOnly: ReadonlySet<string>) {
  const merged = new Map(doc.props);
  const reload = new Set(doc.reloadOnly);
  for (const [name, json] of props) {
    merged.set(name, json);
    if (reloadOnly.has(name)) reload.add(name);
    else reload.delete(name);
  }
  return { ...doc, props: merged, reloadOnly: reload } satisfies DataDocument;
}

/** What a browser showing `before` needs to show `after`. */
export type DataDelta =
  | { kind: "none" }
  /** The page is another page now (component, URL or asset version changed, or a prop disappeared): visit it. */
  | { kind: "visit" }
  | {
      kind: "props";
      props?: Record<string, unknown>;
      patches?: Record<string, JsonPatchOperation[]>;
      reload?: string[];
      /** Deferred and optional props the group does not follow, for a browser that may hold them (deliver/data.ts). */
      reloadIfHeld?: string[];
    }
  | { kind: "value"; value?: unknown; patch?: JsonPatchOperation[] };

/** How one prop changed between two documents. */
export type PropChange =
  | { readonly kind: "same" }
  | { readonly kind: "value"; readonly value: unknown }
  | { readonly kind: "patch"; readonly patch: JsonPatchOperation[] }
  | { readonly kind: "reload" };

const SAME: PropChange = Object.freeze({ kind: "same" });
const RELOAD: PropChange = Object.freeze({ kind: "reload" });

/**
 * Changes already worked out, by new JSON then old JSON. Page groups that share a prop's evaluation hold the same
 * strings, so a write's change to a prop is diffed once, not once per group (a string's hash is computed once per
 * string). Bounded: cleared when it holds too many new values.
 */
const changes = new Map<string, Map<string | undefined, PropChange>>();
const CHANGES_KEPT = 512;
/** Deltas already assembled from the same changes, so that groups with equal changes share one message body. */
const deltas = new Map<string, DataDelta>();
const ids = new WeakMap<PropChange, number>();
let nextId = 0;

function idOf(change: PropChange): number {
  let id = ids.get(change);
  if (id === undefined) {
    id = nextId++;
    ids.set(change, id);
  }
  return id;
}

/** How prop JSON `old` became `json` (undefined `old`: the browser does not hold it). */
export function propChange(
  old: string | undefined,
  json: string,
  reloadOnly: boolean,
  maxBytes: number = DATA_TUNING.maxPropBytes,
): PropChange {
  if (old === json) return SAME;
  if (reloadOnly) return RELOAD;
  let byOld = changes.get(json);
  const known = byOld?.get(old);
  if (known) return known;
  let change: PropChange | null = null;
  if (old !== undefined) {
    const patch = diffJson(JSON.parse(old), JSON.parse(json));
    const patchJson = JSON.stringify(patch);
    if (patchJson.length < json.length && patchJson.length <= maxBytes) change = { kind: "patch", patch };
  }
  change ??= json.length > maxBytes ? RELOAD : { kind: "value", value: JSON.parse(json) };
  if (changes.size >= CHANGES_KEPT) {
    changes.clear();
    deltas.clear();
  }
  if (!byOld) {
    byOld = new Map();
    changes.set(json, byOld);
  }
  byOld.set(old, change);
  return change;
}

/**
 * The difference between two documents of one page. `before` null: the browser's document is not known exactly, so
 * every prop is sent (or named for reload). Patches are chosen only when their JSON is shorter than the value's.
 * Equal differences are the same object (the transport encodes a shared body once).
 */
export function dataDelta(
  before: DataDocument | null,
  after: DataDocument,
  maxBytes: number = DATA_TUNING.maxPropBytes,
): DataDelta {
  if (
    before !== null &&
    (before.component !== after.component || before.url !== after.url || before.version !== after.version)
  )
    return { kind: "visit" };
  if (before !== null) for (const name of before.props.keys()) if (!after.props.has(name)) return { kind: "visit" };
  const changed: Array<[string, PropChange]> = [];
  let key = after.kind;
  for (const [name, json] of after.props) {
    const change = propChange(before?.props.get(name), json, after.reloadOnly.has(name), maxBytes);
    if (change === SAME) continue;
    // A resource's value over the limit is sent anyway: there is no partial reload of a resource.
    changed.push([
      name,
      change === RELOAD && after.kind === "json" ? { kind: "value", value: JSON.parse(json) } : change,
    ]);
    key += `\0${name}\0${idOf(changed[changed.length - 1]?.[1] as PropChange)}`;
  }
  if (changed.length === 0) return { kind: "none" };
  const known = deltas.get(key);
  if (known) return known;
  let delta: DataDelta;
  if (after.kind === "json") {
    const [, change] = changed[0] as [string, PropChange];
    delta =
      change.kind === "patch"
        ? { kind: "value", patch: change.patch }
        : { kind: "value", value: (change as { value: unknown }).value };
  } else {
    const props: Record<string, unknown> = {};
    const patches: Record<string, JsonPatchOperation[]> = {};
    const reload: string[] = [];
    for (const [name, change] of changed) {
      if (change.kind === "value") props[name] = change.value;
      else if (change.kind === "patch") patches[name] = change.patch;
      else reload.push(name);
    }
    delta = {
      kind: "props",
      ...(Object.keys(props).length > 0 ? { props } : {}),
      ...(Object.keys(patches).length > 0 ? { patches } : {}),
      ...(reload.length > 0 ? { reload } : {}),
    };
  }
  if (deltas.size >= CHANGES_KEPT) deltas.clear();
  deltas.set(key, delta);
  return delta;
}
