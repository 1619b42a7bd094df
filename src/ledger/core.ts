// Pieces both dialects share: waking followers, the follow loop, and the position checks every read makes.
import { LEDGER_TUNING } from "../constants.ts";
import { IncarnationMismatchError, InvalidOffsetError, LedgerMissingError, OffsetTooOldError } from "../errors.ts";
import type { Fact, FollowOptions, ReadOptions } from "./types.ts";

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
  horizon: number;
}

/** Refuses offsets that cannot be trusted: another incarnation, beyond head (a restored older database), or
 *  below the pruned horizon. */
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
  if (after < position.horizon) throw new OffsetTooOldError(after, position.horizon + 1);
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
    const facts = await ledger.read(cursor, { limit: options.limit, incarnation });
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
export function ledgerError(error: unknown, tablesGone: boolean, database: string, faults: FaultLog): unknown {
  if (!tablesGone) return error;
  const missing = new LedgerMissingError(database, (error as Error).message);
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
}
