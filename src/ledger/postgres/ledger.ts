// The change ledger on PostgreSQL. Trigger capture: one generic trigger function stages facts (triggers.ts) and a
// sequencer assigns offsets. Logical capture: the leader decodes Upkeep's replication slot and appends facts
// (consumer.ts). Readers and followers read the facts table the same way in both modes.
//
// Ordering and leadership: see postgres/sequencer.ts and postgres/consumer.ts.

import { randomUUID } from "node:crypto";
import pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../../constants.ts";
import { LedgerNotInstalledError, SchemaDriftError } from "../../errors.ts";
import { markOwn, ownPool } from "../../own.ts";
import {
  checkPosition,
  FaultLog,
  followFacts,
  horizonOf,
  ledgerError,
  type Position,
  parseHorizons,
  readLimit,
  Waker,
} from "../core.ts";
import type { PgColumnCodec } from "../decode.ts";
import type { Fact, FollowOptions, Horizons, Ledger, LedgerOptions, PruneOptions, ReadOptions } from "../types.ts";
import { checkColumns } from "./columns.ts";
import { columnCodecs, type FactRow, toFact } from "./facts.ts";
import { CaptureHealth } from "./health.ts";
import { capturedNow, captureMode, drift, excludedTables, installPostgres, isInstalled } from "./install.ts";
import { type CaptureMode, type LogicalNames, logicalNames, slotMissingError, slotState } from "./logical.ts";
import { HORIZON_KEYS, prunePostgres, readHorizons } from "./prune.ts";
import { currentSchema, type Names, names } from "./schema.ts";
import { isMissingLedger, Sequencer } from "./sequencer.ts";
import { StreamingConsumer } from "./stream.ts";
import { syncLogical, syncStaged } from "./sync.ts";

const NOTHING: ReadonlySet<string> = new Set();

/** A process that is not the sequencer tries to take the lease this often (ticks of the poll interval). */
const LEADER_ATTEMPT_TICKS = 10;

export async function openPostgresLedger(database: string, url: string, options: LedgerOptions): Promise<Ledger> {
  const pool = ownPool(new pg.Pool({ connectionString: url, max: 4 }));
  pool.on("error", () => {});
  try {
    const schema = await currentSchema(pool);
    if (!(await isInstalled(pool, schema))) throw new LedgerNotInstalledError(database);
    const n = names(schema);
    const found = await drift(pool, schema, n);
    if (found.tables.length > 0) throw new SchemaDriftError(database, found.tables, found.detail.join("; "));
    const { rows } = await pool.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'incarnation'`);
    const captured = await capturedNow(pool, schema);
    const mode = await captureMode(pool, n);
    let logical: LogicalNames | undefined;
    if (mode === "logical") {
      logical = await logicalNames(pool, schema);
      const slot = await slotState(pool, logical.slot);
      if (!slot.exists || slot.walStatus === "lost") throw slotMissingError(database, logical.slot);
    }
    const ledger = new PostgresLedger(database, url, pool, n, rows[0]?.value as string, captured, options, logical);
    await ledger.start();
    return ledger;
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
}

class PostgresLedger implements Ledger {
  readonly kind = "postgres" as const;
  readonly database: string;
  readonly #url: string;
  readonly #id = randomUUID();
  readonly #faults: FaultLog;
  readonly #schemaChanges: "refresh" | "report";
  #incarnation: string;
  #captured: Set<string>;
  #schemaTimer: NodeJS.Timeout | undefined;
  #checkingSchema = false;
  readonly #pool: pg.Pool;
  readonly #n: Names;
  readonly #waker = new Waker();
  readonly #pollIntervalMs: number;
  #codecs = new Map<string, Map<string, PgColumnCodec>>();
  #timer: NodeJS.Timeout | undefined;
  #listener: pg.Client | undefined;
  readonly #sequencer: Sequencer;
  /** Set with logical capture. */
  readonly #logical: LogicalNames | undefined;
  readonly #consumer: StreamingConsumer | undefined;
  readonly #health: CaptureHealth;
  #lagTimer: NodeJS.Timeout | undefined;
  #ticks = 0;
  #ticking = false;
  #lastHead = -1;
  #closed = false;

  constructor(
    database: string,
    url: string,
    pool: pg.Pool,
    n: Names,
    incarnation: string,
    captured: Set<string>,
    options: LedgerOptions,
    logical?: LogicalNames,
  ) {
    this.database = database;
    this.#incarnation = incarnation;
    this.#captured = captured;
    this.#faults = new FaultLog(options.log);
    this.#schemaChanges = options.schemaChanges ?? "refresh";
    this.#url = url;
    this.#pool = pool;
    this.#n = n;
    this.#pollIntervalMs = options.pollIntervalMs ?? LEDGER_TUNING.pollIntervalMs;
    this.#logical = logical;
    this.#health = new CaptureHealth({
      database,
      url,
      n,
      pool,
      logical,
      schemaChanges: this.#schemaChanges,
      faults: this.#faults,
      maxSlotLagBytes: options.maxSlotLagBytes ?? LEDGER_TUNING.slotLagWarnBytes,
      wake: () => this.#waker.bump(),
      repaired: async () => {
        this.#consumer?.refresh();
        await this.#loadCodecs();
        this.#captured = await capturedNow(this.#pool, this.#n.schema);
      },
    });
    this.#consumer = logical
      ? new StreamingConsumer(url, n, logical, {
          wake: () => this.poke(),
          fault: (key, message) => this.#faults.once("error", key, message),
          health: this.#health,
        })
      : undefined;
    this.#sequencer = new Sequencer(url, n, this.#id, this.#waker, this.#consumer);
  }

  get capture(): CaptureMode {
    return this.#logical ? "logical" : "triggers";
  }

  get incarnation(): string {
    return this.#incarnation;
  }

  get isSequencer(): boolean {
    return this.#sequencer.isLeader;
  }

  /** Logical capture: the most decoded changes this process held at once (bounded by
   *  LEDGER_TUNING.logicalHeldChanges). */
  get heldHighWater(): number {
    return this.#consumer?.heldHighWater ?? 0;
  }

  async start(): Promise<void> {
    await this.#loadCodecs();
    await this.#checkColumns();
    const listener = markOwn(new pg.Client({ connectionString: this.#url }));
    listener.on("error", () => {
      if (this.#listener === listener) this.#listener = undefined;
    });
    listener.on("notification", () => this.#waker.bump());
    await listener.connect();
    await listener.query(`LISTEN ${LEDGER.pgNotifyChannel}`);
    this.#listener = listener;
    await this.#sequencer.tryLead();
    this.#timer = setInterval(() => void this.#tick(), this.#pollIntervalMs);
    this.#timer.unref();
    this.#schemaTimer = setInterval(() => void this.checkSchema(), LEDGER_TUNING.schemaCheckMs);
    this.#schemaTimer.unref();
    if (this.#logical) {
      this.#lagTimer = setInterval(() => void this.checkSlot(), LEDGER_TUNING.slotLagCheckMs);
      this.#lagTimer.unref();
    }
  }

  /** Logical capture: warns about a slot past its lag bound; a lost slot is repaired or reported (health.ts). */
  async checkSlot(): Promise<void> {
    if (!this.#closed) await this.#health.checkSlot();
  }

  /**
   * Tables added while running: refreshed (install is idempotent and serialized between processes) or reported.
   * Columns added to a captured table need nothing: the generic trigger renders whole rows. Until the check runs
   * (at most LEDGER_TUNING.schemaCheckMs) a new table is not in capturedTables(), so pages reading it are refused.
   */
  async checkSchema(): Promise<void> {
    if (this.#closed || this.#checkingSchema) return;
    this.#checkingSchema = true;
    try {
      await this.#health.check(true);
      if (this.#health.lost) return;
      const found = await drift(this.#pool, this.#n.schema, this.#n);
      if (found.tables.length > 0) {
        if (this.#schemaChanges === "refresh") {
          await installPostgres(this.#url, {
            exclude: await excludedTables(this.#pool, this.#n),
            capture: this.capture,
          });
          this.#consumer?.refresh();
          this.#faults.log("warn", `Upkeep refreshed capture after a schema change: ${found.detail.join("; ")}`);
          await this.#loadCodecs();
        } else {
          const error = new SchemaDriftError(this.database, found.tables, found.detail.join("; "));
          this.#faults.once(
            "warn",
            `drift:${found.tables.join(",")}`,
            `${error.message} (pages that read them are refused)`,
          );
        }
      }
      this.#captured = await capturedNow(this.#pool, this.#n.schema);
      await this.#checkColumns();
    } catch (error) {
      if (!this.#closed) {
        this.#faults.once(
          "error",
          `schema_check:${(error as Error).message}`,
          `Upkeep's schema check failed: ${(error as Error).message}`,
        );
      }
    } finally {
      this.#checkingSchema = false;
    }
  }

  /** A column change of a captured table becomes one table-wide fact (columns.ts). */
  #checkColumns(): Promise<void> {
    return this.#closed
      ? Promise.resolve()
      : checkColumns(this.#pool, this.#n, this.#captured, this.#faults, this.#waker);
  }

  async #loadCodecs(): Promise<void> {
    this.#codecs = await columnCodecs(this.#pool, this.#n.schema);
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#closed) return;
    this.#ticking = true;
    try {
      this.#ticks++;
      if (this.#sequencer.isLeader) await this.#sequencer.tick();
      else if (this.#ticks % LEADER_ATTEMPT_TICKS === 0) await this.#sequencer.tryLead();
      // Followers are woken by NOTIFY; polling head as well covers a lost listener connection.
      if (!this.#sequencer.isLeader && this.#waker.waiting) {
        const head = await this.head();
        if (head !== this.#lastHead) {
          this.#lastHead = head;
          this.#waker.bump();
        }
      }
    } catch (error) {
      // A failed poll is retried on the next tick; a lost leader connection gives up leadership; a missing ledger
      // table is checked (and repaired or reported) at once.
      if (isMissingLedger(error)) void this.#health.check().catch(() => {});
    } finally {
      this.#ticking = false;
    }
  }

  /** Runs a query; a missing ledger table becomes LedgerMissingError (logged once). */
  async #guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      if (!isMissingLedger(error)) throw error;
      await this.#health.check().catch(() => {});
      if (this.#health.lost) throw this.#health.lost;
      // Installed again: read again (a read then meets the new incarnation).
      try {
        return await body();
      } catch (again) {
        throw ledgerError(again, isMissingLedger(again), this.database, this.#faults);
      }
    }
  }

  async head(): Promise<number> {
    return this.#guard(async () => {
      const { rows } = await this.#pool.query<{ value: string }>(
        `SELECT value FROM ${this.#n.meta} WHERE key = 'head'`,
      );
      return Number(rows[0]?.value ?? 0);
    });
  }

  async horizon(tables?: readonly string[]): Promise<number> {
    return horizonOf(await this.horizons(), tables).horizon;
  }

  async horizons(): Promise<Horizons> {
    return this.#guard(() => readHorizons(this.#pool, this.#n));
  }

  async resync(): Promise<{ incarnation: string; head: number; horizon: number }> {
    return this.#guard(async () => {
      const { rows } = await this.#pool.query<{ key: string; value: string }>(
        `SELECT key, value FROM ${this.#n.meta} WHERE key IN ('incarnation', 'head') OR ${HORIZON_KEYS}`,
      );
      const values = Object.fromEntries(rows.map((r) => [r.key, r.value]));
      this.#captured = await capturedNow(this.#pool, this.#n.schema);
      // Last, so that the caller (the follower) takes the new incarnation at the same moment as the ledger.
      this.#incarnation = values.incarnation as string;
      const horizon = horizonOf(parseHorizons(rows)).horizon;
      return { incarnation: this.#incarnation, head: Number(values.head ?? 0), horizon };
    });
  }

  /** Empty while capture is lost (health.ts): a page must not be served live on what is not captured. */
  capturedTables(): ReadonlySet<string> {
    return this.#health.lost ? NOTHING : this.#captured;
  }

  async holdPosition(id: string, position: number): Promise<void> {
    await this.#guard(() =>
      this.#pool.query(
        `INSERT INTO ${this.#n.holds} (id, position, expires) VALUES ($1, $2, now() + make_interval(secs => $3::float8 / 1000))
         ON CONFLICT (id) DO UPDATE SET position = excluded.position, expires = excluded.expires`,
        [id, position, LEDGER_TUNING.holdLeaseMs],
      ),
    );
  }

  async releasePosition(id: string): Promise<void> {
    if (this.#closed) return;
    await this.#pool.query(`DELETE FROM ${this.#n.holds} WHERE id = $1`, [id]).catch(() => {});
  }

  async sync(): Promise<number> {
    await this.#checkColumns(); // a column change committed before the call becomes its fact now (columns.ts)
    const host = {
      pool: this.#pool,
      n: this.#n,
      sequencer: this.#sequencer,
      health: this.#health,
      pollIntervalMs: this.#pollIntervalMs,
      closed: () => this.#closed,
    };
    if (this.#logical && this.#consumer) await syncLogical(host, this.#consumer, this.#logical.slot);
    else await this.#guard(() => syncStaged(host));
    return this.head();
  }

  async read(after: number, options?: ReadOptions): Promise<Fact[]> {
    if (this.#health.lost) {
      await this.#health.check(true);
      if (this.#health.lost) throw this.#health.lost;
    }
    const n = this.#n;
    // One statement, one snapshot: the position checks and the facts agree.
    const { rows } = await this.#guard(() =>
      this.#pool.query<FactRow>(
        `SELECT m.incarnation, m.head, m.horizons, f.ledger_offset, f.tbl, f.op, f.key_columns,
              f.old::text AS old, f.new::text AS new, f.txid, f.committed_at
         FROM (SELECT max(value) FILTER (WHERE key = 'incarnation') AS incarnation,
                      max(value) FILTER (WHERE key = 'head') AS head,
                      json_object_agg(key, value) FILTER (WHERE ${HORIZON_KEYS}) AS horizons
                 FROM ${n.meta}) m
         LEFT JOIN LATERAL (SELECT * FROM ${n.facts} WHERE ledger_offset > $1 ORDER BY ledger_offset LIMIT $2) f
           ON true`,
        [after, readLimit(options)],
      ),
    );
    const first = rows[0] as FactRow;
    const position: Position = {
      incarnation: first.incarnation,
      head: Number(first.head),
      horizons: parseHorizons(Object.entries(first.horizons ?? {}).map(([key, value]) => ({ key, value }))),
    };
    checkPosition(after, position, this.#incarnation, options);
    const facts = rows.filter((r) => r.ledger_offset !== null);
    const seen = new Set<string>();
    for (const r of facts) {
      if (seen.has(r.tbl)) continue;
      seen.add(r.tbl);
      if (this.#unknownColumns(r)) {
        await this.#loadCodecs();
        break;
      }
    }
    return facts.map((r) => toFact(r, position.incarnation, this.#codecs.get(r.tbl), this.#faults));
  }

  #unknownColumns(r: FactRow): boolean {
    const codecs = this.#codecs.get(r.tbl);
    if (!codecs) return true;
    const image = r.new ?? r.old;
    if (!image) return false;
    // Cheap check: a column count mismatch means a column was added since the codecs were loaded.
    try {
      return Object.keys(JSON.parse(image)).length !== codecs.size;
    } catch {
      return false; // a poison image: #toFact reports it
    }
  }

  follow(after: number, options: FollowOptions = {}): AsyncIterable<Fact[]> {
    return followFacts(this, this.#waker, () => this.#closed, after, options);
  }

  poke(): void {
    // A commit through Upkeep's own connection: sequence it now when this process is the sequencer (which then
    // wakes followers); otherwise the sequencer's poll picks it up.
    if (this.#sequencer.isLeader && !this.#closed) this.#sequencer.sequence(false).catch(() => {});
  }

  prune(options: PruneOptions): Promise<{ pruned: number; horizon: number }> {
    return prunePostgres(this.#pool, this.#n, options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearInterval(this.#schemaTimer);
    clearInterval(this.#lagTimer);
    this.#waker.bump();
    await this.#sequencer.stop(); // hands the lease back: another process takes over at once
    await Promise.all([this.#listener?.end().catch(() => {}), this.#pool.end().catch(() => {})]);
  }
}
