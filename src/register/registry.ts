// The subscription registry: page groups and their subscribers, indexed so that a fact finds only the groups
// whose reads it can affect.
//
// A *page group* is every open page with the same URL and identity signature. Pages in one group were (or
// would be) rendered from the same inputs, so they share one dependency set, one replay and one rendered body.

import type { QueryDependency } from "../analysis/types.ts";
import type { Sink } from "../deliver/types.ts";
import { ReverseIndex } from "./reverse-index.ts";

export interface Subscriber {
  /** The id the client chose (unique within its connection). */
  readonly id: string;
  readonly sink: Sink;
  /** Headers of the connecting request: the viewer's inputs for replays. */
  readonly headers: Record<string, string>;
  /** The highest offset whose effects this subscriber's page shows. */
  offset: number;
  /** The rendered HTML this subscriber's page shows, when known exactly (patches are then narrowed against it). */
  shown: string | null;
  group: PageGroup;
}

export interface PageGroup {
  readonly key: string;
  readonly url: string;
  readonly identity: string;
  /** Names of the ambient inputs the latest render read. */
  inputs: string[];
  /** Origin used for replays (the page's scheme and host). */
  origin: string;
  /** Ledger head before the latest render's first read; -1 before any render (dependencies unknown). */
  renderOffset: number;
  /** What the latest render read. */
  deps: QueryDependency[];
  /** The latest render's full HTML (null before any render). */
  html: string | null;
  /** Digest of `html`, computed when first needed. */
  htmlDigest: string | null;
  /** A fact after renderOffset matched the group's reads: the next render must run. */
  dirty: boolean;
  rendering: Promise<void> | null;
  readonly subscribers: Set<Subscriber>;
  /** The last token signed for a render of the group (reused by pages rendered at the same offset). */
  token: { offset: number; exp: number; rendered: string; value: string } | null;
  /** Last time the group had a subscriber or a render (ms epoch); idle groups are swept. */
  touchedAt: number;
}

export class Registry {
  readonly groups = new Map<string, PageGroup>();
  readonly index = new ReverseIndex<PageGroup>();

  static key(url: string, identity: string): string {
    return `${identity} ${url}`;
  }

  ensure(url: string, identity: string, origin: string): PageGroup {
    const key = Registry.key(url, identity);
    let group = this.groups.get(key);
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
        htmlDigest: null,
        dirty: false,
        rendering: null,
        subscribers: new Set(),
        token: null,
        touchedAt: Date.now(),
      };
      this.groups.set(key, group);
    }
    return group;
  }

  /** Record a render of the group; ignored when an equal or newer render is already recorded. */
  recordRender(group: PageGroup, render: { offset: number; html: string; inputs: string[]; deps: QueryDependency[] }) {
    if (render.offset < group.renderOffset) return false;
    group.renderOffset = render.offset;
    if (group.html !== render.html) group.htmlDigest = null;
    group.html = render.html;
    group.inputs = render.inputs;
    group.deps = render.deps;
    group.touchedAt = Date.now();
    this.index.set(group, render.deps);
    return true;
  }

  drop(group: PageGroup): void {
    if (this.groups.get(group.key) === group) this.groups.delete(group.key);
    this.index.delete(group);
  }

  /** Forget groups that have had no subscriber and no render for `idleMs`. */
  sweep(idleMs: number, now = Date.now()): number {
    let dropped = 0;
    for (const group of this.groups.values()) {
      if (group.subscribers.size === 0 && !group.rendering && now - group.touchedAt > idleMs) {
        this.drop(group);
        dropped++;
      }
    }
    return dropped;
  }
}
