// The change ledger: every committed write becomes an ordered, durable, resumable fact.
// install() puts the capture triggers in place, openLedger() reads and follows the facts, createDialect() gives
// Kysely the same connection settings and wakes followers on commit.
import { installPostgres, uninstallPostgres } from "./postgres/install.ts";
import { openPostgresLedger } from "./postgres/ledger.ts";
import { installSqlite, uninstallSqlite } from "./sqlite/install.ts";
import { openSqliteLedger } from "./sqlite/ledger.ts";
import type { InstallReport, Ledger, LedgerOptions } from "./types.ts";
import { parseDatabaseUrl } from "./url.ts";

export { type ChangesOptions, changes } from "./changes.ts";
export { bytesToHex, toJsonSafe } from "./decode.ts";
export { createDialect, type DialectHooks } from "./dialect.ts";
export { history, type RowAt, type RowHistory, rowAt } from "./history.ts";
export * from "./types.ts";
export { type ParsedDatabase, parseDatabaseUrl } from "./url.ts";

/** Creates the ledger's tables and puts capture in place (triggers, or on PostgreSQL logical decoding: see
 *  LedgerOptions.capture). Idempotent; refreshes after drift. */
export function install(options: LedgerOptions): Promise<InstallReport> {
  const parsed = parseDatabaseUrl(options.database);
  return parsed.kind === "sqlite"
    ? installSqlite(parsed.path, options.exclude)
    : installPostgres(parsed.url, { exclude: options.exclude, capture: options.capture, warn: warnSink(options) });
}

function warnSink(options: LedgerOptions): ((message: string) => void) | undefined {
  const log = options.log;
  return log ? (message) => log("warn", message) : undefined;
}

/** Removes everything install() added (tables, triggers, functions; PostgreSQL: publication, replication slot
 *  and the replica identities it changed) and nothing else. */
export function uninstall(options: Pick<LedgerOptions, "database">): Promise<void> {
  const parsed = parseDatabaseUrl(options.database);
  return parsed.kind === "sqlite" ? uninstallSqlite(parsed.path) : uninstallPostgres(parsed.url);
}

/** Opens the ledger. Throws LedgerNotInstalledError, or SchemaDriftError when triggers are out of date. */
export function openLedger(options: LedgerOptions): Promise<Ledger> {
  const parsed = parseDatabaseUrl(options.database);
  return parsed.kind === "sqlite"
    ? openSqliteLedger(options.database, parsed.path, options)
    : openPostgresLedger(options.database, parsed.url, options);
}
