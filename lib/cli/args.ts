import { parseArgs } from "node:util";
import { SfError } from "../errors.ts";

/**
 * Every `streamfleet` command's arguments, declared once: node's `util.parseArgs` checks them
 * (unknown flags, missing values), this file checks numbers and verbs, and the same
 * declarations print `--help`. Pure, and free of heavy imports: `main.ts` parses before it
 * loads a command.
 */
export interface FlagSpec {
  type: "string" | "boolean";
  /** For string flags: the value must be an integer in [min, max]. */
  integer?: { min: number; max: number };
  /** How the value is written in help, e.g. "N" or "DIR". */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** Positionals as written in the usage line, e.g. "[files|dirs]". */
  usage: string;
  summary: string;
  flags: Record<string, FlagSpec>;
  /** How many positionals the command takes at most (undefined: any number). */
  maxPositionals?: number;
  /** Allowed values of the first positional (a verb), if any. */
  verbs?: readonly string[];
  /** Positionals the command needs (with its verb). */
  minPositionals?: number;
}

const INPUTS = "[files|dirs]";

export const COMMANDS = {
  run: {
    usage: INPUTS,
    summary: "run topologies until SIGTERM (default: $STREAMFLEET_TOPOLOGIES or ./topologies)",
    flags: {
      "admin-port": { type: "string", integer: { min: 0, max: 65535 }, value: "N", help: "port of /metrics, /healthz, /readyz, /health (default $STREAMFLEET_ADMIN_PORT or 9464; 0 picks a free one)" },
      json: { type: "boolean", help: "JSON log lines only, no live summary even on a terminal" },
      watch: { type: "boolean", help: "reload a topology when its file, transform module or .avsc changes (validated first; a refused change keeps the running version)" },
    },
  },
  validate: {
    usage: INPUTS,
    summary: "check topologies: every problem of every file, then their Avro subjects against the registry",
    flags: { offline: { type: "boolean", help: "skip the registry checks" } },
  },
  graph: { usage: INPUTS, summary: "the fleet's DAG (topics between topologies) as Mermaid", flags: {} },
  k8s: {
    usage: INPUTS,
    summary: "Kubernetes manifests per topology: Deployment, Service, KEDA ScaledObject on its consumer-group lag, ServiceMonitor (docs/kubernetes.md)",
    flags: {
      partitions: { type: "string", value: "SPEC", help: "partitions of the source topics, the most replicas that get work: N for every topic and/or TOPIC=N, comma-separated (required)" },
      out: { type: "string", value: "DIR", help: "where <topology>.yaml files are written (default k8s)" },
      image: { type: "string", value: "IMAGE", help: "the worker image (default streamfleet:latest)" },
      "bootstrap-servers": { type: "string", value: "HOSTS", help: "Kafka brokers as KEDA reaches them (default kafka:9092)" },
      "lag-threshold": { type: "string", integer: { min: 1, max: 1_000_000_000 }, value: "N", help: "target consumer lag per replica (default 1000)" },
    },
  },
  test: {
    usage: "[files|dirs]",
    summary: "offline topology tests: run each *.test.yaml's inputs through its topology's codecs and steps, compare what its sinks would write (docs/testing.md)",
    flags: { junit: { type: "string", value: "FILE", help: "also write a JUnit XML report to FILE (for CI)" } },
  },
  init: {
    usage: "[dir]",
    summary: "scaffold a project: package.json, a topology with its Avro schema, a transform, an offline test, Dockerfile, k8s Deployment, README",
    flags: {
      name: { type: "string", value: "NAME", help: "the project and topology name (default: the directory's name)" },
      from: { type: "string", value: "SPEC", help: "where the project installs streamfleet from: a tarball path or git URL (default: this version from the npm registry)" },
    },
    maxPositionals: 1,
  },
  dlq: {
    usage: "replay <topology>",
    summary: "send a topology's dead letters back to their source topics, after a fix",
    flags: {
      dir: { type: "string", value: "DIR", help: "where the topologies are (default $STREAMFLEET_TOPOLOGIES or ./topologies)" },
      "dry-run": { type: "boolean", help: "count what would be replayed, send nothing" },
    },
    verbs: ["replay"],
    minPositionals: 2,
    maxPositionals: 2,
  },
  features: {
    usage: "export | rebuild <topology> | drop-version | compact",
    summary:
      "export: point-in-time training sets from feature views' offline log (REDIS_URL for the view registry, DATABASE_URL for the log); rebuild <topology> --view V --from TIME: a new version of the view computed from the source topic's history with the topology file's definition (its own consumer group, from the first record at or after TIME), readers switched to it once it caught up with the topic's end as of its start, then new records applied to it until the topology runs the new definition; drop-version --view V --version N: delete a version readers no longer read (its Redis keys; offline log rows stay); compact --view V: build the view's snapshots (per entity, its features at the close of each period, a day by default, that ended an hour ago or more) so point-in-time reads fold only the log rows after the newest one; run it periodically (the sink's log writes go on, late rows are tracked); --cluster also rewrites the view's log partition in (entity, event_time) order (PostgreSQL CLUSTER; the view's log writes wait meanwhile)",
    flags: {
      view: { type: "string", value: "VIEW", help: "the feature view (required)" },
      rows: { type: "string", value: "FILE", help: "CSV with a header: the entity id and timestamp columns, any others (labels) passed through (required)" },
      out: { type: "string", value: "FILE", help: "the training set: the rows' columns then one column per feature (required)" },
      names: { type: "string", value: "A,B", help: "only these features (default all)" },
      "entity-column": { type: "string", value: "NAME", help: "column of the entity id (default entity)" },
      "time-column": { type: "string", value: "NAME", help: "column of the time as of which features are read: epoch ms or ISO 8601 (default timestamp)" },
      "key-prefix": { type: "string", value: "PREFIX", help: "the sinks' key_prefix (default empty; rebuild reads it from the topology)" },
      from: { type: "string", value: "TIME", help: "rebuild: read the source from this time (epoch ms or ISO 8601; the Kafka record timestamp) (required)" },
      "no-follow": { type: "boolean", help: "rebuild: end at the switch instead of applying new records until the topology runs the new definition" },
      version: { type: "string", integer: { min: 1, max: 1_000_000 }, value: "N", help: "drop-version: the version to delete (not the one readers read)" },
      every: { type: "string", value: "DURATION", help: "compact: the snapshot period (default 1d; e.g. 6h): one snapshot per entity per period it changed in" },
      grace: { type: "string", value: "DURATION", help: "compact: build a period only once it ended this long ago (default 1h): rows older than that are late rows" },
      cluster: { type: "boolean", help: "compact: also CLUSTER the view's log partition on its (entity, event_time) index (the view's log writes wait while it runs)" },
    },
    verbs: ["export", "rebuild", "drop-version", "compact"],
    minPositionals: 1,
    maxPositionals: 2,
  },
  stack: {
    usage: "up|down|status|env",
    summary: "start, stop or check the local services (default: status)",
    flags: {
      secure: { type: "boolean", help: "the secured stack: our own servers demanding credentials and TLS, on their own ports (docs/security.md)" },
      "kafka-brokers": { type: "string", integer: { min: 1, max: 9 }, value: "N", help: "a replicated Kafka cluster of N KRaft brokers on ports 9292.. (RF min(3,N), min.insync.replicas RF-1 for the topics it creates), in its own state dir" },
      "redis-cluster": { type: "boolean", help: "a Redis Cluster of three masters on ports 7001.. (REDIS_CLUSTER_NODES), in its own state dir" },
    },
    verbs: ["up", "down", "status", "env"],
    maxPositionals: 1,
  },
  start: { usage: "", summary: "the demo: stack, example fleet, feature server, receivers, producer; Ctrl-C stops it all", flags: {}, maxPositionals: 0 },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** A command line that does not parse: the CLI prints the message as one line and exits 2. */
function usageError(command: string, message: string): SfError {
  return new SfError("SF_ERR_CLI_USAGE", `${message} (see \`streamfleet ${command} --help\`)`);
}

export interface Parsed {
  help: boolean;
  values: Record<string, string | boolean | number | undefined>;
  positionals: string[];
}

/** Parses one command's arguments; throws SF_ERR_CLI_USAGE with one line on anything wrong. */
export function parseCommand(name: CommandName, args: readonly string[]): Parsed {
  const spec: CommandSpec = COMMANDS[name];
  const options = Object.fromEntries([
    ["help", { type: "boolean", short: "h" }],
    ...Object.entries(spec.flags).map(([flag, f]) => [flag, { type: f.type }]),
  ]) as Record<string, { type: "string" | "boolean"; short?: string }>;
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw usageError(name, plain((err as Error).message));
  }
  const values: Parsed["values"] = { ...parsed.values };
  if (values.help) return { help: true, values, positionals: parsed.positionals };
  for (const [flag, f] of Object.entries(spec.flags)) {
    const raw = parsed.values[flag];
    if (f.integer && typeof raw === "string") values[flag] = integer(name, flag, raw, f.integer);
  }
  const p = parsed.positionals;
  if (spec.verbs && p[0] !== undefined && !spec.verbs.includes(p[0])) {
    throw usageError(name, `unknown ${name} command "${p[0]}": use ${spec.verbs.join(", ")}`);
  }
  if (spec.minPositionals !== undefined && p.length < spec.minPositionals) throw usageError(name, `missing argument: streamfleet ${name} ${spec.usage}`);
  if (spec.maxPositionals !== undefined && p.length > spec.maxPositionals) throw usageError(name, `unexpected argument "${p[spec.maxPositionals]}"`);
  return { help: false, values, positionals: p };
}

function integer(command: string, flag: string, raw: string, range: { min: number; max: number }): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw usageError(command, `--${flag} must be an integer from ${range.min} to ${range.max}, got "${raw}"`);
  }
  return n;
}

/** parseArgs's messages, cut to their first sentence and without node's error-code prefix. */
function plain(message: string): string {
  return message
    .split(/\.\s/)[0]!
    .replace(/\.$/, "")
    .replace(/^Unknown option '(.+)'$/, "unknown option $1")
    .replace(/^Option '(-\S+)(?:, (--\S+))? <value>' argument missing$/, (_, a: string, b?: string) => `${b ?? a} needs a value`);
}

/** `streamfleet <command> --help`. */
export function commandHelp(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const flags: [string, string][] = Object.entries(spec.flags).map(([flag, f]) => [`--${flag}${f.value ? ` ${f.value}` : ""}`, f.help]);
  flags.push(["-h, --help", "this help"]);
  const width = Math.max(...flags.map(([f]) => f.length));
  return [`usage: streamfleet ${name}${spec.usage ? ` ${spec.usage}` : ""} [options]`, "", spec.summary, "", "options:", ...flags.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`)].join("\n");
}

/** `streamfleet --help`: every command with its summary. */
export function topLevelHelp(): string {
  const lines = (Object.keys(COMMANDS) as CommandName[]).map((n) => [`${n} ${COMMANDS[n].usage}`.trim(), COMMANDS[n].summary] as const);
  const width = Math.max(...lines.map(([u]) => u.length));
  return [
    "usage: streamfleet <command> [options]",
    "",
    "commands:",
    ...lines.map(([u, summary]) => `  ${u.padEnd(width)}  ${summary}`),
    "",
    "`streamfleet <command> --help` shows a command's arguments and options.",
  ].join("\n");
}
