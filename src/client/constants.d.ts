export declare const WIRE: Readonly<{
  socketPath: string;
  eventsPath: string;
  clientPath: string;
  turboScriptPath: string;
  streamSourceTag: string;
  tokenAttr: string;
  offsetAttr: string;
  incarnationAttr: string;
  msg: Readonly<{
    subscribe: "subscribe";
    unsubscribe: "unsubscribe";
    ack: "subscribed";
    patch: "patch";
    reload: "reload";
    error: "error";
  }>;
  close: Readonly<{
    tooManySubscriptions: number;
    messageTooLarge: number;
    malformed: number;
    slowConsumer: number;
    tooManySubscribes: number;
  }>;
}>;
export declare const CLIENT_TUNING: Readonly<{
  lingerMs: number;
  webSocketFailuresBeforeSse: number;
  healthyAfterMs: number;
  maxReloads: number;
  reloadWindowMs: number;
}>;
