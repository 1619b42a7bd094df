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

/**
 * Mark every frame a fact of the batch can affect as dirty. Many frames hold the same read (every viewer's page of
 * a board reads its cards the same way): matching depends only on a read's tables, columns and filters, so each
 * distinct read is matched once per fact.
 */
export function planBatch<P extends Plannable>(
  registry: { candidates(fact: Fact): Iterable<P> },
  facts: readonly Fact[],
): PlanStats<P> {
  const dirtied: P[] = [];
  for (const fact of facts) {
    const matched = new Map<string, boolean>();
    for (const frame of registry.candidates(fact)) {
      if (frame.dirty || fact.offset <= frame.renderOffset) continue;
      let hit = false;
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
      if (hit) {
        frame.dirty = true;
        dirtied.push(frame);
      }
    }
  }
  return { facts: facts.length, dirtied };
}

const readsKeys = new WeakMap<QueryDependency, string>();

/** What matching a fact against a dependency depends on, as a string: its reads (tables, columns, filters). */
export function readsKey(dep: QueryDependency): string {
  let key = readsKeys.get(dep);
  if (key === undefined) {
    // Values are strings, numbers, bigints, booleans, null or bytes, never objects: a tagged object cannot be
    // confused with any value, so two keys are equal only for equal reads.
    key = JSON.stringify(dep.reads, (_, value) =>
      value instanceof Set
        ? { $set: [...value].sort() }
        : typeof value === "bigint"
          ? { $bigint: String(value) }
          : typeof value === "number" && !Number.isFinite(value)
            ? { $number: String(value) }
            : value instanceof Uint8Array
              ? { $bytes: Buffer.from(value).toString("hex") }
              : value,
    );
    readsKeys.set(dep, key);
  }
  return key;
}

export function affects(deps: readonly QueryDependency[], fact: Fact): boolean {
  for (const dep of deps) if (matchFact(dep, fact).affected) return true;
  return false;
}
