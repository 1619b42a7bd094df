// The harness's own routes of the convergence apps (not the library's): a settle point that answers once every fact
// committed before the request — by this process, the test process or a shell — is planned and its renders sent,
// with what each subscriber was last sent; and the write route the sequences' "post" steps use. Framework-free
// handlers: each app's routes file mounts them.
import type { Upkeep } from "../../../src/index.ts";
import { deskKit } from "./desk.ts";
import { type AppKit, type Dialect, runStepKysely, type Step } from "./kit.ts";

export const SETTLE_PATH = "/_harness/settle";
export const WRITE_PATH = "/_harness/write";

/** What the settle point answers: the offset every open subscription was brought to, by subscription id. */
export interface Settled {
  position: number;
  subscribers: Record<string, number>;
  /** What Upkeep did in this server's life (upkeep.stats()). */
  stats: Awaited<ReturnType<Upkeep["stats"]>>;
}

export async function settle(upkeep: Upkeep): Promise<Settled> {
  await upkeep.settle();
  const subscribers: Record<string, number> = {};
  for (const group of upkeep.hub.registry.groups()) {
    for (const subscriber of group.local.subscribers) subscribers[subscriber.id] = subscriber.offset;
  }
  return { position: upkeep.hub.position, subscribers, stats: await upkeep.stats() };
}

/** Runs a step through the app's captured Kysely (its own writes, as a form's POST would make them): the status and
 *  JSON body to answer, with the database's error when it refused the write. */
export async function write(
  upkeep: Upkeep,
  step: Step,
  kit: AppKit = deskKit,
): Promise<{ status: number; body: string }> {
  const dialect: Dialect = upkeep.ledger.kind === "postgres" ? "postgres" : "sqlite";
  try {
    await runStepKysely(kit, upkeep.db(), dialect, step);
    return { status: 200, body: '{"ok":true}' };
  } catch (error) {
    return { status: 500, body: JSON.stringify({ error: String((error as Error)?.message ?? error) }) };
  }
}
