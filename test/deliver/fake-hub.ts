// A SubscriptionHub for transport tests: records requests, answers like the real hub (ack on the sink, token
// errors as rejections) and lets a test push messages to any live subscription.

import type { ServerMessage, Sink, SubscribeRequest, SubscriptionHub } from "../../src/deliver/types.ts";
import { SubscriptionTokenError } from "../../src/errors.ts";

export interface LiveSubscription {
  request: SubscribeRequest;
  sink: Sink;
  active: boolean;
}

export class FakeHub implements SubscriptionHub {
  readonly requests: SubscribeRequest[] = [];
  readonly live = new Map<string, LiveSubscription>();
  unsubscribed: string[] = [];
  /** Tokens the hub refuses, with the problem it reports. */
  refuse = new Map<string, "malformed" | "forged" | "expired" | "identity_mismatch">();
  /** When set, subscribe waits for this promise before registering. */
  gate: Promise<void> | null = null;
  #waiters: Array<() => void> = [];

  async subscribe(request: SubscribeRequest, sink: Sink): Promise<() => void> {
    this.requests.push(request);
    this.#notify();
    const problem = this.refuse.get(request.token);
    if (problem) throw new SubscriptionTokenError(problem, `fake hub refuses ${request.token}`);
    if (request.token === "explode") throw new Error("hub exploded");
    if (this.gate) await this.gate;
    const sub: LiveSubscription = { request, sink, active: true };
    this.live.set(request.id, sub);
    sink.send({ type: "subscribed", id: request.id, offset: request.offset });
    this.#notify();
    return () => {
      sub.active = false;
      if (this.live.get(request.id) === sub) this.live.delete(request.id);
      this.unsubscribed.push(request.id);
      this.#notify();
    };
  }

  send(id: string, message: ServerMessage): void {
    const sub = this.live.get(id);
    if (!sub) throw new Error(`no live subscription ${id}`);
    sub.sink.send(message);
  }

  /** Resolves once `predicate` holds (checked after every subscribe/unsubscribe). */
  until(predicate: () => boolean): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (predicate()) resolve();
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
