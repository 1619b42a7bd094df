// PostgreSQL capture's health under a running app: the ledger's tables dropped (by hand, or by `upkeep
// uninstall`), and logical capture's replication slot lost (dropped, or invalidated by the server once it kept
// more WAL than max_slot_wal_keep_size). Each is detected where it first shows — a read, the leader's batch, the
// leader's stream failing to start, the schema check every LEDGER_TUNING.schemaCheckMs — logged once with its
// fix, and answered so that no page stays silently stale:
// - When the ledger may refresh capture (schemaChanges "refresh", the default) and Upkeep is still installed, it
//   repairs: a dropped facts table is reinstalled, a lost slot is created again. Changes committed meanwhile were
//   never captured, so the repair starts a new incarnation (and wakes every process): every open page reloads, and
//   a client holding an offset of the old incarnation is told to reload from a fresh GET.
// - Otherwise (uninstalled, "report", or a repair that failed) capture is lost: reads throw the error, so the hub
//   reloads every open page, and capturedTables() is empty, so every page rendered meanwhile is refused as reading
//   uncaptured tables (in production an ordinary, non-live page with a warning) until capture is back.
import { LEDGER_TUNING } from "../../constants.ts";
import { LedgerMissingError, LogicalCaptureError, type UpkeepError } from "../../errors.ts";
import type { FaultLog } from "../core.ts";
import { captureMode, excludedTables, installPostgres, installRunning } from "./install.ts";
import { type LogicalNames, slotLagMessage, slotMissingError, slotState } from "./logical.ts";
import type { Names, Queryable } from "./schema.ts";

export interface HealthHost {
  database: string;
  url: string;
  n: Names;
  pool: Queryable;
  logical: LogicalNames | undefined;
  schemaChanges: "refresh" | "report";
  faults: FaultLog;
  /** The slot lag past which checkSlot() warns. */
  maxSlotLagBytes: number;
  /** Wakes this process's followers (a new incarnation, or capture lost: they must read now). */
  wake(): void;
  /** After a repair: what the ledger read of the old install (codecs, key columns) is read again. */
  repaired(): Promise<void>;
}

const LOST_KEYS = ["ledger_missing", "capture_slot_missing"];
/** Least time between two checks caused by failing reads or batches. */
const CHECK_MS = 100;

export class CaptureHealth {
  /** Set while capture is lost and not repaired: reads throw it, and nothing is captured. */
  lost: UpkeepError | undefined;
  readonly #host: HealthHost;
  #repairing: Promise<void> | undefined;
  #checking: Promise<void> | undefined;
  #checkedAt = 0;
  #lagWarnedAt = 0;

  constructor(host: HealthHost) {
    this.#host = host;
  }

  /**
   * Checks the ledger's tables and the slot: the schema check (`always`), and any read or batch that met a
   * missing table (at most every CHECK_MS, since those may come every poll).
   */
  async check(always = false): Promise<void> {
    // A repair or a check under way answers this one too.
    if (this.#repairing) return this.#repairing;
    if (this.#checking) return this.#checking;
    if (!always && Date.now() - this.#checkedAt < CHECK_MS) return;
    this.#checkedAt = Date.now();
    this.#checking = this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<void> {
    const { pool, n, logical } = this.#host;
    const { rows } = await pool.query<{ meta: boolean; facts: boolean }>(
      "SELECT to_regclass($1) IS NOT NULL AS meta, to_regclass($2) IS NOT NULL AS facts",
      [n.meta, n.facts],
    );
    const tables = rows[0] as { meta: boolean; facts: boolean };
    if (!tables.meta || !tables.facts) return this.#tablesGone(tables.meta);
    if (logical && (await captureMode(pool, n)) === "logical") {
      const slot = await slotState(pool, logical.slot);
      if (!slot.exists || slot.walStatus === "lost") return this.slotLost(slot.exists);
    }
    if (this.lost) {
      // Installed again by hand: capture is back (a new incarnation, which followers read).
      this.lost = undefined;
      for (const key of LOST_KEYS) this.#host.faults.forget(key);
      this.#host.wake();
    }
  }

  /**
   * A slot nobody consumes keeps WAL on the server's disk: past the lag bound this warns (at most once per
   * LEDGER_TUNING.slotLagWarnMs); a lost slot is repaired or reported (check()).
   */
  async checkSlot(): Promise<void> {
    const { database, logical, pool, faults } = this.#host;
    if (!logical) return;
    try {
      const state = await slotState(pool, logical.slot);
      if (!state.exists || state.walStatus === "lost") return await this.check(true);
      if (
        state.lagBytes > this.#host.maxSlotLagBytes &&
        Date.now() - this.#lagWarnedAt >= LEDGER_TUNING.slotLagWarnMs
      ) {
        this.#lagWarnedAt = Date.now();
        faults.log("warn", slotLagMessage(database, logical.slot, state));
      }
    } catch (error) {
      const message = (error as Error).message;
      faults.once("warn", `slot_check:${message}`, `Upkeep's slot check failed: ${message}`);
    }
  }

  /** The slot is gone (`invalidated`: it exists but the server invalidated it). */
  async slotLost(invalidated = false): Promise<void> {
    const { database, logical } = this.#host;
    // An install or uninstall under way creates or drops the slot after the tables: not lost (yet).
    if (!logical || (await installRunning(this.#host.pool))) return;
    const what = invalidated
      ? `was invalidated by the server (it kept more WAL than max_slot_wal_keep_size)`
      : "was dropped";
    if (this.#host.schemaChanges !== "refresh") return this.#lose(slotMissingError(database, logical.slot));
    await this.#repair(
      `Upkeep's replication slot ${logical.slot} ${what}; Upkeep created a new one. What was committed in between was not captured, so the ledger is a new incarnation and every open page reloads.\n  fix: ${
        invalidated
          ? "keep a process with the ledger open (it consumes the slot), or raise max_slot_wal_keep_size"
          : "do not drop Upkeep's slot by hand; `npx upkeep uninstall` removes Upkeep"
      }`,
      (reason) =>
        new LogicalCaptureError(
          "slot_missing",
          `Upkeep's replication slot ${logical.slot} ${what}, and creating it again failed (${reason}): changes are not captured; open pages reload, and pages are not live until it is back.`,
          slotMissingError(database, logical.slot).hint,
        ),
    );
  }

  async #tablesGone(metaPresent: boolean): Promise<void> {
    const { database } = this.#host;
    // A reinstall under way that drops and creates the facts table: look again once it is done.
    if (metaPresent && (await installRunning(this.#host.pool))) return;
    if (!metaPresent || this.#host.schemaChanges !== "refresh") {
      const detail = metaPresent ? "its facts table was dropped" : "its tables were dropped: uninstalled?";
      return this.#lose(new LedgerMissingError(database, detail));
    }
    await this.#repair(
      `Upkeep's facts table in ${database} was dropped; Upkeep installed it again. What was committed in between was not captured, so the ledger is a new incarnation and every open page reloads.\n  fix: to remove Upkeep, run \`npx upkeep uninstall --database ${database}\` and remove createUpkeep from the app`,
      (reason) =>
        new LedgerMissingError(database, `its facts table was dropped, and installing it again failed: ${reason}`),
    );
  }

  #lose(error: UpkeepError): void {
    this.lost = error;
    this.#host.faults.once("error", error.code, error.message);
    this.#host.wake();
  }

  /** Installs again (serialized with every other install by its advisory lock; idempotent). */
  #repair(done: string, failed: (reason: string) => UpkeepError): Promise<void> {
    this.#repairing ??= (async () => {
      const { url, pool, n } = this.#host;
      try {
        const capture = await captureMode(pool, n);
        await installPostgres(url, {
          exclude: await excludedTables(pool, n),
          capture,
          warn: (message) => this.#host.faults.log("warn", message),
        });
        this.lost = undefined;
        for (const key of LOST_KEYS) this.#host.faults.forget(key);
        this.#host.faults.log("warn", done);
        await this.#host.repaired();
        this.#host.wake();
      } catch (error) {
        this.#lose(failed((error as Error).message.split("\n")[0] as string));
      }
    })().finally(() => {
      this.#repairing = undefined;
    });
    return this.#repairing;
  }
}
