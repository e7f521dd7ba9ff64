import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { missingHeapFlags, missingWorkerEnv } from "../../lib/cli/worker-heap.ts";
import { ALERTS, ROOT } from "../support/observability.ts";

type Doc = { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> };

function manifests(): Doc[] {
  const dir = path.join(ROOT, "k8s");
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8")).map((d) => d.toJSON() as Doc));
}

const byKind = (kind: string) => manifests().filter((m) => m.kind === kind);

describe("k8s manifests", () => {
  it("PrometheusRule holds exactly the rules of observability/prometheus/alerts.yml", () => {
    const [rule] = byKind("PrometheusRule");
    const alerts = parseAllDocuments(fs.readFileSync(ALERTS, "utf8"))[0]!.toJSON() as { groups: unknown };
    expect(rule?.spec.groups).toEqual(alerts.groups);
  });

  it("scale each topology's Deployment on its own consumer group, probed on /healthz and /readyz", () => {
    const deployments = byKind("Deployment");
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) {
      const topology = d.metadata.labels?.["streamfleet.io/topology"];
      const scaler = byKind("ScaledObject").find((s) => (s.spec.scaleTargetRef as { name: string }).name === d.metadata.name);
      const trigger = (scaler?.spec.triggers as Array<{ type: string; metadata: Record<string, string> }>)[0];
      expect(trigger).toMatchObject({ type: "kafka", metadata: { consumerGroup: `streamfleet.${topology}` } });
      const container = (d.spec.template as { spec: { containers: Array<Record<string, { httpGet: { path: string } }>> } }).spec.containers[0]!;
      expect(container.livenessProbe?.httpGet.path).toBe("/healthz");
      expect(container.readinessProbe?.httpGet.path).toBe("/readyz");
    }
  });

  it("starts each worker with every heap bound `streamfleet run` would apply itself", () => {
    for (const d of byKind("Deployment")) {
      const container = (d.spec.template as { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } }).spec.containers[0]!;
      const nodeOptions = container.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
      expect(nodeOptions, d.metadata.name).toBeDefined();
      expect(missingHeapFlags([], nodeOptions), d.metadata.name).toEqual([]);
      expect(missingHeapFlags([], ""), "the defaults themselves").toEqual(nodeOptions!.split(" "));
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
      expect(missingWorkerEnv(env), d.metadata.name).toEqual({});
    }
  });

  it("ServiceMonitor scrapes the workers' Service on its admin port, as job streamfleet", () => {
    const [monitor] = byKind("ServiceMonitor");
    const [service] = byKind("Service");
    const endpoints = monitor?.spec.endpoints as Array<{ port: string; path: string }>;
    expect(endpoints[0]).toMatchObject({ port: "admin", path: "/metrics" });
    expect((service?.spec.ports as Array<{ name: string }>).map((p) => p.name)).toContain("admin");
    expect(service?.metadata.labels?.[monitor?.spec.jobLabel as string]).toBe("streamfleet");
  });
});
