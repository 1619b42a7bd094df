// Logical capture's consumer: the leader holds a replication connection (`replication: 'database'` in `pg`) on
// which the server pushes each transaction as it commits (START_REPLICATION … LOGICAL with pgoutput). Changes
// are held here in segments (pending.ts), at most LEDGER_TUNING.logicalHeldChanges: past the bound the connection
// stops reading (the few messages already read wait undecoded). The leader's batches (sequencer.ts) append them
// (FactAppender, consumer.ts, which has the ordering and crash-safety argument), and only after the append's
// database transaction committed is the server told, in a standby status update, that they are flushed. Streaming decodes each WAL record once (polling the slot with
// pg_logical_slot_peek_binary_changes decodes from its restart position on every call, which after a bulk write
// cost 100+ ms per poll), and a commit reaches the leader as soon as it is flushed.

import pg from "pg";
import { LEDGER_TUNING } from "../../constants.ts";
import { markOwn } from "../../own.ts";
import { quoteIdent } from "../core.ts";
import { FactAppender } from "./consumer.ts";
import type { CaptureHealth } from "./health.ts";
import { type LogicalNames, slotState } from "./logical.ts";
import { heldBound, PendingChanges, type Segment } from "./pending.ts";
import { PgoutputDecoder } from "./pgoutput.ts";
import type { Names } from "./schema.ts";
import { type CaptureWork, isMissingLedger } from "./sequencer.ts";

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;

/** The lease names another process (taken over, or a new install's): this one does not stream. */
class LeaseLost extends Error {
  constructor() {
    super("the leader lease is another process's");
  }
}

export class StreamingConsumer implements CaptureWork {
  readonly #appender: FactAppender;
  readonly #logical: LogicalNames;
  readonly #n: Names;
  readonly #url: string;
  readonly #wake: () => void;
  #stream: pg.Client | undefined;
  #starting: Promise<void> | undefined;
  #decoder = new PgoutputDecoder();
  readonly #pending = new PendingChanges();
  /** Messages read while the bound was reached, not decoded yet (copies: pg reuses its buffer). */
  #stash: Buffer[] = [];
  /** End of the last transaction appended (or found appended) by this process. */
  #appendedTo = 0n;
  /** Everything before this was sent by the server (a keepalive's position, between transactions). */
  #sentTo = 0n;
  /** The flush position last reported to the server. */
  #reported = 0n;
  #paused = false;
  #failure: Error | undefined;
  #askedAt = 0;
  /** Segments taken from the queue and not appended yet: nothing past them may be reported. */
  #appending = false;

  readonly #fault: (key: string, message: string) => void;
  readonly #health: CaptureHealth;
  /** After a failure, the stream is not started again before this time (a doubling delay). */
  #retryAt = 0;
  #retryDelay = 0;

  /** `fault` logs a problem once per key (the ledger's FaultLog); `health` answers a lost slot or ledger. */
  constructor(
    url: string,
    n: Names,
    logical: LogicalNames,
    host: { wake: () => void; fault: (key: string, message: string) => void; health: CaptureHealth },
  ) {
    this.#fault = host.fault;
    this.#health = host.health;
    this.#appender = new FactAppender(n, host.fault);
    this.#logical = logical;
    this.#n = n;
    this.#url = url;
    this.#wake = host.wake;
  }

  async batch(client: pg.Client, _check: boolean, leaseId: string): Promise<{ count: number; more: boolean }> {
    if (this.#failure) {
      const failure = this.#failure;
      await this.release();
      this.#backOff();
      throw failure;
    }
    if (!this.#stream) {
      if (Date.now() < this.#retryAt) return { count: 0, more: false };
      this.#starting ??= this.#start(client, leaseId).finally(() => {
        this.#starting = undefined;
      });
      try {
        await this.#starting;
        this.#retryDelay = 0;
      } catch (error) {
        if (error instanceof LeaseLost) return { count: 0, more: false }; // the next renewal ends leadership
        this.#backOff();
        // A lost slot or ledger is answered by health.ts (repaired, or reported once): not this batch's failure.
        if (await this.#startFailed(client, error as Error)) return { count: 0, more: false };
        throw error;
      }
    }
    // Half the bound per batch, so the stream can fill the other half while a batch is appended.
    const segments = this.#pending.take(Math.min(LEDGER_TUNING.logicalBatch, Math.ceil(heldBound() / 2)));
    let count = 0;
    if (segments.length > 0) {
      this.#appending = true;
      try {
        if (!this.#appender.open && !(await this.#appender.begin(client, leaseId))) {
          await this.release(); // the lease is another process's now
          return { count: 0, more: false };
        }
        await this.#appender.insert(segments);
        this.#pending.release(segments.reduce((n, s) => n + s.changes.length, 0));
        // At a transaction boundary the append commits; within a transaction it stays open for the next segments.
        if ((segments.at(-1) as Segment).endLsn !== undefined) {
          const done = await this.#appender.commit();
          count = done.count;
          if (done.lsn > this.#appendedTo) this.#appendedTo = done.lsn;
        }
      } catch (error) {
        await this.release(); // nothing of the open append is visible: the slot sends it again
        this.#backOff();
        throw error;
      } finally {
        this.#appending = false;
      }
    }
    this.#drain();
    // While nothing waits, ask the server where it is (a keepalive answers), so that the slot's confirmed
    // position follows WAL that has nothing to capture (the facts this leader writes, other tables).
    const ask = this.#idle() && Date.now() - this.#askedAt >= LEDGER_TUNING.logicalConfirmMs;
    if (ask) this.#askedAt = Date.now();
    this.#report(ask, ask);
    return { count, more: !this.#pending.empty };
  }

  #backOff(): void {
    this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 100), 5000);
    this.#retryAt = Date.now() + this.#retryDelay;
  }

  /**
   * Why the stream did not start: the ledger's tables or the slot are gone (health.ts repairs or reports it, once),
   * or the server refuses (logged once per reason, with the fix).
   */
  async #startFailed(client: pg.Client, error: Error): Promise<boolean> {
    if (isMissingLedger(error)) {
      await this.#health.check();
      return true;
    }
    const slot = await slotState(client, this.#logical.slot).catch(() => undefined);
    if (slot && (!slot.exists || slot.walStatus === "lost")) {
      await this.#health.slotLost(slot.exists);
      if (!this.#health.lost) this.#retryAt = 0; // created again (or being created): start at the next batch
      return true;
    }
    const message = error.message;
    this.#fault(
      `stream:${message}`,
      `Upkeep's leader cannot stream its replication slot ${this.#logical.slot} (${message}): changes are not being captured.\n  fix: check \`npx upkeep doctor\`; the server needs a free WAL sender (max_wal_senders) and the role REPLICATION`,
    );
    return false;
  }

  /** The most changes this process held at once (bounded by LEDGER_TUNING.logicalHeldChanges). */
  get heldHighWater(): number {
    return this.#pending.highWater;
  }

  /** The leader's connection ends an append left open by a paused process (see consumer.ts). */
  async prepare(client: pg.Client): Promise<void> {
    await client.query(`SET idle_in_transaction_session_timeout = ${Math.round(LEDGER_TUNING.leaderIdleMs)}`);
  }

  /** Forgets the key columns read so far (a schema change may have changed a primary key). */
  refresh(): void {
    this.#appender.refresh();
  }

  /** Asks the server for its position now (sync() waits for it). */
  askPosition(): void {
    this.#report(true, true);
  }

  /** Everything committed before `lsn` was appended (or had nothing to append). */
  caughtUp(lsn: bigint): boolean {
    return this.#idle() && (this.#appendedTo >= lsn || this.#sentTo >= lsn);
  }

  /** Nothing received is waiting: none queued, stashed, being appended, half received, or in an open append. */
  #idle(): boolean {
    return (
      this.#pending.empty && this.#stash.length === 0 && !this.#appending && !this.#decoder.open && !this.#appender.open
    );
  }

  /** Ends the stream (leadership lost or given up): the slot is free for the next leader. */
  async release(): Promise<void> {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#decoder = new PgoutputDecoder();
    this.#pending.clear();
    this.#stash = [];
    this.#paused = false;
    this.#failure = undefined;
    this.#sentTo = 0n;
    this.#reported = 0n;
    await this.#appender.rollback();
    await stream?.end().catch(() => {});
  }

  async #start(client: pg.Client, leaseId: string): Promise<void> {
    const { slot, publication } = this.#logical;
    // Only the lease holder streams (an uninstalled ledger has no lease table: nothing starts).
    const lease = await client.query(`SELECT 1 FROM ${this.#n.lease} WHERE holder = $1`, [leaseId]);
    if (lease.rowCount === 0) throw new LeaseLost();
    // The lease is ours (batches run only on the leader): a previous leader's connection that still streams the
    // slot is stale, and its appends fail the lease check anyway. Only a WAL sender is ended: the backend of an
    // install creating the slot holds it too, and must finish.
    for (let attempt = 0; attempt < 50; attempt++) {
      const { rows } = await client.query<{ pid: number | null }>(
        `SELECT s.active_pid AS pid FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
          WHERE s.slot_name = $1 AND a.backend_type = 'walsender'`,
        [slot],
      );
      const pid = rows[0]?.pid;
      if (pid === null || pid === undefined) break;
      await client.query("SELECT pg_terminate_backend($1)", [pid]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The text of column values depends on these settings (images.ts).
    const stream = markOwn(
      new pg.Client({
        connectionString: this.#url,
        replication: "database",
        options:
          "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c bytea_output=hex -c extra_float_digits=1",
      } as pg.ClientConfig),
    );
    const fail = (error: Error) => {
      if (this.#stream !== stream) return;
      this.#failure ??= error;
      this.#wake();
    };
    stream.on("error", fail);
    await stream.connect();
    // Logical decoding messages carry the TRUNCATE of a partition (partitions.ts): pgoutput sends them from 14 on.
    const { rows: version } = await client.query<{ v: number }>(
      "SELECT current_setting('server_version_num')::int AS v",
    );
    const messages = (version[0]?.v ?? 0) >= 140000 ? ", messages 'true'" : "";
    const connection = (stream as unknown as { connection: NodeJS.EventEmitter }).connection;
    const started = new Promise<void>((resolve, reject) => {
      connection.once("replicationStart", () => resolve());
      stream
        .query(
          `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL 0/0 (proto_version '1', publication_names '${quoteIdent(publication).replace(/'/g, "''")}'${messages})`,
        )
        .then(
          () => fail(new Error("the replication stream ended")),
          (error: Error) => {
            reject(error);
            fail(error);
          },
        );
    });
    connection.on("copyData", (message: { chunk: Buffer }) => {
      try {
        this.#onData(stream, message.chunk);
      } catch (error) {
        fail(error as Error);
      }
    });
    this.#stream = stream;
    try {
      await started;
    } catch (error) {
      this.#stream = undefined;
      await stream.end().catch(() => {});
      throw error;
    }
  }

  #onData(stream: pg.Client, chunk: Buffer): void {
    if (this.#stream !== stream) return;
    if (this.#stash.length > 0 || this.#pending.full) {
      // The bound is reached: stop reading; what was read already waits, in order, for room.
      this.#stash.push(Buffer.from(chunk));
      if (!this.#paused) {
        this.#paused = true;
        (stream as unknown as { connection: { stream: { pause(): void } } }).connection.stream.pause();
      }
      return;
    }
    this.#handle(chunk);
  }

  /** Decodes stashed messages while there is room, and reads again when all are. */
  #drain(): void {
    const stream = this.#stream;
    if (!stream) return;
    try {
      while (this.#stash.length > 0 && !this.#pending.full) this.#handle(this.#stash.shift() as Buffer);
    } catch (error) {
      this.#failure ??= error as Error; // the next batch ends the stream, which starts again from the slot
      this.#wake();
      return;
    }
    if (this.#paused && this.#stash.length === 0 && !this.#pending.full) {
      this.#paused = false;
      (stream as unknown as { connection: { stream: { resume(): void } } }).connection.stream.resume();
    }
  }

  #handle(chunk: Buffer): void {
    if (chunk[0] === 0x77 /* w: XLogData */) {
      const data = chunk.subarray(25);
      // A message larger than the image bound is recorded without its rows (see consumer.ts).
      const decoded =
        data.length > LEDGER_TUNING.maxImageValueBytes
          ? this.#decoder.push(data.subarray(0, 5), data.length)
          : this.#decoder.push(data);
      if (decoded.length === 0) return;
      const wasEmpty = this.#pending.empty;
      for (const d of decoded) this.#pending.push(d);
      if (wasEmpty && !this.#pending.empty) this.#wake();
    } else if (chunk[0] === 0x6b /* k: keepalive */) {
      if (!this.#decoder.open) this.#sentTo = chunk.readBigUInt64BE(1);
      if (chunk[17] === 1) this.#report(true);
      else this.#report(false);
    }
  }

  /** Tells the server what is durable: what was appended, or everything sent when nothing is waiting. */
  #report(force: boolean, replyRequested = false): void {
    const stream = this.#stream;
    if (!stream) return;
    // What was sent may be reported only when every transaction in it is appended: none queued, none being
    // appended (a keepalive can arrive while a batch is in flight), none half received.
    let flushed = this.#appendedTo;
    if (this.#idle() && this.#sentTo > flushed) flushed = this.#sentTo;
    if (flushed <= this.#reported && !force) return;
    if (flushed > this.#reported) this.#reported = flushed;
    const message = Buffer.alloc(34);
    message.write("r", 0);
    message.writeBigUInt64BE(this.#reported, 1); // written
    message.writeBigUInt64BE(this.#reported, 9); // flushed
    message.writeBigUInt64BE(this.#reported, 17); // applied
    message.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    message.writeUInt8(replyRequested ? 1 : 0, 33);
    (stream as unknown as { connection: { sendCopyFromChunk(b: Buffer): void } }).connection.sendCopyFromChunk(message);
  }
}
