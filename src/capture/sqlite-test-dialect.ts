// Test support: a Kysely dialect over node:sqlite, so capture and analysis tests run against real SQLite without
// depending on the ledger's dialect.
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { SqliteDialect } from "kysely";

function bind(value: unknown): SQLInputValue {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value as SQLInputValue;
}

export function nodeSqliteTestDialect(db: DatabaseSync): SqliteDialect {
  return new SqliteDialect({
    database: {
      close: () => db.close(),
      prepare(sql: string) {
        const stmt = db.prepare(sql);
        return {
          reader: stmt.columns().length > 0,
          all: (params: readonly unknown[]) => stmt.all(...params.map(bind)),
          run: (params: readonly unknown[]) => stmt.run(...params.map(bind)),
          iterate: (params: readonly unknown[]) => stmt.iterate(...params.map(bind)) as IterableIterator<unknown>,
        };
      },
    },
  });
}

export const TEST_SCHEMA = `
  create table boards (id integer primary key, name text not null, owner text);
  create table cards (id integer primary key, board_id integer not null, title text not null,
                      status text not null, position integer not null, archived integer not null default 0);
  create table tags (card_id integer not null, tag text not null, primary key (card_id, tag));
  insert into boards values (1, 'One', 'ann'), (2, 'Two', 'bob');
  insert into cards values (1, 1, 'a', 'todo', 1, 0), (2, 1, 'b', 'doing', 2, 0), (3, 2, 'c', 'done', 1, 0);
  insert into tags values (1, 'x'), (2, 'y');
`;
