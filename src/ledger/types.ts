// The change ledger's vocabulary. A *fact* is one committed row change; an *offset* is its gapless, 1-based,
// commit-ordered position within an *incarnation* of the ledger.

/** A row image: column name → value, decoded as described in docs/ledger.md (value encoding). */
export type Row = Record<string, unknown>;

/** `truncate`: every row of the table may have changed (key `{}`, no images). */
export type Operation = "insert" | "update" | "delete" | "truncate";

export interface Fact {
  offset: number;
  incarnation: string;
  table: string;
  op: Operation;
  /** Primary-key column → value, in key order. For a table without a primary key: the whole row image. */
  key: Row;
  /** True when the table has no primary key (the key is the whole row image and may not be unique). */
  keyless: boolean;
  old: Row | null;
  new: Row | null;
  /** Identifier of the writing transaction (facts of one transaction share it and are contiguous... not
   *  necessarily contiguous on PostgreSQL: use it to group, not to delimit). */
  txid: string;
  /** Commit (or, on SQLite, write) time as an ISO-8601 string. */
  committedAt: string;
  /**
   * Set when an image could not be built by the capture (too large, not representable) or could not be decoded
   * by the reader: why. `old`/`new` may then be null or partial, and the planner must treat the fact as possibly
   * affecting every row of its table (a replay, never a miss). Absent on ordinary facts.
   */
  unavailable?: string;
}

/** Columns whose values differ between the old and new images (all columns of the image for insert/delete). */
export function changedColumns(fact: Pick<Fact, "old" | "new">): string[] {
  const { old: before, new: after } = fact;
  if (!before || !after) return Object.keys((after ?? before) as Row);
  const out: string[] = [];
  for (const column of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!sameValue(before[column], after[column])) out.push(column);
  }
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    return a.every((byte, i) => byte === b[i]);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => sameValue((a as Row)[k], (b as Row)[k]));
}

export type DatabaseKind = "sqlite" | "postgres";

export interface LedgerOptions {
  /** `file:path`, a plain path or `:memory:` for SQLite; `postgres://…` / `postgresql://…` for PostgreSQL. */
  database: string;
  /** Tables never captured (the ledger's own tables are always excluded). */
  exclude?: string[];
  /** Poll interval for external commits (default LEDGER_TUNING.pollIntervalMs). */
  pollIntervalMs?: number;
  /** Where the ledger reports faults it survives (poison facts, a dropped table, drift while running). Each
   *  distinct fault is logged once, with its fix. Default: console. */
  log?: (level: "warn" | "error", message: string) => void;
  /**
   * What a running ledger does when tables or columns appear after install (checked every
   * LEDGER_TUNING.schemaCheckMs): `refresh` (default) regenerates the capture triggers; `report` logs the drift
   * with its fix and leaves new tables out of capturedTables(), so pages that read them are refused.
   */
  schemaChanges?: "refresh" | "report";
  /**
   * PostgreSQL, install only: how changes are captured. `logical` decodes the write-ahead log through a
   * replication slot Upkeep owns (no cost on writers; needs `wal_level = logical` and a role that may replicate);
   * `triggers` records facts from triggers on each table; `auto` (default) picks logical when the server allows
   * it, else triggers with a warning naming the fix. Recorded in the ledger's meta table.
   */
  capture?: "auto" | "logical" | "triggers";
  /**
   * PostgreSQL, logical capture: WAL the slot may hold back before the ledger warns (logged once per
   * LEDGER_TUNING.slotLagWarnMs, and shown by `upkeep doctor`). Default LEDGER_TUNING.slotLagWarnBytes (1 GB).
   */
  maxSlotLagBytes?: number;
}

export interface ReadOptions {
  /** Most facts returned (default LEDGER_TUNING.readBatch). */
  limit?: number;
  /**
   * The tables whose facts the caller uses: the offset is checked against their horizons only (OffsetTooOldError
   * when it is below one of them). Facts of every table are still returned, but those of other tables may be
   * incomplete (pruned by their own retention). Default: every table.
   */
  tables?: readonly string[];
  /** The incarnation the caller's offset belongs to; a different one throws IncarnationMismatchError. */
  incarnation?: string;
}

export interface FollowOptions extends ReadOptions {
  signal?: AbortSignal;
}

/**
 * How long a table's facts are kept: "forever" (never pruned: the table's whole history stays readable),
 * `{ windowMs }` (pruned once committed longer ago than the window) or "minimal" (pruned as soon as no live process
 * holds them, whatever their age: no history). No policy prunes above a live hold or `atOrBelow`.
 */
export type RetentionPolicy = "forever" | "minimal" | { windowMs: number };

/** Retention per table: `tables` names a policy per table (as queries name it), `default` covers the others. */
export interface Retention {
  default?: RetentionPolicy;
  tables?: Readonly<Record<string, RetentionPolicy>>;
}

export interface PruneOptions {
  /** The default policy's window: facts of tables without their own policy are pruned once committed longer ago
   *  than this. Give this or `retention.default`. */
  olderThanMs?: number;
  /** Policies per table (and the default, instead of `olderThanMs`). */
  retention?: Retention;
  /** Only facts at or below this offset are pruned (e.g. the lowest live subscriber offset). */
  atOrBelow?: number;
}

/** The pruned horizons: facts of every table may be missing at or below `floor` (a prefix pruned for all), and
 *  facts of a table in `tables` at or below its own horizon (only tables above the floor are listed). */
export interface Horizons {
  floor: number;
  tables: Record<string, number>;
}

/**
 * An open ledger. One per process and database; it owns a connection for reading and (PostgreSQL) the
 * sequencer role when it wins the leader lock.
 */
export interface Ledger {
  readonly kind: DatabaseKind;
  readonly database: string;
  readonly incarnation: string;
  /** Highest sequenced offset (0 when empty). */
  head(): Promise<number>;
  /**
   * The offset every table's facts are complete above (the highest of the horizons): reading after anything below
   * it throws OffsetTooOldError. With `tables`, the offset those tables' facts are complete above.
   */
  horizon(tables?: readonly string[]): Promise<number>;
  /** The floor and each table's own horizon (see Horizons). */
  horizons(): Promise<Horizons>;
  /** Facts with offset > after, in offset order, at most `limit`. */
  read(after: number, options?: ReadOptions): Promise<Fact[]>;
  /** Batches of facts with offset > after, forever (until the signal aborts or the ledger closes). The next
   *  batch is read only when the consumer asks for it (backpressure). */
  follow(after: number, options?: FollowOptions): AsyncIterable<Fact[]>;
  /** Make every fact committed before the call readable (PostgreSQL: sequence it) and return the head. */
  sync(): Promise<number>;
  /** Wake followers now: a commit made through Upkeep's own connection calls this. */
  poke(): void;
  /** Removes the facts the retention policies let go (see PruneOptions); returns how many and horizon() after.
   *  A configuration that is not valid throws ConfigError before anything is removed. */
  prune(options: PruneOptions): Promise<{ pruned: number; horizon: number }>;
  /**
   * Record (and renew) that follower `id` (one per process) still needs every fact after `position`. Pruning
   * never removes a fact above the lowest live hold. A hold not renewed within LEDGER_TUNING.holdLeaseMs
   * expires (a crashed process stops holding the horizon back).
   */
  holdPosition(id: string, position: number): Promise<void>;
  /** Forget follower `id`'s hold (a clean shutdown). */
  releasePosition(id: string): Promise<void>;
  /**
   * Re-read the ledger's incarnation, head and horizon from the database and adopt that incarnation (after a
   * reinstall, reset or restored backup under a running process). `incarnation` reads the adopted value after.
   */
  resync(): Promise<{ incarnation: string; head: number; horizon: number }>;
  /** Names of the captured tables as queries name them (`table`, or `schema.table` outside the default
   *  schema), as of the last install check or drift check. A read of any other source cannot be kept live. */
  capturedTables(): ReadonlySet<string>;
  close(): Promise<void>;
}

/** What `install()` did. */
export interface InstallReport {
  kind: DatabaseKind;
  /** How changes are captured (SQLite: always triggers). */
  capture: "logical" | "triggers";
  /** Why this capture mode (the choice given, or what `auto` found). */
  captureReason: string;
  /** Tables that are now captured. */
  tables: string[];
  /** Captured tables without a primary key (their facts are flagged `keyless`). */
  keyless: string[];
  /** Tables left uncaptured because of the exclude list. */
  excluded: string[];
  incarnation: string;
  /** True when the ledger's tables were created by this call (false: refreshed an existing install). */
  created: boolean;
}
