// Presence: who is viewing a page is data. Each live subscription is recorded, by page and by a viewer label the app
// chooses (`createUpkeep({ presence: { label: (headers) => … } })`), in the captured table `upkeep_presence`; a
// render reads "who else is here" with `presence(db)` — an ordinary captured read — so pages that show viewers update
// when someone joins or leaves, like any other data.
//
// One row per process, page and label, written only when the label's first subscription on the page arrives in this
// process and deleted when its last one has been gone for `graceMs` (a reload or a reconnect within the grace period
// writes nothing). Rows of a process that died (its ledger hold expired) are deleted by the survivors' sweep; a clean
// shutdown deletes its own.
//
// Why joins are written together. Every join changes what every viewer of the page sees, so a page that shows its
// viewers is rendered again and sent to each of them: written one by one, n viewers joining cost n renders of the
// page for each group and n(n-1)/2 messages (300 viewers: 44,850). Changes are therefore held for
// PRESENCE_TUNING.flushMs and written in one transaction, whose facts the follower reads as one batch: each page
// group is rendered once for all of them and each viewer gets one message, so a crowd that joins within a window
// costs messages linear in its size.
import { type Kysely, sql } from "kysely";
import { currentCapture } from "./capture/context.ts";
import { PRESENCE_TUNING, UPKEEP_TABLES } from "./constants.ts";
import type { Subscriber } from "./register/registry.ts";

export const PRESENCE_TABLE = UPKEEP_TABLES.presence;

export interface PresenceOptions {
  /** The viewer's label from the subscribing request's headers (lower-case names), e.g. the signed-in user's name;
   *  null or undefined: not shown. At most PRESENCE_TUNING.maxLabelLength (200) characters are kept. */
  label(headers: Record<string, string>): string | null | undefined;
  /** How long a label stays after its last subscription left (a reload or reconnect within it writes nothing).
   *  Default 5 s. */
  graceMs?: number;
  /** How often rows of processes that died are deleted. Default 15 s. */
  sweepMs?: number;
  /** Joins and departures within this window are written together (see the top of src/presence.ts). Default
   *  200 ms. */
  flushMs?: number;
}

/** Creates the presence table (idempotent); `createUpkeep({ presence })` runs it before installing the ledger. */
export async function createPresenceTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(PRESENCE_TABLE)
    .ifNotExists()
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("page", "text", (c) => c.notNull())
    .addColumn("label", "text", (c) => c.notNull())
    .addColumn("process", "text", (c) => c.notNull())
    .execute();
}

/** The labels of the viewers of `page` (default: the page being rendered), sorted; a captured read. */
export async function presence(db: Kysely<any>, page?: string): Promise<string[]> {
  const url = page ?? currentCapture()?.url;
  if (url === undefined) throw new TypeError("presence(db) outside a render needs the page: presence(db, url)");
  const rows = await db
    .selectFrom(PRESENCE_TABLE)
    .select("label")
    .where("page", "=", url)
    .orderBy("label")
    .orderBy("id")
    .execute();
  return [...new Set(rows.map((r) => String(r.label)))];
}

type Change = { op: "insert"; page: string; label: string } | { op: "delete" };

export class Presence {
  readonly #db: Kysely<any>;
  readonly #process: string;
  readonly #options: PresenceOptions;
  readonly #kind: "sqlite" | "postgres";
  readonly #holds: string;
  readonly #log: (level: "warn" | "error", message: string) => void;
  /** Subscriptions per row id in this process, and each subscriber's row. */
  readonly #counts = new Map<string, number>();
  readonly #rows = new WeakMap<Subscriber, { id: string; page: string; label: string }>();
  readonly #leaving = new Map<string, NodeJS.Timeout>();
  /** Row changes not written yet, by row id (written together by flush()). */
  #changes = new Map<string, Change>();
  #flushTimer: NodeJS.Timeout | null = null;
  /** The flush being written (flushes are written one after another). */
  #writing: Promise<void> = Promise.resolve();
  readonly #pending = new Set<Promise<unknown>>();
  #sweeper: NodeJS.Timeout | null = null;
  #longLabelLogged = false;

  constructor(
    db: Kysely<any>,
    process: string,
    kind: "sqlite" | "postgres",
    holdsTable: string,
    options: PresenceOptions,
    log: (level: "warn" | "error", message: string) => void = (_level, message) => console.warn(message),
  ) {
    this.#db = db;
    this.#process = process;
    this.#kind = kind;
    this.#holds = holdsTable;
    this.#options = options;
    this.#log = log;
    this.#sweeper = setInterval(() => void this.sweep(), options.sweepMs ?? PRESENCE_TUNING.sweepMs);
    this.#sweeper.unref();
  }

  #track(work: Promise<unknown>): void {
    const tracked = work.catch(() => {}).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  /** The subscriber's label, as a string of at most PRESENCE_TUNING.maxLabelLength characters; null: not shown. */
  #label(subscriber: Subscriber): string | null {
    const value = this.#options.label(subscriber.headers);
    if (value === null || value === undefined || value === "") return null;
    const label = String(value);
    const max = PRESENCE_TUNING.maxLabelLength;
    if (label.length <= max) return label;
    if (!this.#longLabelLogged) {
      this.#longLabelLogged = true;
      this.#log(
        "warn",
        `upkeep: presence label() returned ${label.length} characters; labels are cut to ${max} (logged once): return a display name, not a document`,
      );
    }
    // Never half of a surrogate pair.
    const cut = label.slice(0, max);
    return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
  }

  joined(subscriber: Subscriber): void {
    const label = this.#label(subscriber);
    if (label === null) return;
    const page = subscriber.group.url;
    const id = `${this.#process}:${page}:${label}`;
    this.#rows.set(subscriber, { id, page, label });
    const count = (this.#counts.get(id) ?? 0) + 1;
    this.#counts.set(id, count);
    const leaving = this.#leaving.get(id);
    if (leaving) {
      clearTimeout(leaving); // back within the grace period: the row is still there (or still to be written)
      this.#leaving.delete(id);
      return;
    }
    if (count === 1) this.#change(id, { op: "insert", page, label });
  }

  left(subscriber: Subscriber): void {
    const row = this.#rows.get(subscriber);
    if (!row) return;
    this.#rows.delete(subscriber);
    const count = (this.#counts.get(row.id) ?? 1) - 1;
    if (count > 0) {
      this.#counts.set(row.id, count);
      return;
    }
    this.#counts.delete(row.id);
    const timer = setTimeout(() => {
      this.#leaving.delete(row.id);
      if (!this.#counts.has(row.id)) this.#change(row.id, { op: "delete" });
    }, this.#options.graceMs ?? PRESENCE_TUNING.graceMs);
    timer.unref();
    this.#leaving.set(row.id, timer);
  }

  /** Records a row change for the next flush; an insert and a delete of the same row not written yet cancel out. */
  #change(id: string, change: Change): void {
    const earlier = this.#changes.get(id);
    if (earlier && earlier.op !== change.op) this.#changes.delete(id);
    else this.#changes.set(id, change);
    if (this.#flushTimer === null && this.#changes.size > 0) {
      this.#flushTimer = setTimeout(() => this.#flush(), this.#options.flushMs ?? PRESENCE_TUNING.flushMs);
      this.#flushTimer.unref();
    }
  }

  /** Writes every change held, in one transaction (see the top of this file). */
  #flush(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#changes.size === 0) return;
    const changes = this.#changes;
    this.#changes = new Map();
    const inserts: { id: string; page: string; label: string; process: string }[] = [];
    const deletes: string[] = [];
    for (const [id, change] of changes) {
      if (change.op === "insert") inserts.push({ id, page: change.page, label: change.label, process: this.#process });
      else deletes.push(id);
    }
    const size = PRESENCE_TUNING.rowsPerStatement;
    // One flush at a time: a delete must not run before the insert of the same row commits.
    this.#writing = this.#writing
      .then(() =>
        this.#db.transaction().execute(async (trx) => {
          for (let i = 0; i < inserts.length; i += size) {
            await trx
              .insertInto(PRESENCE_TABLE)
              .values(inserts.slice(i, i + size))
              .onConflict((oc) => oc.column("id").doNothing())
              .execute();
          }
          for (let i = 0; i < deletes.length; i += size) {
            await trx
              .deleteFrom(PRESENCE_TABLE)
              .where("id", "in", deletes.slice(i, i + size))
              .execute();
          }
        }),
      )
      .catch(() => {}); // presence is best effort: a failed flush loses those changes, never a page's convergence
    this.#track(this.#writing);
  }

  /**
   * Deletes the rows of processes whose ledger hold has expired (they stopped without cleaning up). A hold's
   * `expires` is a time by the database: on SQLite seconds since the epoch (a REAL, as the ledger writes it), on
   * PostgreSQL a timestamptz.
   */
  async sweep(): Promise<void> {
    const now = this.#kind === "sqlite" ? sql`${Date.now() / 1000}` : sql`now()`;
    await sql`delete from ${sql.table(PRESENCE_TABLE)} where process <> ${this.#process}
      and process not in (select id from ${sql.table(this.#holds)} where expires > ${now})`
      .execute(this.#db)
      .catch(() => {}); // the next sweep tries again
  }

  /** Writes the changes held now and resolves when every write started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    this.#flush();
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Resolves once every departure's grace period has passed and every write has finished (tests). */
  async drain(): Promise<void> {
    while (this.#leaving.size > 0 || this.#pending.size > 0 || this.#changes.size > 0) {
      await this.idle();
      if (this.#leaving.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** A clean shutdown: this process's rows go at once. */
  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const timer of this.#leaving.values()) clearTimeout(timer);
    this.#leaving.clear();
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.#changes.clear(); // the delete below covers every row of this process
    await this.idle();
    await this.#db
      .deleteFrom(PRESENCE_TABLE)
      .where("process", "=", this.#process)
      .execute()
      .catch(() => {});
  }
}
