import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServerMessage } from "../../src/deliver/types.ts";
import { encode } from "../../src/deliver/wire.ts";

test("patch frames share the encoded HTML and decode to exactly the message", () => {
  const html = `<turbo-stream action="update"><template><p title="a \\"q\\"">é ✓ \u2028 </p></template></turbo-stream>`;
  const messages: ServerMessage[] = [
    { type: "patch", id: 'x"1', offset: 7, html },
    { type: "patch", id: "y", offset: 8, html },
    { type: "patch", id: "z", offset: 9, html: `${html}<b>` },
    { type: "reload", id: "r", reason: "incarnation_mismatch" },
    { type: "error", code: "token_forged", message: "bad\nline" },
  ];
  for (const message of messages) assert.deepEqual(JSON.parse(encode(message).toString("utf8")), message);
});

test("data messages share their encoded body and decode to exactly the message", () => {
  const props = { todo: [{ id: 1, title: 'a "q" \u2028' }] };
  const patches = { done: [{ op: "remove" as const, path: "/0" }] };
  const messages: ServerMessage[] = [
    { type: "props", id: 'x"1', offset: 7, props, patches },
    { type: "props", id: "y", offset: 7, props, patches },
    { type: "props", id: "z", offset: 8, props, reload: ["big"] },
    { type: "props", id: "w", offset: 9 },
    { type: "value", id: "v", offset: 9, value: 3 },
    { type: "value", id: "v", offset: 10, patch: [{ op: "replace", path: "/a", value: null }] },
    { type: "value", id: "v", offset: 11, value: 4 },
  ];
  for (const message of messages) assert.deepEqual(JSON.parse(encode(message).toString("utf8")), message);
});
