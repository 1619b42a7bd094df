// The WebSocket protocol's frames: parsing what a client sends, encoding what the server sends. Shared by every
// adapter of the transport (and its tests); message types are in src/protocol.ts, names in WIRE.
import { TRANSPORT_TUNING, WIRE } from "../constants.ts";
import type { ClientMessage, ServerMessage, WireErrorCode } from "../protocol.ts";

export function parseClientMessage(value: unknown): ClientMessage | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "a message is a JSON object";
  const m = value as Record<string, unknown>;
  if (typeof m.id !== "string" || m.id.length === 0 || m.id.length > TRANSPORT_TUNING.maxSubscriptionIdLength) {
    return `id must be a non-empty string of at most ${TRANSPORT_TUNING.maxSubscriptionIdLength} characters`;
  }
  if (m.type === WIRE.msg.unsubscribe) return { type: "unsubscribe", id: m.id };
  if (m.type !== WIRE.msg.subscribe) {
    return `unknown message type ${JSON.stringify(m.type)}; expected "${WIRE.msg.subscribe}" or "${WIRE.msg.unsubscribe}"`;
  }
  if (typeof m.token !== "string" || m.token.length === 0) return "subscribe needs the token from the live marker";
  if (!Number.isSafeInteger(m.offset) || (m.offset as number) < 0) return "offset must be a non-negative integer";
  if (typeof m.incarnation !== "string") return "incarnation must be a string";
  return { type: "subscribe", id: m.id, token: m.token, offset: m.offset as number, incarnation: m.incarnation };
}

export function idOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const id = (value as Record<string, unknown>).id;
  return typeof id === "string" && id.length > 0 && id.length <= TRANSPORT_TUNING.maxSubscriptionIdLength
    ? id
    : undefined;
}

export function closeCodeName(code: number): WireErrorCode {
  switch (code) {
    case WIRE.close.tooManySubscriptions:
      return "too_many_subscriptions";
    case WIRE.close.messageTooLarge:
      return "message_too_large";
    case WIRE.close.tooManySubscribes:
      return "too_many_subscribes";
    default:
      return "too_many_malformed_messages";
  }
}

/**
 * A page group's patch goes to every subscriber with only the id differing. The HTML is JSON-encoded once (the
 * hub hands every subscriber the same string) and each frame is that buffer behind a small per-subscriber prefix,
 * which `ws` writes without copying or re-encoding.
 */
let lastHtml: string | null = null;
let lastHtmlJson: Buffer = Buffer.alloc(0);
const CLOSE_BRACE = Buffer.from("}");

/** Data mode: the last props or value message's body (every subscriber of a write is sent the same objects). */
let lastData: { a: unknown; b: unknown; c: unknown; json: string } | null = null;

function dataBody(a: unknown, b: unknown, c: unknown, make: () => string): string {
  if (lastData && lastData.a === a && lastData.b === b && lastData.c === c) return lastData.json;
  lastData = { a, b, c, json: make() };
  return lastData.json;
}

export function encode(message: ServerMessage): Buffer {
  if (message.type === "props" || message.type === "value") {
    const { type, id, offset, ...rest } = message;
    const [a, b, c] =
      message.type === "props"
        ? [message.props, message.patches, message.reload]
        : [message.value, message.patch, null];
    const body = dataBody(a, b, c, () => JSON.stringify(rest).slice(1));
    const head = `{"type":"${type}","id":${JSON.stringify(id)},"offset":${offset}`;
    return Buffer.from(body === "}" ? `${head}}` : `${head},${body}`);
  }
  if (message.type !== "patch") return Buffer.from(JSON.stringify(message));
  if (message.html !== lastHtml) {
    lastHtml = message.html;
    lastHtmlJson = Buffer.from(JSON.stringify(message.html));
  }
  const head = `{"type":"patch","id":${JSON.stringify(message.id)},"offset":${message.offset},"html":`;
  return Buffer.concat([Buffer.from(head), lastHtmlJson, CLOSE_BRACE]);
}
