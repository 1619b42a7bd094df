// `upkeep doctor`: what the ledger's capture is doing and what is wrong with it, as a list of checks. Each check
// reads the database and returns findings; a finding that is a problem names its fix. Further checks (other
// parts of Upkeep) append to CHECKS.

import pg from "pg";
import { LEDGER_TUNING, NODE_VERSIONS } from "../constants.ts";
import { UpkeepError } from "../errors.ts";
import { markOwn } from "../own.ts";
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
  /** A running app to check the transports of (its /upkeep/ endpoints), e.g. http://127.0.0.1:3000. */
  url?: string;
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

/**
 * The Node running Upkeep: the minimum or later (the target LTS recommended). The fix names the target's major, so
 * that npm installs that line and not the registry's newest `node`.
 */
export function nodeCheck(version = process.versions.node): Finding {
  const { target, minimum } = NODE_VERSIONS;
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major < minimum.major || (major === minimum.major && minor < minimum.minor))
    return {
      status: "error",
      message: `Node ${version}: Upkeep needs Node ${minimum.major}.${minimum.minor} or later (${target} LTS recommended)`,
      fix: `install Node ${target} LTS, or run \`npm install --save-dev node@${target}\` in the app: npm scripts and npx then run on Node ${target}`,
    };
  return {
    status: major < target ? "info" : "ok",
    message: `Node ${version}${major < target ? ` (${target} LTS recommended)` : ""}`,
  };
}

/** A running app's transports: the client it serves, its event stream and its WebSocket endpoint. */
export async function transportChecks(url: string): Promise<Finding[]> {
  const base = url.replace(/\/$/, "");
  const findings: Finding[] = [];
  const fix =
    "register the Upkeep middleware first in the app (and attach the WebSocket endpoint: upkeep.serve or upkeep.attach)";
  try {
    const client = await fetch(`${base}/upkeep/client/index.js`);
    findings.push(
      client.ok && (client.headers.get("content-type") ?? "").includes("javascript")
        ? { status: "ok", message: `${base}: serves the browser client` }
        : { status: "error", message: `${base}/upkeep/client/index.js answered ${client.status}`, fix },
    );
    await client.body?.cancel();
  } catch (error) {
    return [
      {
        status: "error",
        message: `${base} is not reachable: ${(error as Error).message}`,
        fix: "start the app, or pass its address with --url",
      },
    ];
  }
  const abort = new AbortController();
  try {
    const events = await fetch(`${base}/upkeep/events`, {
      signal: abort.signal,
      headers: { accept: "text/event-stream" },
    });
    const type = events.headers.get("content-type") ?? "";
    findings.push(
      type.includes("text/event-stream")
        ? { status: "ok", message: `${base}: Server-Sent Events at /upkeep/events` }
        : { status: "warn", message: `${base}/upkeep/events answered ${events.status} ${type}`, fix },
    );
  } catch (error) {
    findings.push({ status: "warn", message: `SSE: ${(error as Error).message}`, fix });
  } finally {
    abort.abort();
  }
  const { WebSocket } = await import("ws");
  const opened = await new Promise<string | null>((resolve) => {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/upkeep/socket`);
    const timer = setTimeout(() => {
      socket.terminate();
      resolve("no answer within 5 s");
    }, 5000);
    socket.once("open", () => {
      clearTimeout(timer);
      socket.close();
      resolve(null);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      resolve(error.message);
    });
  });
  findings.push(
    opened === null
      ? { status: "ok", message: `${base}: WebSocket at /upkeep/socket` }
      : {
          status: "warn",
          message: `WebSocket at /upkeep/socket: ${opened} (browsers fall back to SSE)`,
          fix: "attach the endpoint (upkeep.attach(server, app)) and let WebSocket upgrades through any proxy in front",
        },
  );
  return findings;
}

/** The database server's clock against this machine's: leases, holds and commit times are judged by it. */
async function clockCheck(client: pg.Client): Promise<Finding> {
  const started = Date.now();
  const { rows } = await client.query<{ now: Date }>("SELECT now() AS now");
  const skew = Math.abs((rows[0]?.now.getTime() ?? started) - (started + Date.now()) / 2);
  return skew > 2000
    ? {
        status: "warn",
        message: `the database's clock is ${(skew / 1000).toFixed(1)} s away from this machine's`,
        fix: "run NTP (chrony, systemd-timesyncd) on both machines; fact commit times and the inspector's ages use the database's clock",
      }
    : { status: "ok", message: `clocks agree (${skew} ms apart)` };
}

export async function doctor(options: DoctorOptions): Promise<Finding[]> {
  const general = [nodeCheck(), ...(options.url ? await transportChecks(options.url) : [])];
  return [...general, ...(await ledgerChecks(options))];
}

async function ledgerChecks(options: DoctorOptions): Promise<Finding[]> {
  const parsed = parseDatabaseUrl(options.database);
  if (parsed.kind === "sqlite") {
    try {
      const ledger = await openLedger({ database: options.database });
      await ledger.close();
      return [
        { status: "ok", message: "capture: triggers (SQLite); every captured table's triggers match its columns" },
      ];
    } catch (error) {
      if (error instanceof UpkeepError) return [problem("error", error)];
      throw error;
    }
  }
  const client = markOwn(new pg.Client({ connectionString: parsed.url }));
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
    findings.push(await clockCheck(client));
    return findings;
  } finally {
    await client.end().catch(() => {});
  }
}

export function formatFindings(findings: Finding[]): string {
  return findings.map((f) => `${f.status.padEnd(5)} ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ""}`).join("\n");
}
