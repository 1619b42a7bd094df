// The browser client cannot import the server's TypeScript constants; this keeps its copy in step.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WIRE as CLIENT_WIRE } from "../../src/client/constants.js";
import { WIRE } from "../../src/constants.ts";

test("the client's wire names equal the server's", () => {
  assert.deepEqual(JSON.parse(JSON.stringify(CLIENT_WIRE)), JSON.parse(JSON.stringify(WIRE)));
});
