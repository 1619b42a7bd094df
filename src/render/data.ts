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
    }
  | { kind: "value"; value?: unknown; patch?: JsonPatchOperation[] };

/**
 * The difference between two documents of one page. `before` null: the browser's document is not known exactly, so
 * every prop is sent (or named for reload). Patches are chosen only when their JSON is shorter than the value's.
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
  const props: Record<string, unknown> = {};
  const patches: Record<string, JsonPatchOperation[]> = {};
  const reload: string[] = [];
  let changed = false;
  for (const [name, json] of after.props) {
    const old = before?.props.get(name);
    if (old === json) continue;
    changed = true;
    if (after.reloadOnly.has(name)) {
      reload.push(name);
      continue;
    }
    if (old !== undefined) {
      const patch = diffJson(JSON.parse(old), JSON.parse(json));
      const patchJson = JSON.stringify(patch);
      if (patchJson.length < json.length && patchJson.length <= maxBytes) {
        patches[name] = patch;
        continue;
      }
    }
    if (json.length > maxBytes) reload.push(name);
    else props[name] = JSON.parse(json);
  }
  if (!changed) return { kind: "none" };
  if (after.kind === "json") {
    // A resource's one prop: its value or its patch (a value over the limit is sent anyway: there is no reload).
    const json = after.props.get("") ?? "null";
    const patch = patches[""];
    return patch ? { kind: "value", patch } : { kind: "value", value: JSON.parse(json) };
  }
  return {
    kind: "props",
    ...(Object.keys(props).length > 0 ? { props } : {}),
    ...(Object.keys(patches).length > 0 ? { patches } : {}),
    ...(reload.length > 0 ? { reload } : {}),
  };
}
