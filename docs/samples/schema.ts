// The schema every sample uses: a table of todos. Created with the database's own client before Upkeep installs its
// ledger (install reads the schema to generate the capture triggers).
import { DatabaseSync } from "node:sqlite";
import type { Generated } from "kysely";
import pg from "pg";

export interface Database {
  todos: { id: Generated<number>; list: string; title: string; done: number };
  /** A view: reads of it cannot be kept live (capture sees tables, not views). */
  open_todos: { id: number; list: string; title: string; done: number };
}

export async function createTodos(database: string): Promise<void> {
  if (database.startsWith("postgres")) {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    await client.query(
      "create table if not exists todos (id serial primary key, list text not null, title text not null, done integer not null default 0)",
    );
    await client.query("create or replace view open_todos as select * from todos where done = 0");
    await client.end();
    return;
  }
  const db = new DatabaseSync(database.replace(/^file:/, ""));
  db.exec(
    "create table if not exists todos (id integer primary key, list text not null, title text not null, done integer not null default 0)",
  );
  db.exec("create view if not exists open_todos as select * from todos where done = 0");
  db.close();
}
