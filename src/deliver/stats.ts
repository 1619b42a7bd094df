// What the hub counts (upkeep.stats() reads it).

/**
 * Why a subscriber received the whole-body morph instead of a narrowed patch (stable names, counted in
 * HubStats.deoptimizations): the HTML its page shows is not known exactly (it resumed, or was served HTML the
 * group no longer holds), or a difference is not inside an element with a unique id. docs/codes.md explains each.
 */
export const DEOPTIMIZATIONS = [
  "html_not_known",
  "change_not_covered_by_id",
  /** A collection was rendered whole: too many members changed, or its members' ids are not unique. */
  "collection_multi_change",
  "collection_member_id_not_unique",
  /** A frame's page was replayed instead of the frame: its HTML is not found exactly once in the page, … */
  "frame_not_located",
  /** … two of its frames, rendered at different moments, would put one id on the page twice, … */
  "frame_ids_collide",
  /** … it read an input it had not read before (its identity could not cover it), … */
  "frame_inputs_changed",
  /** … or its render was refused (the page's replay then tells the browsers to reload). */
  "frame_refused",
] as const;

export type Deoptimization = (typeof DEOPTIMIZATIONS)[number];

export interface HubStats {
  /** Page replays run (one per dirty group per batch, shared by all its subscribers). */
  renders: number;
  /** Frame renders: fragments and collection members rendered, collections' queries run again (each shared by
   *  every group that needed it). */
  frameRenders: number;
  /** Patch messages sent, and their bytes (data mode: props and value messages, their JSON's bytes). */
  messages: number;
  bytes: number;
  /** Data mode: prop values (or patches) pushed to browsers, and props named for a partial reload by the browser. */
  propsPushed: number;
  propsReloaded: number;
  factsPlanned: number;
  /** Facts that name no rows (TRUNCATE) or whose image is unavailable: planned against every read of their table. */
  factsTableWide: number;
  /** Times the follower resynchronised: its position fell below the pruned horizon, or the incarnation changed. */
  resyncs: number;
  /** Whole-body morphs sent where a narrower patch could not be proven, by reason. */
  deoptimizations: Record<Deoptimization, number>;
  /** Pages refused (not kept live), by refusal code. */
  refusals: Record<string, number>;
  /** The Turbo Stream actions frame renders chose (replace, after, prepend, remove …), once per render. */
  actions: Record<string, number>;
  /** Commit time (ms epoch) of the newest fact planned; 0 before any. */
  lastCommitAt: number;
}

/** Every counter at zero. */
export function createStats(): HubStats {
  const deoptimizations = Object.fromEntries(DEOPTIMIZATIONS.map((reason) => [reason, 0])) as Record<
    Deoptimization,
    number
  >;
  return {
    renders: 0,
    frameRenders: 0,
    messages: 0,
    bytes: 0,
    propsPushed: 0,
    propsReloaded: 0,
    factsPlanned: 0,
    factsTableWide: 0,
    resyncs: 0,
    deoptimizations,
    refusals: {},
    actions: {},
    lastCommitAt: 0,
  };
}
