// Logical capture's held changes: what the replication stream delivered and the leader has not appended yet, as
// segments of one transaction each (a large transaction is several segments). The number held is bounded by
// LEDGER_TUNING.logicalHeldChanges: the consumer decodes no further message while it is reached (stream.ts), and
// the leader appends a large transaction segment by segment inside one database transaction (consumer.ts), so a
// transaction of any size costs the leader the same memory.
import { LEDGER_TUNING } from "../../constants.ts";
import type { Change, Decoded, TransactionHead } from "./pgoutput.ts";

export interface Segment {
  head: TransactionHead;
  changes: Change[];
  /** Set on a transaction's last segment: its commit's end. */
  endLsn?: bigint;
}

/** The bound on changes held, read when used (a test may lower it). */
export function heldBound(): number {
  return Math.max(4, LEDGER_TUNING.logicalHeldChanges);
}

export class PendingChanges {
  #queue: Segment[] = [];
  /** The segment being filled (of the transaction being received). */
  #current: Segment | undefined;
  /** Changes decoded and not appended yet: queued, in the current segment, or being appended. */
  #held = 0;
  /** The most changes held at once since this process started (a diagnostic, and what the bound's test checks). */
  highWater = 0;

  get held(): number {
    return this.#held;
  }

  /** True when no further change may be decoded until some are appended. */
  get full(): boolean {
    return this.#held >= heldBound();
  }

  /** True when no segment waits to be appended. */
  get empty(): boolean {
    return this.#queue.length === 0;
  }

  push(decoded: Decoded): void {
    if (decoded.kind === "begin") {
      this.#current = { head: decoded.head, changes: [] };
      return;
    }
    const current = this.#current;
    if (!current) throw new Error(`pgoutput: a ${decoded.kind} outside a transaction`);
    if (decoded.kind === "commit") {
      current.endLsn = decoded.endLsn;
      this.#queue.push(current);
      this.#current = undefined;
      return;
    }
    current.changes.push(decoded.change);
    this.#held++;
    if (this.#held > this.highWater) this.highWater = this.#held;
    // A quarter of the bound per segment: a batch can take one while the stream fills the next.
    if (current.changes.length >= Math.ceil(heldBound() / 4)) {
      this.#queue.push(current);
      this.#current = { head: current.head, changes: [] };
    }
  }

  /** Whole segments from the front, at least one, until they hold `max` changes. */
  take(max: number): Segment[] {
    const taken: Segment[] = [];
    let changes = 0;
    while (this.#queue.length > 0 && (taken.length === 0 || changes < max)) {
      const segment = this.#queue[0] as Segment;
      if (taken.length > 0 && changes + segment.changes.length > max) break;
      this.#queue.shift();
      taken.push(segment);
      changes += segment.changes.length;
    }
    return taken;
  }

  /** Changes appended (or dropped): they are no longer held. */
  release(count: number): void {
    this.#held -= count;
  }

  clear(): void {
    this.#queue = [];
    this.#current = undefined;
    this.#held = 0;
  }
}
