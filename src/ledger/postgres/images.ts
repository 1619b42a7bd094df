// Row images from logical decoding. pgoutput sends each column's text output; the ledger stores images as the
// capture triggers do, `to_json(row)`, so that every reader decodes both the same way (decode.ts). This file
// renders text values by to_json's rules: numbers and booleans as JSON scalars, json and jsonb embedded, arrays
// as JSON arrays (elements by the same rules), date and time stamps in ISO 8601 with a `T`, everything else as a
// JSON string of its text output. The consumer's session pins the settings text output depends on (TimeZone
// UTC, DateStyle ISO, bytea_output hex, extra_float_digits 1), so the text is the same on every server.
import { LEDGER_TUNING } from "../../constants.ts";
import type { TupleValue } from "./pgoutput.ts";
import type { Queryable } from "./schema.ts";

/** How to_json renders a value of a type (domains resolved to their base type). */
export type JsonKind =
  | { kind: "bool" | "number" | "date" | "timestamp" | "timestamptz" | "json" | "string" }
  | { kind: "array"; element: JsonKind };

const SCALARS: Record<string, JsonKind> = {
  bool: { kind: "bool" },
  int2: { kind: "number" },
  int4: { kind: "number" },
  int8: { kind: "number" },
  float4: { kind: "number" },
  float8: { kind: "number" },
  numeric: { kind: "number" },
  date: { kind: "date" },
  timestamp: { kind: "timestamp" },
  timestamptz: { kind: "timestamptz" },
  json: { kind: "json" },
  jsonb: { kind: "json" },
};
const STRING: JsonKind = { kind: "string" };

interface TypeRow {
  oid: number;
  name: string;
  type: string;
  base: number;
  element: number;
  category: string;
}

/** Type OID → JsonKind, loaded from pg_type on first sight of an OID. */
export class TypeKinds {
  readonly #rows = new Map<number, TypeRow>();
  readonly #kinds = new Map<number, JsonKind>();

  /** Loads the types (and their base and element types) not seen yet. */
  async load(db: Queryable, oids: Iterable<number>): Promise<void> {
    let wanted = [...new Set(oids)].filter((oid) => !this.#rows.has(oid));
    for (let round = 0; wanted.length > 0 && round < 8; round++) {
      const { rows } = await db.query<TypeRow>(
        `SELECT oid::int AS oid, typname AS name, typtype AS type, typbasetype::int AS base, typelem::int AS element,
                typcategory AS category
           FROM pg_type WHERE oid = ANY($1::oid[])`,
        [wanted],
      );
      for (const r of rows) this.#rows.set(r.oid, r);
      wanted = rows.flatMap((r) => [r.base, r.element]).filter((oid) => oid !== 0 && !this.#rows.has(oid));
    }
  }

  kind(oid: number, depth = 0): JsonKind {
    const known = this.#kinds.get(oid);
    if (known) return known;
    const row = this.#rows.get(oid);
    let kind = STRING;
    if (row && depth < 16) {
      if (row.type === "d" && row.base !== 0) kind = this.kind(row.base, depth + 1);
      else if (row.category === "A" && row.element !== 0)
        kind = { kind: "array", element: this.kind(row.element, depth + 1) };
      else kind = SCALARS[row.name] ?? STRING;
    }
    if (row) this.#kinds.set(oid, kind);
    return kind;
  }
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const DATE_TIME = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)(.*)$/;

/** A column's text output rendered as to_json renders the value. */
export function jsonValue(text: string | null, kind: JsonKind): string {
  if (text === null) return "null";
  switch (kind.kind) {
    case "number":
      return JSON_NUMBER.test(text) ? text : JSON.stringify(text);
    case "bool":
      return text === "t" ? "true" : "false";
    case "json":
      return text;
    case "timestamp":
    case "timestamptz": {
      const m = DATE_TIME.exec(text);
      if (!m) return JSON.stringify(text); // infinity, BC
      const zone = m[3] as string;
      const iso = `${m[1]}T${m[2]}${/^[+-]\d\d$/.test(zone) ? `${zone}:00` : zone}`;
      return JSON.stringify(iso);
    }
    case "array":
      return renderArray(parseArray(text), kind.element);
    default:
      return JSON.stringify(text);
  }
}

type ArrayItem = string | null | ArrayItem[];

function renderArray(items: ArrayItem[], element: JsonKind): string {
  return `[${items.map((item) => (Array.isArray(item) ? renderArray(item, element) : jsonValue(item, element))).join(",")}]`;
}

/** Parses an array's text output (`{1,2}`, `{{"a b",NULL}}`, `[0:1]={…}`) into nested items. */
export function parseArray(text: string): ArrayItem[] {
  let i = text.startsWith("[") ? text.indexOf("=") + 1 : 0;
  const parse = (): ArrayItem[] => {
    const out: ArrayItem[] = [];
    i++; // {
    while (i < text.length && text[i] !== "}") {
      if (text[i] === "{") out.push(parse());
      else if (text[i] === '"') {
        let s = "";
        i++;
        while (text[i] !== '"') {
          if (text[i] === "\\") i++;
          s += text[i++];
        }
        i++;
        out.push(s);
      } else {
        let end = i;
        while (end < text.length && text[end] !== "," && text[end] !== "}") end++;
        const raw = text.slice(i, end);
        out.push(raw.toUpperCase() === "NULL" ? null : raw);
        i = end;
      }
      if (text[i] === ",") i++;
    }
    i++; // }
    return out;
  };
  return text[i] === "{" ? parse() : [];
}

/**
 * A row image as JSON text from a decoded tuple, in the table's column order. A value the stream left out (an
 * unchanged TOASTed value) is taken from `fallback` (the old row, complete under REPLICA IDENTITY FULL); when it
 * cannot be, or the image would exceed the image bound, the image is `{"$unavailable": why}` and the fact is
 * planned as table-wide, as the triggers do.
 */
export function imageJson(
  names: string[],
  kinds: JsonKind[],
  values: TupleValue[],
  fallback: TupleValue[] | null,
): string {
  const parts: string[] = [];
  let size = 2;
  for (let i = 0; i < names.length; i++) {
    let value = values[i];
    if (value === undefined) value = fallback?.[i];
    if (value === undefined) return unavailable(`${names[i]} was not in the decoded change (an unchanged large value)`);
    const part = `${JSON.stringify(names[i])}:${jsonValue(value, kinds[i] as JsonKind)}`;
    size += part.length + 1;
    if (size > LEDGER_TUNING.maxImageValueBytes) {
      return unavailable(`a row of more than ${LEDGER_TUNING.maxImageValueBytes} bytes is larger than the image bound`);
    }
    parts.push(part);
  }
  return `{${parts.join(",")}}`;
}

export function unavailable(why: string): string {
  return JSON.stringify({ $unavailable: why });
}

/** True when two tuples carry the same values (a no-op UPDATE, which the triggers skip too). */
export function sameTuple(a: TupleValue[], b: TupleValue[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (b[i] !== undefined && a[i] !== b[i]) return false;
  return true;
}
