// A live JSON resource in React:
//
//   import { useLiveResource } from "upkeep/react";
//   const { data, error, status } = useLiveResource<Card[]>("/api/boards/1/cards");
//
// The first render has `status: "loading"`; then `data` is the server's value and stays current while the component
// is mounted. Changing `url` leaves the old subscription and follows the new one; unmounting leaves it. Reconnects
// resume from the last offset applied, through the window's one shared connection.
//
// With Suspense, `useSuspenseLiveResource(url)` suspends until the first value and throws a first fetch's error to the
// nearest error boundary; `data` is then always a value.

import * as React from "react";
import { useEffect, useState, useSyncExternalStore } from "react";
import {
  followLiveResource,
  type LiveResource,
  type LiveResourceOptions,
  type LiveResourceSnapshot,
} from "./resource.ts";

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

/** A resource shared by the components that suspend on the same url, while one of them uses it. */
interface Entry {
  key: string;
  resource: LiveResource<unknown>;
  snapshot: LiveResourceSnapshot<unknown>;
  listeners: Set<() => void>;
  /** Settles with the first snapshot that is not `loading`. */
  ready: Promise<void> & { status?: "fulfilled"; value?: undefined };
  users: number;
  closeTimer: ReturnType<typeof setTimeout> | null;
  /** Closes the resource unless a component uses it again within UNUSED_CLOSE_MS. */
  release(): void;
}
const entries = new Map<string, Entry>();
/** A suspended render that never commits does not keep its resource: it is closed after this long unused. */
const UNUSED_CLOSE_MS = 5_000;

function entryFor(url: string, options: LiveResourceOptions): Entry {
  const key = `${options.transport ?? ""} ${url}`;
  let entry = entries.get(key);
  if (!entry) {
    let settle = () => {};
    const created: Entry = {
      key,
      resource: null as unknown as LiveResource<unknown>,
      snapshot: LOADING,
      listeners: new Set(),
      ready: new Promise<void>((resolve) => {
        settle = resolve;
      }),
      users: 0,
      closeTimer: null,
      release() {
        const timer = setTimeout(() => {
          if (created.users > 0) return;
          created.resource.close();
          if (entries.get(key) === created) entries.delete(key);
        }, UNUSED_CLOSE_MS);
        (timer as { unref?: () => void }).unref?.(); // outside a browser (tests), it keeps nothing running
        created.closeTimer = timer;
      },
    };
    created.resource = followLiveResource(
      url,
      (snapshot) => {
        created.snapshot = snapshot;
        if (snapshot.status !== "loading" && created.ready.status !== "fulfilled") {
          created.ready.status = "fulfilled"; // React's thenable convention: use() need not wait a tick
          settle();
        }
        for (const listener of created.listeners) listener();
      },
      options,
    );
    created.release();
    entries.set(key, created);
    entry = created;
  }
  return entry;
}

/** Like useLiveResource, but suspends until the first value (and throws a first failure to the error boundary). */
export function useSuspenseLiveResource<T>(
  url: string,
  options: LiveResourceOptions = {},
): LiveResourceSnapshot<T> & { data: T } {
  const entry = entryFor(url, options);
  const snapshot = useSyncExternalStore(
    (listener) => {
      entry.listeners.add(listener);
      return () => entry.listeners.delete(listener);
    },
    () => entry.snapshot,
    () => entry.snapshot,
  );
  useEffect(() => {
    entry.users += 1;
    if (entry.closeTimer !== null) clearTimeout(entry.closeTimer);
    entry.closeTimer = null;
    return () => {
      entry.users -= 1;
      if (entry.users === 0) entry.release();
    };
  }, [entry]);
  // React 19: use() on every render (it returns at once once `ready` is marked fulfilled); React 18: throw it.
  const use = (React as { use?: (promise: Promise<unknown>) => unknown }).use;
  if (use) use(entry.ready);
  else if (snapshot.status === "loading") throw entry.ready;
  if (snapshot.data === undefined && snapshot.error) {
    // To the error boundary; rendering again (its retry) fetches again.
    entry.resource.close();
    entries.delete(entry.key);
    throw snapshot.error;
  }
  return snapshot as LiveResourceSnapshot<T> & { data: T };
}
