// Retention per table: which facts a prune pass may remove. Each table's facts are kept by a policy —
// "forever" (never pruned), { windowMs } (pruned once older than the window) or "minimal" (pruned as soon as no live
// process holds them) — and no policy ever prunes above a live hold or the caller's `atOrBelow`.
//
// A pass turns the policies into *steps*: each step removes the facts of some tables at or below one offset (its
// cut). When one step covers every table, the pass removes a prefix of offsets, exactly as a global retention would,
// and raises the ledger's floor horizon (every table's facts may be missing at or below it); otherwise each table
// whose facts were removed gets its own horizon (the highest offset removed), stored next to the floor.
import { ConfigError } from "../errors.ts";
import type { PruneOptions, Retention, RetentionPolicy } from "./types.ts";

/** A checked retention: every table's policy is known (named, or the default). */
export interface ResolvedRetention {
  readonly default: RetentionPolicy;
  readonly tables: ReadonlyMap<string, RetentionPolicy>;
}

const POLICY_HINT =
  'use "forever", "minimal" or { windowMs: <milliseconds> } (e.g. { windowMs: 7 * 24 * 3600 * 1000 })';

/** Checks one policy; `whose` names where it was given ("the default", "table audit_log"). */
export function checkPolicy(policy: unknown, whose: string): RetentionPolicy {
  if (policy === "forever" || policy === "minimal") return policy;
  if (typeof policy === "string") {
    throw new ConfigError(`Unknown retention policy "${policy}" for ${whose}.`, POLICY_HINT);
  }
  if (typeof policy === "object" && policy !== null && !Array.isArray(policy)) {
    const keys = Object.keys(policy);
    const windowMs = (policy as { windowMs?: unknown }).windowMs;
    if (keys.length !== 1 || keys[0] !== "windowMs") {
      throw new ConfigError(
        `The retention policy of ${whose} is ${JSON.stringify(policy)}: a window policy has exactly one key, windowMs.`,
        POLICY_HINT,
      );
    }
    if (typeof windowMs !== "number" || !Number.isFinite(windowMs) || windowMs < 0) {
      throw new ConfigError(
        `The retention window of ${whose} is ${String(windowMs)}: a window is a finite number of milliseconds, 0 or more.`,
        `pass { windowMs: 7 * 24 * 3600 * 1000 } for seven days; "forever" keeps every fact, "minimal" keeps none longer than a live process needs`,
      );
    }
    return { windowMs };
  }
  throw new ConfigError(`The retention policy of ${whose} is ${String(policy)}.`, POLICY_HINT);
}

/**
 * Checks a retention configuration and fills in the default (`fallback` when `retention.default` is absent). `where`
 * names the option in messages (`createUpkeep({ retention })`, `prune({ retention })`).
 */
export function resolveRetention(
  retention: Retention | undefined,
  fallback: RetentionPolicy,
  where: string,
): ResolvedRetention {
  if (retention === undefined) return { default: fallback, tables: new Map() };
  if (typeof retention !== "object" || retention === null || Array.isArray(retention)) {
    throw new ConfigError(
      `${where}: retention is ${String(retention)}, not an object.`,
      `pass { default: { windowMs }, tables: { audit_log: "forever", sessions: "minimal" } }`,
    );
  }
  for (const key of Object.keys(retention)) {
    if (key !== "default" && key !== "tables") {
      throw new ConfigError(
        `${where}: unknown retention option "${key}".`,
        `retention takes { default, tables }: default is the policy of every table not named in tables`,
      );
    }
  }
  const policy = retention.default === undefined ? fallback : checkPolicy(retention.default, "the default");
  const tables = new Map<string, RetentionPolicy>();
  const given = retention.tables ?? {};
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new ConfigError(
      `${where}: retention.tables is ${JSON.stringify(given)}, not an object of table → policy.`,
      `pass tables: { audit_log: "forever", sessions: "minimal", events: { windowMs: 86_400_000 } }`,
    );
  }
  for (const [table, tablePolicy] of Object.entries(given)) {
    if (table.trim() === "") {
      throw new ConfigError(`${where}: retention.tables names an empty table.`, "name tables as queries name them");
    }
    tables.set(table, checkPolicy(tablePolicy, `table ${table}`));
  }
  return { default: policy, tables };
}

/** The policies of one prune pass: `olderThanMs` is the default window (or `retention.default` the default). */
export function prunePolicies(options: PruneOptions): ResolvedRetention {
  const { olderThanMs, retention } = options;
  if (olderThanMs !== undefined && retention?.default !== undefined) {
    throw new ConfigError(
      "prune() was given both olderThanMs and retention.default.",
      "olderThanMs is the default policy's window: pass one of them",
    );
  }
  if (olderThanMs === undefined && retention?.default === undefined) {
    throw new ConfigError(
      "prune() needs the default policy: neither olderThanMs nor retention.default was given.",
      "pass olderThanMs (the window of every table retention.tables does not name) or retention.default",
    );
  }
  const fallback = olderThanMs === undefined ? "forever" : checkPolicy({ windowMs: olderThanMs }, "olderThanMs");
  return resolveRetention(retention, fallback, "prune()");
}

/** The window policy's lengths a pass needs the first recent offset of. */
export function windowsOf(retention: ResolvedRetention): number[] {
  const windows = new Set<number>();
  for (const policy of [retention.default, ...retention.tables.values()]) {
    if (typeof policy === "object") windows.add(policy.windowMs);
  }
  return [...windows];
}

/**
 * The cut of one policy in a pass: the highest offset it lets go (null: keep every fact). `limit` is the lowest of
 * the head, `atOrBelow` and the lowest live hold; `firstRecent` maps a window to the first offset committed within
 * it (absent: no fact is that recent).
 */
export function cutOf(
  policy: RetentionPolicy,
  limit: number,
  firstRecent: ReadonlyMap<number, number | undefined>,
): number | null {
  if (policy === "forever") return null;
  if (policy === "minimal") return limit;
  const first = firstRecent.get(policy.windowMs);
  return first === undefined ? limit : Math.min(limit, first - 1);
}

/** One step of a pass: remove the facts at or below `cut` of the tables in `only`, or of every table but `except`. */
export type PruneStep = { cut: number; only: string[] } | { cut: number; except: string[] };

/**
 * The steps of a pass. Named tables whose cut equals the default's are pruned with the default's step; a single
 * step with an empty `except` covers every table (a prefix of offsets).
 */
export function pruneSteps(retention: ResolvedRetention, cut: (policy: RetentionPolicy) => number | null): PruneStep[] {
  const fallback = cut(retention.default);
  const byCut = new Map<number, string[]>();
  const except: string[] = [];
  for (const [table, policy] of retention.tables) {
    const own = cut(policy);
    if (own === fallback) continue;
    except.push(table);
    if (own === null) continue;
    if (!byCut.has(own)) byCut.set(own, []);
    byCut.get(own)?.push(table);
  }
  const steps: PruneStep[] = [];
  if (fallback !== null) steps.push({ cut: fallback, except: except.sort() });
  for (const [own, only] of [...byCut].sort((a, b) => a[0] - b[0])) steps.push({ cut: own, only: only.sort() });
  return steps;
}

/** True when the step covers every table: it removes a prefix of offsets. */
export function coversEveryTable(step: PruneStep): boolean {
  return "except" in step && step.except.length === 0;
}
