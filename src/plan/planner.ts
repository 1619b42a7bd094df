// Planning: which frames of which pages a batch of facts can affect.
//
// A fact at offset n affects a frame only if (a) the reverse index names the frame as a candidate, (b) matching
// the fact's old and new row images against one of the frame's own query dependencies says "affected", and (c) n
// is after the frame's render offset — a render whose reads started after the fact committed already shows it.

import type { QueryDependency } from "../analysis/types.ts";
import type { Fact } from "../ledger/types.ts";
import { matchFact } from "./match.ts";

export interface PlanStats<P extends Plannable = Plannable> {
  facts: number;
  /** Frames newly marked dirty by this batch. */
  dirtied: P[];
}

/** What planning needs of a frame (the registry's group frames satisfy it). */
export interface Plannable {
  dirty: boolean;
  renderOffset: number;
  deps: QueryDependency[];
}

/** Mark every frame a fact of the batch can affect as dirty. */
export function planBatch<P extends Plannable>(
  registry: { candidates(fact: Fact): Iterable<P> },
  facts: readonly Fact[],
): PlanStats<P> {
  const dirtied: P[] = [];
  for (const fact of facts) {
    for (const frame of registry.candidates(fact)) {
      if (frame.dirty || fact.offset <= frame.renderOffset) continue;
      if (affects(frame.deps, fact)) {
        frame.dirty = true;
        dirtied.push(frame);
      }
    }
  }
  return { facts: facts.length, dirtied };
}

export function affects(deps: readonly QueryDependency[], fact: Fact): boolean {
  for (const dep of deps) if (matchFact(dep, fact).affected) return true;
  return false;
}
