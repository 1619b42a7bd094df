// Explicit identifiers: for what capture cannot see. A render that shows a value from another service or a cache
// declares `depends(db, "Weather:paris")`; whoever changes that value calls `touch(db, "Weather:paris")` (in the
// transaction of its own write, when there is one). Both are ordinary statements on one captured table: `depends` is a
// read by key, `touch` an upsert of the identifier's version, so a touch is a fact like any other — ordered, durable,
// seen by every process — and it reaches exactly the frames (props, resources, fragments, pages) that declared it.
//
// Identifiers never leave the server: a browser subscribes to a page with a token bound to its viewer, not to an
// identifier, so there is nothing to obfuscate, enumerate or authorise beyond the page's own GET.

import { type Kysely, sql } from "kysely";
import { DATA_TUNING, UPKEEP_TABLES } from "../constants.ts";
import { ConfigError } from "../errors.ts";
import { currentFrame, type FrameCapture } from "./context.ts";

export const IDENTIFIERS_TABLE = UPKEEP_TABLES.identifiers;

/** Creates the identifiers table (idempotent). Run it before installing the ledger, which then captures it;
 *  `createUpkeep({ identifiers: true })` does both. */
export async function createIdentifiersTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(IDENTIFIERS_TABLE)
    .ifNotExists()
    .addColumn("identifier", "text", (c) => c.primaryKey())
    .addColumn("version", "integer", (c) => c.notNull())
    .execute();
}

function check(identifiers: readonly string[]): void {
  for (const id of identifiers) {
    if (typeof id !== "string" || id.length === 0 || id.length > 512) {
      throw new ConfigError(
        `An identifier must be a non-empty string of at most 512 characters, got ${JSON.stringify(id)}.`,
        'name what changed, e.g. "Account:42" or "Weather:paris"',
      );
    }
  }
}

/** Marks identifiers changed: every live frame that declared one of them is rendered again. */
export async function touch(db: Kysely<any>, ...identifiers: string[]): Promise<void> {
  check(identifiers);
  if (identifiers.length === 0) return;
  const unique = [...new Set(identifiers)].sort();
  await db
    .insertInto(IDENTIFIERS_TABLE)
    .values(unique.map((identifier) => ({ identifier, version: 1 })))
    .onConflict((oc) =>
      oc.column("identifier").doUpdateSet({ version: sql`${sql.ref(`${IDENTIFIERS_TABLE}.version`)} + 1` }),
    )
    .execute();
}

const declared = new WeakMap<FrameCapture, number>();

/**
 * Declares that what is being rendered depends on identifiers: a `touch` of any of them renders it again. Outside a
 * live render it only reads. A frame may declare at most DATA_TUNING.maxIdentifiersPerFrame (100) identifiers.
 */
export async function depends(db: Kysely<any>, ...identifiers: string[]): Promise<void> {
  check(identifiers);
  if (identifiers.length === 0) return;
  const frame = currentFrame();
  if (frame) {
    const count = (declared.get(frame) ?? 0) + identifiers.length;
    if (count > DATA_TUNING.maxIdentifiersPerFrame) {
      throw new ConfigError(
        `A frame declared ${count} identifiers; at most ${DATA_TUNING.maxIdentifiersPerFrame} are allowed.`,
        'declare one identifier for the collection ("Account:42/users") instead of one per member, or split the render into frames (partial, Collection, props)',
      );
    }
    declared.set(frame, count);
  }
  await db
    .selectFrom(IDENTIFIERS_TABLE)
    .select(["identifier", "version"])
    .where("identifier", "in", identifiers)
    .execute();
}
