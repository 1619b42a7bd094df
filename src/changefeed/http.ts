// The changefeed over HTTP, for other services (cache invalidation, search indexing, webhooks): the ledger's facts
// after an offset, as Server-Sent Events or as JSON long-poll, in the manner of Electric's HTTP API. Off unless the
// app passes `createUpkeep({ changefeed: { authorize } })`; `authorize` decides per request which tables (and which
// of their columns) the caller may read.
//
//   GET /upkeep/changes?after=<offset>&tables=a,b[&incarnation=…]
//     Accept: text/event-stream → SSE: `event: fact` with `id: <offset>` per fact, `event: up-to-date` each time the
//       stream has caught up with the ledger's head; resumes from `Last-Event-ID`.
//     otherwise → JSON `{ incarnation, offset, facts, upToDate }`; with `live=true` and nothing new, it waits up to
//       `longPollMs` for the next fact (long-poll). Continue with `after=<offset>`.
//   Every response carries `upkeep-incarnation`. A cursor below the horizon of one of the tables asked for (every
//   table granted when none are) answers 409 `cursor_too_old` with the oldest offset valid for those tables, the
//   table, and what to do; a cursor from another incarnation answers 409 `incarnation_changed`. An event stream gets
//   either as an `event: error` in a 200 stream (an EventSource reads no body of another status).
//   `tables: "*"` grants the application's tables, not Upkeep's own (UPKEEP_TABLES), which only a list grants.
//
// Backpressure: facts are read from the ledger only as fast as the consumer takes them (the SSE stream pulls one batch
// at a time), so each connection holds at most one batch (`batchFacts`). Overflow policy: nothing is dropped — a
// consumer too slow for the retention window falls below the horizon and gets `cursor_too_old` (an SSE error event,
// then the stream ends), from which it resynchronises.
import { UPKEEP_TABLES } from "../constants.ts";
import { IncarnationMismatchError, OffsetTooOldError } from "../errors.ts";
import { horizonOf } from "../ledger/core.ts";
import { toJsonSafe } from "../ledger/decode.ts";
import type { Fact, Ledger } from "../ledger/types.ts";

/** What a caller may read: tables and, per table, the columns it may see. */
export interface ChangefeedAccess {
  /** "*": every captured table of the application — not Upkeep's own (`upkeep_presence`, `upkeep_identifiers`),
   *  which a caller reads only when its list names them. */
  tables: "*" | readonly string[];
  /** Per table, the columns whose values are sent; other columns are removed from keys and images. */
  columns?: Readonly<Record<string, readonly string[]>>;
}

export interface ChangefeedOptions {
  /** Who may read what; null (or a rejected promise) answers 403. Check the caller's credentials here. */
  authorize(request: Request): ChangefeedAccess | null | Promise<ChangefeedAccess | null>;
  /** Facts read (and held) per batch, per connection. Default 500. */
  batchFacts?: number;
  /** How long a `live=true` long-poll waits for a fact. Default 20 s. */
  longPollMs?: number;
  /** SSE comment heartbeat. Default 15 s. */
  heartbeatMs?: number;
}

export const CHANGES_PATH = "/upkeep/changes";

/** Upkeep's own captured tables: granted only by name, never by "*". */
const OWN_TABLES: ReadonlySet<string> = new Set(Object.values(UPKEEP_TABLES));

function json(status: number, body: unknown, incarnation: string): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", "upkeep-incarnation": incarnation },
  });
}

/** The fact as sent: only the columns the caller may see. */
export function project(fact: Fact, access: ChangefeedAccess): Record<string, unknown> {
  const allowed = access.columns?.[fact.table];
  const keep = (row: Record<string, unknown> | null) =>
    row && allowed ? Object.fromEntries(Object.entries(row).filter(([column]) => allowed.includes(column))) : row;
  return toJsonSafe({
    offset: fact.offset,
    table: fact.table,
    op: fact.op,
    key: keep(fact.key),
    old: keep(fact.old),
    new: keep(fact.new),
    txid: fact.txid,
    committedAt: fact.committedAt,
    ...(fact.unavailable ? { unavailable: fact.unavailable } : {}),
  }) as Record<string, unknown>;
}

/** Answers a changefeed request (fetch-style). */
export async function handleChanges(request: Request, ledger: Ledger, options: ChangefeedOptions): Promise<Response> {
  const incarnation = ledger.incarnation;
  let access: ChangefeedAccess | null;
  try {
    access = await options.authorize(request);
  } catch {
    access = null;
  }
  if (!access) return json(403, { error: "forbidden", message: "not allowed to read the changefeed" }, incarnation);
  const url = new URL(request.url);
  const asked = url.searchParams.get("tables")?.split(",").filter(Boolean) ?? null;
  const allowed = access.tables === "*" ? null : new Set(access.tables);
  const granted = (table: string) => (allowed ? allowed.has(table) : !OWN_TABLES.has(table));
  const captured = ledger.capturedTables();
  for (const table of asked ?? []) {
    if (!granted(table))
      return json(403, { error: "forbidden_table", table, message: `not allowed to read table ${table}` }, incarnation);
    if (!captured.has(table))
      return json(400, { error: "unknown_table", table, message: `${table} is not a captured table` }, incarnation);
  }
  const tables = asked ?? (allowed ? [...allowed] : null);
  const wanted = tables ? new Set(tables) : null;
  // The tables whose horizons the cursor is checked against: those asked for, else every table granted now.
  const checked = tables ?? [...captured].filter(granted);
  const sse = (request.headers.get("accept") ?? "").includes("text/event-stream");
  const lastEventId = request.headers.get("last-event-id");
  const afterParam = lastEventId ?? url.searchParams.get("after");
  const after = afterParam === null || afterParam === "" ? await ledger.head() : Number(afterParam);
  if (!Number.isSafeInteger(after) || after < 0)
    return json(400, { error: "bad_cursor", message: "after must be a non-negative integer offset" }, incarnation);
  // A cursor that cannot be followed answers 409 with what to do; an event stream gets the same body as an
  // `event: error` in a 200 stream, which an EventSource can read (it reads no body of another status).
  const refuse = (body: Record<string, unknown>) =>
    sse ? errorStream(body, incarnation) : json(409, body, incarnation);
  const claimed = url.searchParams.get("incarnation");
  if (claimed && claimed !== incarnation)
    return refuse({ error: "incarnation_changed", incarnation, resync: resyncHint(await ledger.head()) });
  // Too old only for the tables asked for (every table granted when none are): each table keeps facts by its own
  // retention.
  const only = { tables: checked };
  const { horizon, table } = horizonOf(await ledger.horizons(), checked);
  if (after < horizon) return refuse(tooOld(after, horizon + 1, table, incarnation, await ledger.head()));
  const limit = options.batchFacts ?? 500;
  const keep = (fact: Fact) => (wanted ? wanted.has(fact.table) : granted(fact.table));

  if (!sse) {
    // JSON: what is there now, or — live=true — wait for the next fact.
    const live = url.searchParams.get("live") === "true";
    let cursor = after;
    const facts: Fact[] = [];
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), options.longPollMs ?? 20_000);
    request.signal?.addEventListener("abort", () => deadline.abort());
    try {
      for await (const batch of ledger.follow(after, { limit, incarnation, signal: deadline.signal, ...only })) {
        cursor = (batch[batch.length - 1] as Fact).offset;
        facts.push(...batch.filter(keep));
        if (facts.length > 0 || !live || batch.length < limit) break;
      }
      if (!live && facts.length === 0) cursor = Math.max(cursor, after);
    } catch (error) {
      if (error instanceof OffsetTooOldError)
        return json(409, tooOld(after, error.oldest, error.table, incarnation, await ledger.head()), incarnation);
      if (error instanceof IncarnationMismatchError)
        return json(409, { error: "incarnation_changed", incarnation: ledger.incarnation }, incarnation);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    const head = await ledger.head();
    return json(
      200,
      { incarnation, offset: cursor, facts: facts.map((f) => project(f, access)), upToDate: cursor >= head },
      incarnation,
    );
  }

  // SSE: pulled one batch at a time from the ledger.
  const encoder = new TextEncoder();
  const abort = new AbortController();
  request.signal?.addEventListener("abort", () => abort.abort());
  const batches = ledger.follow(after, { limit, incarnation, signal: abort.signal, ...only })[Symbol.asyncIterator]();
  let heartbeat: NodeJS.Timeout | undefined;
  /** The last offset the stream has passed, and the last one it announced as caught up. */
  let position = after;
  let announced = -1;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(encoder.encode(`retry: 1000\n: upkeep changefeed, incarnation ${incarnation}\n\n`));
        heartbeat = setInterval(() => {
          try {
            controller.enqueue(encoder.encode(": heartbeat\n\n"));
          } catch {
            clearInterval(heartbeat);
          }
        }, options.heartbeatMs ?? 15_000);
        heartbeat.unref?.();
      },
      async pull(controller) {
        try {
          // Caught up with the head: say so (once per position) before waiting for the next fact.
          if (announced !== position && (await ledger.head()) <= position) {
            announced = position;
            controller.enqueue(encoder.encode(`event: up-to-date\ndata: ${JSON.stringify({ offset: position })}\n\n`));
          }
          const next = await batches.next();
          if (next.done) {
            clearInterval(heartbeat);
            return controller.close();
          }
          let out = "";
          for (const fact of next.value) {
            if (keep(fact))
              out += `event: fact\nid: ${fact.offset}\ndata: ${JSON.stringify(project(fact, access))}\n\n`;
          }
          position = (next.value[next.value.length - 1] as Fact).offset;
          // A batch the caller may read nothing of still moves its position (a comment carries no id).
          controller.enqueue(encoder.encode(out || `: ${position}\n\n`));
        } catch (error) {
          const body =
            error instanceof OffsetTooOldError
              ? {
                  error: "cursor_too_old",
                  oldest: error.oldest,
                  ...(error.table ? { table: error.table } : {}),
                  resync: resyncHint(await ledger.head()),
                }
              : error instanceof IncarnationMismatchError
                ? { error: "incarnation_changed", incarnation: ledger.incarnation }
                : { error: "internal", message: (error as Error).message };
          controller.enqueue(encoder.encode(`event: error\ndata: ${JSON.stringify(body)}\n\n`));
          clearInterval(heartbeat);
          controller.close();
        }
      },
      cancel() {
        clearInterval(heartbeat);
        abort.abort();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "upkeep-incarnation": incarnation,
      "x-accel-buffering": "no",
    },
  });
}

function resyncHint(head: number): string {
  return `read the current state of the tables you follow, then follow from after=${head}`;
}

/** The body of 409 cursor_too_old: `oldest` is the oldest offset valid for the tables asked for; `table` the one
 *  whose retention pruned past the cursor (absent: the horizon every table shares). */
function tooOld(after: number, oldest: number, table: string | null, incarnation: string, head: number) {
  return {
    error: "cursor_too_old",
    after,
    oldest,
    ...(table ? { table } : {}),
    incarnation,
    message: table
      ? `facts of ${table} after ${after} were pruned by its retention; the oldest offset kept for the tables asked for is ${oldest}`
      : `facts after ${after} were pruned; the oldest kept offset is ${oldest}`,
    resync: resyncHint(head),
  };
}

/** An event stream that says only why it cannot be followed (`event: error`), then ends. */
function errorStream(body: Record<string, unknown>, incarnation: string): Response {
  return new Response(`event: error\ndata: ${JSON.stringify(body)}\n\n`, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "upkeep-incarnation": incarnation,
    },
  });
}
