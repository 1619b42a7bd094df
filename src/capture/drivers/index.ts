// Capture at the driver the app already uses: `upkeep.capture(pg)`, `upkeep.capture(sqlite)` (node:sqlite),
// `upkeep.capture(Database)` (better-sqlite3). See docs/data-layers.md.

import type { SqlDialect } from "../../analysis/sql/text.ts";
import { ConfigError } from "../../errors.ts";
import { type PgModule, patchPg } from "./pg.ts";
import { patchSqlite } from "./sqlite.ts";

export { type CaptureHost, registerHost } from "./host.ts";
export { createHost } from "./hosts.ts";

/** Which dialect a driver module speaks: pg → postgres; node:sqlite and better-sqlite3 → sqlite. */
export function driverDialect(driver: unknown): SqlDialect {
  const d = driver as Record<string, any> | null;
  if (d && typeof d.Client === "function" && typeof d.Client.prototype?.query === "function") return "postgres";
  if (d && typeof d.DatabaseSync === "function") return "sqlite";
  const Database = d?.default ?? d;
  if (typeof Database === "function" && typeof Database.prototype?.prepare === "function") return "sqlite";
  throw new ConfigError(
    "capture() takes the driver module the app (or its ORM) uses: pg, node:sqlite or better-sqlite3.",
    'import pg from "pg"; upkeep.capture(pg) — or import * as sqlite from "node:sqlite"; upkeep.capture(sqlite) — or import Database from "better-sqlite3"; upkeep.capture(Database). postgres.js is not supported: use pg',
  );
}

/** Patches a driver module so its statements are captured (once per module). */
export function patchDriver(driver: unknown): SqlDialect {
  const dialect = driverDialect(driver);
  if (dialect === "postgres") patchPg(driver as PgModule);
  else patchSqlite(driver);
  return dialect;
}
