// What the inspector shows: a snapshot of this process's live state — the ledger's head and horizons, the planner's
// position and lag, the counters, every page group with its frames, subscribers and reads, and the last facts
// planned, each with the frames it reached and why the others were missed. Never a value a viewer sent: inputs by
// name only, and page URLs with their query values left out (shownUrl).
import { horizonOf } from "../ledger/core.ts";
import type { Upkeep } from "../upkeep.ts";

export interface Snapshot {
  at: string;
  mode: string;
  ledger: {
    kind: string;
    incarnation: string;
    head: number;
    /** Every table's facts are complete above it (-1: unknown). */
    horizon: number;
    /** Tables whose own retention pruned them above the horizon every table shares, with their horizons. */
    horizons: Record<string, number>;
    position: number;
    lag: number;
  };
  stats: Record<string, unknown>;
  groups: Array<{
    url: string;
    format: string;
    identity: string;
    inputs: string[];
    subscribers: number;
    renderOffset: number;
    dirty: boolean;
    frames: Array<{ kind: string; id: string; partial?: string; reads: string[]; inputs: string[] }>;
  }>;
  facts: Array<{
    offset: number;
    table: string;
    op: string;
    committedAt: string;
    matched: Array<{ url: string; frame: string; why: string }>;
    missed: Array<{ url: string; frame: string; reason: string }>;
  }>;
}

/** One read as the inspector prints it: the tables, and the filters, order and limit when there are some. */
function describeRead(read: { sql: string; reads: Array<{ table: string }>; limit: number | null }): string {
  const tables = [...new Set(read.reads.map((r) => r.table))].join(", ");
  const where = /\bwhere\b([\s\S]*?)(\border by\b|\blimit\b|$)/i.exec(read.sql)?.[1]?.trim();
  return `${tables}${where ? ` where ${where.slice(0, 160)}` : ""}${read.limit !== null ? ` limit ${read.limit}` : ""}`;
}

/**
 * A page's URL as the inspector shows it: the path, and the query's parameter names with each value replaced by
 * "…". A query often carries a viewer's data (a reset or invitation token, a search, an email), and the inspector
 * shows no input's value, only its name; this holds whoever `inspect.authorize` admits.
 */
export function shownUrl(url: string): string {
  const at = url.indexOf("?");
  if (at < 0) return url;
  const names = url
    .slice(at + 1)
    .split("&")
    .filter((part) => part !== "")
    .map((part) => {
      const eq = part.indexOf("=");
      return eq < 0 ? part : `${part.slice(0, eq)}=…`;
    });
  return `${url.slice(0, at)}?${names.join("&")}`;
}

const frameName = (f: { kind: string; id: string }) => (f.kind === "page" ? "page" : `${f.kind} #${f.id}`);

export async function snapshot(upkeep: Upkeep): Promise<Snapshot> {
  const hub = upkeep.hub;
  const stats = await upkeep.stats();
  const horizons = await upkeep.ledger.horizons().catch(() => null);
  const horizon = horizons ? horizonOf(horizons).horizon : -1;
  const groups = [...hub.registry.groups()].map((group) => ({
    url: shownUrl(group.url),
    format: group.format,
    identity: group.identity.slice(0, 12),
    inputs: group.inputs,
    subscribers: group.local.subscribers.size,
    renderOffset: group.renderOffset,
    dirty: group.dirty || group.local.dirtyFrames.size > 0,
    frames: group.frames.map((frame) => {
      const recipe = frame.recipe as {
        kind: string;
        partial?: { partialName?: string };
        item?: { partialName?: string };
      } | null;
      const partial = recipe?.partial?.partialName ?? recipe?.item?.partialName;
      return {
        kind: frame.kind,
        id: frame.id,
        ...(partial ? { partial } : {}),
        reads: frame.deps.map(describeRead),
        inputs: frame.inputs,
      };
    }),
  }));
  const facts = hub.recentFacts.map((fact) => {
    const report = hub.explain(fact);
    return {
      offset: fact.offset,
      table: fact.table,
      op: fact.op,
      committedAt: fact.committedAt,
      matched: report.matched.map((f) => ({
        url: shownUrl(f.group.url),
        frame: frameName(f),
        why: report.why.get(f) ?? "",
      })),
      missed: report.misses
        .slice(0, 50)
        .map((m) => ({ url: shownUrl(m.subject.group.url), frame: frameName(m.subject), reason: m.reason })),
    };
  });
  const { groups: _g, subscribers: _s, ...counters } = stats;
  return {
    at: new Date().toISOString(),
    mode: upkeep.mode,
    ledger: {
      kind: upkeep.ledger.kind,
      incarnation: stats.incarnation,
      head: stats.head,
      horizon,
      horizons: horizons?.tables ?? {},
      position: stats.position,
      lag: stats.lag,
    },
    stats: { ...counters, groups: stats.groups, subscribers: stats.subscribers },
    groups,
    facts,
  };
}
