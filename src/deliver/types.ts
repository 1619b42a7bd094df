// The transports' contract with the hub lives in src/protocol.ts (below the pipeline folders); re-exported here.
export type { ClientMessage, ServerMessage, Sink, SubscribeRequest, SubscriptionHub } from "../protocol.ts";
