import { createLogger } from "../observability/logger.ts";
import { Fleet } from "../runtime/fleet.ts";

/**
 * `streamfleet dlq replay <topology> [--dir topologies] [--dry-run]`: sends the topology's
 * dead letters back to their source topics, after a fix.
 */
export async function dlqCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [verb, name] = args;
  if (verb !== "replay" || !name) {
    console.error("usage: streamfleet dlq replay <topology name> [--dir topologies] [--dry-run]");
    return 2;
  }
  const dirArg = args.indexOf("--dir");
  const dir = dirArg >= 0 ? args[dirArg + 1]! : (env.STREAMFLEET_TOPOLOGIES ?? "topologies");
  const logger = createLogger({ level: env.LOG_LEVEL ?? "warn" });
  const fleet = await Fleet.load([dir], { env, logger });
  try {
    const result = await fleet.replayDeadLetters(name, { dryRun: args.includes("--dry-run") });
    console.log(`replayed ${result.replayed} record(s)${Object.entries(result.byTopic).map(([t, n]) => `\n  ${t}: ${n}`).join("")}`);
    return 0;
  } finally {
    await fleet.stop(1000);
  }
}
