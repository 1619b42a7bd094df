// Planning: which page groups a batch of facts can affect.
//
// A fact at offset n affects a group only if (a) the reverse index names the group as a candidate, (b) matching
// the fact's old and new row images against one of the group's query dependencies says "affected", and (c) n is
// after the group's render offset — a render whose reads started after the fact committed already shows it.

import type { QueryDependency } from "../analysis/types.ts";
import type { Fact } from "../ledger/types.ts";
import { matchFact } from "./match.ts";

export interface PlanStats {
  facts: number;
  /** Groups newly marked dirty by this batch. */
  dirtied: number;
}

/** What planning needs of page groups (the registry's groups satisfy it). */
export interface Plannable {
  dirty: boolean;
  renderOffset: number;
  deps: QueryDependency[];
}

/** Mark every group a fact of the batch can affect as dirty. */
export function planBatch(
  registry: { candidates(fact: Fact): Iterable<Plannable> },
  facts: readonly Fact[],
): PlanStats {
  let dirtied = 0;
  for (const fact of facts) {
    for (const group of registry.candidates(fact)) {
      if (group.dirty || fact.offset <= group.renderOffset) continue;
      if (affects(group.deps, fact)) {
        group.dirty = true;
        dirtied++;
      }
    }
  }
  return { facts: facts.length, dirtied };
}

export function affects(deps: readonly QueryDependency[], fact: Fact): boolean {
  for (const dep of deps) if (matchFact(dep, fact).affected) return true;
  return false;
}
