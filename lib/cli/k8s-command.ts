import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { SfError } from "../errors.ts";
import { defaultCatalogue } from "../runtime/fleet.ts";
import type { Topology } from "../topology/model.ts";
import { groupOf, loadTopologies } from "../topology/loader.ts";
import { parseCommand } from "./args.ts";
import { missingHeapFlags, WORKER_ENV } from "./worker-heap.ts";

/** The image's admin port (Dockerfile: STREAMFLEET_ADMIN_PORT). */
export const ADMIN_PORT = 9464;

export interface K8sOptions {
  image: string;
  /** KEDA's bootstrap servers: the brokers as the cluster reaches them. */
  bootstrapServers: string;
  /** Target lag per replica. */
  lagThreshold: number;
  /** Partitions of each source topic (or of a pattern source, keyed by the pattern). */
  partitions: ReadonlyMap<string, number>;
}

export interface TopologyManifests {
  topology: string;
  /** The topology file, relative to the working directory (as the Deployment runs it). */
  source: string;
  /** The file written: <out>/<topology>.yaml. */
  file: string;
  /** Deployment, Service, ScaledObject, ServiceMonitor. */
  docs: Record<string, unknown>[];
}

const DNS_LABEL = 63;

/** A Kubernetes object name (DNS-1035 label) for a topology name (lowercase, '-' for '.' and '_'). */
export function objectName(topology: string): string {
  const name = `streamfleet-${topology.replace(/[^a-z0-9-]/g, "-")}`.slice(0, DNS_LABEL).replace(/-+$/, "");
  return name;
}

/** A label value for a topology name (names match [a-z0-9][a-z0-9._-]*, so only length and the end matter). */
function labelValue(topology: string): string {
  return topology.slice(0, DNS_LABEL).replace(/[^a-z0-9]+$/, "");
}

/** The source topics' total partition count, from `--partitions` (topic, or the pattern for a pattern source). */
export function sourcePartitions(t: Topology, partitions: ReadonlyMap<string, number>): number {
  const keys = t.source.topics ?? [t.source.pattern!];
  let total = 0;
  for (const key of keys) {
    const n = partitions.get(key) ?? partitions.get("*");
    if (n === undefined) {
      throw new SfError("SF_ERR_CLI_USAGE", `the partition count of ${t.source.topics ? `topic ${key}` : `the topics matching ${key}`} (topology ${t.name}) is unknown: give --partitions ${key}=N, or a default --partitions N`);
    }
    total += n;
  }
  return total;
}

/** The manifests of one topology; `file` is the topology file as the image's working directory sees it. */
export function topologyManifests(t: Topology, file: string, o: K8sOptions): Record<string, unknown>[] {
  const name = objectName(t.name);
  const labels = { "app.kubernetes.io/name": "streamfleet", "streamfleet.io/topology": labelValue(t.name) };
  const maxReplicas = sourcePartitions(t, o.partitions);
  const deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // > STREAMFLEET_SHUTDOWN_MS: in-flight batches drain and commit before the kill.
          terminationGracePeriodSeconds: 45,
          containers: [
            {
              name: "worker",
              image: o.image,
              args: [file, "--json"],
              envFrom: [{ secretRef: { name: "streamfleet-connections" } }],
              env: [
                { name: "STREAMFLEET_ADMIN_HOST", value: "0.0.0.0" },
                { name: "STREAMFLEET_ADMIN_PORT", value: String(ADMIN_PORT) },
                { name: "STREAMFLEET_SHUTDOWN_MS", value: "30000" },
                { name: "NODE_OPTIONS", value: missingHeapFlags([], "").join(" ") },
                ...Object.entries(WORKER_ENV).map(([name, value]) => ({ name, value })),
              ],
              ports: [{ name: "admin", containerPort: ADMIN_PORT }],
              livenessProbe: { httpGet: { path: "/healthz", port: "admin" }, periodSeconds: 10 },
              readinessProbe: { httpGet: { path: "/readyz", port: "admin" }, periodSeconds: 10, failureThreshold: 3 },
              resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } },
            },
          ],
        },
      },
    },
  };
  const service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, labels },
    spec: { clusterIP: "None", selector: labels, ports: [{ name: "admin", port: ADMIN_PORT, targetPort: "admin" }] },
  };
  const single = t.source.topics?.length === 1 ? t.source.topics[0] : undefined;
  const scaledObject = {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name, labels },
    spec: {
      scaleTargetRef: { name },
      minReplicaCount: 1,
      maxReplicaCount: maxReplicas,
      cooldownPeriod: 300,
      triggers: [
        {
          type: "kafka",
          metadata: {
            bootstrapServers: o.bootstrapServers,
            consumerGroup: groupOf(t),
            // One topic: its lag. Several (or a pattern): every topic the group has offsets for.
            ...(single ? { topic: single } : {}),
            lagThreshold: String(o.lagThreshold),
            offsetResetPolicy: t.source.start,
            allowIdleConsumers: "false",
          },
        },
      ],
    },
  };
  const serviceMonitor = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    metadata: { name, labels },
    spec: {
      // job="streamfleet", as the alert rules (k8s/prometheusrule.yaml) expect.
      jobLabel: "app.kubernetes.io/name",
      selector: { matchLabels: labels },
      endpoints: [{ port: "admin", path: "/metrics", interval: "15s" }],
    },
  };
  return [deployment, service, scaledObject, serviceMonitor];
}

/** `--partitions "6,orders=12"`: a default (key "*") and per-topic counts. */
export function parsePartitions(spec: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!spec) return out;
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.lastIndexOf("=");
    const key = eq < 0 ? "*" : part.slice(0, eq);
    const raw = eq < 0 ? part : part.slice(eq + 1);
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 1 || !key) throw new SfError("SF_ERR_CLI_USAGE", `--partitions takes N or TOPIC=N, comma-separated, with N ≥ 1; got "${part}" (see \`streamfleet k8s --help\`)`);
    out.set(key, n);
  }
  return out;
}

const GENERATED = "# Generated by `streamfleet k8s`";

function header(t: Topology, file: string, maxReplicas: number): string {
  return [
    `${GENERATED} from ${file}: do not edit, generate again.`,
    `# Topology ${t.name}: Deployment (image, topology file, admin port ${ADMIN_PORT}, probes), headless Service for`,
    `# the ServiceMonitor, KEDA ScaledObject on consumer group ${groupOf(t)} (at most ${maxReplicas} replicas: its partitions).`,
    `# Connections come from the Secret streamfleet-connections, never from topology files.`,
    "",
  ].join("\n");
}

/** Builds every topology's manifests; the files are not written. */
export async function fleetManifests(inputs: string[], out: string, o: K8sOptions, cwd = process.cwd()): Promise<Array<TopologyManifests & { text: string }>> {
  const loaded = await loadTopologies(inputs, defaultCatalogue());
  const names = new Map<string, string>();
  return loaded.map(({ topology: t, file }) => {
    const name = objectName(t.name);
    if (names.has(name)) throw new SfError("SF_ERR_TOPOLOGY_DUPLICATE", `topologies ${names.get(name)} and ${t.name} give the same Kubernetes name ${name}: rename one`);
    names.set(name, t.name);
    const rel = path.relative(cwd, file).split(path.sep).join("/");
    if (rel.startsWith("..") || path.isAbsolute(rel)) throw new SfError("SF_ERR_CLI_USAGE", `${file} is outside the working directory: run \`streamfleet k8s\` from the directory the image holds the topologies in`);
    const docs = topologyManifests(t, rel, o);
    const text = header(t, rel, sourcePartitions(t, o.partitions)) + docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n");
    return { topology: t.name, source: rel, file: path.join(out, `${t.name}.yaml`), docs, text };
  });
}

/** `streamfleet k8s [files|dirs] --partitions SPEC [--out DIR] [--image IMAGE] ...`. */
export async function k8sCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("k8s", args);
  const out = (values.out as string | undefined) ?? "k8s";
  const options: K8sOptions = {
    image: (values.image as string | undefined) ?? "streamfleet:latest",
    bootstrapServers: (values["bootstrap-servers"] as string | undefined) ?? "kafka:9092",
    lagThreshold: (values["lag-threshold"] as number | undefined) ?? 1000,
    partitions: parsePartitions(values.partitions as string | undefined),
  };
  const manifests = await fleetManifests(positionals.length ? positionals : ["topologies"], out, options);
  fs.mkdirSync(out, { recursive: true });
  for (const m of manifests) {
    fs.writeFileSync(m.file, m.text);
    console.log(`${m.file}: ${m.docs.map((d) => d.kind).join(", ")}`);
  }
  // A file this command wrote for a topology that is gone (its file deleted, or renamed inside
  // a file generated now) would keep deploying it: removed. Others' files are left alone.
  const written = new Set(manifests.map((m) => path.basename(m.file)));
  const sources = new Set(manifests.map((m) => m.source));
  for (const f of fs.readdirSync(out).filter((f) => f.endsWith(".yaml") && !written.has(f))) {
    const first = fs.readFileSync(path.join(out, f), "utf8").split("\n", 1)[0]!;
    const source = first.startsWith(`${GENERATED} from `) ? first.slice(`${GENERATED} from `.length).split(": ")[0] : undefined;
    if (source === undefined || (fs.existsSync(source) && !sources.has(source))) continue;
    fs.rmSync(path.join(out, f));
    console.log(`${path.join(out, f)}: removed (topology ${source} ${fs.existsSync(source) ? "has another name now" : "is gone"})`);
  }
  return 0;
}
