// Pieces both dialects share: waking followers, the follow loop, and the position checks every read makes.
import { LEDGER_TUNING } from "../constants.ts";
import { IncarnationMismatchError, InvalidOffsetError, LedgerMissingError, OffsetTooOldError } from "../errors.ts";
import type { Fact, FollowOptions, Horizons, ReadOptions } from "./types.ts";

/** A generation counter with waiters: a follower records the generation before reading, and sleeps only while
 *  it is unchanged, so a wake between the read and the sleep is never lost. */
export class Waker {
  #generation = 0;
  #waiters = new Set<() => void>();

  get generation(): number {
    return this.#generation;
  }

  get waiting(): boolean {
    return this.#waiters.size > 0;
  }

  bump(): void {
    this.#generation++;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  wait(since: number, signal?: AbortSignal): Promise<void> {
    if (since !== this.#generation || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

export interface Position {
  incarnation: string;
  head: number;
  horizons: Horizons;
}

/** The meta key of the floor horizon (every table), and the prefix of a table's own horizon. */
export const FLOOR_KEY = "horizon";
export const TABLE_HORIZON_PREFIX = "horizon:";

/** The horizons from the meta table's rows (`horizon` and `horizon:<table>`; other keys are ignored). */
export function parseHorizons(rows: Iterable<{ key: string; value: string | number | null }>): Horizons {
  let floor = 0;
  const own = new Map<string, number>();
  for (const { key, value } of rows) {
    if (key === FLOOR_KEY) floor = Number(value ?? 0);
    else if (key.startsWith(TABLE_HORIZON_PREFIX)) own.set(key.slice(TABLE_HORIZON_PREFIX.length), Number(value ?? 0));
  }
  const tables: Record<string, number> = {};
  for (const [table, horizon] of [...own].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (horizon > floor) tables[table] = horizon;
  }
  return { floor, tables };
}

/**
 * The offset the facts of `tables` (default: every table) are complete above, and the table it comes from (null:
 * the floor, which every table shares).
 */
export function horizonOf(horizons: Horizons, tables?: readonly string[]): { horizon: number; table: string | null } {
  let horizon = horizons.floor;
  let table: string | null = null;
  const names = tables ?? Object.keys(horizons.tables);
  for (const name of names) {
    const own = horizons.tables[name];
    if (own !== undefined && own > horizon) {
      horizon = own;
      table = name;
    }
  }
  return { horizon, table };
}

/** Refuses offsets that cannot be trusted: another incarnation, beyond head (a restored older database), or
 *  below the pruned horizon of the tables read (options.tables; default every table). */
export function checkPosition(after: number, position: Position, ledgerIncarnation: string, options?: ReadOptions) {
  const expected = options?.incarnation ?? ledgerIncarnation;
  if (expected !== position.incarnation) throw new IncarnationMismatchError(expected, position.incarnation);
  if (!Number.isSafeInteger(after) || after < 0) throw new InvalidOffsetError(after);
  if (after > position.head) {
    throw new IncarnationMismatchError(
      expected,
      position.incarnation,
      `offset ${after} is beyond the ledger head ${position.head}: the database was restored from an older copy`,
    );
  }
  const { horizon, table } = horizonOf(position.horizons, options?.tables);
  if (after < horizon) throw new OffsetTooOldError(after, horizon + 1, table);
}

export function readLimit(options?: ReadOptions): number {
  return Math.max(1, Math.min(options?.limit ?? LEDGER_TUNING.readBatch, 100_000));
}

/** What following needs from an open ledger. */
export interface Followable {
  readonly incarnation: string;
  read(after: number, options: ReadOptions): Promise<Fact[]>;
}

/** Batches of facts after `after`, read when the consumer asks and awaited on the waker when there are none. */
export async function* followFacts(
  ledger: Followable,
  waker: Waker,
  isClosed: () => boolean,
  after: number,
  options: FollowOptions = {},
): AsyncGenerator<Fact[]> {
  const incarnation = options.incarnation ?? ledger.incarnation;
  let cursor = after;
  const { signal } = options;
  while (!isClosed() && !signal?.aborted) {
    const generation = waker.generation;
    const facts = await ledger.read(cursor, {
      limit: options.limit,
      incarnation,
      ...(options.tables ? { tables: options.tables } : {}),
    });
    if (facts.length > 0) {
      cursor = (facts[facts.length - 1] as Fact).offset;
      yield facts;
      continue;
    }
    // A follower waiting for facts keeps the process alive, as an open socket would (the poll timers do not).
    const keepAlive = setInterval(() => {}, 2 ** 30);
    try {
      await waker.wait(generation, signal);
    } finally {
      clearInterval(keepAlive);
    }
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export type LogLevel = "warn" | "error";

function consoleLog(level: LogLevel, message: string): void {
  if (level === "error") console.error(message);
  else console.warn(message);
}

/**
 * The error a ledger read throws: a database error that says the ledger's tables are gone becomes
 * LedgerMissingError (logged once, with its fix); any other error passes through.
 */
export function ledgerError(
  error: unknown,
  tablesGone: boolean,
  database: string,
  faults: FaultLog,
  options?: { writesFail?: boolean },
): unknown {
  if (!tablesGone) return error;
  const missing =
    error instanceof LedgerMissingError ? error : new LedgerMissingError(database, (error as Error).message, options);
  faults.once("error", "ledger_missing", missing.message);
  return missing;
}

/** Logs each distinct fault once (by key), so a fault that persists is not repeated on every retry. */
export class FaultLog {
  readonly #seen = new Set<string>();
  readonly #sink: (level: LogLevel, message: string) => void;

  constructor(sink?: (level: LogLevel, message: string) => void) {
    this.#sink = sink ?? consoleLog;
  }

  once(level: LogLevel, key: string, message: string): void {
    if (this.#seen.has(key)) return;
    if (this.#seen.size >= 10_000) this.#seen.clear(); // bounded: a flood of distinct faults is logged again later
    this.#seen.add(key);
    this.#sink(level, message);
  }

  log(level: LogLevel, message: string): void {
    this.#sink(level, message);
  }

  /** The fault is over: if it happens again, it is logged again. */
  forget(key: string): void {
    this.#seen.delete(key);
  }
}
