/**
 * The demo behind `npm start`: the stack, both example systems' topologies, the feature
 * server, the example receivers and a producer of realistic traffic, with a live summary.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { startLiveView } from "../lib/cli/live-view.ts";
import type { RunOptions } from "../lib/cli/run-command.ts";
import { startWorker } from "../lib/cli/run-command.ts";
import { startFeatureServer } from "../lib/features/server.ts";
import { createLogger } from "../lib/observability/logger.ts";
import type { EngineMetrics } from "../lib/observability/metrics.ts";
import { redact, stackOptionsFromEnv, stackUp } from "../lib/stack/stack.ts";
import { Daemons } from "../lib/stack/daemon.ts";
import { startNotificationWorker } from "./bullmq-receiver.ts";
import { findDemoSystems, startDemoProducer } from "./demo-producer.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

interface Closable {
  name: string;
  close: () => Promise<unknown>;
}

/** Runs the demo until SIGINT/SIGTERM; returns the exit code. */
export async function runDemo(env: NodeJS.ProcessEnv): Promise<number> {
  const say = (line: string) => console.log(line);
  const stackOptions = stackOptionsFromEnv(env);
  const before = new Daemons(stackOptions.stateDir);
  const oursBefore = new Set(["kafka", "registry", "redis", "rabbitmq"].filter((n) => before.pid(n) !== undefined));
  say("streamfleet demo: bringing the stack up (or using the servers named in the environment)");
  const status = await stackUp(stackOptions, (line) => say(`  ${line}`));
  const addresses = stackOptions.addresses;
  const fullEnv: NodeJS.ProcessEnv = { ...env, ...addresses };
  const closables: Closable[] = [];
  const logFile = path.join(stackOptions.stateDir, "logs", "demo.log");
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const logger = createLogger({ level: env.LOG_LEVEL ?? "info", destination: fs.createWriteStream(logFile, { flags: "a" }) as never });
  const live = process.stdout.isTTY === true;
  let stopping = false;
  const stopAll = async () => {
    for (const c of closables.reverse()) {
      await c.close().catch((err: unknown) => console.error(`stopping ${c.name}: ${(err as Error).message}`));
    }
    if (env.STREAMFLEET_KEEP_STACK !== "1") {
      const daemons = new Daemons(stackOptions.stateDir);
      const startedNow = ["kafka", "registry", "redis", "rabbitmq"].filter((n) => !oursBefore.has(n) && daemons.pid(n) !== undefined);
      for (const name of startedNow) await daemons.stop(name);
      if (startedNow.length) say(`stopped the stack processes this demo started: ${startedNow.join(", ")}`);
    }
  };
  try {
    const runOptions: RunOptions = { inputs: [path.join(ROOT, "topologies")], env: fullEnv, adminPort: Number(env.STREAMFLEET_ADMIN_PORT ?? 9464), live: false, shutdownMs: 15_000 };
    say("starting the example topologies");
    const worker = await startWorker({ ...runOptions, logger });
    closables.push({ name: "fleet", close: worker.stop });

    const token = env.FEATURE_SERVER_TOKEN ?? crypto.randomBytes(18).toString("base64url");
    const tokenFile = path.join(stackOptions.stateDir, "feature-server.token");
    fs.writeFileSync(tokenFile, token, { mode: 0o600 });
    const redis = new Redis(addresses.REDIS_URL, { lazyConnect: true });
    await redis.connect();
    closables.push({ name: "redis client", close: () => redis.quit() });
    const features = await startFeatureServer({ redis, token, port: Number(env.FEATURE_SERVER_PORT ?? 8090), metrics: worker.fleet.metrics, logger });
    closables.push({ name: "feature server", close: () => features.close() });

    const notifications = await startNotificationWorker({ redisUrl: addresses.REDIS_URL, queue: "notifications", log: (l) => logger.debug(l, "notification sent") });
    closables.push({ name: "notification worker", close: () => notifications.close() });
    const mlReceivers = path.join(ROOT, "topologies/ml/receivers.ts");
    if (fs.existsSync(mlReceivers)) {
      const mod = (await import(pathToFileURL(mlReceivers).href)) as { startTrainingLoop?: (o: { env: NodeJS.ProcessEnv; logger: typeof logger }) => Promise<{ close(): Promise<void> }> };
      if (mod.startTrainingLoop) {
        const loop = await mod.startTrainingLoop({ env: fullEnv, logger });
        closables.push({ name: "training receiver", close: () => loop.close() });
      }
    }

    const systems = await findDemoSystems(path.join(ROOT, "topologies"));
    const producer = await startDemoProducer({
      systems,
      root: ROOT,
      brokers: addresses.KAFKA_BROKERS.split(","),
      registryUrl: addresses.SCHEMA_REGISTRY_URL,
      rate: Number(env.DEMO_RATE ?? 20),
      onError: (err) => logger.warn({ err: (err as Error).message }, "demo producer send failed"),
    });
    closables.push({ name: "demo producer", close: () => producer.stop() });

    const header = [
      `streamfleet demo — ${worker.fleet.runners.length} topologies (${systems.map((s) => s.name).join(", ")}), producing ${env.DEMO_RATE ?? 20} ticks/s`,
      `metrics   ${worker.adminUrl}/metrics     health ${worker.adminUrl}/health`,
      `features  ${features.url}/v1/features/<view>/<id>  (Authorization: Bearer <token in ${path.relative(process.cwd(), tokenFile)}>)  openapi ${features.url}/openapi.json`,
      `services  ${status.map((s) => `${s.name} ${s.up ? "up" : "DOWN"}`).join(", ")}   (${redact(addresses.AMQP_URL)})`,
      `logs      ${logFile}          Ctrl-C to stop`,
    ];
    let stopView: () => void;
    if (live) stopView = startLiveView(worker.fleet.metrics, (s) => process.stdout.write(s), header);
    else {
      header.forEach((h) => say(h));
      stopView = printSummaries(worker.fleet.metrics, producer.produced, say, Number(env.STREAMFLEET_DEMO_SUMMARY_MS ?? 10_000));
    }
    closables.push({ name: "summary", close: async () => stopView() });
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    stopping = true;
    say("\nstopping: producer, receivers, feature server, topologies (draining and committing)...");
    await stopAll();
    say("stopped cleanly");
    return 0;
  } catch (err) {
    if (!stopping) await stopAll();
    throw err;
  }
}

/** Without a terminal: one line per topology every interval (STREAMFLEET_DEMO_SUMMARY_MS, default 10 s). */
function printSummaries(metrics: EngineMetrics, produced: () => number, say: (l: string) => void, everyMs: number): () => void {
  const last = new Map<string, number>();
  let at = Date.now();
  const timer = setInterval(() => {
    void (async () => {
      const secs = (Date.now() - at) / 1000;
      at = Date.now();
      const totals = new Map<string, number>();
      for (const v of (await metrics.processed.get()).values) if (v.labels.outcome !== "retried") totals.set(String(v.labels.topology), (totals.get(String(v.labels.topology)) ?? 0) + v.value);
      const lag = new Map<string, number>();
      for (const v of (await metrics.lag.get()).values) lag.set(String(v.labels.topology), (lag.get(String(v.labels.topology)) ?? 0) + v.value);
      const dlq = new Map<string, number>();
      for (const v of (await metrics.dlq.get()).values) dlq.set(String(v.labels.topology), (dlq.get(String(v.labels.topology)) ?? 0) + v.value);
      say(`[${new Date().toISOString()}] produced ${produced()}`);
      for (const [t, total] of [...totals].sort()) {
        say(`  ${t.padEnd(32)} ${((total - (last.get(t) ?? 0)) / secs).toFixed(1).padStart(8)} rec/s  total ${total}  lag ${lag.get(t) ?? 0}  dlq ${dlq.get(t) ?? 0}`);
        last.set(t, total);
      }
    })();
  }, everyMs);
  return () => clearInterval(timer);
}
