// A live JSON resource in React:
//
//   import { useLiveResource } from "upkeep/react";
//   const { data, error, status } = useLiveResource<Card[]>("/api/boards/1/cards");
//
// The first render has `status: "loading"`; then `data` is the server's value and stays current while the component
// is mounted. Changing `url` leaves the old subscription and follows the new one; unmounting leaves it. Reconnects
// resume from the last offset applied, through the window's one shared connection.

import { useEffect, useState } from "react";
import { followLiveResource, type LiveResourceOptions, type LiveResourceSnapshot } from "./resource.ts";

export type { LiveResourceOptions, LiveResourceSnapshot, LiveResourceStatus } from "./resource.ts";
export { followLiveResource } from "./resource.ts";

const LOADING = Object.freeze({ data: undefined, error: undefined, status: "loading", offset: null } as const);

/** The live value of the JSON resource at `url` (null: nothing to fetch). */
export function useLiveResource<T>(url: string | null, options: LiveResourceOptions = {}): LiveResourceSnapshot<T> {
  const [snapshot, setSnapshot] = useState<{ url: string | null; value: LiveResourceSnapshot<T> }>({
    url,
    value: LOADING,
  });
  const transport = options.transport;
  // biome-ignore lint/correctness/useExhaustiveDependencies: options other than the transport are read once per url
  useEffect(() => {
    if (url === null) return;
    const resource = followLiveResource<T>(url, (value) => setSnapshot({ url, value }), options);
    return () => resource.close();
  }, [url, transport]);
  // A snapshot of the previous url is never shown for the new one.
  return snapshot.url === url ? snapshot.value : LOADING;
}
