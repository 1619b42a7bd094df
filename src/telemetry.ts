// Logs and metrics in the forms operators already collect.
//
// Logs: every record Upkeep writes goes through an UpkeepLogger — the method signature of pino (and of most
// structured loggers): `logger.warn({ event: "upkeep.refusal", code, url, sql, fix }, "message")`. Pass your own
// (`createUpkeep({ logger: pino() })`); the default writes the message to the console, or the record as one JSON line
// when there is no message.
//
// Metrics and spans: when `@opentelemetry/api` is installed (an optional peer), Upkeep registers its instruments on
// the global meter provider and opens spans on the global tracer; with no SDK registered they cost nothing. Every
// metric is observed from the counters `upkeep.stats()` reports, so nothing is counted twice:
//   upkeep.renders, upkeep.frame_renders, upkeep.messages, upkeep.bytes, upkeep.props_pushed, upkeep.facts_planned
//     (counters), upkeep.deoptimizations {reason}, upkeep.refusals {code} (counters by attribute),
//   upkeep.subscribers, upkeep.groups, upkeep.lag (gauges), upkeep.delivery_latency (histogram, ms from a fact's
//     commit to the render it caused being sent), and a span `upkeep.render` {upkeep.url, upkeep.kind} per render.

import type { Hub } from "./deliver/hub.ts";
import { type HubInstruments, NO_INSTRUMENTS } from "./deliver/types.ts";
import type { Ledger } from "./ledger/types.ts";

/** A structured logger: pino's method signature. */
export interface UpkeepLogger {
  info(record: Record<string, unknown>, message?: string): void;
  warn(record: Record<string, unknown>, message?: string): void;
  error(record: Record<string, unknown>, message?: string): void;
}

/** The default logger: the message on the console, or the record as one JSON line when there is no message. */
export const consoleLogger: UpkeepLogger = {
  info: (record, message) => console.log(message ?? JSON.stringify(record)),
  warn: (record, message) => console.warn(message ?? JSON.stringify(record)),
  error: (record, message) => console.error(message ?? JSON.stringify(record)),
};

type OtelApi = typeof import("@opentelemetry/api");

async function loadOtel(): Promise<OtelApi | null> {
  try {
    return await import("@opentelemetry/api");
  } catch {
    return null;
  }
}

/**
 * Registers Upkeep's metrics and returns the hub's instruments, or NO_INSTRUMENTS when @opentelemetry/api is not
 * installed. `stop` unregisters the observers.
 */
export async function startTelemetry(hub: Hub, ledger: Ledger): Promise<{ instruments: HubInstruments; stop(): void }> {
  const api = await loadOtel();
  if (!api) return { instruments: NO_INSTRUMENTS, stop: () => {} };
  const meter = api.metrics.getMeter("upkeep");
  const tracer = api.trace.getTracer("upkeep");
  const stats = hub.stats;
  type Result = { observe(value: number, attributes?: Record<string, string>): void };
  const observed: Array<{
    removeCallback(callback: (result: Result) => void | Promise<void>): void;
    callback: (result: Result) => void | Promise<void>;
  }> = [];
  const observe = (
    instrument: {
      addCallback(callback: (result: Result) => void | Promise<void>): void;
      removeCallback(callback: (result: Result) => void | Promise<void>): void;
    },
    callback: (result: Result) => void | Promise<void>,
  ) => {
    instrument.addCallback(callback);
    observed.push({ removeCallback: (c) => instrument.removeCallback(c), callback });
  };
  const counters: Array<[string, string, () => number]> = [
    ["upkeep.renders", "page replays run", () => stats.renders],
    ["upkeep.frame_renders", "fragments, members and props rendered on their own", () => stats.frameRenders],
    ["upkeep.messages", "patches and prop updates handed to open connections", () => stats.messages],
    ["upkeep.bytes", "bytes of those messages", () => stats.bytes],
    ["upkeep.props_pushed", "prop values or patches pushed to browsers", () => stats.propsPushed],
    ["upkeep.facts_planned", "facts planned", () => stats.factsPlanned],
  ];
  for (const [name, description, read] of counters) {
    observe(meter.createObservableCounter(name, { description }), (result) => result.observe(read()));
  }
  observe(
    meter.createObservableCounter("upkeep.deoptimizations", {
      description: "updates broadened beyond the narrowest proven one, by reason",
    }),
    (result) => {
      for (const [reason, n] of Object.entries(stats.deoptimizations)) result.observe(n, { reason });
    },
  );
  observe(
    meter.createObservableCounter("upkeep.refusals", { description: "pages Upkeep refused to keep live, by code" }),
    (result) => {
      for (const [code, n] of Object.entries(stats.refusals)) result.observe(n, { code });
    },
  );
  const population = (which: "subscribers" | "groups") => (result: Result) => {
    let n = 0;
    for (const group of hub.registry.groups()) n += which === "groups" ? 1 : group.local.subscribers.size;
    result.observe(n);
  };
  observe(
    meter.createObservableGauge("upkeep.subscribers", { description: "subscribers connected" }),
    population("subscribers"),
  );
  observe(meter.createObservableGauge("upkeep.groups", { description: "page groups known" }), population("groups"));
  observe(
    meter.createObservableGauge("upkeep.lag", { description: "facts committed but not yet planned" }),
    async (result) => {
      const head = await ledger.head().catch(() => hub.position);
      result.observe(Math.max(0, head - hub.position));
    },
  );
  const latency = meter.createHistogram("upkeep.delivery_latency", {
    description: "from a fact's commit to the render it caused being sent",
    unit: "ms",
  });
  const instruments: HubInstruments = {
    span(name, attributes, run) {
      return tracer.startActiveSpan(name, { attributes }, async (span) => {
        try {
          return await run();
        } catch (error) {
          span.recordException(error as Error);
          span.setStatus({ code: api.SpanStatusCode.ERROR });
          throw error;
        } finally {
          span.end();
        }
      });
    },
    delivered: (ms) => latency.record(Math.max(0, ms)),
  };
  return {
    instruments,
    stop() {
      for (const { removeCallback, callback } of observed) removeCallback(callback);
    },
  };
}
