import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv } from "ajv";
import type { ValidateFunction } from "ajv";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ADMIN_PORT, fleetManifests, parsePartitions } from "../../lib/cli/k8s-command.ts";
import type { K8sOptions } from "../../lib/cli/k8s-command.ts";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { groupOf, loadTopologyFile } from "../../lib/topology/loader.ts";
import { demo as ml } from "../../topologies/ml/demo.ts";
import { demo as resident } from "../../topologies/resident/demo.ts";
import { ROOT } from "../support/observability.ts";

/**
 * k8s/fleet/ is what `streamfleet k8s topologies --partitions 3 --out k8s/fleet` writes for the
 * example fleet. Its manifests are checked against the Kubernetes 1.25, KEDA 2.10 and
 * Prometheus Operator schemas vendored in test/fixtures/k8s-schemas/ (how: vendor.ts there),
 * strictly — an unknown field fails, as `kubectl apply` with strict field validation refuses it —
 * and against the topologies they run.
 */
const FLEET = path.join(ROOT, "k8s/fleet");
const SCHEMAS = path.join(ROOT, "test/fixtures/k8s-schemas");
const OPTIONS: K8sOptions = { image: "streamfleet:latest", bootstrapServers: "kafka:9092", lagThreshold: 1000, partitions: parsePartitions("3") };

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels: Record<string, string> }; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Partitions of the example topics: as the demo producer creates them, else as a runner creates a missing source topic (3). */
function examplePartitions(topic: string): number {
  return [...ml.topics, ...resident.topics].find((t) => t.topic === topic)?.partitions ?? 3;
}

/** Unknown fields are refused: every object schema that lists its properties gets additionalProperties false. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== "object") return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === "properties" ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v)]));
  if ("properties" in out && !("additionalProperties" in out)) out.additionalProperties = false;
  return out;
}

let compiled: Record<string, ValidateFunction> | undefined;

function validators(): Record<string, ValidateFunction> {
  if (compiled) return compiled;
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const ids = new Set<string>();
  for (const file of fs.readdirSync(SCHEMAS).filter((f) => f.endsWith(".json"))) {
    const bundle = JSON.parse(fs.readFileSync(path.join(SCHEMAS, file), "utf8")) as Record<string, object>;
    for (const [id, schema] of Object.entries(bundle)) {
      if (ids.has(id)) continue;
      ids.add(id);
      ajv.addSchema(strict(schema) as object, id);
    }
  }
  const get = (id: string) => ajv.getSchema(id)!;
  return (compiled = {
    "apps/v1/Deployment": get("io.k8s.api.apps.v1.Deployment"),
    "v1/Service": get("io.k8s.api.core.v1.Service"),
    "keda.sh/v1alpha1/ScaledObject": get("keda.sh.v1alpha1.ScaledObject"),
    "monitoring.coreos.com/v1/ServiceMonitor": get("monitoring.coreos.com.v1.ServiceMonitor"),
  });
}

function fleetFiles(): Map<string, Doc[]> {
  return new Map(
    fs
      .readdirSync(FLEET)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => [f, parseAllDocuments(fs.readFileSync(path.join(FLEET, f), "utf8")).map((d) => d.toJS() as Doc)]),
  );
}

function schemaErrors(validate: Record<string, ValidateFunction>, doc: unknown): string[] {
  const d = doc as Doc;
  const v = validate[`${d.apiVersion}/${d.kind}`];
  if (!v) return [`no schema for ${d.apiVersion} ${d.kind}`];
  return v(doc) ? [] : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

describe("streamfleet k8s: manifests per topology", () => {
  it("k8s/fleet is what the command writes for the example fleet (generate again after a topology changes)", async () => {
    const manifests = await fleetManifests([path.join(ROOT, "topologies")], FLEET, OPTIONS, ROOT);
    expect(manifests.length).toBeGreaterThan(5);
    expect([...fleetFiles().keys()].sort()).toEqual(manifests.map((m) => path.basename(m.file)).sort());
    for (const m of manifests) expect(fs.readFileSync(m.file, "utf8"), m.file).toBe(m.text);
  });

  it("every manifest passes the Kubernetes, KEDA and Prometheus Operator schemas, unknown fields refused", () => {
    const validate = validators();
    for (const [file, docs] of fleetFiles()) {
      expect(docs.map((d) => d.kind), file).toEqual(["Deployment", "Service", "ScaledObject", "ServiceMonitor"]);
      for (const doc of docs) expect(schemaErrors(validate, doc), `${file} ${doc.kind}`).toEqual([]);
    }
  });

  it("the schema check fails on what a cluster would refuse", () => {
    const validate = validators();
    const [deployment, , scaledObject, monitor] = fleetFiles().values().next().value!;
    const broken = structuredClone(deployment!);
    broken.spec.template.spec.containers[0].livenessProbe.httpGet.paht = "/healthz";
    expect(schemaErrors(validate, broken).join()).toMatch(/additional properties.*paht/);
    const noContainers = structuredClone(deployment!);
    delete noContainers.spec.template.spec.containers;
    expect(schemaErrors(validate, noContainers).join()).toMatch(/containers/);
    const textReplicas = structuredClone(scaledObject!);
    textReplicas.spec.maxReplicaCount = "3";
    expect(schemaErrors(validate, textReplicas).join()).toMatch(/maxReplicaCount must be integer/);
    const noTriggers = structuredClone(scaledObject!);
    delete noTriggers.spec.triggers;
    expect(schemaErrors(validate, noTriggers).join()).toMatch(/triggers/);
    const noSelector = structuredClone(monitor!);
    delete noSelector.spec.selector;
    expect(schemaErrors(validate, noSelector).join()).toMatch(/selector/);
  });

  it("each file runs its topology: its file, consumer group, lag on its topics, at most its partitions, probes, scraped on the admin port", async () => {
    for (const [file, [deployment, service, scaledObject, monitor]] of fleetFiles()) {
      const pod = deployment!.spec.template;
      const worker = pod.spec.containers[0];
      const topologyFile = worker.args[0] as string;
      const { topology: t } = await loadTopologyFile(path.join(ROOT, topologyFile), defaultCatalogue());
      expect(file).toBe(`${t.name}.yaml`);
      expect(deployment!.metadata.labels["streamfleet.io/topology"]).toBe(t.name);
      expect(worker.args).toEqual([topologyFile, "--json"]);
      // Runs in the image: the Dockerfile copies topologies/ and schemas/ into its working directory.
      expect(topologyFile).toMatch(/^topologies\//);

      // The Deployment's selector picks its own pods; the Service and the ServiceMonitor pick them too.
      expect(pod.metadata.labels).toEqual(deployment!.spec.selector.matchLabels);
      expect(service!.spec.selector).toEqual(pod.metadata.labels);
      expect(monitor!.spec.selector.matchLabels).toEqual(service!.metadata.labels);
      expect(service!.metadata.labels[monitor!.spec.jobLabel]).toBe("streamfleet"); // job="streamfleet", as the alert rules expect

      const env = Object.fromEntries((worker.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
      expect(Number(env.STREAMFLEET_ADMIN_PORT)).toBe(ADMIN_PORT);
      const admin = (worker.ports as Array<{ name: string; containerPort: number }>).find((p) => p.name === "admin")!;
      expect(admin.containerPort).toBe(ADMIN_PORT);
      expect(worker.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "admin" });
      expect(worker.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "admin" });
      expect(service!.spec.ports).toContainEqual({ name: "admin", port: ADMIN_PORT, targetPort: "admin" });
      expect(monitor!.spec.endpoints[0]).toMatchObject({ port: "admin", path: "/metrics" });
      expect(worker.resources.limits.memory).toBeDefined();
      expect(worker.resources.requests.cpu).toBeDefined();

      expect(scaledObject!.spec.scaleTargetRef).toEqual({ name: deployment!.metadata.name });
      const [trigger] = scaledObject!.spec.triggers as Array<{ type: string; metadata: Record<string, string> }>;
      expect(trigger!.type).toBe("kafka");
      expect(trigger!.metadata.consumerGroup).toBe(groupOf(t));
      const topics = t.source.topics!;
      if (topics.length === 1) expect(trigger!.metadata.topic).toBe(topics[0]);
      else expect(trigger!.metadata.topic, "several topics: the group's lag over all of them").toBeUndefined();
      const partitions = topics.reduce((n, topic) => n + examplePartitions(topic), 0);
      expect(scaledObject!.spec.maxReplicaCount).toBeLessThanOrEqual(partitions);
      expect(scaledObject!.spec.maxReplicaCount).toBeGreaterThanOrEqual(scaledObject!.spec.minReplicaCount);
    }
  });

  it("the CLI writes one file per topology to --out, and exits 2 naming the flag when a partition count is missing", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sf-k8s-"));
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "k8s", ...args], { cwd: ROOT, encoding: "utf8" });
    try {
      // A file generated for a topology whose file is gone goes, and so does one for a topology
      // renamed in its file; one whose topology was just not among the inputs stays, as do hand-written ones.
      const generated = (from: string) => `# Generated by \`streamfleet k8s\` from ${from}: do not edit, generate again.\n`;
      fs.writeFileSync(path.join(out, "resident-gone.yaml"), generated("topologies/resident/gone.yaml"));
      fs.writeFileSync(path.join(out, "resident-old-name.yaml"), generated("topologies/resident/users.yaml"));
      fs.writeFileSync(path.join(out, "ml-audit.yaml"), generated("topologies/ml/audit.yaml"));
      fs.writeFileSync(path.join(out, "mine.yaml"), "# my own\n");
      const ok = cli("topologies/resident", "--partitions", "3", "--out", out, "--image", "registry.example/streamfleet:1.0");
      expect(ok.status, ok.stderr).toBe(0);
      expect(fs.readdirSync(out).sort()).toEqual([...fs.readdirSync(FLEET).filter((f) => f.startsWith("resident-")), "ml-audit.yaml", "mine.yaml"].sort());
      const [deployment] = parseAllDocuments(fs.readFileSync(path.join(out, "resident-users.yaml"), "utf8")).map((d) => d.toJS() as Doc);
      expect(deployment!.spec.template.spec.containers[0].image).toBe("registry.example/streamfleet:1.0");
      const missing = cli("topologies/resident", "--out", out);
      expect(missing.status).toBe(2);
      expect(missing.stderr).toMatch(/partition count of topic resident\.\S+ .*--partitions/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it("takes partitions per topic, and refuses to guess a count it was not given", async () => {
    const users = path.join(ROOT, "topologies/resident/users.yaml");
    const [m] = await fleetManifests([users], "/tmp/out", { ...OPTIONS, partitions: parsePartitions("2,resident.user-events=12") }, ROOT);
    expect((m!.docs[2] as Doc).spec.maxReplicaCount).toBe(12);
    await expect(fleetManifests([users], "/tmp/out", { ...OPTIONS, partitions: parsePartitions("other=4") }, ROOT)).rejects.toThrow(/--partitions resident.user-events=N/);
    expect(() => parsePartitions("orders=0")).toThrow(/N ≥ 1/);
    expect(() => parsePartitions("orders=x")).toThrow(/TOPIC=N/);
  });
});
