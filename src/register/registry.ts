// The subscription registry: page groups and their subscribers, indexed so that a fact finds only the groups
// whose reads it can affect.
//
// A *page group* is every open page with the same URL and identity signature. Pages in one group were (or
// would be) rendered from the same inputs, so they share one dependency set, one replay and one rendered body.

import type { QueryDependency } from "../analysis/types.ts";
import type { Fact } from "../ledger/types.ts";
import type { Sink } from "../protocol.ts";
import { type MatchReport, ReverseIndex } from "./reverse-index.ts";

export interface Subscriber {
  /** The id the client chose (unique within its connection). */
  readonly id: string;
  readonly sink: Sink;
  /** Headers of the connecting request: the viewer's inputs for replays. */
  readonly headers: Record<string, string>;
  /** The highest offset whose effects this subscriber's page shows. */
  offset: number;
  /** The rendered HTML this subscriber's page shows, when known exactly (patches are then narrowed against it). */
  surface: string | null;
  group: PageGroup;
}

/** What a page group is, as every process can know it (a shared registry would store exactly this). */
export interface PageGroupRecord {
  readonly key: string;
  readonly url: string;
  readonly identity: string;
  /** Names of the ambient inputs the latest render read. */
  inputs: string[];
  /** Origin used for replays (the page's scheme and host). */
  readonly origin: string;
  /** Ledger head before the latest render's first read; -1 before any render (dependencies unknown). */
  renderOffset: number;
  /** What the latest render read. */
  deps: QueryDependency[];
  /** The latest render's full HTML (null before any render). */
  html: string | null;
  /** A fact after renderOffset matched the group's reads: the next render must run. */
  dirty: boolean;
  /** Last time the group had a subscriber or a render (ms epoch); idle groups are swept. */
  touchedAt: number;
}

/** What only this process holds for a group: its subscribers (with their connections), the replay it is running,
 *  and caches. Never shared between processes. */
export interface GroupRuntime {
  readonly subscribers: Set<Subscriber>;
  rendering: Promise<void> | null;
  /** The last token signed for a render of the group (reused by pages rendered at the same offset). */
  token: { offset: number; exp: number; rendered: string; value: string } | null;
  /** Digest of `html`, computed when first needed. */
  htmlDigest: string | null;
}

export interface PageGroup extends PageGroupRecord {
  /** This process's part of the group. */
  readonly local: GroupRuntime;
}

/**
 * Where the hub keeps page groups. In memory here; a shared store (for instance in PostgreSQL, so that every
 * process knows every page's reads) implements the same interface. Subscribers are always local to a process.
 */
export interface PageRegistry {
  /** Every page group known. */
  groups(): Iterable<PageGroup>;
  /** The group for a URL and identity signature, created (with unknown reads) when missing. */
  ensure(url: string, identity: string, origin: string): PageGroup;
  /** Record a render of the group; false (and nothing changes) when an equal or newer render is recorded. */
  recordRender(group: PageGroup, render: RenderRecord): boolean;
  drop(group: PageGroup): void;
  /** Forget groups that have had no subscriber and no render for `idleMs`; returns how many. */
  sweep(idleMs: number, now?: number): number;
  /** Groups whose reads the fact may affect: a superset of the affected ones (matching decides). */
  candidates(fact: Fact): Iterable<PageGroup>;
  /** Candidates, matches and miss reasons for a fact (see upkeep/testing). */
  explain(fact: Fact): MatchReport<PageGroup>;
}

export interface RenderRecord {
  offset: number;
  html: string;
  inputs: string[];
  deps: QueryDependency[];
}

export class MemoryRegistry implements PageRegistry {
  readonly #groups = new Map<string, PageGroup>();
  readonly #index = new ReverseIndex<PageGroup>();

  static key(url: string, identity: string, origin: string): string {
    return `${identity} ${origin}${url}`;
  }

  groups(): Iterable<PageGroup> {
    return this.#groups.values();
  }

  candidates(fact: Fact): Iterable<PageGroup> {
    return this.#index.candidates(fact);
  }

  explain(fact: Fact): MatchReport<PageGroup> {
    return this.#index.explain(fact);
  }

  ensure(url: string, identity: string, origin: string): PageGroup {
    const key = MemoryRegistry.key(url, identity, origin);
    let group = this.#groups.get(key);
    if (!group) {
      group = {
        key,
        url,
        identity,
        inputs: [],
        origin,
        renderOffset: -1,
        deps: [],
        html: null,
        dirty: false,
        touchedAt: Date.now(),
        local: { subscribers: new Set(), rendering: null, token: null, htmlDigest: null },
      };
      this.#groups.set(key, group);
    }
    return group;
  }

  recordRender(group: PageGroup, render: RenderRecord): boolean {
    if (render.offset < group.renderOffset) return false;
    group.renderOffset = render.offset;
    if (group.html !== render.html) group.local.htmlDigest = null;
    group.html = render.html;
    group.inputs = render.inputs;
    group.deps = render.deps;
    group.touchedAt = Date.now();
    this.#index.set(group, render.deps);
    return true;
  }

  drop(group: PageGroup): void {
    if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
    this.#index.delete(group);
  }

  sweep(idleMs: number, now = Date.now()): number {
    let dropped = 0;
    for (const group of this.#groups.values()) {
      if (group.local.subscribers.size === 0 && !group.local.rendering && now - group.touchedAt > idleMs) {
        this.drop(group);
        dropped++;
      }
    }
    return dropped;
  }
}
