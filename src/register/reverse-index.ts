// The reverse index: from a fact to the subjects (subscriptions, frames, …) whose captured reads it may affect,
// without looking at the others.
//
// Each TableRead of a subject's dependencies is filed under its table in one of two places:
// - the equality index, keyed (column, value), when its filter has a top-level conjunct `column = value` or
//   `column IN (values…)` (the *anchor*); the read is filed under every anchor value;
// - the table's scan list otherwise.
// A fact on table T finds T's scan list, plus, for every indexed column, the entries keyed by the fact's old and
// new values of that column.
//
// Soundness: matchFact says "affected" through a read only if an image of the fact can make the read's filter
// TRUE. The anchor is a top-level conjunct, and a conjunction is TRUE only if each conjunct is, so that image
// must make `column = v` possibly TRUE for one of the anchor values v. `equalityKeys` guarantees that two values
// whose equality may be TRUE share a key; a NULL is never equal to anything; an image value we cannot key, or an
// image without that column (the predicate is then undecided), finds every entry of the column. Hence every
// subject matchFact would call affected is a candidate. Row reads by primary key are the case where the anchor
// is a key column: `(table, pk)` lookups are this same index. Captured row keys are not used to skip work: a row
// outside the captured result can move into it. A table-wide fact (TRUNCATE, an unavailable image) names no
// values, so it finds every entry of its table.

import type { MatchResult, MissReason, Predicate, QueryDependency, TableRead } from "../analysis/types.ts";
import type { Fact, Row } from "../ledger/types.ts";
import { equalityKeys, isTableWide, matchFact } from "../plan/match.ts";

type FactLike = Pick<Fact, "table" | "op" | "old" | "new" | "unavailable">;

export interface MatchReport<S> {
  /** Subjects the index returned for the fact. */
  candidates: S[];
  /** Candidates whose dependencies the fact may affect. */
  matched: S[];
  /** Why each matched subject matched. */
  why: Map<S, string>;
  /** Every registered subject that did not match, with the reason. */
  misses: { subject: S; reason: MissReason }[];
  /** `no_matching_subscriber` when no subject matched (in particular when nothing was a candidate). */
  reason?: "no_matching_subscriber";
}

interface Entry<S> {
  subject: S;
}

interface TableIndex<S> {
  scan: Set<Entry<S>>;
  /** column → key → entries */
  eq: Map<string, Map<string, Set<Entry<S>>>>;
}

interface Placement<S> {
  table: string;
  column: string | null;
  keys: string[];
  entry: Entry<S>;
}

export class ReverseIndex<S> {
  readonly #tables = new Map<string, TableIndex<S>>();
  readonly #subjects = new Map<S, { deps: QueryDependency[]; placements: Placement<S>[] }>();

  /** Registers (or replaces) a subject's dependencies. */
  set(subject: S, deps: QueryDependency[]): void {
    this.delete(subject);
    const entry: Entry<S> = { subject };
    const placements: Placement<S>[] = [];
    for (const dep of deps) {
      for (const read of dep.reads) {
        const anchor = anchorOf(read.filter);
        const placement: Placement<S> = anchor
          ? { table: read.table, column: anchor.column, keys: anchor.keys, entry }
          : { table: read.table, column: null, keys: [], entry };
        this.#place(placement);
        placements.push(placement);
      }
    }
    this.#subjects.set(subject, { deps, placements });
  }

  delete(subject: S): boolean {
    const known = this.#subjects.get(subject);
    if (!known) return false;
    for (const p of known.placements) {
      const table = this.#tables.get(p.table);
      if (!table) continue;
      if (p.column === null) table.scan.delete(p.entry);
      else {
        const byKey = table.eq.get(p.column);
        for (const key of p.keys) {
          const set = byKey?.get(key);
          set?.delete(p.entry);
          if (set && set.size === 0) byKey?.delete(key);
        }
        if (byKey && byKey.size === 0) table.eq.delete(p.column);
      }
      if (table.scan.size === 0 && table.eq.size === 0) this.#tables.delete(p.table);
    }
    this.#subjects.delete(subject);
    return true;
  }

  has(subject: S): boolean {
    return this.#subjects.has(subject);
  }

  get size(): number {
    return this.#subjects.size;
  }

  dependencies(subject: S): QueryDependency[] | undefined {
    return this.#subjects.get(subject)?.deps;
  }

  /** Subjects whose reads the fact may affect (a superset of the matched ones; see the soundness argument). */
  candidates(fact: FactLike): Set<S> {
    const out = new Set<S>();
    for (const set of this.candidateSets(fact)) for (const e of set) out.add(e.subject);
    return out;
  }

  /**
   * Calls `visit` for every candidate of the fact, without building a set of them: the entry sets that hold
   * candidates are each visited once, but a subject filed in several of them (several reads of the table) is
   * visited once per set. For callers whose visit is idempotent (the planner).
   */
  forEachCandidate(fact: FactLike, visit: (subject: S) => void): void {
    for (const set of this.candidateSets(fact)) for (const e of set) visit(e.subject);
  }

  /** The distinct entry sets holding the fact's candidates. */
  private candidateSets(fact: FactLike): Set<Set<Entry<S>>> {
    const sets = new Set<Set<Entry<S>>>();
    const table = this.#tables.get(fact.table);
    if (!table) return sets;
    if (table.scan.size > 0) sets.add(table.scan);
    if (isTableWide(fact)) {
      // A TRUNCATE or an unavailable image names no column values: every entry of the table is a candidate.
      for (const byKey of table.eq.values()) for (const set of byKey.values()) sets.add(set);
      return sets;
    }
    const images = [fact.old, fact.new].filter((r): r is Row => r !== null);
    for (const [column, byKey] of table.eq) {
      for (const image of images) {
        const keys = Object.hasOwn(image, column) ? equalityKeys(image[column] ?? null) : undefined;
        if (keys === undefined) {
          for (const set of byKey.values()) sets.add(set);
          continue;
        }
        for (const key of keys) {
          const set = byKey.get(key);
          if (set) sets.add(set);
        }
      }
    }
    return sets;
  }

  /** Candidates the fact affects, with the dependency that matched and why. */
  match(fact: FactLike): { subject: S; dep: QueryDependency; result: MatchResult & { affected: true } }[] {
    const out: { subject: S; dep: QueryDependency; result: MatchResult & { affected: true } }[] = [];
    for (const subject of this.candidates(fact)) {
      const deps = this.#subjects.get(subject)?.deps ?? [];
      for (const dep of deps) {
        const result = matchFact(dep, fact);
        if (result.affected) {
          out.push({ subject, dep, result });
          break;
        }
      }
    }
    return out;
  }

  /** Explains, for every registered subject, whether the fact reaches it and why not (for tests and tooling). */
  explain(fact: FactLike): MatchReport<S> {
    const candidates = this.candidates(fact);
    const matches = this.match(fact);
    const matched = new Set(matches.map((m) => m.subject));
    const why = new Map(matches.map((m) => [m.subject, m.result.why]));
    const misses: { subject: S; reason: MissReason }[] = [];
    for (const [subject, { deps }] of this.#subjects) {
      if (matched.has(subject)) continue;
      misses.push({ subject, reason: missReason(deps, fact) });
    }
    const report: MatchReport<S> = { candidates: [...candidates], matched: [...matched], why, misses };
    if (matched.size === 0) report.reason = "no_matching_subscriber";
    return report;
  }

  #place(p: Placement<S>): void {
    let table = this.#tables.get(p.table);
    if (!table) {
      table = { scan: new Set(), eq: new Map() };
      this.#tables.set(p.table, table);
    }
    if (p.column === null) {
      table.scan.add(p.entry);
      return;
    }
    let byKey = table.eq.get(p.column);
    if (!byKey) {
      byKey = new Map();
      table.eq.set(p.column, byKey);
    }
    for (const key of p.keys) {
      let set = byKey.get(key);
      if (!set) {
        set = new Set();
        byKey.set(key, set);
      }
      set.add(p.entry);
    }
  }
}

/** The most specific reason over all of a subject's dependencies (a dependency reading the table ranks higher). */
function missReason(deps: QueryDependency[], fact: FactLike): MissReason {
  const rank: Record<MissReason, number> = {
    no_matching_subscriber: 0,
    table_not_read: 1,
    columns_not_read: 2,
    predicate_did_not_match: 3,
  };
  let best: MissReason = "table_not_read";
  for (const dep of deps) {
    const r = matchFact(dep, fact);
    if (!r.affected && rank[r.reason] > rank[best]) best = r.reason;
  }
  return best;
}

/** The anchor of a filter: a top-level `column = value` / `column IN (values)` conjunct whose values can all be
 *  keyed; the one with the fewest keys wins. */
export function anchorOf(filter: Predicate): { column: string; keys: string[] } | null {
  const conjuncts: Predicate[] = [];
  const flatten = (p: Predicate) => {
    if (p.kind === "and") for (const i of p.items) flatten(i);
    else conjuncts.push(p);
  };
  flatten(filter);
  let best: { column: string; keys: string[] } | null = null;
  for (const c of conjuncts) {
    let column: string | null = null;
    let values: unknown[] = [];
    if (c.kind === "compare" && c.op === "=") {
      if (c.left.kind === "column" && c.right.kind === "value") {
        column = c.left.column;
        values = [c.right.value];
      } else if (c.right.kind === "column" && c.left.kind === "value") {
        column = c.right.column;
        values = [c.left.value];
      }
    } else if (c.kind === "in" && !c.negated && c.left.kind === "column" && c.values.every((v) => v.kind === "value")) {
      column = c.left.column;
      values = c.values.map((v) => (v as { value: unknown }).value);
    }
    if (column === null) continue;
    const keys = new Set<string>();
    let keyable = true;
    for (const v of values) {
      const k = equalityKeys(v);
      if (k === undefined) {
        keyable = false;
        break;
      }
      for (const key of k) keys.add(key);
    }
    if (!keyable) continue;
    if (!best || keys.size < best.keys.length) best = { column, keys: [...keys] };
  }
  return best;
}

export type { TableRead };
