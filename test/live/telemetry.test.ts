// Logs and metrics in operators' formats: a pino logger receives Upkeep's records as structured objects, and with
// @opentelemetry/api present (an SDK registered globally, as an app would) Upkeep's counters, gauges, delivery
// latency and render spans are exported. SQLite only: the instruments read the same counters on both dialects.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { metrics, trace } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import pino from "pino";
import { createUpkeep, type Upkeep } from "../../src/index.ts";
import { openLivePage } from "../../src/testing/index.ts";
import { createApp, fixtureDatabase, SECRET } from "./fixture.ts";

const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
const spans = new InMemorySpanExporter();

before(() => {
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
});
after(() => {
  metrics.disable();
  trace.disable();
});

function pinoToMemory() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino(stream), lines };
}

test("a pino logger receives refusals as structured records naming the code, the page, the SQL and the fix", async () => {
  const fixture = (await fixtureDatabase("sqlite"))!;
  const { logger, lines } = pinoToMemory();
  const upkeep = await createUpkeep({
    database: fixture.database,
    secret: SECRET,
    mode: "production",
    install: true,
    logger,
  });
  try {
    const app = createApp(upkeep);
    upkeep.use(app);
    const response = await app.fetch(new Request("http://localhost/raw", { headers: { accept: "text/html" } }));
    assert.equal(response.status, 200);
    await new Promise((resolve) => setImmediate(resolve));
    const record = lines.find((l) => l.event === "upkeep.refusal");
    assert.ok(record, JSON.stringify(lines));
    assert.equal(record.code, "refused_opaque_predicate");
    assert.equal(record.url, "/raw");
    assert.match(String(record.sql), /title like/);
    assert.match(String(record.fix), /structural/);
    assert.match(String(record.msg), /page: \/raw/);
    assert.equal((await upkeep.stats()).refusals.refused_opaque_predicate, 1);
  } finally {
    await upkeep.close();
  }
});

test("with OpenTelemetry present, renders, messages, bytes, subscribers, deoptimizations, latency and render spans are exported", async () => {
  const fixture = (await fixtureDatabase("sqlite"))!;
  const upkeep: Upkeep = await createUpkeep({
    database: fixture.database,
    secret: SECRET,
    mode: "test",
    install: true,
  });
  try {
    const app = createApp(upkeep);
    const page = await openLivePage(upkeep, app, "/lists/a");
    await fixture.exec("insert into items (list, title, pos) values ('a', 'measured', 1)");
    await upkeep.settle();
    assert.ok(page.messages.some((m) => m.type === "patch"));
    await reader.forceFlush();
    const exported = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const value = (name: string) => {
      const metric = exported.filter((m) => m.descriptor.name === name).at(-1);
      assert.ok(metric, `${name} exported (got ${[...new Set(exported.map((m) => m.descriptor.name))].join(", ")})`);
      return metric.dataPoints;
    };
    assert.equal(value("upkeep.renders")[0]?.value, 1);
    assert.equal(value("upkeep.messages")[0]?.value, 1);
    assert.ok((value("upkeep.bytes")[0]?.value as number) > 0);
    assert.equal(value("upkeep.subscribers")[0]?.value, 1);
    const latency = value("upkeep.delivery_latency")[0]?.value as { count: number };
    assert.equal(latency.count, 1);
    assert.ok(value("upkeep.deoptimizations").length > 0);
    const rendered = spans.getFinishedSpans().filter((s) => s.name === "upkeep.render");
    assert.equal(rendered.length, 1);
    assert.equal(rendered[0]?.attributes["upkeep.url"], "/lists/a");
    assert.equal(rendered[0]?.attributes["upkeep.kind"], "page");
    page.close();
  } finally {
    await upkeep.close();
  }
});
