import { createLogger } from "../observability/logger.ts";
import { Fleet } from "../runtime/fleet.ts";
import { parseCommand } from "./args.ts";

/**
 * `streamfleet dlq replay <topology> [--dir topologies] [--dry-run]`: sends the topology's
 * dead letters back to their source topics, after a fix.
 */
export async function dlqCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseCommand("dlq", args);
  const name = positionals[1]!;
  const dir = (values.dir as string | undefined) ?? env.STREAMFLEET_TOPOLOGIES ?? "topologies";
  const logger = createLogger({ level: env.LOG_LEVEL ?? "warn" });
  const fleet = await Fleet.load([dir], { env, logger });
  try {
    const result = await fleet.replayDeadLetters(name, { dryRun: values["dry-run"] === true });
    console.log(`replayed ${result.replayed} record(s)${Object.entries(result.byTopic).map(([t, n]) => `\n  ${t}: ${n}`).join("")}`);
    return 0;
  } finally {
    await fleet.stop(1000);
  }
}
