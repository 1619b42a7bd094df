// Patches for frames rendered again on their own: a fragment or member is replaced (morphed) by id; a collection's
// members are brought from the old order to the re-run's with the fewest actions that can be proven.
//
// Why a collection's actions produce exactly the new render (within one collection; FrameActions orders the
// actions of several frames). The old members are the element children of the
// collection element, in order, each with a unique id (the page was rendered so, and every earlier patch kept it
// so). `diffMembers` removes every old member whose id is not in the new list; keeps in place a longest run of
// members whose relative order did not change (a longest increasing subsequence of old positions, in new order);
// and inserts every other member after its predecessor in the new list, or first in the collection when it has
// none. Processing the new list in order, a predecessor is always in place before its successor is inserted, so
// the children end in the new order. Kept members whose HTML changed are morphed by id; inserted ones carry their
// new HTML. Turbo's `after` and `prepend` first remove an element with the inserted id among the target's siblings
// (children), so a moved member is not duplicated, and applying the same patch twice leaves the same DOM.

import { escapeAttribute } from "../render/page.ts";

/**
 * The actions of one frame's patch, in three parts. A page's patch sends every frame's removals first, then the
 * in-place replacements, then the insertions: a member moving from one collection to another is removed from the
 * first before it is inserted into the second, so no id is ever on the page twice while an action looks it up.
 */
export interface FrameActions {
  removes: string;
  replaces: string;
  inserts: string;
}

export const NO_ACTIONS: FrameActions = { removes: "", replaces: "", inserts: "" };

export interface MemberView {
  id: string;
  html: string;
}

/** Why a collection was rendered whole instead of patched member by member (stable names). */
export type CollectionDeoptimization = "collection_multi_change" | "collection_member_id_not_unique";

function stream(action: string, target: string, html: string | null, morph = false): string {
  const method = morph ? ' method="morph"' : "";
  const template = html === null ? "" : `<template>${html}</template>`;
  return `<turbo-stream action="${action}"${method} target="${escapeAttribute(target)}">${template}</turbo-stream>`;
}

/** A fragment or member's new HTML, morphed into place by id. */
export function replaceFrame(id: string, html: string): string {
  return stream("replace", id, html, true);
}

/** The whole collection's members, morphed into its element. */
export function updateCollection(id: string, members: readonly MemberView[]): string {
  return stream("update", id, members.map((m) => m.html).join(""), true);
}

/** Indices (into `sequence`) of a longest strictly increasing subsequence. */
export function longestIncreasing(sequence: readonly number[]): number[] {
  const tails: number[] = []; // tails[k]: index of the smallest tail of an increasing run of length k + 1
  const previous = new Array<number>(sequence.length).fill(-1);
  for (let i = 0; i < sequence.length; i++) {
    const value = sequence[i] as number;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sequence[tails[mid] as number] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1] as number;
    tails[lo] = i;
  }
  const out: number[] = [];
  for (let i = tails.length > 0 ? (tails[tails.length - 1] as number) : -1; i >= 0; i = previous[i] as number)
    out.push(i);
  return out.reverse();
}

/**
 * The Turbo Stream actions that turn a collection element showing `before` into one showing `after` (see the module
 * comment), or a deoptimization when the members cannot be told apart by id or when patching them one by one
 * would cost more than rendering the collection whole.
 */
export function diffMembers(
  collectionId: string,
  before: readonly MemberView[],
  after: readonly MemberView[],
): { actions: FrameActions; operations: number } | { deoptimization: CollectionDeoptimization } {
  const newIds = new Set<string>();
  for (const m of after) {
    if (newIds.has(m.id)) return { deoptimization: "collection_member_id_not_unique" };
    newIds.add(m.id);
  }
  const oldIndex = new Map<string, number>();
  for (let i = 0; i < before.length; i++) {
    const id = (before[i] as MemberView).id;
    if (oldIndex.has(id)) return { deoptimization: "collection_member_id_not_unique" };
    oldIndex.set(id, i);
  }
  const out: FrameActions = { removes: "", replaces: "", inserts: "" };
  let operations = 0;
  for (const m of before) {
    if (!newIds.has(m.id)) {
      out.removes += stream("remove", m.id, null);
      operations++;
    }
  }
  // Members present before and after, in new order, with their old positions: the longest increasing run stays.
  const common: number[] = [];
  const positions: number[] = [];
  for (let i = 0; i < after.length; i++) {
    const at = oldIndex.get((after[i] as MemberView).id);
    if (at !== undefined) {
      common.push(i);
      positions.push(at);
    }
  }
  const stays = new Set(longestIncreasing(positions).map((k) => common[k] as number));
  for (let i = 0; i < after.length; i++) {
    const m = after[i] as MemberView;
    if (stays.has(i)) {
      if ((before[oldIndex.get(m.id) as number] as MemberView).html !== m.html) {
        out.replaces += replaceFrame(m.id, m.html);
        operations++;
      }
      continue;
    }
    out.inserts +=
      i === 0 ? stream("prepend", collectionId, m.html) : stream("after", (after[i - 1] as MemberView).id, m.html);
    operations++;
  }
  // Each action carries at most one member; past half the members (and a few), one update is smaller.
  if (operations > Math.max(4, after.length / 2)) return { deoptimization: "collection_multi_change" };
  return { actions: out, operations };
}
