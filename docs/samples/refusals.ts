// Every refusal code, each with a read Upkeep refuses and the rewrite it suggests. test/docs/samples.test.ts renders
// each `refused` in a live GET (expecting that code) and each `rewrite` (expecting a live page).
import { html } from "hono/html";
import { type Kysely, sql } from "kysely";
import { Collection, partial } from "../../src/index.ts";
import type { Database } from "./schema.ts";

type Db = Kysely<Database>;

export interface RefusalExample {
  code: string;
  refused(db: Db): Promise<unknown>;
  rewrite(db: Db): Promise<unknown>;
}

const Card = partial("card", ({ title }: { title: string }) => html`<p id="card">${title}</p>`);
const Loose = partial("loose", () => html`<p id="one">a</p><p id="two">b</p>`);
const Todo = partial("todo", ({ todo }: { todo: { id?: number; title: string } }) => html`<li id="todo_${todo.id ?? todo.title}">${todo.title}</li>`);
const Named = partial("named", ({ onClick }: { onClick?: () => void }) => html`<p id="named">${typeof onClick}</p>`);

export const REFUSALS: RefusalExample[] = [
  {
    code: "refused_raw_query",
    refused: (db) => sql`select * from todos`.execute(db),
    rewrite: (db) => db.selectFrom("todos").selectAll().execute(),
  },
  {
    code: "refused_opaque_predicate",
    refused: (db) => db.selectFrom("todos").selectAll().where(sql<boolean>`title like 'a%'`).execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().where("title", "like", "a%").execute(),
  },
  {
    code: "refused_opaque_join",
    refused: (db) =>
      db
        .selectFrom("todos as a")
        .innerJoin("todos as b", (join) => join.on(sql<boolean>`a.list = b.list`))
        .select("a.id")
        .execute(),
    rewrite: (db) => db.selectFrom("todos as a").innerJoin("todos as b", "a.list", "b.list").select("a.id").execute(),
  },
  {
    code: "refused_opaque_source",
    refused: (db) =>
      db
        .selectFrom(sql<{ id: number }>`(select id from todos)`.as("t"))
        .selectAll()
        .execute(),
    rewrite: (db) => db.selectFrom(db.selectFrom("todos").select("id").as("t")).selectAll().execute(),
  },
  {
    code: "refused_opaque_order",
    refused: (db) => db.selectFrom("todos").selectAll().orderBy(sql`length(title)`).execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().orderBy("title", "desc").execute(),
  },
  {
    code: "refused_opaque_selection",
    refused: (db) =>
      db
        .selectFrom("todos")
        .select(sql<number>`(select count(*) from todos)`.as("n"))
        .execute(),
    rewrite: (db) =>
      db
        .selectFrom("todos")
        .select((eb) => eb.selectFrom("todos").select(eb.fn.countAll().as("c")).as("n"))
        .execute(),
  },
  {
    code: "refused_opaque_modifier",
    refused: (db) => db.selectFrom("todos").selectAll().modifyEnd(sql`limit 1`).execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().limit(1).execute(),
  },
  {
    code: "refused_uncaptured_source",
    refused: (db) => db.selectFrom("open_todos").selectAll().execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().where("done", "=", 0).execute(),
  },
  {
    code: "refused_unsupported_query",
    refused: (db) => db.selectFrom("todos").selectAll().limit(sql<number>`1`).execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().limit(1).execute(),
  },
  {
    code: "refused_write_in_render",
    refused: (db) => db.updateTable("todos").set({ done: 1 }).where("id", "=", -1).execute(),
    rewrite: (db) => db.selectFrom("todos").selectAll().where("id", "=", -1).execute(),
  },
  {
    code: "refused_frame_props",
    refused: async () => String(await Named({ onClick: () => {} })),
    rewrite: async () => String(await Card({ title: "plain data" })),
  },
  {
    code: "refused_collection_key",
    refused: async (db) =>
      String(await Collection({ id: "todos", tag: "ul", item: Todo, of: () => db.selectFrom("todos").select("title").execute() })),
    rewrite: async (db) =>
      String(
        await Collection({ id: "todos", tag: "ul", item: Todo, of: () => db.selectFrom("todos").select(["id", "title"]).execute() }),
      ),
  },
  {
    code: "refused_frame_root",
    refused: async () => String(await Loose({})),
    rewrite: async () => String(await Card({ title: "one root" })),
  },
];
