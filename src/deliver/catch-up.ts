// Catch-ups: planning again the facts that were planned while a render ran (hub.ts, step 2). A render registers its
// reads after the planner has moved on; the facts (render offset, position] were matched against the reads the page
// (or frame) had before, so they are read again from the ledger and matched against the new ones.
import type { Fact, Ledger } from "../ledger/types.ts";
import { affects } from "../plan/planner.ts";
import type { GroupFrame, PageGroup } from "../register/registry.ts";

/** What catch-ups need of the hub. */
export interface CatchUpHost {
  readonly ledger: Ledger;
  /** True once the hub is closing: no catch-up starts or reads on. */
  isClosed(): boolean;
  markPageDirty(group: PageGroup): void;
  /** Frames a catch-up found affected (their flag is set). */
  dirtied(frames: readonly GroupFrame[]): void;
  scheduleReplay(group: PageGroup): void;
  checkIdle(): void;
}

export class CatchUps {
  readonly #host: CatchUpHost;
  /** The catch-ups running; settling waits for them. */
  readonly running = new Set<Promise<void>>();

  constructor(host: CatchUpHost) {
    this.#host = host;
  }

  /** A page render registered at `from`: any fact in (from, to] affecting its reads makes the page replay. */
  page(group: PageGroup, from: number, to: number): void {
    const renderOffset = group.renderOffset;
    const current = () => !group.dirty && group.renderOffset === renderOffset;
    this.#run(group, from, to, current, (fact) => {
      if (!affects(group.deps, fact)) return false;
      this.#host.markPageDirty(group);
      return true;
    });
  }

  /** Frames rendered from `from`: each fact in (from, to] marks the frames whose new reads it affects. */
  frames(group: PageGroup, frames: readonly GroupFrame[], from: number, to: number): void {
    this.#run(
      group,
      from,
      to,
      () => true,
      (fact) => {
        const hit = frames.filter((f) => !f.dirty && !f.removed && affects(f.deps, fact));
        for (const f of hit) f.dirty = true;
        this.#host.dirtied(hit);
        return false;
      },
    );
  }

  /**
   * Reads the facts (from, to] and visits each until `visit` says stop or `current` turns false. Counted as running
   * until it ends; facts it cannot read (pruned, unreadable) make the page replay, so none is ever missed.
   */
  #run(group: PageGroup, from: number, to: number, current: () => boolean, visit: (fact: Fact) => boolean): void {
    const host = this.#host;
    if (host.isClosed()) return;
    const scan = async () => {
      let after = from;
      while (after < to && current() && !host.isClosed()) {
        const facts = await host.ledger.read(after, { incarnation: host.ledger.incarnation });
        if (facts.length === 0) return;
        for (const fact of facts) if (fact.offset > to || visit(fact)) return;
        after = (facts[facts.length - 1] as Fact).offset;
      }
    };
    const tracked: Promise<void> = scan()
      .catch(() => host.markPageDirty(group))
      .finally(() => {
        this.running.delete(tracked);
        host.scheduleReplay(group);
        host.checkIdle();
      });
    this.running.add(tracked);
  }
}
