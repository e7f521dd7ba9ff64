/**
 * docker-compose.yml cannot run here (no Docker engine), so its wiring is checked against the
 * files and versions it must agree with: the native stack's versions, the worker's connection
 * variables and admin port, the Prometheus and Grafana provisioning it mounts, and the
 * topologies the worker runs.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { missingHeapFlags, missingWorkerEnv } from "../../lib/cli/worker-heap.ts";
import { APICURIO_VERSION } from "../../lib/stack/registry.ts";
import { loadTopologies } from "../../lib/topology/loader.ts";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { ROOT } from "../support/observability.ts";

interface Service {
  image: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[];
}
const compose = parse(fs.readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, Service> };
const services = compose.services;
const read = (rel: string) => parse(fs.readFileSync(path.join(ROOT, rel), "utf8")) as Record<string, unknown>;
/** Host file → container path of a service's bind mounts. */
const mounts = (s: Service) => new Map((s.volumes ?? []).map((v) => v.split(":")).map(([from, to]) => [path.normalize(from!), to!]));

describe("docker-compose.yml", () => {
  it("runs the same Kafka, registry and Node versions as the native stack and package.json", () => {
    const pom = fs.readFileSync(path.join(ROOT, "scripts/stack/kafka-pom.xml"), "utf8");
    expect(services.kafka!.image).toBe(`apache/kafka:${/<kafka\.version>([^<]+)</.exec(pom)![1]}`);
    expect(services.registry!.image).toBe(`apicurio/apicurio-registry:${APICURIO_VERSION}`);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    // The worker is the repository's image, whose Node major test/unit/dockerfile.test.ts ties to package.json.
    expect(services.worker!.image).toBe("streamfleet:latest");
    expect(services.worker!.build).toBe(".");
    expect(pkg.devDependencies.node).toBeDefined();
  });

  it("gives the worker every connection variable, each pointing at a service of the file", () => {
    const env = services.worker!.environment!;
    for (const name of ["KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "REDIS_URL", "AMQP_URL", "DATABASE_URL"]) {
      expect(env[name], name).toBeDefined();
      const host = env[name]!.includes("://") ? new URL(env[name]!).hostname : env[name]!.split(":")[0]!;
      expect(Object.keys(services), `${name} host ${host}`).toContain(host);
      expect(services.worker!.depends_on, `worker waits for ${host}`).toContain(host);
    }
  });

  it("runs a topology directory that validates, with its admin port published and scraped by Prometheus", async () => {
    // The image's entry point is `streamfleet run`: the command is its arguments, the directory mounted from here.
    const [dir, ...flags] = services.worker!.command!;
    expect(flags).toEqual(["--json"]);
    expect(mounts(services.worker!).get(dir!)).toBe(`/app/${dir}`);
    const loaded = await loadTopologies([path.join(ROOT, dir!)], defaultCatalogue());
    expect(loaded.length).toBeGreaterThan(0);
    const port = services.worker!.environment!.STREAMFLEET_ADMIN_PORT!;
    expect(services.worker!.environment!.STREAMFLEET_ADMIN_HOST).toBe("0.0.0.0");
    expect(services.worker!.ports).toContain(`${port}:${port}`);
    const prom = read("observability/prometheus/prometheus.yml") as { rule_files: string[]; scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const job = prom.scrape_configs.find((j) => j.job_name === "streamfleet")!;
    expect(job.static_configs[0]!.targets).toEqual([`worker:${port}`]);
    // The rule file Prometheus loads is the alerts.yml this repository tests with promtool.
    const promMounts = mounts(services.prometheus!);
    expect(prom.rule_files).toEqual([promMounts.get("observability/prometheus/alerts.yml")]);
    expect(promMounts.get("observability/prometheus/prometheus.yml")).toBe("/etc/prometheus/prometheus.yml");
  });

  it("starts the worker with the heap bounds `streamfleet run` would apply itself", () => {
    expect(services.worker!.environment!.NODE_OPTIONS).toBe(missingHeapFlags([], "").join(" "));
    expect(missingWorkerEnv(services.worker!.environment as NodeJS.ProcessEnv)).toEqual({});
  });

  it("provisions Grafana with the Prometheus service as its data source and the dashboard it mounts", () => {
    const grafana = mounts(services.grafana!);
    const ds = read("observability/grafana/provisioning/datasources/prometheus.yml") as { datasources: Array<{ url: string; type: string }> };
    expect(ds.datasources[0]).toMatchObject({ type: "prometheus", url: `http://prometheus:9090` });
    expect(services.prometheus!.ports).toContain("9090:9090");
    const providers = read("observability/grafana/provisioning/dashboards/streamfleet.yml") as { providers: Array<{ options: { path: string } }> };
    const dashboards = grafana.get("observability/grafana/dashboards")!;
    expect(providers.providers[0]!.options.path).toBe(dashboards);
    expect(grafana.get("observability/grafana/provisioning")).toBe("/etc/grafana/provisioning");
    const home = services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(path.dirname(home)).toBe(dashboards);
    expect(fs.existsSync(path.join(ROOT, "observability/grafana/dashboards", path.basename(home)))).toBe(true);
  });
});
