// Settling: waiting until every fact committed before the call has been planned and every render it caused has been
// sent (for tests and benchmarks). The hub wakes the waiters whenever it may have become idle.
import { NotSettledError } from "../errors.ts";
import type { Ledger } from "../ledger/types.ts";

export interface SettleHost {
  readonly ledger: Ledger;
  /** Offset of the last fact planned. */
  position(): number;
  /** A render, catch-up or due render is still under way. */
  busy(): boolean;
  /** Whether there is an app to replay pages through. */
  hasApp(): boolean;
}

export class Settling {
  #waiters: Array<() => void> = [];
  readonly #host: SettleHost;

  constructor(host: SettleHost) {
    this.#host = host;
  }

  /** Wakes every waiter when the hub is idle. */
  check(): void {
    if (this.#host.busy()) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async settle(timeoutMs: number): Promise<void> {
    const host = this.#host;
    const deadline = Date.now() + timeoutMs;
    const target = await host.ledger.sync();
    for (;;) {
      if (host.position() >= target && !host.busy()) return;
      if (Date.now() > deadline) {
        const app = host.hasApp();
        const why = app ? "" : "; no app to replay pages through: call upkeep.serve(app) or upkeep.use(app)";
        throw new NotSettledError(
          `not settled after ${timeoutMs} ms (planned ${host.position()} of ${target}${why})`,
          app
            ? "a replay is still running or failing: check the log for replay errors"
            : "call upkeep.serve(app) or upkeep.use(app)",
        );
      }
      host.ledger.poke();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
