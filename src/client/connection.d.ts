import type { BackoffOptions } from "./backoff.js";
import type { ConnectionState } from "./state.js";

export interface Subscription {
  id: string;
  token: string;
  incarnation: string;
  /** The last offset the page shows; updated by whoever applies patches, used on every (re)subscribe. */
  offset: number;
  transport?: string | null;
  deliver(message: any): void;
}
export interface ManagerEnvironment {
  baseUrl?: string;
  socketPath?: string;
  eventsPath?: string;
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
  now?: () => number;
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => any;
  clearTimeout?: (handle: any) => void;
  lingerMs?: number;
  /** How long a connection stays open before its reconnect backoff resets. */
  healthyAfterMs?: number;
  backoff?: BackoffOptions;
  webSocketFailuresBeforeSse?: number;
  onState?: (state: ConnectionState) => void;
  onMessage?: (message: any) => void;
  warn?: (text: string, detail?: unknown) => void;
}
export declare class ConnectionManager {
  state: ConnectionState;
  subscriptions: Map<string, Subscription>;
  messagesReceived: number;
  constructor(env?: ManagerEnvironment);
  add(sub: Subscription): void;
  remove(id: string, options?: { linger?: boolean }): void;
  wake(): void;
  drop(): void;
  close(): void;
}
