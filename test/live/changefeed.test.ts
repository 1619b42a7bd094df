// The changefeed on both dialects: off by default; authorised per request by table and column; JSON (with long-poll)
// and Server-Sent Events with Last-Event-ID resume and up-to-date control events; a pruned cursor answered with 409
// and what to do; the same facts from Node through upkeep.changes().
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { Hono } from "hono";
import { upkeepMiddleware } from "../../src/hono/index.ts";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { DIALECTS, dialectTest, type Fixture, fixtureDatabase, SECRET } from "./fixture.ts";

interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Reads a response's Server-Sent Events as they come: `until` waits for a condition on all events so far. */
function eventsOf(response: Response) {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = "";
  const parse = () => {
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":") || !line.includes(":")) continue;
        fields[line.slice(0, line.indexOf(":"))] = line.slice(line.indexOf(":") + 1).trim();
      }
      if (fields.event || fields.data)
        events.push({ event: fields.event ?? "message", id: fields.id, data: fields.data ?? "" });
      end = buffer.indexOf("\n\n");
    }
  };
  return {
    events,
    async until(done: (events: SseEvent[]) => boolean, timeoutMs = 5000): Promise<SseEvent[]> {
      const deadline = Date.now() + timeoutMs;
      while (!done(events)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out; events so far: ${JSON.stringify(events)}`);
        const next = await Promise.race([
          reader.read(),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), left)),
        ]);
        if (next === null) continue;
        if (next.done) throw new Error(`the stream ended; events: ${JSON.stringify(events)}`);
        buffer += decoder.decode(next.value, { stream: true });
        parse();
      }
      return events;
    },
    close: () => reader.cancel().catch(() => {}),
  };
}

for (const dialect of DIALECTS) {
  describe(`changefeed (${dialect})`, () => {
    let fixture: Fixture | null = null;
    let upkeep: Upkeep;
    let off: Upkeep;
    let app: Hono;
    const tokens: Record<string, { tables: "*" | string[]; columns?: Record<string, string[]> }> = {
      all: { tables: "*" },
      items: { tables: ["items"], columns: { items: ["id", "title"] } },
      ids: { tables: ["items"], columns: { items: ["id"] } },
      odd: { tables: ["odd"], columns: { odd: [] } },
      own: { tables: ["items", "upkeep_identifiers"] },
    };

    before(async () => {
      fixture = await fixtureDatabase(dialect);
      if (!fixture) return;
      // A table whose one column is named like the capture's marker for an unavailable image.
      await fixture.exec('create table odd ("$unavailable" text)');
      upkeep = await createUpkeep({
        database: fixture.database,
        secret: SECRET,
        mode: "test",
        install: true,
        identifiers: true,
        retentionMs: 0,
        changefeed: {
          authorize: (request) => tokens[request.headers.get("authorization")?.replace("Bearer ", "") ?? ""] ?? null,
          longPollMs: 2000,
          heartbeatMs: 60_000,
        },
      });
      app = new Hono();
      app.use(upkeepMiddleware(upkeep));
      off = await createUpkeep({ database: fixture.database, secret: SECRET, mode: "test" });
    });
    after(async () => {
      await upkeep?.close();
      await off?.close();
      await fixture?.drop();
    });
    const it = dialectTest(() => fixture);
    const get = (path: string, token: string | null, headers: Record<string, string> = {}) =>
      app.fetch(
        new Request(`http://localhost${path}`, {
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
        }),
      );

    it("is off unless configured, and answers who may not read with 403", async () => {
      const plain = new Hono();
      plain.use(upkeepMiddleware(off));
      const response = await plain.fetch(new Request("http://localhost/upkeep/changes?after=0"));
      assert.equal(response.status, 404);
      assert.equal((await response.json()).error, "changefeed_off");
      assert.equal((await get("/upkeep/changes?after=0", null)).status, 403);
      const forbidden = await get("/upkeep/changes?after=0&tables=secrets", "items");
      assert.equal(forbidden.status, 403);
      assert.equal((await forbidden.json()).table, "secrets");
      assert.equal((await get("/upkeep/changes?after=0&tables=nope", "all")).status, 400);
    });

    it("JSON: the facts of the allowed tables after the cursor, redacted to the allowed columns", async () => {
      const start = await upkeep.ledger.head();
      await fixture!.exec("insert into items (list, title, pos) values ('cf', 'one', 7)");
      await fixture!.exec("insert into secrets (owner, body) values ('cf', 'hidden')");
      await upkeep.ledger.sync();
      const response = await get(`/upkeep/changes?after=${start}`, "items");
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("upkeep-incarnation"), upkeep.ledger.incarnation);
      const body = await response.json();
      assert.equal(body.facts.length, 1);
      assert.deepEqual(Object.keys(body.facts[0].new).sort(), ["id", "title"]);
      assert.equal(body.facts[0].new.title, "one");
      assert.equal(body.facts[0].op, "insert");
      assert.equal(body.offset, await upkeep.ledger.head());
      assert.equal(body.upToDate, true);
      const everything = await (await get(`/upkeep/changes?after=${start}`, "all")).json();
      assert.deepEqual(
        everything.facts.map((f: { table: string }) => f.table),
        ["items", "secrets"],
      );
    });

    it("JSON long-poll: live=true waits for the next fact", async () => {
      const head = await upkeep.ledger.sync();
      const pending = get(`/upkeep/changes?after=${head}&tables=items&live=true`, "all");
      await new Promise((resolve) => setTimeout(resolve, 150));
      await fixture!.exec("insert into items (list, title, pos) values ('cf', 'waited for', 1)");
      upkeep.ledger.poke();
      const body = await (await pending).json();
      assert.equal(body.facts.length, 1);
      assert.equal(body.facts[0].new.title, "waited for");
    });

    it("SSE: facts with their offsets as ids, an up-to-date event once caught up, and Last-Event-ID resume", async () => {
      const head = await upkeep.ledger.sync();
      const response = await get(`/upkeep/changes?after=${head}&tables=items`, "all", { accept: "text/event-stream" });
      assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
      const stream = eventsOf(response);
      // Caught up at once (nothing after the head yet), then the facts as they commit.
      await stream.until((events) => events.some((e) => e.event === "up-to-date"));
      for (const title of ["a", "b", "c"])
        await fixture!.exec(`insert into items (list, title, pos) values ('sse', '${title}', 1)`);
      upkeep.ledger.poke();
      const events = await stream.until((all) => all.filter((e) => e.event === "fact").length >= 3);
      await stream.close();
      assert.equal(events[0]?.event, "up-to-date");
      const facts = events.filter((e) => e.event === "fact");
      assert.deepEqual(
        facts.map((f) => JSON.parse(f.data).new.title),
        ["a", "b", "c"],
      );
      for (const f of facts) assert.equal(Number(f.id), JSON.parse(f.data).offset);
      // Resume after the first: only the two later facts (then caught up).
      const resumed = eventsOf(
        await get("/upkeep/changes?tables=items", "all", {
          accept: "text/event-stream",
          "last-event-id": facts[0]?.id as string,
        }),
      );
      const again = await resumed.until((all) => all.some((e) => e.event === "up-to-date"));
      await resumed.close();
      assert.deepEqual(
        again.filter((e) => e.event === "fact").map((f) => JSON.parse(f.data).new.title),
        ["b", "c"],
      );
    });

    it("history: every fact of one row, oldest first, and the row as of each offset", async () => {
      await fixture!.exec("insert into items (list, title, pos) values ('hist', 'first', 1)");
      const { id } = await upkeep
        .db<any>()
        .selectFrom("items")
        .select("id")
        .where("list", "=", "hist")
        .executeTakeFirstOrThrow();
      const before = await upkeep.ledger.sync();
      await fixture!.exec(`update items set title = 'second' where id = ${id}`);
      await fixture!.exec(`update items set title = 'third' where id = ${id}`);
      await fixture!.exec("insert into items (list, title, pos) values ('hist', 'another row', 2)");
      await fixture!.exec(`delete from items where id = ${id}`);
      await upkeep.ledger.sync();
      const { facts, horizon } = await upkeep.history("items", { id: Number(id) });
      assert.equal(horizon, await upkeep.ledger.horizon(["items"]));
      assert.deepEqual(
        facts.map((f) => f.op),
        ["insert", "update", "update", "delete"],
      );
      assert.ok(facts.every((f, i) => i === 0 || f.offset > (facts[i - 1] as { offset: number }).offset));
      const titles = await Promise.all(
        facts.map(async (f) => {
          const at = await upkeep.rowAt("items", { id: Number(id) }, f.offset);
          return "row" in at ? (at.row?.title ?? null) : "untouched";
        }),
      );
      assert.deepEqual(titles, ["first", "second", "third", null]);
      // Between two facts: the earlier one's image; before the first: absent.
      const between = await upkeep.rowAt("items", { id: Number(id) }, (facts[1]?.offset as number) + 0);
      assert.ok("row" in between && between.row?.title === "second");
      const beforeInsert = await upkeep.rowAt("items", { id: Number(id) }, (facts[0]?.offset as number) - 1);
      assert.deepEqual(beforeInsert, { row: null });
      assert.ok(before > 0);
      assert.deepEqual(await upkeep.rowAt("items", { id: 999_999 }, before), { untouched: true });
    });

    it("a cursor below the oldest kept fact answers 409 cursor_too_old with the oldest offset and how to resync", async () => {
      await fixture!.exec("insert into items (list, title, pos) values ('old', 'x', 1)");
      const head = await upkeep.ledger.sync();
      // Every process's hold on the ledger at its current position, so that pruning may reach the head.
      await upkeep.settle();
      await off.settle();
      await upkeep.hub.holdPosition();
      await off.hub.holdPosition();
      await upkeep.ledger.prune({ olderThanMs: 0, atOrBelow: head });
      assert.equal(await upkeep.ledger.horizon(), head);
      const response = await get("/upkeep/changes?after=0", "all");
      assert.equal(response.status, 409);
      const body = await response.json();
      assert.equal(body.error, "cursor_too_old");
      assert.equal(body.oldest, (await upkeep.ledger.horizon()) + 1);
      assert.match(body.resync, /follow from after=/);
      await assert.rejects(upkeep.rowAt("items", { id: 1 }, 0), /pruned/);
      // An event stream opened on that cursor: a 200 stream an EventSource can read, whose one event says the same.
      const opened = await get("/upkeep/changes?after=0", "all", { accept: "text/event-stream" });
      assert.equal(opened.status, 200);
      assert.match(opened.headers.get("content-type") ?? "", /text\/event-stream/);
      const told = await eventsOf(opened).until((events) => events.some((e) => e.event === "error"));
      const error = JSON.parse(told.find((e) => e.event === "error")?.data ?? "{}");
      assert.equal(error.error, "cursor_too_old");
      assert.equal(error.oldest, body.oldest);
      assert.match(error.resync, /follow from after=/);
      const stale = await get(`/upkeep/changes?after=${head}&incarnation=another`, "all");
      assert.equal(stale.status, 409);
      assert.equal((await stale.json()).error, "incarnation_changed");
    });

    it("\"*\" is the application's tables: Upkeep's own are served only to a grant that names them", async () => {
      const start = await upkeep.ledger.sync();
      await fixture!.exec("insert into upkeep_identifiers (identifier, version) values ('Weather:paris', 1)");
      await fixture!.exec("insert into items (list, title, pos) values ('own', 'app', 1)");
      await upkeep.ledger.sync();
      const everything = await (await get(`/upkeep/changes?after=${start}`, "all")).json();
      assert.deepEqual(
        everything.facts.map((f: { table: string }) => f.table),
        ["items"],
      );
      assert.equal((await get(`/upkeep/changes?after=${start}&tables=upkeep_identifiers`, "all")).status, 403);
      const named = await (await get(`/upkeep/changes?after=${start}&tables=upkeep_identifiers`, "own")).json();
      assert.deepEqual(
        named.facts.map((f: { new: { identifier: string } }) => f.new.identifier),
        ["Weather:paris"],
      );
    });

    it("an unavailable image's reason carries no row data, whatever the columns redacted", async () => {
      const start = await upkeep.ledger.sync();
      await fixture!.exec("insert into odd values ('the value of a redacted column')");
      if (dialect === "sqlite") {
        // A fact whose image the reader cannot decode: the parser's message would quote the text around the fault.
        await fixture!.exec("insert into items (list, title, pos) values ('poison', 'top-secret title', 1)");
        await fixture!.exec(
          `update upkeep_facts set new = '{"id": 1, "title": "top-secret title" Inf}' where id = (select max(id) from upkeep_facts)`,
        );
      }
      await upkeep.ledger.sync();
      const odd = await (await get(`/upkeep/changes?after=${start}&tables=odd`, "odd")).json();
      assert.equal(odd.facts.length, 1);
      assert.doesNotMatch(JSON.stringify(odd.facts[0]), /redacted column/);
      assert.ok(odd.facts[0].unavailable, "planned as unavailable: the image may be a marker or a row");
      if (dialect === "sqlite") {
        const items = await (await get(`/upkeep/changes?after=${start}&tables=items`, "ids")).json();
        assert.equal(items.facts.length, 1);
        assert.match(items.facts[0].unavailable, /undecodable image/);
        assert.doesNotMatch(JSON.stringify(items.facts[0]), /secret/);
      }
    });

    it("from Node: upkeep.changes({ tables, after }) yields the same facts", async () => {
      const head = await upkeep.ledger.sync();
      await fixture!.exec("insert into secrets (owner, body) values ('node', 'skipped')");
      await fixture!.exec("insert into items (list, title, pos) values ('node', 'kept', 1)");
      const controller = new AbortController();
      const seen = [];
      for await (const fact of upkeep.changes({ tables: ["items"], after: head, signal: controller.signal })) {
        seen.push(fact);
        controller.abort();
      }
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.table, "items");
      assert.equal(seen[0]?.new?.title, "kept");
    });
  });
}
