import type { TestProject } from "vitest/node";
import { stackOptionsFromEnv, stackUp, stackDown } from "../../lib/stack/stack.ts";
import type { StackAddresses } from "../../lib/stack/stack.ts";
import { StackError } from "../../lib/stack/errors.ts";
import { startDockerStack } from "./docker-stack.ts";
import { underCi } from "./tools.ts";

const MISSING_TOOL = new Set(["SF_ERR_STACK_NO_JAVA", "SF_ERR_STACK_NO_MAVEN"]);

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackAddresses;
    /** Set when no stack can run here; integration suites skip and say why. */
    stackSkipReason: string;
  }
}

/**
 * Brings the real services up once for the whole run: the addresses given in the
 * environment, else the native stack (Java jars + OS services), else with
 * STREAMFLEET_STACK=docker, testcontainers. A native stack this run started is stopped at
 * the end unless STREAMFLEET_KEEP_STACK=1 (then `npm run stack -- down` stops it).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const o = stackOptionsFromEnv(process.env);
  let teardown = async () => {};
  let addresses: StackAddresses = o.addresses;
  let skip = "";
  if (process.env.STREAMFLEET_STACK === "docker") {
    const docker = await startDockerStack();
    if (typeof docker === "string") skip = docker;
    else {
      addresses = docker.addresses;
      teardown = docker.stop;
    }
  } else {
    const before = await import("../../lib/stack/daemon.ts").then((m) => new m.Daemons(o.stateDir));
    const ours = ["kafka", "registry"].filter((n) => before.pid(n) !== undefined);
    try {
      await stackUp(o, (line) => console.log(`[stack] ${line}`));
      if (ours.length === 0 && process.env.STREAMFLEET_KEEP_STACK !== "1") teardown = async () => void (await stackDown(o));
    } catch (err) {
      // No Java or Maven here: the suites that need the stack are skipped with the install line
      // (under CI, where .ci/run installs them, the run fails instead).
      if (!(err instanceof StackError) || !MISSING_TOOL.has(err.code) || underCi()) throw err;
      skip = err.message;
      console.log(`[stack] not started: ${err.message}`);
    }
  }
  Object.assign(process.env, addresses);
  project.provide("stack", addresses);
  project.provide("stackSkipReason", skip);
  return teardown;
}
