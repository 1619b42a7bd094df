// Every failure Upkeep reports is its own class with a stable `code`, the context that caused it and a `hint`
// naming the fix. Codes are part of the public API: tests and users match on them, never on messages.

/** Why PostgreSQL cannot capture from the write-ahead log: the codes `capture_<problem>` of LogicalCaptureError. */
const CAPTURE_PROBLEMS = ["wal_level", "privilege", "slots", "version", "slot_missing"] as const;

/** Why a read cannot be kept live: the codes `refused_<code>` of RefusedBoundaryError. */
const REFUSAL_CODES = [
  "raw_query",
  "opaque_predicate",
  "opaque_source",
  "opaque_join",
  "opaque_order",
  "opaque_selection",
  "unsupported_query",
  "uncaptured_source",
  "opaque_modifier",
  "write_in_render",
  "frame_props",
  "frame_root",
  "collection_key",
] as const;

/** Why a subscription token cannot be honoured: the codes `token_<problem>` of SubscriptionTokenError. */
const TOKEN_PROBLEMS = [
  "malformed",
  "forged",
  "expired",
  "identity_mismatch",
  "incarnation_mismatch",
  "origin_not_allowed",
] as const;

/** The codes of the error classes that take no problem or reason (the others: capture_, refused_ and token_ codes). */
const PLAIN_ERROR_CODES = [
  "config",
  "ledger_not_installed",
  "ledger_missing",
  "schema_drift",
  "incarnation_mismatch",
  "offset_too_old",
  "invalid_offset",
  "not_settled",
  "stream_action",
] as const;

/** Every code an UpkeepError can carry. */
export type ErrorCode =
  | (typeof PLAIN_ERROR_CODES)[number]
  | `capture_${CaptureProblem}`
  | `refused_${RefusalCode}`
  | `token_${TokenProblem}`;

/** Every code an UpkeepError can carry, as a list (docs/codes.md explains each; test/docs/codes.test.ts checks it). */
export const ERROR_CODES: readonly ErrorCode[] = [
  ...PLAIN_ERROR_CODES,
  ...CAPTURE_PROBLEMS.map((problem) => `capture_${problem}` as const),
  ...REFUSAL_CODES.map((code) => `refused_${code}` as const),
  ...TOKEN_PROBLEMS.map((problem) => `token_${problem}` as const),
];

export class UpkeepError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  constructor(code: ErrorCode, message: string, hint: string, options?: ErrorOptions) {
    super(`${message}\n  fix: ${hint}`, options);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
  }
}

/** A configuration value is missing or malformed. */
export class ConfigError extends UpkeepError {
  constructor(message: string, hint: string) {
    super("config", message, hint);
  }
}

/** The ledger's tables are missing from the database. */
export class LedgerNotInstalledError extends UpkeepError {
  constructor(database: string) {
    super(
      "ledger_not_installed",
      `The Upkeep change ledger is not installed in ${database}.`,
      `run \`npx upkeep install --database ${database}\` (or call install()) before opening the ledger`,
    );
  }
}

/** Tables or columns were added after install; their writes would be invisible. */
export class SchemaDriftError extends UpkeepError {
  readonly tables: string[];
  constructor(database: string, tables: string[], detail: string) {
    super(
      "schema_drift",
      `Capture is out of date for ${tables.join(", ")}: ${detail}`,
      `run \`npx upkeep install --database ${database}\` to refresh capture (installing is idempotent)`,
    );
    this.tables = tables;
  }
}

/**
 * The ledger's tables disappeared under a running process (dropped by hand, or `upkeep uninstall`). Changes are
 * not captured until they are back: open pages reload, and pages are served as ordinary, non-live pages. On
 * SQLite, capture triggers left in place insert into the missing table, so writes to captured tables fail
 * (`writesFail`) — the one case where Upkeep's capture can fail a write.
 */
export class LedgerMissingError extends UpkeepError {
  constructor(database: string, detail: string, options: { writesFail?: boolean } = {}) {
    super(
      "ledger_missing",
      `The Upkeep change ledger in ${database} is gone (${detail}): ${
        options.writesFail
          ? "its capture triggers still insert into it, so every write to a captured table fails until it is back"
          : "changes are not captured, so open pages reload and pages are served as ordinary, non-live pages until it is back (writes are not affected)"
      }.`,
      options.writesFail
        ? `run \`npx upkeep install --database ${database}\` to recreate it (a new incarnation: open pages reload), or \`npx upkeep uninstall --database ${database}\` to remove the capture triggers`
        : `run \`npx upkeep install --database ${database}\` to reinstall it (a new incarnation), or, if Upkeep was uninstalled on purpose, remove createUpkeep from the app and restart it`,
    );
  }
}

/** Why PostgreSQL cannot capture from the write-ahead log (logical decoding). */
export type CaptureProblem = (typeof CAPTURE_PROBLEMS)[number];

/**
 * Logical capture was asked for (or is installed) but the server cannot provide it: the server is not configured
 * for logical decoding, the role may not replicate, no replication slot is free, or Upkeep's slot is gone.
 */
export class LogicalCaptureError extends UpkeepError {
  readonly problem: CaptureProblem;
  constructor(problem: CaptureProblem, message: string, hint: string) {
    super(`capture_${problem}`, message, hint);
    this.problem = problem;
  }
}

/** An offset from another incarnation of the ledger (reset, truncated or restored database). */
export class IncarnationMismatchError extends UpkeepError {
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string, detail = "") {
    super(
      "incarnation_mismatch",
      `The offset belongs to ledger incarnation ${expected}, but the ledger is now incarnation ${actual}${detail ? ` (${detail})` : ""}.`,
      "discard the offset and rebuild from a fresh read (a browser reloads the page)",
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/** An offset that is not a non-negative integer. */
export class InvalidOffsetError extends UpkeepError {
  constructor(offset: unknown) {
    super(
      "invalid_offset",
      `An offset must be a non-negative integer, not ${String(offset)}.`,
      "pass 0 or an offset the ledger gave you (a fact's offset, a page's render offset)",
    );
  }
}

/** settle() ran out of time: facts committed before it are not all planned and delivered. */
export class NotSettledError extends UpkeepError {
  constructor(detail: string, hint: string) {
    super("not_settled", `Upkeep did not settle: ${detail}`, hint);
  }
}

/** Reading below the pruned horizon (of every table, or of `table` under its own retention). */
export class OffsetTooOldError extends UpkeepError {
  readonly requested: number;
  readonly oldest: number;
  /** The table whose horizon the offset is below (null: the horizon every table shares). */
  readonly table: string | null;
  constructor(requested: number, oldest: number, table: string | null = null) {
    super(
      "offset_too_old",
      table === null
        ? `Facts after offset ${requested} were pruned; the oldest available offset is ${oldest}.`
        : `Facts of ${table} after offset ${requested} were pruned (its horizon is ${oldest - 1}); the oldest offset available for ${table} is ${oldest}.`,
      table === null
        ? "rebuild from a fresh read (a browser reloads the page), or keep facts longer (createUpkeep({ retentionMs }) or retention.default)"
        : `rebuild from a fresh read (a browser reloads the page), or keep ${table}'s facts longer: createUpkeep({ retention: { tables: { ${JSON.stringify(table)}: { windowMs } } } }), or "forever" for its whole history`,
    );
    this.requested = requested;
    this.oldest = oldest;
    this.table = table;
  }
}

/** Stable reason codes for queries Upkeep cannot analyse structurally. */
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** A read whose dependency cannot be proven: the page cannot be kept live. */
export class RefusedBoundaryError extends UpkeepError {
  readonly reason: RefusalCode;
  readonly sql: string;
  readonly frame: string | undefined;
  constructor(reason: RefusalCode, sql: string, detail: string, rewrite: string, frame?: string) {
    super(`refused_${reason}`, `Upkeep cannot keep this page live (${reason}): ${detail}\n  sql: ${sql}`, rewrite);
    this.reason = reason;
    this.sql = sql;
    this.frame = frame;
  }
}

export type TokenProblem = (typeof TOKEN_PROBLEMS)[number];

/** A subscription token that cannot be honoured. */
export class SubscriptionTokenError extends UpkeepError {
  readonly problem: TokenProblem;
  constructor(problem: TokenProblem, detail: string) {
    const hints: Record<TokenProblem, string> = {
      malformed: "subscribe with the token from the page's live marker, unmodified",
      forged: "tokens are signed with the server's secret; reload the page to get a valid one",
      expired: "reload the page to get a fresh token (tokens expire after tokenTtlMs)",
      identity_mismatch: "a token only subscribes the viewer it was rendered for; reload the page as this viewer",
      incarnation_mismatch: "the database was reset; reload the page",
      origin_not_allowed:
        "subscribe from a page served on one of the origins listed in createUpkeep({ origins }), or add this origin there",
    };
    super(`token_${problem}`, `Subscription refused (${problem}): ${detail}`, hints[problem]);
    this.problem = problem;
  }
}

/** A Turbo Stream message that a browser could not apply (the testing DOM oracle raises it). */
export class StreamActionError extends UpkeepError {
  readonly stream: string;
  constructor(stream: string, detail: string) {
    super(
      "stream_action",
      `Cannot apply Turbo Stream message: ${detail}\n  message: ${stream.slice(0, 500)}`,
      "send <turbo-stream action=… target=…|targets=…><template>…</template></turbo-stream> elements only",
    );
    this.stream = stream;
  }
}
