// `upkeep install | uninstall | tail | doctor` — the ledger's command line. DATABASE_URL is the default database.
import { parseArgs } from "node:util";
import { UpkeepError } from "../errors.ts";
import { toJsonSafe } from "./decode.ts";
import { doctor, formatFindings } from "./doctor.ts";
import { history, rowAt } from "./history.ts";
import { install, openLedger, uninstall } from "./index.ts";
import type { Fact, Row } from "./types.ts";

export const USAGE = `usage:
  upkeep install   --database <url> [--exclude table1,table2] [--capture auto|logical|triggers]
  upkeep uninstall --database <url>
  upkeep tail      --database <url> [--after <offset>] [--tables table1,table2]
  upkeep history   --database <url> --table <table> --key '{"id": 42}' [--at <offset>]
  upkeep doctor    --database <url> [--url http://127.0.0.1:3000]

  <url>: file:./data/app.sqlite (or a plain path) for SQLite, postgres://user@host/db for PostgreSQL.
  --database defaults to the DATABASE_URL environment variable.
  --capture (PostgreSQL): logical decodes the write-ahead log (needs wal_level = logical and a role that may
  replicate); triggers records facts from triggers; auto (default) picks logical when the server allows it.
  doctor checks the Node version, the database's clock, the capture mode and why, the replication slot's lag and
  retained WAL, drift, and with --url a running app's transports (client, SSE, WebSocket); it prints each problem
  with its fix and exits 1 when a problem is an error.
  tail prints one JSON object per fact per line and keeps following until interrupted (Ctrl-C);
  without --after it starts at the current head (only new facts); --tables keeps only those tables.
  history prints every retained fact of one row, oldest first (and on stderr the table's horizon when its facts
  were pruned: the history is complete after it); with --at, the row as of that offset, or an error naming the
  table's horizon when the offset is below it.`;

class UsageError extends Error {}

/** The line `upkeep tail` prints for a fact: bigints as strings, bytes as hex. */
export function factLine(fact: Fact): string {
  const { offset, table, op, key, keyless, old, new: now, incarnation, txid, committedAt, unavailable } = fact;
  const line = { offset, table, op, key, keyless, old, new: now, incarnation, txid, committedAt };
  return JSON.stringify(toJsonSafe(unavailable === undefined ? line : { ...line, unavailable }));
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let command: string | undefined;
  let values: {
    database?: string;
    exclude?: string;
    after?: string;
    capture?: string;
    tables?: string;
    url?: string;
    table?: string;
    key?: string;
    at?: string;
    help?: boolean;
  };
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        database: { type: "string" },
        exclude: { type: "string" },
        after: { type: "string" },
        capture: { type: "string" },
        tables: { type: "string" },
        url: { type: "string" },
        table: { type: "string" },
        key: { type: "string" },
        at: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    values = parsed.values;
    command = parsed.positionals[0];
    if (values.help || command === "help") {
      console.log(USAGE);
      return 0;
    }
    if (!command) throw new UsageError("no command given");
    if (!["install", "uninstall", "tail", "doctor", "history"].includes(command))
      throw new UsageError(`unknown command "${command}"`);
    if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument "${parsed.positionals[1]}"`);
    if (values.exclude !== undefined && command !== "install") throw new UsageError("--exclude is for install");
    if (values.after !== undefined && command !== "tail") throw new UsageError("--after is for tail");
    if (values.tables !== undefined && command !== "tail") throw new UsageError("--tables is for tail");
    if (values.url !== undefined && command !== "doctor") throw new UsageError("--url is for doctor");
    if ((values.table ?? values.key ?? values.at) !== undefined && command !== "history")
      throw new UsageError("--table, --key and --at are for history");
    if (command === "history") {
      if (!values.table || !values.key)
        throw new UsageError("history needs --table and --key (e.g. --key '{\"id\": 42}')");
      try {
        const key = JSON.parse(values.key);
        if (typeof key !== "object" || key === null || Array.isArray(key)) throw new Error();
      } catch {
        throw new UsageError(`--key must be a JSON object of the primary key's columns, not ${values.key}`);
      }
      if (values.at !== undefined && !/^\d+$/.test(values.at))
        throw new UsageError(`--at must be a non-negative integer offset, not "${values.at}"`);
    }
    if (values.capture !== undefined && command !== "install") throw new UsageError("--capture is for install");
    if (values.capture !== undefined && !["auto", "logical", "triggers"].includes(values.capture)) {
      throw new UsageError(`--capture must be auto, logical or triggers, not "${values.capture}"`);
    }
    if (values.after !== undefined && !/^\d+$/.test(values.after)) {
      throw new UsageError(`--after must be a non-negative integer offset, not "${values.after}"`);
    }
  } catch (error) {
    console.error(`upkeep: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const database = values.database ?? env.DATABASE_URL;
  if (!database) {
    console.error(`upkeep: no database: pass --database <url> or set DATABASE_URL\n\n${USAGE}`);
    return 2;
  }
  try {
    if (command === "install") {
      const exclude = (values.exclude ?? "")
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean);
      const capture = values.capture as "auto" | "logical" | "triggers" | undefined;
      const report = await install({ database, exclude, capture, log: (_level, message) => console.warn(message) });
      console.log(
        `${report.created ? "Installed" : "Refreshed"} the Upkeep change ledger (incarnation ${report.incarnation}).`,
      );
      console.log(`  capture: ${report.capture} (${report.captureReason})`);
      console.log(`  capturing: ${report.tables.join(", ") || "(no tables yet)"}`);
      if (report.keyless.length)
        console.log(`  without a primary key (facts flagged keyless): ${report.keyless.join(", ")}`);
      if (report.excluded.length) console.log(`  excluded: ${report.excluded.join(", ")}`);
      return 0;
    }
    if (command === "uninstall") {
      await uninstall({ database });
      console.log("Removed the Upkeep change ledger (tables, triggers, functions, publication and replication slot).");
      return 0;
    }
    if (command === "doctor") {
      const findings = await doctor({ database, ...(values.url ? { url: values.url } : {}) });
      console.log(formatFindings(findings));
      return findings.some((f) => f.status === "error") ? 1 : 0;
    }
    if (command === "history") {
      return await showHistory(database, values.table as string, JSON.parse(values.key as string), values.at);
    }
    const tables = values.tables
      ?.split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    return await tail(database, values.after === undefined ? undefined : Number(values.after), tables);
  } catch (error) {
    if (error instanceof UpkeepError) {
      console.error(`upkeep: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

async function showHistory(database: string, table: string, key: Row, at: string | undefined): Promise<number> {
  const ledger = await openLedger({ database });
  try {
    if (at !== undefined) {
      console.log(JSON.stringify(toJsonSafe(await rowAt(ledger, table, key, Number(at)))));
      return 0;
    }
    const { facts, horizon } = await history(ledger, table, key);
    // On stderr, so that stdout stays one fact per line.
    if (horizon > 0)
      console.error(
        `upkeep: ${table}'s facts at or below offset ${horizon} were pruned by its retention; its history is complete after ${horizon}`,
      );
    if (facts.length > 0) process.stdout.write(`${facts.map(factLine).join("\n")}\n`);
    return 0;
  } finally {
    await ledger.close();
  }
}

async function tail(database: string, after: number | undefined, tables?: string[]): Promise<number> {
  const ledger = await openLedger({ database });
  const keep = tables && tables.length > 0 ? new Set(tables) : null;
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const start = after ?? (await ledger.head());
    // With --tables, only those tables' retention decides whether --after is too old.
    const only = keep ? { tables: [...keep] } : {};
    for await (const batch of ledger.follow(start, { signal: abort.signal, ...only })) {
      const shown = keep ? batch.filter((fact) => keep.has(fact.table)) : batch;
      if (shown.length > 0) process.stdout.write(`${shown.map(factLine).join("\n")}\n`);
    }
    return 0;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await ledger.close();
  }
}
