// The change ledger on SQLite: reading, following, pruning and holding positions; watching the schema while
// running.
//
// Why offsets are commit-ordered and gapless here: SQLite has one writer at a time, so facts are numbered in the
// order their transactions hold the write lock, and a transaction's facts are contiguous. AUTOINCREMENT hands out
// max(ever used) + 1 via sqlite_sequence, which is updated inside the writing transaction: a rollback (of a
// transaction or of one failed statement) rolls the counter back too, and pruning never lets an id be reused.
import type { DatabaseSync } from "node:sqlite";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { LedgerMissingError, LedgerNotInstalledError, SchemaDriftError } from "../../errors.ts";
import {
  checkPosition,
  FaultLog,
  followFacts,
  horizonOf,
  ledgerError,
  type Position,
  readLimit,
  Waker,
} from "../core.ts";
import { decodeSqliteImage, undecodableReason } from "../decode.ts";
import { openSqlite } from "../dialect.ts";
import type {
  Fact,
  FollowOptions,
  Horizons,
  Ledger,
  LedgerOptions,
  Operation,
  PruneOptions,
  ReadOptions,
  Row,
} from "../types.ts";
import {
  all,
  capturedNow,
  createHoldsTable,
  drift,
  excludedTables,
  get,
  installed,
  installSqliteNow,
  markerColumnTables,
  meta,
  ourTriggers,
  refreshTriggers,
  removedTables,
  schemaChangeFact,
  setMeta,
  tableExists,
  withTransaction,
} from "./install.ts";
import { pruneSqlite, readHorizons } from "./prune.ts";

const FACTS = LEDGER.factsTable;
const HOLDS = LEDGER.holdsTable;

export async function openSqliteLedger(database: string, path: string, options: LedgerOptions): Promise<Ledger> {
  const db = openSqlite(path);
  try {
    if (!installed(db) || !tableExists(db, FACTS)) throw new LedgerNotInstalledError(database);
    const found = drift(db);
    if (found.tables.length > 0) throw new SchemaDriftError(database, found.tables, found.detail.join("; "));
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteLedger(database, path, db, meta(db, "incarnation") as string, options);
}

interface FactRow {
  id: number;
  tbl: string;
  op: Operation;
  key: string | null;
  old: string | null;
  new: string | null;
  at: number;
}

/** A SQLite error that says the ledger's own tables are gone. */
function isMissingLedger(error: unknown): boolean {
  return /no such table: (upkeep_facts|upkeep_meta)/.test((error as Error)?.message ?? "");
}

const NOTHING: ReadonlySet<string> = new Set();

class SqliteLedger implements Ledger {
  readonly kind = "sqlite" as const;
  readonly database: string;
  readonly #path: string;
  readonly #db: DatabaseSync;
  readonly #waker = new Waker();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #faults: FaultLog;
  readonly #schemaChanges: "refresh" | "report";
  #incarnation: string;
  #dataVersion: number;
  #schemaVersion: number;
  #captured: Set<string>;
  /** With schemaChanges "report": the drifted tables, left out of capturedTables() until the schema is fixed. */
  #reported = new Set<string>();
  /** Tables with a column named like the capture's marker (decodeSqliteImage): read at open and each schema change. */
  #markerColumns: Set<string>;
  #holdsReady = false;
  #closed = false;
  /** Set while the ledger's tables are gone and not installed again: reads throw it, nothing is captured. */
  #lost: LedgerMissingError | undefined;
  #repairing = false;

  constructor(database: string, path: string, db: DatabaseSync, incarnation: string, options: LedgerOptions) {
    this.database = database;
    this.#path = path;
    this.#db = db;
    this.#incarnation = incarnation;
    this.#faults = new FaultLog(options.log);
    this.#schemaChanges = options.schemaChanges ?? "refresh";
    this.#dataVersion = this.#readDataVersion();
    this.#schemaVersion = this.#readSchemaVersion();
    this.#captured = capturedNow(db);
    this.#markerColumns = markerColumnTables(db);
    // PRAGMA data_version changes when another connection commits: a cheap check, made only while someone waits.
    // So does schema_version on any DDL: a dropped ledger table is seen within a poll, not a schema check.
    const poll = setInterval(() => {
      if (!this.#waker.waiting || this.#closed) return;
      if (this.#readSchemaVersion() !== this.#schemaVersion) this.checkSchema();
      const version = this.#readDataVersion();
      if (version !== this.#dataVersion) {
        this.#dataVersion = version;
        this.#waker.bump();
      }
    }, options.pollIntervalMs ?? LEDGER_TUNING.pollIntervalMs);
    const schema = setInterval(() => this.checkSchema(), LEDGER_TUNING.schemaCheckMs);
    poll.unref();
    schema.unref();
    this.#timers.push(poll, schema);
  }

  get incarnation(): string {
    return this.#incarnation;
  }

  #readDataVersion(): number {
    return (get<{ data_version: number }>(this.#db, "PRAGMA data_version") as { data_version: number }).data_version;
  }

  #readSchemaVersion(): number {
    return (get<{ schema_version: number }>(this.#db, "PRAGMA schema_version") as { schema_version: number })
      .schema_version;
  }

  /**
   * Schema changes while running (PRAGMA schema_version moves on any DDL, from any connection): a dropped ledger
   * table is answered at once (#ledgerGone); tables or columns the triggers do not cover, and captured tables that
   * are gone, are refreshed (or reported). Between a DDL statement and this check (at most
   * LEDGER_TUNING.schemaCheckMs; sync() checks too) a new table is not in capturedTables(), so a page that reads it
   * is refused; writes to a changed table are captured with its old columns, so the refresh records a table-wide
   * fact for it, which replays every page that read it (why that is enough: refreshTriggers). With `report` the
   * triggers stay as they are: a drifted table leaves capturedTables() (new pages that read it are refused) and gets
   * the same table-wide fact, so the open pages that read it replay, find it refused, and reload as ordinary pages
   * instead of staying stale.
   */
  checkSchema(always = false): void {
    if (this.#closed) return;
    try {
      const version = this.#readSchemaVersion();
      if (version === this.#schemaVersion && !always) return;
      this.#schemaVersion = version;
      this.#markerColumns = markerColumnTables(this.#db);
      if (!tableExists(this.#db, FACTS) || !installed(this.#db)) {
        this.#ledgerGone();
        return;
      }
      if (this.#lost) {
        // Installed again by hand: capture is back (a new incarnation, which followers read).
        this.#lost = undefined;
        this.#faults.forget("ledger_missing");
        this.#waker.bump();
      }
      const found = drift(this.#db);
      const removed = removedTables(this.#db);
      const detail = [
        ...found.detail,
        ...removed.map((t) => `${t} is no longer there to capture (dropped or excluded)`),
      ];
      if (found.tables.length === 0 && removed.length === 0) {
        this.#reported.clear();
        this.#captured = capturedNow(this.#db);
        return;
      }
      if (this.#schemaChanges === "refresh") {
        withTransaction(this.#db, "IMMEDIATE", () => refreshTriggers(this.#db, excludedTables(this.#db)));
        this.#schemaVersion = this.#readSchemaVersion();
        this.#faults.log("warn", `Upkeep refreshed the capture triggers after a schema change: ${detail.join("; ")}`);
      } else {
        const drifted = [...found.tables, ...removed];
        const news = drifted.filter((table) => !this.#reported.has(table));
        withTransaction(this.#db, "IMMEDIATE", () => {
          for (const table of news) schemaChangeFact(this.#db, table);
        });
        this.#reported = new Set(drifted);
        const error = new SchemaDriftError(this.database, drifted, detail.join("; "));
        this.#faults.once("warn", `drift:${drifted.join(",")}`, `${error.message} (pages that read them are refused)`);
      }
      this.#captured = capturedNow(this.#db);
      for (const table of this.#reported) this.#captured.delete(table);
      this.#waker.bump(); // the facts written on this connection: PRAGMA data_version moves only for others'
    } catch (error) {
      this.#faults.once(
        "error",
        `schema_check:${(error as Error).message}`,
        `Upkeep's schema check failed: ${(error as Error).message}`,
      );
    }
  }

  /**
   * The ledger's tables are gone. Capture triggers left in place insert into the facts table, so every write to a
   * captured table now fails: when the ledger may refresh capture (schemaChanges "refresh") it installs the
   * ledger again at once — a new incarnation, since what was written in between was not captured, so every open
   * page reloads. Without triggers (`upkeep uninstall`), or with "report", capture is lost: logged once with the
   * fix, reads throw (the hub reloads every open page), and capturedTables() is empty, so pages are not served
   * live until it is back.
   */
  #ledgerGone(): void {
    const writesFail = ourTriggers(this.#db).length > 0;
    if (writesFail && this.#schemaChanges === "refresh" && !this.#repairing) {
      this.#repairing = true;
      try {
        installSqliteNow(this.#path, excludedTables(this.#db));
        this.#schemaVersion = this.#readSchemaVersion();
        this.#lost = undefined;
        this.#faults.forget("ledger_missing");
        this.#faults.log(
          "warn",
          `Upkeep's ledger tables in ${this.database} were dropped while its capture triggers were in place (writes to captured tables failed); Upkeep installed them again. What was written in between was not captured, so the ledger is a new incarnation and every open page reloads.\n  fix: to remove Upkeep, run \`npx upkeep uninstall --database ${this.database}\` and remove createUpkeep from the app`,
        );
        this.#waker.bump();
        return;
      } catch (error) {
        this.#faults.once(
          "error",
          `reinstall:${(error as Error).message}`,
          `Upkeep could not install its ledger again: ${(error as Error).message}`,
        );
      } finally {
        this.#repairing = false;
      }
    }
    if (this.#lost) return;
    this.#lost = new LedgerMissingError(
      this.database,
      writesFail ? `no such table: ${FACTS}` : "its tables were dropped: uninstalled?",
      { writesFail },
    );
    this.#faults.once("error", "ledger_missing", this.#lost.message);
    this.#waker.bump();
  }

  /** Runs a read; a missing ledger table is answered (#ledgerGone) and thrown as LedgerMissingError. */
  #guard<T>(body: () => T): T {
    if (this.#lost) this.checkSchema(true);
    if (this.#lost) throw this.#lost;
    try {
      return body();
    } catch (error) {
      if (!isMissingLedger(error) && !(error instanceof LedgerMissingError)) throw error;
      this.checkSchema(true);
      if (this.#lost) throw this.#lost;
      // Installed again: read again (a read then meets the new incarnation).
      try {
        return body();
      } catch (again) {
        throw ledgerError(again, isMissingLedger(again), this.database, this.#faults);
      }
    }
  }

  #position(): Position {
    return {
      incarnation: meta(this.#db, "incarnation") as string,
      horizons: readHorizons(this.#db),
      head: this.#head(),
    };
  }

  #head(): number {
    if (!tableExists(this.#db, FACTS)) throw new LedgerMissingError(this.database, `no such table: ${FACTS}`);
    return Number(get<{ seq: number }>(this.#db, "SELECT seq FROM sqlite_sequence WHERE name = ?", FACTS)?.seq ?? 0);
  }

  async head(): Promise<number> {
    return this.#guard(() => this.#head());
  }

  async sync(): Promise<number> {
    this.checkSchema(); // a schema change committed before the call becomes its fact now (checkSchema)
    return this.#guard(() => this.#head());
  }

  async horizon(tables?: readonly string[]): Promise<number> {
    return this.#guard(() => horizonOf(readHorizons(this.#db), tables).horizon);
  }

  async horizons(): Promise<Horizons> {
    return this.#guard(() => readHorizons(this.#db));
  }

  async resync(): Promise<{ incarnation: string; head: number; horizon: number }> {
    const position = this.#guard(() => withTransaction(this.#db, "DEFERRED", () => this.#position()));
    this.#incarnation = position.incarnation;
    this.#captured = capturedNow(this.#db);
    for (const table of this.#reported) this.#captured.delete(table);
    return { incarnation: position.incarnation, head: position.head, horizon: horizonOf(position.horizons).horizon };
  }

  /** Empty while the ledger is gone: a page must not be served live on what is not captured. */
  capturedTables(): ReadonlySet<string> {
    return this.#lost ? NOTHING : this.#captured;
  }

  async read(after: number, options?: ReadOptions): Promise<Fact[]> {
    // One read transaction: the position checks and the facts come from the same snapshot.
    const { position, rows } = this.#guard(() =>
      withTransaction(this.#db, "DEFERRED", () => {
        const position = this.#position();
        checkPosition(after, position, this.#incarnation, options);
        const rows = all<FactRow>(
          this.#db,
          `SELECT id, tbl, op, key, old, new, at FROM ${FACTS} WHERE id > ? ORDER BY id LIMIT ?`,
          after,
          readLimit(options),
        );
        return { position, rows };
      }),
    );
    return rows.map((r) => this.#toFact(r, position.incarnation));
  }

  follow(after: number, options: FollowOptions = {}): AsyncIterable<Fact[]> {
    return followFacts(this, this.#waker, () => this.#closed, after, options);
  }

  poke(): void {
    this.#waker.bump();
  }

  async holdPosition(id: string, position: number): Promise<void> {
    this.#guard(() => {
      if (!this.#holdsReady) createHoldsTable(this.#db); // installs from before holds existed
      this.#holdsReady = true;
      this.#db
        .prepare(
          `INSERT INTO ${HOLDS}(id, position, expires) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET position = excluded.position, expires = excluded.expires`,
        )
        .run(id, position, (Date.now() + LEDGER_TUNING.holdLeaseMs) / 1000);
    });
  }

  async releasePosition(id: string): Promise<void> {
    if (this.#closed || !tableExists(this.#db, HOLDS)) return;
    this.#db.prepare(`DELETE FROM ${HOLDS} WHERE id = ?`).run(id);
  }

  async prune(options: PruneOptions): Promise<{ pruned: number; horizon: number }> {
    return this.#guard(() =>
      withTransaction(this.#db, "IMMEDIATE", () => {
        setMeta(this.#db, "pruning", "1");
        const result = pruneSqlite(this.#db, this.#head(), options);
        setMeta(this.#db, "pruning", "0");
        return result;
      }),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#waker.bump();
    this.#db.close();
  }

  /** A fact from its row. An image that cannot be decoded (a poison fact) never stops a reader: the fact is
   *  returned with `unavailable` set, and logged once with its offset. */
  #toFact(r: FactRow, incarnation: string): Fact {
    const unavailable: string[] = [];
    let old: Row | null = null;
    let now: Row | null = null;
    let key: Row | null = null;
    try {
      const markerIsColumn = this.#markerColumns.has(r.tbl);
      old = decodeSqliteImage(r.old, unavailable, markerIsColumn);
      now = decodeSqliteImage(r.new, unavailable, markerIsColumn);
      key = decodeSqliteImage(r.key, unavailable, markerIsColumn);
    } catch (error) {
      old = now = key = null;
      const why = undecodableReason(error);
      unavailable.push(why);
      this.#faults.once(
        "warn",
        `poison:${incarnation}:${r.id}`,
        `Upkeep could not decode fact ${r.id} of ${r.tbl} (${why}); pages that read ${r.tbl} are replayed instead`,
      );
    }
    const at = Number(r.at);
    const fact: Fact = {
      offset: Number(r.id),
      incarnation,
      table: r.tbl,
      op: r.op,
      key: key ?? ((now ?? old ?? {}) as Row),
      keyless: key === null,
      old,
      new: now,
      // SQLite has no transaction id a trigger can read; 'now' is fixed for the duration of one statement, so
      // facts of one statement share this value (see docs/ledger.md).
      txid: String(r.at),
      committedAt: Number.isFinite(at) ? new Date(at * 1000).toISOString() : new Date(0).toISOString(),
    };
    if (unavailable.length > 0) fact.unavailable = unavailable.join("; ");
    return fact;
  }
}
