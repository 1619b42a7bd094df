// What the oracle needs of an app under test, so that one harness runs every app: its tables and seed, the pages a
// cell's sequences open, the writes a sequence makes (generated from the state they will run on, as SQL for another
// connection or a shell, and through the app's own Kysely for its write route), and the text only one viewer's pages
// may show (isolation). Two apps: the help desk written for the oracle (desk.ts, on every adapter) and the demo's own
// Hono app with its Inertia SPA (demo.ts).
import type { Kysely } from "kysely";
import type { RawConnection } from "../../../demo/schema.ts";
import type { PageSpec } from "../clients.ts";
import type { Random } from "../generate.ts";
import type { Rendering } from "../stack.ts";

export type Dialect = "sqlite" | "postgres";

/** Who makes a step's writes: the app's own POST route, another connection of the test process, or a shell. */
export type Via = "post" | "raw" | "shell";

/** One write, described as data: an app's own union of kinds. */
export interface AnyOp {
  kind: string;
}

/** One step: a single write, or several in one transaction (rolled back at the end when `rollback`). */
export interface Step<O extends AnyOp = AnyOp> {
  via: Via;
  ops: O[];
  transaction: boolean;
  rollback: boolean;
  /** Made at the same time as the steps and page opens around it that carry the same burst number. */
  burst?: number;
  /** The database refused it (a constraint another step of its burst broke): nothing was committed. */
  refused?: true;
}

export interface AppKit {
  readonly name: string;
  createSchema(raw: RawConnection): Promise<void>;
  /** Every table back to the seed (identities restarting after it), with no page open. */
  resetToSeed(raw: RawConnection): Promise<void>;
  /** The pages a cell of this rendering may open. */
  pool(rendering: Rendering): PageSpec[];
  /** A generator of one sequence's steps (it may keep state between steps, such as ids it handed out). */
  sequence(): { next(raw: RawConnection, r: Random, vias: readonly Via[]): Promise<Step> };
  /** The op as SQL statements (literals inlined), for another connection or a database shell. */
  opSql(dialect: Dialect, op: AnyOp): string;
  /** The op through the app's captured Kysely (what its write route runs). */
  runKysely(db: Kysely<any>, dialect: Dialect, op: AnyOp): Promise<void>;
  /** Text a page of `viewer` (null: a guest) must never receive: what only other viewers' pages show. */
  foreign(viewer: string | null): string[];
}

/** The step as one SQL script (BEGIN … COMMIT or ROLLBACK around a transaction), for a database shell. */
export function stepScript(kit: AppKit, dialect: Dialect, step: Step): string {
  const statements = step.ops.map((op) => `${kit.opSql(dialect, op)};`);
  if (!step.transaction) return statements.join("\n");
  return ["begin;", ...statements, step.rollback ? "rollback;" : "commit;"].join("\n");
}

/** Thrown inside a transaction to roll it back after its writes ran. */
export class Rollback extends Error {}

/** A step through the app's Kysely: one op, or a transaction of several (rolled back when asked). */
export async function runStepKysely(kit: AppKit, db: Kysely<any>, dialect: Dialect, step: Step): Promise<void> {
  if (!step.transaction) {
    for (const op of step.ops) await kit.runKysely(db, dialect, op);
    return;
  }
  try {
    await db.transaction().execute(async (trx) => {
      for (const op of step.ops) await kit.runKysely(trx, dialect, op);
      if (step.rollback) throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
}

/** A step on another connection (the test process's own): one op, or a transaction of several. */
export async function runStepRaw(kit: AppKit, raw: RawConnection, dialect: Dialect, step: Step): Promise<void> {
  if (!step.transaction) {
    for (const op of step.ops) await raw.exec(kit.opSql(dialect, op));
    return;
  }
  try {
    await raw.transaction(async () => {
      for (const op of step.ops) await raw.exec(kit.opSql(dialect, op));
      if (step.rollback) throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
}

/** The kit of an app by name (the server child and the oracle agree on it). */
export async function kitOf(app: string): Promise<AppKit> {
  if (app === "demo") return (await import("./demo.ts")).demoKit;
  return (await import("./desk.ts")).deskKit;
}
