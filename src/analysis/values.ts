// One encoding of values as strings, in which equal strings mean equal values: strings are JSON-quoted and every
// other kind of value has a prefix no quoted string starts with. Query parameters, filters' values, rows and a
// fragment's props are keyed with it (plan/planner.ts, render/frames.ts).

/** What to do with a value the encoding cannot represent (a function, a symbol, a class instance): return a key
 *  for it, or throw. `what` describes it ("a function", "an instance of Money"). */
export type Opaque = (path: string, what: string) => string;

let opaque = 0;

/** The default for values it cannot represent: a key of its own, equal to no other (never shared, never wrong). */
export const uniqueKey: Opaque = () => `?${++opaque}`;

export function valuesKey(value: unknown, onOpaque: Opaque = uniqueKey, path = "value"): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return `n${value}`;
    case "bigint":
      return `b${value}`;
    case "boolean":
      return value ? "t" : "f";
    case "undefined":
      return "u";
    case "function":
      return onOpaque(path, "a function");
    case "symbol":
      return onOpaque(path, "a symbol");
  }
  if (value === null) return "z";
  if (value instanceof Uint8Array)
    return `x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}`;
  if (value instanceof Date) return `d${value.getTime()}`;
  if (value instanceof Set)
    return `s[${[...value]
      .map((v) => valuesKey(v, onOpaque, path))
      .sort()
      .join(",")}]`;
  if (Array.isArray(value)) return `[${value.map((v, i) => valuesKey(v, onOpaque, `${path}[${i}]`)).join(",")}]`;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name;
    return onOpaque(path, `an instance of ${name ?? "a class"}`);
  }
  let out = "{";
  for (const [k, v] of Object.entries(value as object))
    out += `${JSON.stringify(k)}:${valuesKey(v, onOpaque, `${path}.${k}`)},`;
  return `${out}}`;
}
