// Decoding row images from the JSON the capture triggers write. The value encoding per dialect is documented in
// docs/ledger.md; the rules here are its single implementation.
import type { Row } from "./types.ts";

/** JSON.parse that keeps integers beyond 2^53 exact as bigint (via the reviver's source text). */
export function parseJson(text: string): unknown {
  // The reviver makes parsing several times slower: use it only when a run of 16+ digits could be an integer
  // beyond 2^53 (a false positive, e.g. digits inside a string, only costs the slower path).
  return MAYBE_BIG.test(text) ? JSON.parse(text, bigintReviver) : JSON.parse(text);
}

const MAYBE_BIG = /\d{16}/;

function bigintReviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** The key of the marker a capture writes instead of an image or a value it could not render. */
export const UNAVAILABLE_MARKER = "$unavailable";

/*
 * Reasons (`Fact.unavailable`) never carry row data: a changefeed sends them whatever columns it redacts, and logs
 * repeat them. Every reason is built by Upkeep from sizes and names (of tables, columns, indexes) — by the capture
 * (the triggers' and the logical consumer's `$unavailable` markers) or by the reader (undecodableReason) — and a
 * whole-image marker is taken as one only when the table has no column of that name (a row of such a table is
 * its values, not a reason).
 */

/**
 * Why an image could not be decoded, for `Fact.unavailable` and the log. Never the parser's message: V8's JSON
 * errors quote the text around the fault, which is row data. Only the position is kept.
 */
export function undecodableReason(error: unknown): string {
  if (!(error instanceof SyntaxError)) return "undecodable image (not a row image)";
  const position = /at position (\d+)/.exec(error.message)?.[1];
  return `undecodable image (not valid JSON${position === undefined ? "" : ` at position ${position}`})`;
}

/**
 * The reason of a capture's whole-image marker, or undefined when the image is a row. For a table with a column of
 * the marker's name, a one-column image may be either: it is taken as unavailable (planned table-wide, never a
 * miss) with a reason of Upkeep's own, as the string may be the column's value.
 */
function markerReason(row: Row, markerIsColumn: boolean): string | undefined {
  const why = row[UNAVAILABLE_MARKER];
  if (typeof why !== "string" || Object.keys(row).length !== 1) return undefined;
  return markerIsColumn ? `image unavailable (the table has a column named ${UNAVAILABLE_MARKER})` : why;
}

/**
 * SQLite images (see sqlite/triggers.ts): an object, or an array of objects for rows wider than one json_object
 * call. Column values tagged by the trigger: `{"$blob": hex}` (bytes), `{"$real": "Infinity" | "-Infinity"}`,
 * `{"$unavailable": why}` (left out of the image; the reason is pushed to `unavailable`). A whole image may be
 * `{"$unavailable": why}` (the trigger could not say which rows changed); `markerIsColumn` says the table has a column
 * of that name (see markerReason). Throws on text that is not JSON (see undecodableReason).
 */
export function decodeSqliteImage(text: string | null, unavailable: string[] = [], markerIsColumn = false): Row | null {
  if (text === null || text === undefined) return null;
  const parsed = parseJson(text) as Row | Row[];
  const row: Row = Array.isArray(parsed) ? Object.assign({}, ...parsed) : parsed;
  const marker = markerReason(row, markerIsColumn);
  if (marker !== undefined) {
    unavailable.push(marker);
    return null;
  }
  for (const column of Object.keys(row)) {
    const v = row[column];
    if (v === null || typeof v !== "object") continue;
    const tag = v as { $blob?: unknown; $real?: unknown; $unavailable?: unknown };
    if (typeof tag.$blob === "string") row[column] = hexToBytes(tag.$blob);
    else if (tag.$real === "Infinity") row[column] = Number.POSITIVE_INFINITY;
    else if (tag.$real === "-Infinity") row[column] = Number.NEGATIVE_INFINITY;
    else if (typeof tag.$unavailable === "string") {
      delete row[column];
      unavailable.push(`${column}: ${tag.$unavailable} (larger than the image bound)`);
    }
  }
  return row;
}

/** How a PostgreSQL column's JSON rendering is turned back into a value. */
export type PgColumnCodec = "bytea" | "timestamptz" | "plain";

export function pgCodecFor(type: string): PgColumnCodec {
  if (type === "bytea") return "bytea";
  if (type === "timestamptz" || type === "timestamp with time zone") return "timestamptz";
  return "plain";
}

/** PostgreSQL images (`to_json(row)`): bytea arrives as "\\x…" text, timestamptz in the writer's zone. An image
 *  the capture could not render is `{"$unavailable": why}`: null, with the reason pushed to `unavailable` (see
 *  markerReason for a table whose codecs name a column so). */
export function decodePgImage(
  text: string | null,
  codecs: Map<string, PgColumnCodec> | undefined,
  unavailable: string[] = [],
): Row | null {
  if (text === null || text === undefined) return null;
  const row = parseJson(text) as Row;
  const marker = markerReason(row, codecs?.has(UNAVAILABLE_MARKER) ?? false);
  if (marker !== undefined) {
    unavailable.push(marker);
    return null;
  }
  if (!codecs) return row;
  for (const column of Object.keys(row)) {
    const v = row[column];
    if (typeof v !== "string") continue;
    const codec = codecs.get(column);
    if (codec === "bytea" && v.startsWith("\\x")) row[column] = hexToBytes(v.slice(2));
    else if (codec === "timestamptz") row[column] = utcIso(v);
  }
  return row;
}

/** "2024-05-01T12:00:00.123456+02:00" → "2024-05-01T10:00:00.123456Z" (sub-millisecond digits kept). */
export function utcIso(text: string): string {
  const m = /^(\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?(?::?\d\d)?)$/.exec(text);
  if (!m) return text; // infinity, BC dates: kept as PostgreSQL renders them
  const [, base, fraction = "", zone] = m as unknown as [string, string, string | undefined, string];
  const date = new Date(`${base}${normalizeZone(zone)}`);
  if (Number.isNaN(date.getTime())) return text;
  return `${date.toISOString().slice(0, 19)}${fraction}Z`;
}

function normalizeZone(zone: string): string {
  if (zone === "Z") return "Z";
  const sign = zone[0];
  const digits = zone.slice(1).replace(/:/g, "");
  const hh = digits.slice(0, 2);
  const mm = digits.slice(2, 4) || "00";
  // Seconds in a zone offset (historic LMT) cannot be expressed in Date syntax; they are below a minute.
  return `${sign}${hh}:${mm}`;
}

/** A JSON-safe rendering of a fact value: bigint as string, bytes as hex (used by `upkeep tail`). */
export function toJsonSafe(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return bytesToHex(v);
      return v;
    }),
  );
}
