// RFC 6902 JSON Patch, the part Upkeep needs: `diffJson` (server) finds the operations that turn one JSON value into
// another, `applyJsonPatch` (browser) applies them without mutating the input, so that unchanged branches keep their
// identity (React and Vue skip them). Only `add`, `remove` and `replace` are produced; apply accepts the same three.
//
// Arrays are compared by their longest common prefix and suffix: one insertion, removal or in-place change anywhere is
// one operation; anything else becomes per-index replacements plus trailing adds or removes. The server sends a patch
// only when its encoding is shorter than the new value's, so the worst case costs nothing.
//
// Erasable TypeScript: served to browsers with the types stripped, and shipped compiled.

export type JsonPatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** One RFC 6901 reference token. */
function token(key: string | number): string {
  return String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Equality of JSON values (key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    for (const key of keys) if (!Object.hasOwn(b, key) || !jsonEqual(a[key], b[key])) return false;
    return true;
  }
  return false;
}

/** The operations that turn `before` into `after` (both JSON values); [] when they are equal. */
export function diffJson(before: unknown, after: unknown, path = ""): JsonPatchOperation[] {
  const out: JsonPatchOperation[] = [];
  diffInto(before, after, path, out);
  return out;
}

function diffInto(a: unknown, b: unknown, path: string, out: JsonPatchOperation[]): void {
  if (jsonEqual(a, b)) return;
  if (isObject(a) && isObject(b)) {
    for (const key of Object.keys(a))
      if (!Object.hasOwn(b, key)) out.push({ op: "remove", path: `${path}/${token(key)}` });
    for (const key of Object.keys(b)) {
      const at = `${path}/${token(key)}`;
      if (!Object.hasOwn(a, key)) out.push({ op: "add", path: at, value: b[key] });
      else diffInto(a[key], b[key], at, out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    let start = 0;
    while (start < a.length && start < b.length && jsonEqual(a[start], b[start])) start++;
    let endA = a.length;
    let endB = b.length;
    while (endA > start && endB > start && jsonEqual(a[endA - 1], b[endB - 1])) {
      endA--;
      endB--;
    }
    const common = Math.min(endA - start, endB - start);
    for (let i = start; i < start + common; i++) diffInto(a[i], b[i], `${path}/${i}`, out);
    // Removals from the highest index down, so that each index is still the element meant.
    for (let i = endA - 1; i >= start + common; i--) out.push({ op: "remove", path: `${path}/${i}` });
    for (let i = start + common; i < endB; i++) out.push({ op: "add", path: `${path}/${i}`, value: b[i] });
    return;
  }
  out.push({ op: "replace", path, value: b });
}

function parsePath(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new Error(`JSON Patch path ${JSON.stringify(path)} must start with "/"`);
  return path
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(container: unknown[], key: string, forAdd: boolean): number {
  if (forAdd && key === "-") return container.length;
  const index = /^(0|[1-9][0-9]*)$/.test(key) ? Number(key) : -1;
  const limit = forAdd ? container.length : container.length - 1;
  if (index < 0 || index > limit)
    throw new Error(`JSON Patch index ${key} is out of range (length ${container.length})`);
  return index;
}

/** `doc` with one operation applied; copies only the containers on the operation's path. */
function applyOne(doc: unknown, keys: string[], operation: JsonPatchOperation): unknown {
  if (keys.length === 0) {
    if (operation.op === "remove") throw new Error("JSON Patch cannot remove the whole document");
    return operation.value;
  }
  const [key, ...rest] = keys as [string, ...string[]];
  if (Array.isArray(doc)) {
    const copy = doc.slice();
    if (rest.length > 0) {
      const index = arrayIndex(doc, key, false);
      copy[index] = applyOne(doc[index], rest, operation);
    } else if (operation.op === "add") copy.splice(arrayIndex(doc, key, true), 0, operation.value);
    else if (operation.op === "remove") copy.splice(arrayIndex(doc, key, false), 1);
    else copy[arrayIndex(doc, key, false)] = operation.value;
    return copy;
  }
  if (isObject(doc)) {
    const copy: Record<string, unknown> = { ...doc };
    if (rest.length > 0) {
      if (!Object.hasOwn(doc, key)) throw new Error(`JSON Patch path segment ${JSON.stringify(key)} does not exist`);
      copy[key] = applyOne(doc[key], rest, operation);
    } else if (operation.op === "remove") {
      if (!Object.hasOwn(doc, key)) throw new Error(`JSON Patch cannot remove missing ${JSON.stringify(key)}`);
      delete copy[key];
    } else copy[key] = operation.value;
    return copy;
  }
  throw new Error(`JSON Patch path segment ${JSON.stringify(key)} is inside a scalar`);
}

/** `doc` with the operations applied in order; `doc` itself is not modified. Throws on an operation that does not
 *  fit the document (the caller then fetches the value again). */
export function applyJsonPatch<T = unknown>(doc: unknown, operations: readonly JsonPatchOperation[]): T {
  let out = doc;
  for (const operation of operations) out = applyOne(out, parsePath(operation.path), operation);
  return out as T;
}
