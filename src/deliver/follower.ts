// The follower: reads the ledger after the planner's position, plans each batch against the page groups, and has
// the hub replay what became dirty. It survives every ledger fault (see run()).
import { IncarnationMismatchError, LedgerMissingError, LogicalCaptureError, OffsetTooOldError } from "../errors.ts";
import type { Fact, Ledger } from "../ledger/types.ts";
import { isTableWide } from "../plan/match.ts";
import { planBatch } from "../plan/planner.ts";
import type { ReloadReason } from "../protocol.ts";
import type { GroupFrame, PageGroup, PageRegistry } from "../register/registry.ts";
import type { HubStats } from "./stats.ts";

/** Retry delays of the follower after a failure: doubling from the first to the last. */
const FOLLOW_RETRY_MS = { first: 100, max: 5_000, lost: 1_000 } as const;

/** What the follower needs of the hub. */
export interface FollowerHost {
  readonly ledger: Ledger;
  readonly registry: PageRegistry;
  readonly stats: HubStats;
  readonly coalesceMs: number;
  log(level: "warn" | "error", message: string): void;
  /** Logs a fault once per key (a fault that persists is not repeated on every retry). */
  logOnce(level: "warn" | "error", key: string, message: string): void;
  /** Frames a batch made dirty (the planner has set their flag): their groups are due a render. */
  dirtied(frames: readonly GroupFrame[]): void;
  /** Marks a group's page frame dirty: the group is due a replay. */
  markPageDirty(group: PageGroup): void;
  /** True when some group with subscribers is due a render. */
  renderDue(): boolean;
  /** Renders every dirty group with subscribers; resolves when they finished. */
  renderDirty(): Promise<void>;
  reloadAll(group: PageGroup, reason: ReloadReason): void;
  checkIdle(): void;
}

/** How many of the last planned facts are kept for the inspector. */
const RECENT_FACTS = 20;

export class Follower {
  /** The last facts planned, oldest first (the inspector shows them). */
  readonly recent: Fact[] = [];
  /** Offset of the last fact planned. */
  position = 0;
  /** The incarnation `position` belongs to (changed with it, at once, by resync()). */
  incarnation = "";
  readonly #host: FollowerHost;
  readonly #abort = new AbortController();
  #loop: Promise<void> | null = null;

  constructor(host: FollowerHost) {
    this.#host = host;
  }

  start(position: number, incarnation: string): void {
    this.position = position;
    this.incarnation = incarnation;
    this.#loop = this.run();
  }

  /** Stops following; resolves when the loop has returned. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop?.catch(() => {});
  }

  /**
   * The follower. A fault never stops it and never leaves a page silently stale:
   * - below the pruned horizon (another process pruned what this one had not planned): resync, replay every page
   *   group (a replay renders current state, which covers the pruned facts), continue from the horizon;
   * - another incarnation (reinstall, reset, restored backup): every subscriber reloads, groups are forgotten,
   *   and new pages carry the new incarnation;
   * - capture is lost (the ledger's tables or its replication slot are gone, and the ledger could not repair it):
   *   every open page reloads; the ledger logged it once with its fix; retried with a growing delay;
   * - any other failure: logged once, retried with a growing delay.
   */
  private async run(): Promise<void> {
    const signal = this.#abort.signal;
    let delay: number = FOLLOW_RETRY_MS.first;
    while (!signal.aborted) {
      try {
        for await (const batch of this.#host.ledger.follow(this.position, { signal })) {
          delay = FOLLOW_RETRY_MS.first;
          const fresh = batch.filter((fact) => fact.offset > this.position);
          if (fresh.length === 0) continue;
          this.ingest(fresh);
          if (this.#host.coalesceMs > 0 && this.#host.renderDue()) await this.coalesce(signal);
          await this.#host.renderDirty();
          this.#host.checkIdle();
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof OffsetTooOldError || error instanceof IncarnationMismatchError) {
          const recovered = await this.resync(error).catch(() => false);
          if (recovered) continue;
        } else if (error instanceof LedgerMissingError || error instanceof LogicalCaptureError) {
          // Capture is lost (the ledger's tables or its slot are gone; the ledger logged it once, with its fix):
          // no open page can be kept up to date, so each reloads (and is served as an ordinary page until capture
          // is back: the ledger then captures no table).
          for (const group of [...this.#host.registry.groups()]) this.#host.reloadAll(group, "capture_lost");
        } else {
          const message = (error as Error).message;
          this.#host.logOnce("error", `follow:${message}`, `upkeep: ledger follower failed, retrying: ${message}`);
        }
        await new Promise<void>((resolve) => {
          // Closing does not wait out the delay.
          const timer = setTimeout(resolve, delay);
          const stop = () => {
            clearTimeout(timer);
            resolve();
          };
          signal.addEventListener("abort", stop, { once: true });
        });
        // While capture is lost, retry at least every second: pages are live again as soon as it is back.
        const lost = error instanceof LedgerMissingError || error instanceof LogicalCaptureError;
        delay = Math.min(delay * 2, lost ? FOLLOW_RETRY_MS.lost : FOLLOW_RETRY_MS.max);
      }
    }
  }

  /** Brings the follower back onto the ledger after a pruned position or a new incarnation (see run()). */
  private async resync(error: OffsetTooOldError | IncarnationMismatchError): Promise<boolean> {
    const before = this.#host.ledger.incarnation;
    const position = await this.#host.ledger.resync();
    this.#host.stats.resyncs++;
    if (position.incarnation !== before) {
      this.#host.log(
        "warn",
        `upkeep: the ledger is a new incarnation (${before} → ${position.incarnation}: reinstalled, reset or restored); every open page reloads`,
      );
      for (const group of [...this.#host.registry.groups()]) this.#host.reloadAll(group, "incarnation_changed");
      this.position = position.head;
      this.incarnation = position.incarnation;
      return true;
    }
    if (error instanceof OffsetTooOldError || this.position < position.horizon) {
      this.#host.log(
        "warn",
        `upkeep: facts after offset ${this.position} were pruned before this process planned them; replaying every live page and continuing from ${position.horizon}`,
      );
      this.position = Math.max(this.position, position.horizon);
      for (const group of this.#host.registry.groups()) {
        this.#host.markPageDirty(group);
        if (group.local.subscribers.size === 0) group.renderOffset = -1; // its reads must be learnt again
      }
      await this.#host.renderDirty();
      return true;
    }
    return false;
  }

  /**
   * Wait the coalescing window, then plan whatever committed meanwhile, so that a burst of commits (a form
   * handler's several autocommitted statements) costs one replay, not one per commit.
   */
  private async coalesce(signal: AbortSignal): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.#host.coalesceMs));
    // Bounded, so that a steady stream of commits cannot postpone the replay indefinitely.
    for (let reads = 0; reads < 8 && !signal.aborted; reads++) {
      const more = await this.#host.ledger.read(this.position, { incarnation: this.#host.ledger.incarnation });
      if (more.length === 0) return;
      this.ingest(more);
    }
  }

  private ingest(facts: Fact[]): void {
    this.#host.dirtied(planBatch(this.#host.registry, facts).dirtied);
    this.recent.push(...facts.slice(-RECENT_FACTS));
    if (this.recent.length > RECENT_FACTS) this.recent.splice(0, this.recent.length - RECENT_FACTS);
    this.#host.stats.factsPlanned += facts.length;
    const newest = facts[facts.length - 1];
    if (newest) this.#host.stats.lastCommitAt = Date.parse(newest.committedAt) || this.#host.stats.lastCommitAt;
    for (const fact of facts) {
      if (!isTableWide(fact)) continue;
      this.#host.stats.factsTableWide++;
      const why = fact.op === "truncate" ? "TRUNCATE" : `an unavailable image (${fact.unavailable})`;
      this.#host.logOnce(
        "warn",
        `table_wide:${fact.table}`,
        `upkeep: ${fact.table} had ${why} at offset ${fact.offset}: every live page that reads ${fact.table} is replayed (logged once per table)`,
      );
    }
    this.position = facts[facts.length - 1]!.offset;
  }
}
