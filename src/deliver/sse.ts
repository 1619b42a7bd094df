// The Server-Sent Events transport, for networks that block WebSockets: one event stream per subscription,
// a fetch-style handler (mount it at WIRE.eventsPath, e.g. `app.get(WIRE.eventsPath, (c) => handleEventStream(c.req.raw, hub))`).
//
// Resume: every patch is sent with `id: <offset>`, so a browser's automatic reconnect presents the last offset it
// received as `Last-Event-ID`, which takes precedence over the `offset` query parameter of the original URL.
// Messages without an offset (subscribed, reload, error) carry no id and leave the browser's last id untouched.
import { TRANSPORT_TUNING, WIRE } from "../constants.ts";
import { UpkeepError } from "../errors.ts";
import type { ServerMessage, Sink, SubscribeRequest, SubscriptionHub } from "./types.ts";

export interface EventStreamOptions {
  /** Comment lines sent this often keep proxies from closing an idle stream. */
  heartbeatMs?: number;
  /** The `retry:` the stream announces to the browser. */
  retryMs?: number;
  /** Bytes queued toward a client that is not reading, beyond which its stream is ended. */
  maxBufferedBytes?: number;
}

const encoder = new TextEncoder();

/** Formats one ServerMessage as an SSE event (exported for tests and other transports). */
export function formatEvent(message: ServerMessage): string {
  const id = message.type === "patch" ? `id: ${message.offset}\n` : "";
  // JSON.stringify escapes newlines, so the data fits on one `data:` line.
  return `${id}event: ${message.type}\ndata: ${JSON.stringify(message)}\n\n`;
}

export function handleEventStream(request: Request, hub: SubscriptionHub, options: EventStreamOptions = {}): Response {
  const heartbeatMs = options.heartbeatMs ?? TRANSPORT_TUNING.sseHeartbeatMs;
  const retryMs = options.retryMs ?? TRANSPORT_TUNING.sseRetryMs;
  const maxBufferedBytes = options.maxBufferedBytes ?? TRANSPORT_TUNING.maxBufferedBytes;
  const headers = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  };
  if (request.method !== "GET") {
    return new Response("Upkeep event streams are opened with GET.\n", {
      status: 405,
      headers: { allow: "GET", "content-type": "text/plain; charset=utf-8" },
    });
  }
  const parsed = parseRequest(request);

  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let unsubscribe: (() => void) | undefined;
  let ended = false;

  // True when the text was queued toward the client. The stream's queue is measured in bytes: a client that does
  // not read (the server cannot write to its socket) lets it grow past TRANSPORT_TUNING.maxBufferedBytes, and the
  // stream is then ended; the client resumes from its last offset.
  const write = (text: string): boolean => {
    if (ended || !controller) return false;
    if ((controller.desiredSize ?? 0) < 0) {
      finish();
      return false;
    }
    try {
      controller.enqueue(encoder.encode(text));
      return true;
    } catch {
      finish();
      return false;
    }
  };
  // Ends the stream and the subscription exactly once, whichever side goes first.
  const finish = () => {
    if (ended) return;
    ended = true;
    if (heartbeat) clearInterval(heartbeat);
    request.signal?.removeEventListener("abort", finish);
    if (unsubscribe) {
      try {
        unsubscribe();
      } catch {
        // the hub's cleanup failing must not leak into the response
      }
    }
    try {
      controller?.close();
    } catch {
      // already closed or cancelled
    }
  };
  const sink: Sink = {
    send(message) {
      const sent = write(formatEvent(message));
      // After a reload or a refused subscription the stream has nothing more to say; the client closes its
      // EventSource when it receives these, and ending the stream frees the server's side.
      if (message.type === WIRE.msg.reload || (message.type === WIRE.msg.error && message.id !== undefined)) {
        finish();
      }
      return sent;
    },
  };

  const body = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        write(`retry: ${retryMs}\n: upkeep\n\n`);
        if (typeof parsed === "string") {
          sink.send({ type: "error", code: "malformed_message", message: parsed });
          return finish();
        }
        if (request.signal?.aborted) return finish();
        request.signal?.addEventListener("abort", finish, { once: true });
        heartbeat = setInterval(() => write(": heartbeat\n\n"), heartbeatMs);
        heartbeat.unref?.();
        Promise.resolve()
          .then(() => hub.subscribe(parsed, sink))
          .then(
            (stop) => {
              unsubscribe = stop;
              // The client went away while the hub was registering: undo the registration now.
              if (ended) {
                try {
                  stop();
                } catch {
                  // nothing more to clean up
                }
              }
            },
            (error: unknown) => {
              const code = error instanceof UpkeepError ? error.code : "subscribe_failed";
              sink.send({
                type: "error",
                id: parsed.id,
                code,
                message: error instanceof Error ? error.message : String(error),
              });
              finish();
            },
          );
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: maxBufferedBytes, size: (chunk) => chunk.byteLength },
  );
  return new Response(body, { status: 200, headers });
}

function parseRequest(request: Request): SubscribeRequest | string {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return "the request URL cannot be parsed";
  }
  const q = url.searchParams;
  const token = q.get("token");
  const incarnation = q.get("incarnation");
  const id = q.get("id") ?? "sse";
  if (!token) return "the token query parameter is missing (use the token from the page's live marker)";
  if (incarnation === null) return "the incarnation query parameter is missing";
  if (id.length === 0 || id.length > TRANSPORT_TUNING.maxSubscriptionIdLength)
    return "the id query parameter is invalid";
  const lastEventId = request.headers.get("last-event-id");
  const raw = lastEventId !== null && lastEventId.trim() !== "" ? lastEventId.trim() : q.get("offset");
  const offset = raw !== null && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(offset)) {
    return lastEventId
      ? "the Last-Event-ID header is not an offset"
      : "the offset query parameter must be a non-negative integer";
  }
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name.toLowerCase()] = value;
  });
  return { id, token, offset, incarnation, headers };
}
