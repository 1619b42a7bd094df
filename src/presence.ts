// Presence: who is viewing a page is data. Each live subscription is recorded, by page and by a viewer label the app
// chooses (`createUpkeep({ presence: { label: (headers) => … } })`), in the captured table `upkeep_presence`; a
// render reads "who else is here" with `presence(db)` — an ordinary captured read — so pages that show viewers update
// when someone joins or leaves, like any other data.
//
// One row per process, page and label, written only when the label's first subscription on the page arrives in this
// process and deleted when its last one has been gone for `graceMs` (a reload or a reconnect within the grace period
// writes nothing). Rows of a process that died (its ledger hold expired) are deleted by the survivors' sweep; a clean
// shutdown deletes its own.
import { type Kysely, sql } from "kysely";
import { currentCapture } from "./capture/context.ts";
import { UPKEEP_TABLES } from "./constants.ts";
import type { Subscriber } from "./register/registry.ts";

export const PRESENCE_TABLE = UPKEEP_TABLES.presence;

export interface PresenceOptions {
  /** The viewer's label from the subscribing request's headers (lower-case names), e.g. the signed-in user's name;
   *  null or undefined: not shown. */
  label(headers: Record<string, string>): string | null | undefined;
  /** How long a label stays after its last subscription left (a reload or reconnect within it writes nothing).
   *  Default 5 s. */
  graceMs?: number;
  /** How often rows of processes that died are deleted. Default 15 s. */
  sweepMs?: number;
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

export class Presence {
  readonly #db: Kysely<any>;
  readonly #process: string;
  readonly #options: PresenceOptions;
  readonly #kind: "sqlite" | "postgres";
  readonly #holds: string;
  /** Subscriptions per row id in this process, and each subscriber's row. */
  readonly #counts = new Map<string, number>();
  readonly #rows = new WeakMap<Subscriber, { id: string; page: string; label: string }>();
  readonly #leaving = new Map<string, NodeJS.Timeout>();
  readonly #pending = new Set<Promise<unknown>>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(
    db: Kysely<any>,
    process: string,
    kind: "sqlite" | "postgres",
    holdsTable: string,
    options: PresenceOptions,
  ) {
    this.#db = db;
    this.#process = process;
    this.#kind = kind;
    this.#holds = holdsTable;
    this.#options = options;
    this.#sweeper = setInterval(() => void this.sweep(), options.sweepMs ?? 15_000);
    this.#sweeper.unref();
  }

  #track(work: Promise<unknown>): void {
    const tracked = work.catch(() => {}).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  joined(subscriber: Subscriber): void {
    const label = this.#options.label(subscriber.headers);
    if (label === null || label === undefined || label === "") return;
    const page = subscriber.group.url;
    const id = `${this.#process}:${page}:${label}`;
    this.#rows.set(subscriber, { id, page, label });
    const count = (this.#counts.get(id) ?? 0) + 1;
    this.#counts.set(id, count);
    const leaving = this.#leaving.get(id);
    if (leaving) {
      clearTimeout(leaving); // back within the grace period: the row is still there
      this.#leaving.delete(id);
      return;
    }
    if (count === 1) {
      this.#track(
        this.#db
          .insertInto(PRESENCE_TABLE)
          .values({ id, page, label, process: this.#process })
          .onConflict((oc) => oc.column("id").doNothing())
          .execute(),
      );
    }
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
      if (this.#counts.has(row.id)) return;
      this.#track(this.#db.deleteFrom(PRESENCE_TABLE).where("id", "=", row.id).execute());
    }, this.#options.graceMs ?? 5_000);
    timer.unref();
    this.#leaving.set(row.id, timer);
  }

  /** Deletes the rows of processes whose ledger hold has expired (they stopped without cleaning up). */
  async sweep(): Promise<void> {
    const now = this.#kind === "sqlite" ? sql`${Date.now()}` : sql`now()`;
    await sql`delete from ${sql.table(PRESENCE_TABLE)} where process <> ${this.#process}
      and process not in (select id from ${sql.table(this.#holds)} where expires > ${now})`
      .execute(this.#db)
      .catch(() => {}); // the next sweep tries again
  }

  /** Resolves when every write started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Resolves once every departure's grace period has passed and every write has finished (tests). */
  async drain(): Promise<void> {
    while (this.#leaving.size > 0 || this.#pending.size > 0) {
      await this.idle();
      if (this.#leaving.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** A clean shutdown: this process's rows go at once. */
  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const timer of this.#leaving.values()) clearTimeout(timer);
    this.#leaving.clear();
    await this.idle();
    await this.#db
      .deleteFrom(PRESENCE_TABLE)
      .where("process", "=", this.#process)
      .execute()
      .catch(() => {});
  }
}
