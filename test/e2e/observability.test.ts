import { afterAll, beforeAll, expect, it } from "vitest";
import { startWorker } from "../../lib/cli/run-command.ts";
import { writeTopologies } from "../support/fleet.ts";
import { exportedFamilies, eventually, observabilityQueries, promqlMetricNames, startPrometheus } from "../support/observability.ts";
import type { Prometheus } from "../support/observability.ts";
import { describeStack, TestScope } from "../support/scope.ts";

const scope = new TestScope("observe");
const topology = `${scope.id}-observed`;
let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
let prometheus: Prometheus | undefined;
const view = `observed_${scope.id}`;

afterAll(async () => {
  await prometheus?.stop();
  await worker?.stop();
  await scope.cleanup();
});

describeStack("a worker watched by a real Prometheus", () => {
  const [input, output] = [scope.topic("in"), scope.topic("out")];

  beforeAll(async () => {
    await scope.createTopics([input, output]);
    const dir = writeTopologies([
      {
        name: topology,
        source: { topics: [input], start: "earliest" },
        codec: { value: { type: "json" } },
        steps: [{ map: { fields: { id: "{id}", n: "{n}" } } }],
        sinks: [
          { type: "kafka", topic: output, key: "{id}", value: { type: "json" } },
          // a feature view, so the worker exports the feature freshness series the dashboard and the alerts name
          { type: "redis.features", key_prefix: scope.keyPrefix, views: [{ name: view, entity: "item", key: "{id}", freshness_slo_seconds: 3600, features: [{ name: "n", kind: "latest", field: "n" }] }] },
        ],
        errors: { dlq: { topic: scope.topic("dlq") } },
      },
    ]);
    const env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "silent" };
    worker = await startWorker({ inputs: [dir], env, adminPort: 0, live: false, shutdownMs: 5000 });
    prometheus = await startPrometheus(new URL(worker.adminUrl).host);
  });

  it("scrapes throughput and lag: lag drains to 0 and every produced record counts as ok", { timeout: 90_000 }, async () => {
    const n = 120;
    const producer = scope.producer();
    await producer.connect();
    await producer.send({ topic: input, messages: Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: JSON.stringify({ id: `k${i}`, n: i }) })) });
    await producer.disconnect();

    const sel = `topology="${topology}"`;
    const seen = await eventually(
      "Prometheus to see lag 0 and every record processed",
      async () => {
        const [lag] = await prometheus!.query(`sum(streamfleet_consumer_lag{${sel}})`);
        const [ok] = await prometheus!.query(`sum(streamfleet_records_processed_total{${sel}, outcome="ok"})`);
        return lag?.value === 0 && ok?.value === n ? { lag: lag.value, ok: ok.value } : undefined;
      },
      60_000,
      500,
    );
    expect(seen).toEqual({ lag: 0, ok: n });

    const [consumed] = await prometheus!.query(`sum(streamfleet_records_consumed_total{${sel}})`);
    expect(consumed?.value).toBe(n);
    const [acked] = await prometheus!.query(`sum(streamfleet_sink_records_total{${sel}, sink="kafka"})`);
    expect(acked?.value).toBe(n);
    const up = await prometheus!.query('up{job="streamfleet"}');
    expect(up.map((u) => u.value)).toEqual([1]);
    const [slo] = await prometheus!.query(`streamfleet_feature_freshness_slo_seconds{${sel}, view="${view}"}`);
    expect(slo?.value).toBe(3600);
    const [fresh] = await eventually("Prometheus to scrape the view's freshness", async () => {
      const r = await prometheus!.query(`streamfleet_feature_freshness_seconds{${sel}, view="${view}"}`);
      return r.length ? r : undefined;
    });
    expect(fresh!.value).toBeGreaterThanOrEqual(0);
    expect(fresh!.value).toBeLessThan(3600);
  });

  it("serves /healthz, the Prometheus exposition on /metrics, and a JSON 404 elsewhere", async () => {
    const alive = await fetch(`${worker!.adminUrl}/healthz`);
    expect(alive.status).toBe(200);
    expect(await alive.json()).toEqual({ status: "alive" });
    const metrics = await fetch(`${worker!.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toContain("# TYPE streamfleet_records_processed_total counter");
    expect(text).toContain("# TYPE streamfleet_end_to_end_seconds histogram");
    expect(text).toContain(`streamfleet_topology_ready{topology="${topology}"} 1`);
    expect(text).toMatch(/^streamfleet_process_cpu_seconds_total \d/m);
    const missing = await fetch(`${worker!.adminUrl}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });

  it("loads the repository's alert rules, all healthy and none firing", async () => {
    const body = await eventually("rules to be evaluated", async () => {
      const res = (await (await fetch(`${prometheus!.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; state: string; lastError?: string }> }> } };
      const rules = res.data.groups.flatMap((g) => g.rules);
      return rules.length > 0 && rules.every((r) => r.health === "ok") ? rules : undefined;
    });
    expect(body.map((r) => r.name).sort()).toEqual(["StreamfleetConsumerLagGrowing", "StreamfleetDeadLetterRate", "StreamfleetFeatureViewStale", "StreamfleetNoProgress", "StreamfleetSinkErrors", "StreamfleetWorkerDown"]);
    expect(body.filter((r) => r.state === "firing")).toEqual([]);
  });

  it("exports every metric that a dashboard panel or an alert rule names", async () => {
    const families = exportedFamilies(await (await fetch(`${worker!.adminUrl}/metrics`)).text());
    const scraped = new Set(["up"]); // Prometheus's own series per target
    const missing: string[] = [];
    const queries = observabilityQueries();
    expect(queries.length).toBeGreaterThan(20);
    for (const { where, expr } of queries) {
      for (const name of promqlMetricNames(expr)) {
        const base = name.replace(/_(bucket|sum|count)$/, "");
        const ok = scraped.has(name) || (families.has(name) && families.get(name) !== "histogram") || (base !== name && families.get(base) === "histogram");
        if (!ok) missing.push(`${where}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
}, ["prometheus"]);
