import { createLogger } from "../observability/logger.ts";
import type { Logger } from "../observability/logger.ts";
import { startAdminServer } from "../observability/admin-server.ts";
import { Fleet } from "../runtime/fleet.ts";
import { parseCommand } from "./args.ts";
import { startLiveView } from "./live-view.ts";
import { enableModuleVersions, withModuleTags } from "./module-versions.ts";
import { stopSignal } from "./stop-signal.ts";
import { TopologyWatcher } from "./watch.ts";

/** Options of `streamfleet run` that other entry points (npm start, workers/fleet.ts) reuse. */
export interface RunOptions {
  inputs: string[];
  /** Defaults to JSON lines on stdout at LOG_LEVEL. */
  logger?: Logger;
  env: NodeJS.ProcessEnv;
  adminPort: number;
  live: boolean;
  shutdownMs: number;
  /** Hot reload: swap a topology when its files change (lib/cli/watch.ts). */
  watch?: boolean;
}

export function runOptions(args: string[], env: NodeJS.ProcessEnv): RunOptions {
  const { values, positionals } = parseCommand("run", args);
  return {
    inputs: positionals.length ? positionals : [env.STREAMFLEET_TOPOLOGIES ?? "topologies"],
    env,
    adminPort: (values["admin-port"] as number | undefined) ?? Number(env.STREAMFLEET_ADMIN_PORT ?? 9464),
    live: process.stdout.isTTY === true && values.json !== true,
    shutdownMs: Number(env.STREAMFLEET_SHUTDOWN_MS ?? 30_000),
    watch: values.watch === true,
  };
}

/**
 * Starts the fleet and its admin server (and, with `watch`, the hot reload of changed
 * topologies); returns a function that stops watching, then drains and stops both.
 */
export async function startWorker(o: RunOptions): Promise<{ fleet: Fleet; adminUrl: string; stop: () => Promise<void> }> {
  const logger = o.logger ?? createLogger({ level: o.env.LOG_LEVEL ?? (o.live ? "warn" : "info") });
  if (!o.watch) return startFleet(o, logger);
  enableModuleVersions();
  const watcher = new TopologyWatcher({ inputs: o.inputs, logger });
  try {
    const { result: worker, tags } = await withModuleTags(new Map(), () => startFleet(o, logger));
    watcher.attach(worker.fleet, tags, o.shutdownMs);
    logger.info({ inputs: o.inputs }, "watching topologies for changes");
    return {
      ...worker,
      stop: async () => {
        await watcher.close();
        await worker.stop();
      },
    };
  } catch (err) {
    await watcher.close();
    throw err;
  }
}

async function startFleet(o: RunOptions, logger: Logger): Promise<{ fleet: Fleet; adminUrl: string; stop: () => Promise<void> }> {
  const fleet = await Fleet.load(o.inputs, { env: o.env, logger });
  const admin = await startAdminServer({
    port: o.adminPort,
    host: o.env.STREAMFLEET_ADMIN_HOST ?? "127.0.0.1",
    metrics: fleet.metrics,
    ready: () => fleet.ready(),
    health: () => fleet.health(),
  });
  try {
    await fleet.start();
  } catch (err) {
    // A topology that cannot start (a reader that cannot read its subject) stops the worker
    // before it consumes: the topologies started before it leave their groups, committed.
    await fleet.stop(o.shutdownMs).catch(() => {});
    await admin.close();
    logger.flush();
    throw err;
  }
  logger.info({ admin: admin.url, topologies: fleet.runners.map((r) => r.name) }, "worker started");
  return {
    fleet,
    adminUrl: admin.url,
    stop: async () => {
      await fleet.stop(o.shutdownMs);
      await admin.close();
      logger.flush();
    },
  };
}

/** `streamfleet run [files|dirs] [--admin-port N] [--json] [--watch]` until SIGTERM/SIGINT. */
export async function runCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = runOptions(args, env);
  // Listening from the first moment (main.ts starts it before loading this module): a SIGTERM while the worker starts (a rollout, a scale-in
  // right after a scale-out) stops it as soon as it has started — joined, nothing taken twice,
  // exit 0 — instead of killing it mid-join. A start that outlasts the shutdown budget after
  // the signal ends the process (it has committed nothing yet, so nothing is lost).
  let started = false;
  const signalled = stopSignal();
  void signalled.then(() => {
    if (!started) setTimeout(() => process.exit(1), o.shutdownMs).unref();
  });
  const worker = await startWorker(o);
  started = true;
  const stopView = o.live
    ? startLiveView(worker.fleet.metrics, (s) => process.stdout.write(s), [`streamfleet: ${worker.fleet.runners.length} topologies`, `metrics ${worker.adminUrl}/metrics   health ${worker.adminUrl}/health`, "Ctrl-C to stop"])
    : () => {};
  await signalled;
  stopView();
  await worker.stop();
  return 0;
}
