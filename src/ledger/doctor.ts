// `upkeep doctor`: what the ledger's capture is doing and what is wrong with it, as a list of checks. Each check
// reads the database and returns findings; a finding that is a problem names its fix. Further checks (other
// parts of Upkeep) append to CHECKS.
import pg from "pg";
import { LEDGER_TUNING } from "../constants.ts";
import { UpkeepError } from "../errors.ts";
import { openLedger } from "./index.ts";
import { captureMode, drift, isInstalled } from "./postgres/install.ts";
import {
  formatBytes,
  logicalNames,
  logicalProblems,
  readiness,
  slotMissingError,
  slotState,
} from "./postgres/logical.ts";
import { currentSchema, type Names, names } from "./postgres/schema.ts";
import { parseDatabaseUrl } from "./url.ts";

export interface Finding {
  status: "ok" | "info" | "warn" | "error";
  /** One line: what was found. */
  message: string;
  /** How to fix it (problems only). */
  fix?: string;
}

export interface DoctorOptions {
  database: string;
  /** The lag past which the slot is a problem (default LEDGER_TUNING.slotLagWarnBytes). */
  maxSlotLagBytes?: number;
}

/** What a PostgreSQL check reads from. */
export interface PostgresContext {
  client: pg.Client;
  database: string;
  n: Names;
  options: DoctorOptions;
}

export type PostgresCheck = (context: PostgresContext) => Promise<Finding[]>;

const problem = (status: "warn" | "error", error: UpkeepError | { message: string; hint: string }): Finding => ({
  status,
  message: error.message.split("\n")[0] as string,
  fix: error.hint,
});

/** The capture mode in use, and why. */
const captureCheck: PostgresCheck = async ({ client, n }) => {
  const mode = await captureMode(client, n);
  const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'capture_reason'`);
  const why = rows[0]?.value ?? "installed before the capture mode was recorded";
  const label = mode === "logical" ? "logical decoding (write-ahead log)" : "triggers";
  return [{ status: "ok", message: `capture: ${label} — ${why}` }];
};

/** Whether the server allows logical capture: required in logical mode, a suggestion in trigger mode. */
const serverCheck: PostgresCheck = async ({ client, n, database }) => {
  const mode = await captureMode(client, n);
  const logical = await logicalNames(client, n.schema);
  const problems = logicalProblems(await readiness(client, logical.slot));
  if (mode === "logical") return problems.map((p) => problem("error", p));
  if (problems.length > 0) {
    return problems.map((p) => ({
      status: "info" as const,
      message: `logical capture unavailable: ${p.message.split("\n")[0]}`,
      fix: p.hint,
    }));
  }
  return [
    {
      status: "info",
      message: "this server allows logical capture, which costs writers nothing",
      fix: `run \`npx upkeep install --database ${database} --capture logical\` (open pages reload once)`,
    },
  ];
};

/** The slot: present, consumed, and how much WAL it holds back. */
const slotCheck: PostgresCheck = async ({ client, n, database, options }) => {
  if ((await captureMode(client, n)) !== "logical") return [];
  const { slot } = await logicalNames(client, n.schema);
  const state = await slotState(client, slot);
  if (!state.exists) return [problem("error", slotMissingError(database, slot))];
  const out: Finding[] = [];
  const bound = options.maxSlotLagBytes ?? LEDGER_TUNING.slotLagWarnBytes;
  const line = `slot ${slot}: lag ${formatBytes(state.lagBytes)}, retains ${formatBytes(state.retainedBytes)} of WAL`;
  if (state.lagBytes > bound) {
    out.push({
      status: "warn",
      message: `${line} — past the ${formatBytes(bound)} bound`,
      fix: "keep a process with the ledger open (it consumes the slot), or `npx upkeep uninstall` to drop the slot",
    });
  } else out.push({ status: "ok", message: line });
  if (state.walStatus === "lost" || state.walStatus === "unreserved") {
    out.push({
      status: "error",
      message: `slot ${slot}'s WAL is ${state.walStatus} (max_slot_wal_keep_size was reached)`,
      fix: `run \`npx upkeep install --database ${database}\` to recreate it (open pages reload once)`,
    });
  }
  const { rows } = await client.query<{ live: boolean }>(`SELECT until > now() AS live FROM ${n.lease}`);
  if (!rows[0]?.live) {
    out.push({
      status: "warn",
      message: "no process consumes the slot now (no live leader lease): WAL accumulates until one does",
      fix: "start the app (any process with the ledger open takes the lease)",
    });
  }
  return out;
};

/** Tables created (or partitions attached) after install. */
const driftCheck: PostgresCheck = async ({ client, n, database }) => {
  const found = await drift(client, n.schema, n);
  if (found.tables.length === 0) return [{ status: "ok", message: "every table of the schema is captured" }];
  return found.detail.map((detail) => ({
    status: "warn" as const,
    message: detail,
    fix: `run \`npx upkeep install --database ${database}\` (a running app refreshes within a second)`,
  }));
};

/** The PostgreSQL checks, in the order they print. */
export const CHECKS: PostgresCheck[] = [captureCheck, serverCheck, slotCheck, driftCheck];

export async function doctor(options: DoctorOptions): Promise<Finding[]> {
  const parsed = parseDatabaseUrl(options.database);
  if (parsed.kind === "sqlite") {
    try {
      const ledger = await openLedger({ database: options.database });
      await ledger.close();
      return [{ status: "ok", message: "capture: triggers (SQLite)" }];
    } catch (error) {
      if (error instanceof UpkeepError) return [problem("error", error)];
      throw error;
    }
  }
  const client = new pg.Client({ connectionString: parsed.url });
  client.on("error", () => {});
  await client.connect();
  try {
    const schema = await currentSchema(client);
    if (!(await isInstalled(client, schema))) {
      return [
        {
          status: "error",
          message: `the Upkeep change ledger is not installed in ${options.database}`,
          fix: `run \`npx upkeep install --database ${options.database}\``,
        },
      ];
    }
    const context: PostgresContext = { client, database: options.database, n: names(schema), options };
    const findings: Finding[] = [];
    for (const check of CHECKS) findings.push(...(await check(context)));
    return findings;
  } finally {
    await client.end().catch(() => {});
  }
}

export function formatFindings(findings: Finding[]): string {
  return findings.map((f) => `${f.status.padEnd(5)} ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ""}`).join("\n");
}
