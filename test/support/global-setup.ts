import type { TestProject } from "vitest/node";
import { stackOptionsFromEnv, stackUp, stackDown } from "../../lib/stack/stack.ts";
import type { StackAddresses } from "../../lib/stack/stack.ts";
import { startDockerStack } from "./docker-stack.ts";

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
    await stackUp(o, (line) => console.log(`[stack] ${line}`));
    if (ours.length === 0 && process.env.STREAMFLEET_KEEP_STACK !== "1") teardown = async () => void (await stackDown(o));
  }
  Object.assign(process.env, addresses);
  project.provide("stack", addresses);
  project.provide("stackSkipReason", skip);
  return teardown;
}
