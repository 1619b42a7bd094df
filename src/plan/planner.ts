// Planning: which frames of which pages a batch of facts can affect.
//
// A fact at offset n affects a frame only if (a) the reverse index names the frame as a candidate, (b) matching
// the fact's old and new row images against one of the frame's own query dependencies says "affected", and (c) n
// is after the frame's render offset — a render whose reads started after the fact committed already shows it.

import type { QueryDependency } from "../analysis/types.ts";
import { valuesKey } from "../analysis/values.ts";
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
  /** The reads key of all of `deps` (see depsKey), when the registry keeps it. */
  depsKey?: string;
}

/**
 * Mark every frame a fact of the batch can affect as dirty. Many frames hold the same read (every viewer's page of
 * a board reads its cards the same way): matching depends only on a read's tables, columns and filters, so each
 * distinct read is matched once per fact.
 */
export function planBatch<P extends Plannable>(
  registry: { forEachCandidate(fact: Fact, visit: (frame: P) => void): void },
  facts: readonly Fact[],
): PlanStats<P> {
  const dirtied: P[] = [];
  for (const fact of facts) {
    const matched = new Map<string, boolean>();
    const byFrame = new Map<string, boolean>();
    registry.forEachCandidate(fact, (frame) => {
      if (frame.dirty || fact.offset <= frame.renderOffset) return;
      // Frames with the same reads (interned keys: usually the same string) are decided once.
      const whole = frame.depsKey;
      let hit = whole === undefined ? undefined : byFrame.get(whole);
      if (hit === undefined) {
        hit = false;
        for (const dep of frame.deps) {
          const key = readsKey(dep);
          let affected = matched.get(key);
          if (affected === undefined) {
            affected = matchFact(dep, fact).affected;
            matched.set(key, affected);
          }
          if (affected) {
            hit = true;
            break;
          }
        }
        if (whole !== undefined) byFrame.set(whole, hit);
      }
      if (hit) {
        frame.dirty = true;
        dirtied.push(frame);
      }
    });
  }
  return { facts: facts.length, dirtied };
}

const interned = new Map<string, string>();

/** One string object for equal keys: map lookups with the same object skip comparing contents. */
export function intern(key: string): string {
  let same = interned.get(key);
  if (same === undefined) {
    if (interned.size >= 100_000) interned.clear();
    interned.set(key, key);
    same = key;
  }
  return same;
}

/** One string for all of a frame's reads, interned: frames reading the same share the same string. */
export function depsKey(deps: readonly QueryDependency[]): string {
  return intern(deps.map(readsKey).join("\u0000"));
}

const readsKeys = new WeakMap<QueryDependency, string>();

/** What matching a fact against a dependency depends on, as a string: its reads (tables, columns, filters). */
export function readsKey(dep: QueryDependency): string {
  if (dep.readsKey !== undefined) return dep.readsKey;
  let key = readsKeys.get(dep);
  if (key === undefined) {
    key = `reads ${valuesKey(dep.reads)}`;
    readsKeys.set(dep, key);
  }
  return key;
}

export function affects(deps: readonly QueryDependency[], fact: Fact): boolean {
  for (const dep of deps) if (matchFact(dep, fact).affected) return true;
  return false;
}
