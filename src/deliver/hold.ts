// This process's hold on the ledger: pruning (by any process) never cuts below the lowest offset it still needs, for
// as long as it lives. The hold is renewed four times per lease (LEDGER_TUNING.holdLeaseMs), so a process that dies
// stops holding the horizon back within a lease; a clean shutdown releases it at once.
import { LEDGER_TUNING } from "../constants.ts";
import { LedgerMissingError } from "../errors.ts";
import type { Ledger } from "../ledger/types.ts";
import type { PageRegistry } from "../register/registry.ts";

/** The lowest offset a process still needs: the planner's position, or an older subscriber's or group's render. */
export function lowestNeeded(registry: PageRegistry, position: number): number {
  let lowest = position;
  for (const group of registry.groups()) {
    for (const subscriber of group.local.subscribers) lowest = Math.min(lowest, subscriber.offset);
    if (group.local.subscribers.size === 0 && group.renderOffset >= 0) lowest = Math.min(lowest, group.renderOffset);
  }
  return lowest;
}

export class PositionHold {
  readonly #ledger: Ledger;
  readonly #id: string;
  readonly #lowest: () => number;
  readonly #warn: (key: string, message: string) => void;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(ledger: Ledger, id: string, lowest: () => number, warn: (key: string, message: string) => void) {
    this.#ledger = ledger;
    this.#id = id;
    this.#lowest = lowest;
    this.#warn = warn;
  }

  async start(): Promise<void> {
    await this.renew();
    this.#timer = setInterval(() => void this.renew(), LEDGER_TUNING.holdLeaseMs / 4);
    this.#timer.unref();
  }

  /** Records (renews) the hold at the lowest offset the process still needs now. */
  async renew(): Promise<void> {
    if (this.#stopped) return;
    await this.#ledger.holdPosition(this.#id, this.#lowest()).catch((error) => {
      if (error instanceof LedgerMissingError) return; // the ledger logged it, with its fix
      const message = (error as Error).message;
      this.#warn(`hold:${message}`, `upkeep: could not record this process's position in the ledger: ${message}`);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ledger.releasePosition(this.#id).catch(() => {});
  }
}
