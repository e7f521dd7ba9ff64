import fs from "node:fs";
import { createLogger } from "../observability/logger.ts";
import { defaultCatalogue } from "../runtime/fleet.ts";
import { junitReport, textReport, totals } from "../testing/report.ts";
import { runTests } from "../testing/run.ts";
import { parseCommand } from "./args.ts";

/**
 * `streamfleet test [files|dirs] [--junit FILE]`: offline topology tests (docs/testing.md).
 * Exits 1 when a case fails or cannot run to the end, or a test file is wrong; a case whose
 * Redis-backed step finds no Redis is reported "not run" and does not fail the run.
 */
export async function testCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseCommand("test", args);
  const logger = createLogger({ level: env.LOG_LEVEL ?? "silent" });
  const results = await runTests(positionals.length ? positionals : [env.STREAMFLEET_TOPOLOGIES ?? "topologies"], { catalogue: defaultCatalogue(), env, logger });
  console.log(textReport(results));
  if (typeof values.junit === "string") fs.writeFileSync(values.junit, junitReport(results));
  const t = totals(results);
  if (t.failed + t.errors === 0) return 0;
  console.error(`streamfleet: ${t.failed} test case(s) failed, ${t.errors} could not run [SF_ERR_TEST_FAILED]`);
  return 1;
}
