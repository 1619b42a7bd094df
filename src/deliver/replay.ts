// What a page replay needs besides running the GET: the request a group's replay makes (HTML, an Inertia visit, a
// JSON resource), and the groups a replay's render belongs to when it read inputs the group's identity did not cover.
import { deriveIdentity } from "../capture/context.ts";
import type { PageGroup, PageRegistry, Subscriber } from "../register/registry.ts";
import type { DataReplay } from "../render/page.ts";

/** The data-mode request of a group's replay (undefined for an HTML page). */
export function replayRequest(group: PageGroup): DataReplay | undefined {
  if (group.format === "html") return undefined;
  if (group.format === "json") return { kind: "json" };
  // Props the group's browsers hold are evaluated too, although a first visit would defer them.
  const doc = group.page?.data;
  return { kind: "inertia", ...(doc ? { version: doc.version, include: [...doc.props.keys()] } : {}) };
}

/**
 * A replay read `inputs`; their values in the representative's headers give the identity its render belongs to.
 * When that is not the group's own, every subscriber moves to the group of its own values for those inputs: the
 * representative's to `target` (which records the render), the others to groups that need a replay of their own
 * (`replay`). `stay` is true when some subscriber keeps the old identity: the old group needs a replay of its own too.
 */
export function regroup(
  registry: PageRegistry,
  group: PageGroup,
  inputs: string[],
  representative: Subscriber,
): { target: PageGroup; replay: PageGroup[]; stay: boolean } {
  const identity = deriveIdentity(inputs, representative.headers).digest;
  if (identity === group.identity) return { target: group, replay: [], stay: false };
  const target = registry.ensure(group.url, identity, group.origin, group.format);
  const replay: PageGroup[] = [];
  let stay = false;
  for (const subscriber of [...group.local.subscribers]) {
    const own = deriveIdentity(inputs, subscriber.headers).digest;
    const destination = own === identity ? target : registry.ensure(group.url, own, group.origin, group.format);
    if (destination === group) {
      stay = true; // still this group's identity, but this render was not made for it
      continue;
    }
    group.local.subscribers.delete(subscriber);
    destination.local.subscribers.add(subscriber);
    subscriber.group = destination;
    if (destination !== target && !replay.includes(destination)) replay.push(destination);
  }
  return { target, replay, stay };
}
