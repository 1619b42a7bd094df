// The change ledger on PostgreSQL: one generic trigger function stages facts; a sequencer assigns offsets.
//
// Ordering argument. Writers insert facts with a staging id from a sequence and a NULL offset; sequence ids are
// not commit order (a transaction can take a lower id and commit later). One sequencer at a time (the holder of
// an advisory lock, and in any case serialized by the row lock on the meta `head` row) repeatedly takes the
// *visible* unsequenced facts in staging-id order and numbers them head+1, head+2, … in one transaction, which
// also advances head. Visible means committed, so a fact gets an offset only if its write committed, and
// readers see an offset only once the numbering transaction committed: offsets are gapless and never change.
// A transaction still open when a batch is taken is simply numbered in a later batch, so an idle transaction
// stalls nobody. Per-row order: a later writer of a row blocks on the row lock until the earlier writer commits,
// so its trigger (and its staging id) comes after that commit; any snapshot that sees the later fact's commit
// also sees the earlier commit. Hence the earlier fact is numbered in an earlier batch or earlier in the same
// batch (lower staging id): for one row, offsets follow write order.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { LEDGER, LEDGER_TUNING } from "../constants.ts";
import { LedgerNotInstalledError, SchemaDriftError } from "../errors.ts";
import { checkPosition, followFacts, type Position, quoteIdent, quoteLiteral, readLimit, Waker } from "./core.ts";
import { decodePgImage, type PgColumnCodec, pgCodecFor } from "./decode.ts";
import type {
  Fact,
  FollowOptions,
  InstallReport,
  Ledger,
  LedgerOptions,
  Operation,
  PruneOptions,
  ReadOptions,
  Row,
} from "./types.ts";

const INSERT_TRIGGER = `${LEDGER.triggerPrefix}insert`;
const UPDATE_TRIGGER = `${LEDGER.triggerPrefix}update`;
const DELETE_TRIGGER = `${LEDGER.triggerPrefix}delete`;
const CAPTURE_TRIGGERS = [INSERT_TRIGGER, UPDATE_TRIGGER, DELETE_TRIGGER];
const GUARD_FUNCTION = "upkeep_guard_facts";
/** Serializes concurrent installs and uninstalls. */
const INSTALL_LOCK_KEY = LEDGER.pgSequencerLockKey + 1;
/** A process that is not the sequencer tries to become it this often (ticks of the poll interval). */
const LEADER_ATTEMPT_TICKS = 10;

interface Names {
  schema: string;
  facts: string;
  meta: string;
  capture: string;
  guard: string;
}

function names(schema: string): Names {
  const s = quoteIdent(schema);
  return {
    schema,
    facts: `${s}.${quoteIdent(LEDGER.factsTable)}`,
    meta: `${s}.${quoteIdent(LEDGER.metaTable)}`,
    capture: `${s}.${quoteIdent(LEDGER.pgFunction)}`,
    guard: `${s}.${quoteIdent(GUARD_FUNCTION)}`,
  };
}

interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

async function currentSchema(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ schema: string }>("SELECT current_schema() AS schema");
  return rows[0]?.schema as string;
}

interface TableInfo {
  name: string;
  key: string[];
}

async function applicationTables(db: Queryable, schema: string): Promise<TableInfo[]> {
  const { rows } = await db.query<{ name: string; key: string[] | null }>(
    `SELECT c.relname AS name,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS key
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition AND c.relname NOT IN ($2, $3)
     ORDER BY c.relname`,
    [schema, LEDGER.factsTable, LEDGER.metaTable],
  );
  return rows.map((r) => ({ name: r.name, key: r.key ?? [] }));
}

/** Capture triggers present in the schema: table → trigger name → arguments (the key columns). */
async function captureTriggers(db: Queryable, schema: string): Promise<Map<string, Map<string, string[]>>> {
  const { rows } = await db.query<{ table: string; name: string; args: Buffer }>(
    `SELECT c.relname AS table, t.tgname AS name, t.tgargs AS args
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND t.tgname = ANY($2) AND NOT t.tgisinternal`,
    [schema, CAPTURE_TRIGGERS],
  );
  const out = new Map<string, Map<string, string[]>>();
  for (const r of rows) {
    const args = r.args.toString("utf8").split("\0").slice(0, -1);
    if (!out.has(r.table)) out.set(r.table, new Map());
    out.get(r.table)?.set(r.name, args);
  }
  return out;
}

function captureFunctionSql(n: Names): string {
  // Inserts and deletes are captured per statement from transition tables (one INSERT … SELECT per statement);
  // updates per row, so the old and new images stay paired and no-op updates are skipped by the trigger's WHEN.
  // The key is not built here: the primary-key columns (trigger arguments) are stored and the key is taken from
  // the image when the fact is read, which keeps the per-row cost to the two to_jsonb calls and one insert.
  // SECURITY DEFINER: any role that may write an application table may record its fact, so a missing grant on
  // the ledger's tables can never make a user's write fail. No exception block: it would cost a subtransaction
  // per call.
  return `CREATE OR REPLACE FUNCTION ${n.capture}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF TG_LEVEL = 'ROW' THEN
    INSERT INTO ${n.facts} (tbl, op, key_columns, old, new, txid)
    VALUES (TG_TABLE_NAME, 'update', TG_ARGV, to_jsonb(OLD), to_jsonb(NEW), pg_current_xact_id()::text);
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO ${n.facts} (tbl, op, key_columns, new, txid)
    SELECT TG_TABLE_NAME, 'insert', TG_ARGV, to_jsonb(upkeep_new.*), pg_current_xact_id()::text FROM upkeep_new;
  ELSE
    INSERT INTO ${n.facts} (tbl, op, key_columns, old, txid)
    SELECT TG_TABLE_NAME, 'delete', TG_ARGV, to_jsonb(upkeep_old.*), pg_current_xact_id()::text FROM upkeep_old;
  END IF;
  RETURN NULL;
END
$fn$`;
}

function guardFunctionSql(n: Names): string {
  // Deleting or truncating facts other than through prune() (a truncated log) starts a new incarnation.
  return `CREATE OR REPLACE FUNCTION ${n.guard}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF coalesce(current_setting('upkeep.pruning', true), '') <> 'on' THEN
    UPDATE ${n.meta} SET value = md5(random()::text || clock_timestamp()::text) WHERE key = 'incarnation';
  END IF;
  RETURN NULL;
END
$fn$`;
}

async function withClient<T>(url: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function inTransaction<T>(client: pg.Client, body: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await body();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

async function isInstalled(db: Queryable, schema: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    `${quoteIdent(schema)}.${quoteIdent(LEDGER.metaTable)}`,
  ]);
  return rows[0]?.ok === true;
}

export async function installPostgres(url: string, exclude: string[] = []): Promise<InstallReport> {
  return withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      const schema = await currentSchema(client);
      const n = names(schema);
      const created = !(await isInstalled(client, schema));
      await client.query(`CREATE TABLE IF NOT EXISTS ${n.meta} (key text PRIMARY KEY, value text NOT NULL)`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${n.facts} (
        staging_id bigserial PRIMARY KEY,
        ledger_offset bigint,
        tbl text NOT NULL,
        op text NOT NULL,
        key_columns text[],
        old jsonb,
        new jsonb,
        txid text,
        committed_at timestamptz)`);
      await client.query(
        `CREATE UNIQUE INDEX IF NOT EXISTS upkeep_facts_offset ON ${n.facts} (ledger_offset) WHERE ledger_offset IS NOT NULL`,
      );
      // The sequencer's poll reads this partial index: it holds only the few facts waiting for an offset.
      await client.query(
        `CREATE INDEX IF NOT EXISTS upkeep_facts_unsequenced ON ${n.facts} (staging_id) WHERE ledger_offset IS NULL`,
      );
      await client.query(
        `INSERT INTO ${n.meta} (key, value) VALUES ('incarnation', $1), ('head', '0'), ('horizon', '0')
         ON CONFLICT (key) DO NOTHING`,
        [randomBytes(16).toString("hex")],
      );
      await client.query(
        `INSERT INTO ${n.meta} (key, value) VALUES ('exclude', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [JSON.stringify([...exclude].sort())],
      );
      await client.query(guardFunctionSql(n));
      await client.query(`DROP TRIGGER IF EXISTS upkeep_guard_delete ON ${n.facts}`);
      await client.query(`DROP TRIGGER IF EXISTS upkeep_guard_truncate ON ${n.facts}`);
      await client.query(
        `CREATE TRIGGER upkeep_guard_delete AFTER DELETE ON ${n.facts} FOR EACH STATEMENT EXECUTE FUNCTION ${n.guard}()`,
      );
      await client.query(
        `CREATE TRIGGER upkeep_guard_truncate AFTER TRUNCATE ON ${n.facts} FOR EACH STATEMENT EXECUTE FUNCTION ${n.guard}()`,
      );
      await client.query(captureFunctionSql(n));
      for (const [table] of await captureTriggers(client, schema)) {
        const t = `${quoteIdent(schema)}.${quoteIdent(table)}`;
        for (const name of CAPTURE_TRIGGERS) await client.query(`DROP TRIGGER IF EXISTS ${name} ON ${t}`);
      }
      const tables = await applicationTables(client, schema);
      const captured = tables.filter((t) => !exclude.includes(t.name));
      for (const table of captured) {
        const t = `${quoteIdent(schema)}.${quoteIdent(table.name)}`;
        const args = table.key.map(quoteLiteral).join(", ");
        await client.query(
          `CREATE TRIGGER ${INSERT_TRIGGER} AFTER INSERT ON ${t} REFERENCING NEW TABLE AS upkeep_new
           FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
        );
        await client.query(
          `CREATE TRIGGER ${DELETE_TRIGGER} AFTER DELETE ON ${t} REFERENCING OLD TABLE AS upkeep_old
           FOR EACH STATEMENT EXECUTE FUNCTION ${n.capture}(${args})`,
        );
        // *<> compares the rows' binary images: works for every column type (json has no equality operator)
        // and skips no-op updates.
        await client.query(
          `CREATE TRIGGER ${UPDATE_TRIGGER} AFTER UPDATE ON ${t} FOR EACH ROW WHEN (OLD.* *<> NEW.*)
           EXECUTE FUNCTION ${n.capture}(${args})`,
        );
      }
      const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'incarnation'`);
      return {
        kind: "postgres" as const,
        tables: captured.map((t) => t.name),
        keyless: captured.filter((t) => t.key.length === 0).map((t) => t.name),
        excluded: tables.filter((t) => exclude.includes(t.name)).map((t) => t.name),
        incarnation: rows[0]?.value as string,
        created,
      };
    }),
  );
}

export async function uninstallPostgres(url: string): Promise<void> {
  await withClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query("SET LOCAL client_min_messages = warning");
      await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
      const n = names(await currentSchema(client));
      // CASCADE drops exactly the capture triggers, which depend on the function.
      await client.query(`DROP FUNCTION IF EXISTS ${n.capture}() CASCADE`);
      await client.query(`DROP TABLE IF EXISTS ${n.facts}`);
      await client.query(`DROP TABLE IF EXISTS ${n.meta}`);
      await client.query(`DROP FUNCTION IF EXISTS ${n.guard}()`);
    }),
  );
}

async function drift(db: Queryable, schema: string, n: Names): Promise<{ tables: string[]; detail: string[] }> {
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'exclude'`);
  const exclude = JSON.parse(rows[0]?.value ?? "[]") as string[];
  const triggers = await captureTriggers(db, schema);
  const tables: string[] = [];
  const detail: string[] = [];
  for (const table of await applicationTables(db, schema)) {
    if (exclude.includes(table.name)) continue;
    const present = triggers.get(table.name);
    if (!CAPTURE_TRIGGERS.every((name) => present?.has(name))) {
      tables.push(table.name);
      detail.push(`${table.name} has no capture triggers (added after install?)`);
    } else if ([...(present?.values() ?? [])].some((args) => args.join("\0") !== table.key.join("\0"))) {
      tables.push(table.name);
      detail.push(`${table.name}'s primary key changed after install`);
    }
  }
  return { tables, detail };
}

export async function openPostgresLedger(database: string, url: string, options: LedgerOptions): Promise<Ledger> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  try {
    const schema = await currentSchema(pool);
    if (!(await isInstalled(pool, schema))) throw new LedgerNotInstalledError(database);
    const n = names(schema);
    const found = await drift(pool, schema, n);
    if (found.tables.length > 0) throw new SchemaDriftError(database, found.tables, found.detail.join("; "));
    const { rows } = await pool.query<{ value: string }>(`SELECT value FROM ${n.meta} WHERE key = 'incarnation'`);
    const ledger = new PostgresLedger(database, url, pool, n, rows[0]?.value as string, options);
    await ledger.start();
    return ledger;
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
}

interface FactRow {
  incarnation: string;
  head: string;
  horizon: string;
  ledger_offset: string | null;
  tbl: string;
  op: Operation;
  key_columns: string[] | null;
  old: string | null;
  new: string | null;
  txid: string;
  committed_at: Date;
}

class PostgresLedger implements Ledger {
  readonly kind = "postgres" as const;
  readonly database: string;
  readonly incarnation: string;
  readonly #url: string;
  readonly #pool: pg.Pool;
  readonly #n: Names;
  readonly #waker = new Waker();
  readonly #pollIntervalMs: number;
  #codecs = new Map<string, Map<string, PgColumnCodec>>();
  #timer: NodeJS.Timeout | undefined;
  #listener: pg.Client | undefined;
  #leader: pg.Client | undefined;
  #isLeader = false;
  #ticks = 0;
  #ticking = false;
  #sequencing: Promise<void> | undefined;
  #sequenceAgain = false;
  #lastHead = -1;
  #closed = false;

  constructor(database: string, url: string, pool: pg.Pool, n: Names, incarnation: string, options: LedgerOptions) {
    this.database = database;
    this.incarnation = incarnation;
    this.#url = url;
    this.#pool = pool;
    this.#n = n;
    this.#pollIntervalMs = options.pollIntervalMs ?? LEDGER_TUNING.pollIntervalMs;
  }

  get isSequencer(): boolean {
    return this.#isLeader;
  }

  async start(): Promise<void> {
    await this.#loadCodecs();
    const listener = new pg.Client({ connectionString: this.#url });
    listener.on("error", () => {
      if (this.#listener === listener) this.#listener = undefined;
    });
    listener.on("notification", () => this.#waker.bump());
    await listener.connect();
    await listener.query(`LISTEN ${LEDGER.pgNotifyChannel}`);
    this.#listener = listener;
    await this.#tryLead();
    this.#timer = setInterval(() => void this.#tick(), this.#pollIntervalMs);
    this.#timer.unref();
  }

  async #loadCodecs(): Promise<void> {
    const { rows } = await this.#pool.query<{ table: string; column: string; type: string }>(
      `SELECT c.relname AS table, a.attname AS column, t.typname AS type
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace ns ON ns.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
        WHERE ns.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum`,
      [this.#n.schema],
    );
    const codecs = new Map<string, Map<string, PgColumnCodec>>();
    for (const r of rows) {
      if (!codecs.has(r.table)) codecs.set(r.table, new Map());
      codecs.get(r.table)?.set(r.column, pgCodecFor(r.type));
    }
    this.#codecs = codecs;
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#closed) return;
    this.#ticking = true;
    try {
      this.#ticks++;
      if (this.#isLeader) await this.#sequence();
      else if (this.#ticks % LEADER_ATTEMPT_TICKS === 0) await this.#tryLead();
      // Followers are woken by NOTIFY; polling head as well covers a lost listener connection.
      if (!this.#isLeader && this.#waker.waiting) {
        const head = await this.head();
        if (head !== this.#lastHead) {
          this.#lastHead = head;
          this.#waker.bump();
        }
      }
    } catch {
      // A failed poll is retried on the next tick; a lost leader connection gives up leadership.
    } finally {
      this.#ticking = false;
    }
  }

  async #tryLead(): Promise<void> {
    if (this.#closed || this.#isLeader) return;
    try {
      if (!this.#leader) {
        const client = new pg.Client({ connectionString: this.#url });
        client.on("error", () => {
          if (this.#leader === client) {
            this.#leader = undefined;
            this.#isLeader = false;
          }
          client.end().catch(() => {});
        });
        await client.connect();
        this.#leader = client;
      }
      const { rows } = await this.#leader.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
        LEDGER.pgSequencerLockKey,
      ]);
      this.#isLeader = rows[0]?.ok === true;
      if (this.#isLeader) await this.#sequence();
    } catch {
      this.#isLeader = false;
      const client = this.#leader;
      this.#leader = undefined;
      await client?.end().catch(() => {});
    }
  }

  /** Runs sequencing rounds until nothing visible is waiting; concurrent calls join the running one. */
  #sequence(check = true): Promise<void> {
    if (this.#sequencing) {
      this.#sequenceAgain = true;
      return this.#sequencing;
    }
    this.#sequencing = (async () => {
      try {
        do {
          this.#sequenceAgain = false;
          while (this.#isLeader && this.#leader && !this.#closed) {
            const count = await this.#sequenceBatch(this.#leader, check);
            check = true;
            if (count > 0) this.#waker.bump();
            if (count < LEDGER_TUNING.sequenceBatch) break;
          }
        } while (this.#sequenceAgain && !this.#closed);
      } finally {
        this.#sequencing = undefined;
      }
    })();
    return this.#sequencing;
  }

  async #sequenceBatch(client: pg.Client, check: boolean): Promise<number> {
    const n = this.#n;
    if (check) {
      // The cheap poll: the partial index holds only facts waiting for an offset.
      const pending = await client.query(`SELECT 1 FROM ${n.facts} WHERE ledger_offset IS NULL LIMIT 1`);
      if (pending.rowCount === 0) return 0;
    }
    // One round trip, one transaction (a multi-statement simple query is one implicit transaction). The first
    // statement takes the head row lock; the second starts after it, so its snapshot sees the latest head, and it
    // decides the batch: only facts of committed transactions are visible to it. Head and the NOTIFY to followers
    // in other processes are updated in the same transaction.
    const results = (await client.query(
      `SELECT value FROM ${n.meta} WHERE key = 'head' FOR UPDATE;
       WITH h AS (SELECT value::bigint AS head FROM ${n.meta} WHERE key = 'head'),
            b AS (SELECT staging_id, row_number() OVER (ORDER BY staging_id) AS n
                    FROM (SELECT staging_id FROM ${n.facts} WHERE ledger_offset IS NULL
                           ORDER BY staging_id LIMIT ${LEDGER_TUNING.sequenceBatch}) s),
            u AS (UPDATE ${n.facts} f SET ledger_offset = h.head + b.n, committed_at = now()
                    FROM b, h WHERE f.staging_id = b.staging_id RETURNING f.ledger_offset)
       UPDATE ${n.meta} SET value = (SELECT max(ledger_offset) FROM u)::text
        WHERE key = 'head' AND EXISTS (SELECT 1 FROM u)
        RETURNING value, (SELECT count(*) FROM u) AS count, pg_notify(${quoteLiteral(LEDGER.pgNotifyChannel)}, value)`,
    )) as unknown as pg.QueryResult<{ count: string }>[];
    return Number(results[1]?.rows[0]?.count ?? 0);
  }

  async head(): Promise<number> {
    const { rows } = await this.#pool.query<{ value: string }>(`SELECT value FROM ${this.#n.meta} WHERE key = 'head'`);
    return Number(rows[0]?.value ?? 0);
  }

  async horizon(): Promise<number> {
    const { rows } = await this.#pool.query<{ value: string }>(
      `SELECT value FROM ${this.#n.meta} WHERE key = 'horizon'`,
    );
    return Number(rows[0]?.value ?? 0);
  }

  async sync(): Promise<number> {
    if (!this.#isLeader) await this.#tryLead();
    if (this.#isLeader) {
      await this.#sequence();
      return this.head();
    }
    // Another process sequences: wait until every fact visible now has an offset.
    const { rows } = await this.#pool.query<{ max: string | null }>(
      `SELECT max(staging_id) AS max FROM ${this.#n.facts} WHERE ledger_offset IS NULL`,
    );
    const max = rows[0]?.max;
    while (max !== null && max !== undefined && !this.#closed) {
      const left = await this.#pool.query(
        `SELECT 1 FROM ${this.#n.facts} WHERE ledger_offset IS NULL AND staging_id <= $1 LIMIT 1`,
        [max],
      );
      if (left.rowCount === 0) break;
      await new Promise((resolve) => setTimeout(resolve, this.#pollIntervalMs));
    }
    return this.head();
  }

  async read(after: number, options?: ReadOptions): Promise<Fact[]> {
    const n = this.#n;
    // One statement, one snapshot: the position checks and the facts agree.
    const { rows } = await this.#pool.query<FactRow>(
      `SELECT m.incarnation, m.head, m.horizon, f.ledger_offset, f.tbl, f.op, f.key_columns,
              f.old::text AS old, f.new::text AS new, f.txid, f.committed_at
         FROM (SELECT max(value) FILTER (WHERE key = 'incarnation') AS incarnation,
                      max(value) FILTER (WHERE key = 'head') AS head,
                      max(value) FILTER (WHERE key = 'horizon') AS horizon
                 FROM ${n.meta}) m
         LEFT JOIN LATERAL (SELECT * FROM ${n.facts} WHERE ledger_offset > $1 ORDER BY ledger_offset LIMIT $2) f
           ON true`,
      [after, readLimit(options)],
    );
    const first = rows[0] as FactRow;
    const position: Position = {
      incarnation: first.incarnation,
      head: Number(first.head),
      horizon: Number(first.horizon),
    };
    checkPosition(after, position, this.incarnation, options);
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
    return facts.map((r) => this.#toFact(r, position.incarnation));
  }

  #unknownColumns(r: FactRow): boolean {
    const codecs = this.#codecs.get(r.tbl);
    if (!codecs) return true;
    const image = r.new ?? r.old;
    if (!image) return false;
    // Cheap check: a column count mismatch means a column was added since the codecs were loaded.
    return Object.keys(JSON.parse(image)).length !== codecs.size;
  }

  #toFact(r: FactRow, incarnation: string): Fact {
    // jsonb orders object keys by length; images are put back in column order, keys are in key order.
    const codecs = this.#codecs.get(r.tbl);
    const old = reorder(decodePgImage(r.old, codecs), codecs?.keys());
    const now = reorder(decodePgImage(r.new, codecs), codecs?.keys());
    const image = (now ?? old) as Row;
    const keyColumns = r.key_columns ?? [];
    const key: Row | null = keyColumns.length > 0 ? {} : null;
    for (const column of keyColumns) (key as Row)[column] = image[column];
    return {
      offset: Number(r.ledger_offset),
      incarnation,
      table: r.tbl,
      op: r.op,
      key: key ?? ((now ?? old) as Row),
      keyless: key === null,
      old,
      new: now,
      txid: r.txid,
      committedAt: r.committed_at.toISOString(),
    };
  }

  follow(after: number, options: FollowOptions = {}): AsyncIterable<Fact[]> {
    return followFacts(this, this.#waker, () => this.#closed, after, options);
  }

  poke(): void {
    // A commit through Upkeep's own connection: sequence it now when this process is the sequencer (which then
    // wakes followers); otherwise the sequencer's poll picks it up.
    if (this.#isLeader && !this.#closed) this.#sequence(false).catch(() => {});
  }

  async prune(options: PruneOptions): Promise<{ pruned: number; horizon: number }> {
    const n = this.#n;
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      try {
        await client.query("SELECT set_config('upkeep.pruning', 'on', true)");
        const { rows } = await client.query<{ key: string; value: string }>(
          `SELECT key, value FROM ${n.meta} WHERE key IN ('head', 'horizon') FOR UPDATE`,
        );
        const values = Object.fromEntries(rows.map((r) => [r.key, Number(r.value)]));
        const head = values.head ?? 0;
        const horizon = values.horizon ?? 0;
        const recent = await client.query<{ offset: string }>(
          `SELECT ledger_offset AS offset FROM ${n.facts}
            WHERE ledger_offset IS NOT NULL AND committed_at >= now() - make_interval(secs => $1::float8 / 1000)
            ORDER BY ledger_offset LIMIT 1`,
          [options.olderThanMs],
        );
        const firstRecent = recent.rows[0] ? Number(recent.rows[0].offset) : undefined;
        // Pruning removes a prefix of offsets: everything up to the first fact that must be kept.
        let upTo = Math.min(head, options.atOrBelow ?? head, firstRecent === undefined ? head : firstRecent - 1);
        upTo = Math.max(upTo, horizon);
        const deleted = await client.query(`DELETE FROM ${n.facts} WHERE ledger_offset <= $1`, [upTo]);
        await client.query(`UPDATE ${n.meta} SET value = $1 WHERE key = 'horizon'`, [String(upTo)]);
        await client.query("COMMIT");
        return { pruned: deleted.rowCount ?? 0, horizon: upTo };
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#waker.bump();
    await this.#sequencing?.catch(() => {});
    const leader = this.#leader;
    this.#leader = undefined;
    this.#isLeader = false;
    await Promise.all([
      leader?.end().catch(() => {}), // ending the session releases the sequencer lock
      this.#listener?.end().catch(() => {}),
      this.#pool.end().catch(() => {}),
    ]);
  }
}

function reorder(row: Row | null, order: Iterable<string> | undefined): Row | null {
  if (!row || !order) return row;
  const out: Row = {};
  for (const column of order) if (column in row) out[column] = row[column];
  for (const column of Object.keys(row)) if (!(column in out)) out[column] = row[column];
  return out;
}
