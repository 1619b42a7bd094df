// A small app that reads and writes through a database driver directly (raw pg, node:sqlite, better-sqlite3), with
// Upkeep capturing at the driver: the same app for each driver, which only says how to send a statement.
import { execFileSync } from "node:child_process";
import * as sqlite from "node:sqlite";
import { DatabaseSync } from "node:sqlite";
import Database from "better-sqlite3";
import { Hono } from "hono";
import { html } from "hono/html";
import pg from "pg";
import { upkeepMiddleware } from "../../../src/hono/index.ts";
import type { Upkeep } from "../../../src/index.ts";
import { Collection, partial } from "../../../src/index.ts";
import type { Dialect } from "../fixture.ts";

export type Row = Record<string, unknown>;

/** How the app sends statements through one driver (`?` placeholders; pg's are made `$n`). */
export interface DriverApp {
  readonly name: string;
  readonly dialect: Dialect;
  /** The driver module Upkeep captures. */
  readonly module: unknown;
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
  /** Runs statements in one transaction (BEGIN … COMMIT as the driver does it). */
  transaction(statements: [string, unknown[]][]): Promise<void>;
  /** Runs a statement from the database's shell (sqlite3, psql). */
  shell(sql: string): void;
  close(): Promise<void>;
}

const dollars = (sql: string) => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

export function pgDriver(url: string): DriverApp {
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  return {
    name: "pg",
    dialect: "postgres",
    module: pg,
    all: async (sql, params = []) => (await pool.query(dollars(sql), params)).rows,
    run: async (sql, params = []) => {
      await pool.query(dollars(sql), params);
    },
    async transaction(statements) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        for (const [sql, params] of statements) await client.query(dollars(sql), params);
        await client.query("COMMIT");
      } finally {
        client.release();
      }
    },
    shell: (sql) => execFileSync("psql", [url, "-q", "-c", sql]),
    close: () => pool.end(),
  };
}

export function nodeSqliteDriver(path: string): DriverApp {
  const db = new DatabaseSync(path);
  db.exec("pragma busy_timeout = 5000");
  return {
    name: "node:sqlite",
    dialect: "sqlite",
    module: sqlite,
    all: async (sql, params = []) => db.prepare(sql).all(...(params as never[])) as Row[],
    run: async (sql, params = []) => {
      db.prepare(sql).run(...(params as never[]));
    },
    async transaction(statements) {
      db.exec("BEGIN");
      for (const [sql, params] of statements) db.prepare(sql).run(...(params as never[]));
      db.exec("COMMIT");
    },
    shell: (sql) => execFileSync("sqlite3", ["-cmd", ".timeout 5000", path, sql]),
    close: async () => db.close(),
  };
}

export function betterSqliteDriver(path: string): DriverApp {
  const db = new Database(path);
  db.pragma("busy_timeout = 5000");
  return {
    name: "better-sqlite3",
    dialect: "sqlite",
    module: Database,
    all: async (sql, params = []) => db.prepare(sql).all(...params) as Row[],
    run: async (sql, params = []) => {
      db.prepare(sql).run(...params);
    },
    async transaction(statements) {
      db.transaction(() => {
        for (const [sql, params] of statements) db.prepare(sql).run(...params);
      })();
    },
    shell: (sql) => execFileSync("sqlite3", ["-cmd", ".timeout 5000", path, sql]),
    close: async () => {
      db.close();
    },
  };
}

const Item = partial("item", ({ item }: { item: Row }) => html`<li id="item_${item.id}">${item.title}</li>`);

export function driverApp(upkeep: Upkeep, driver: DriverApp) {
  const app = new Hono();
  app.use(upkeepMiddleware(upkeep));
  app.get("/lists/:list", async (c) => {
    const items = await driver.all("select id, title from items where list = ? order by pos, id", [
      c.req.param("list"),
    ]);
    return c.html(
      html`<!doctype html><html><body><ul id="items">${items.map((i) => html`<li id="item_${i.id}">${i.title}</li>`)}</ul></body></html>`,
    );
  });
  app.get("/count/:list", async (c) => {
    const [row] = await driver.all("select count(*) as n from items where list = ?", [c.req.param("list")]);
    return c.html(html`<html><body><p id="count">${Number(row?.n)}</p></body></html>`);
  });
  app.get("/collection/:list", async (c) => {
    const list = c.req.param("list");
    return c.html(
      html`<html><body>${Collection({
        id: "items",
        tag: "ul",
        item: Item,
        of: () => driver.all("select id, title from items where list = ? order by pos, id", [list]),
      })}</body></html>`,
    );
  });
  app.get("/no-key/:list", async (c) => {
    const list = c.req.param("list");
    return c.html(
      html`<html><body>${Collection({
        id: "items",
        tag: "ul",
        item: Item,
        of: () => driver.all("select title as id, title from items where list = ? order by pos", [list]),
      })}</body></html>`,
    );
  });
  app.get("/refused", async (c) => {
    const sql =
      driver.dialect === "postgres" ? "select * from generate_series(1, 3)" : "select * from json_each('[1, 2]')";
    const rows = await driver.all(sql);
    return c.html(html`<html><body>${rows.length}</body></html>`);
  });
  app.get("/writes", async (c) => {
    await driver.run("insert into secrets (owner, body) values ('views', 'x')");
    return c.html(html`<html><body>written</body></html>`);
  });
  return app;
}
