// The Express chat example (examples/chat) on both dialects: what each signed-in viewer's pages show as others
// write — the shared messages, their own marked as theirs, their own unread counts — and that every live page equals
// a fresh GET by the same viewer afterwards.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CHAT_SCHEMA, createChatApp } from "../../examples/chat/app.ts";
import { prepareChatDatabase } from "../../examples/chat/server.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import type { FetchApp } from "../../src/render/page.ts";
import { freshBody, type LivePage, openLivePage } from "../../src/testing/index.ts";
import { fetchAppOf } from "../../src/web/inject.ts";
import { DIALECTS, type Dialect, SECRET } from "../live/fixture.ts";
import { createTestDatabase, POSTGRES_SKIP_MESSAGE, postgresUrl } from "../support/postgres.ts";

for (const dialect of DIALECTS as Dialect[]) {
  describe(`the chat example on Express (${dialect})`, {
    skip: dialect === "postgres" && !postgresUrl() ? POSTGRES_SKIP_MESSAGE : false,
  }, () => {
    let upkeep: Upkeep;
    let app: FetchApp;
    let drop = async () => {};

    before(async () => {
      let database = `file:${join(mkdtempSync(join(tmpdir(), "upkeep-chat-")), "chat.sqlite")}`;
      if (dialect === "postgres") {
        const created = await createTestDatabase("upkeep_chat");
        if (!created.url) throw new Error(created.reason);
        database = created.url;
        drop = created.drop;
      }
      assert.ok(CHAT_SCHEMA[dialect]);
      await prepareChatDatabase(database);
      upkeep = await createUpkeep({ database, secret: SECRET, mode: "test", install: true });
      const express = createChatApp(upkeep);
      upkeep.use(express);
      app = fetchAppOf(express);
    });
    after(async () => {
      await upkeep?.close();
      await drop();
    });

    const as = (user: string) => ({ headers: { cookie: `user=${user}` } });
    const post = async (user: string, path: string, form: Record<string, string>) => {
      const response = await app.fetch(
        new Request(`http://localhost${path}`, {
          method: "POST",
          headers: { cookie: `user=${user}`, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(form),
        }),
      );
      assert.equal(response.status, 303);
      await upkeep.settle();
    };
    const converged = async (page: LivePage, user: string) =>
      assert.equal(page.body(), await freshBody(app, page.url, { cookie: `user=${user}` }));

    test("a message reaches every viewer of the room, marked as theirs only for its author, and counts as unread for the others", async () => {
      const aliceRoom = await openLivePage(upkeep, app, "/rooms/1", as("alice"));
      const bobRoom = await openLivePage(upkeep, app, "/rooms/1", as("bob"));
      const aliceRooms = await openLivePage(upkeep, app, "/", as("alice"));
      const bobRooms = await openLivePage(upkeep, app, "/", as("bob"));

      await post("bob", "/rooms/1/messages", { body: "hello from bob" });
      assert.match(aliceRoom.body(), /hello from bob/);
      assert.match(bobRoom.body(), /class="mine"[^>]*><strong>bob<\/strong>: hello from bob/);
      assert.doesNotMatch(aliceRoom.body(), /class="mine"/);
      assert.match(aliceRooms.body(), /id="unread_1"[^>]*>1</);
      assert.doesNotMatch(bobRooms.body(), /id="unread_1"/, "bob read his own message as he wrote it");

      await post("alice", "/rooms/1/read", {});
      assert.doesNotMatch(aliceRooms.body(), /id="unread_1"/);

      for (const [page, user] of [
        [aliceRoom, "alice"],
        [bobRoom, "bob"],
        [aliceRooms, "alice"],
        [bobRooms, "bob"],
      ] as const) {
        await converged(page, user);
        page.close();
      }
    });

    test("a viewer's own read marker never reaches another viewer's page", async () => {
      const carol = await openLivePage(upkeep, app, "/", as("carol"));
      const dave = await openLivePage(upkeep, app, "/", as("dave"));
      await post("dave", "/rooms/2/messages", { body: "in random" });
      const carolFrom = carol.messages.length;
      const daveFrom = dave.messages.length;
      await post("carol", "/rooms/2/read", {});
      assert.ok(carol.messages.length > carolFrom, "carol's unread count changed");
      assert.equal(dave.messages.length, daveFrom, "dave's page reacted to carol's read marker");
      await converged(carol, "carol");
      await converged(dave, "dave");
      carol.close();
      dave.close();
    });
  });
}
