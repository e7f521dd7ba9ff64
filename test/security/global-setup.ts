import type { TestProject } from "vitest/node";
import { Daemons } from "../../lib/stack/daemon.ts";
import { StackError } from "../../lib/stack/errors.ts";
import { SECURE_SERVICES, secureEnv, secureOptionsFromEnv, secureStackDown, secureStackUp } from "../../lib/stack/secure/stack.ts";
import { underCi } from "../support/tools.ts";

const MISSING_TOOL = new Set(["SF_ERR_STACK_NO_JAVA", "SF_ERR_STACK_NO_MAVEN"]);

declare module "vitest" {
  export interface ProvidedContext {
    /** The secured stack's variables (worker principals; `__ADMIN` connections for set-up and checks). */
    secureEnv: Record<string, string>;
    /** Set when the secured stack cannot run here; its suites skip and say why. */
    secureSkipReason: string;
  }
}

/**
 * Brings the secured stack up once for the security project (reusing servers already up:
 * a second `up` starts nothing) and stops it at the end if this run started it, unless
 * STREAMFLEET_KEEP_STACK=1.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const o = secureOptionsFromEnv(process.env);
  const daemons = new Daemons(o.stateDir);
  const running = SECURE_SERVICES.filter((s) => daemons.pid(s) !== undefined);
  let skip = "";
  let teardown = async () => {};
  try {
    await secureStackUp(o, (line) => console.log(`[secure stack] ${line}`));
    if (running.length === 0 && process.env.STREAMFLEET_KEEP_STACK !== "1") teardown = async () => void (await secureStackDown(o));
  } catch (err) {
    if (!(err instanceof StackError) || !MISSING_TOOL.has(err.code) || underCi()) throw err;
    skip = err.message;
  }
  project.provide("secureEnv", skip ? {} : secureEnv(o));
  project.provide("secureSkipReason", skip);
  return teardown;
}
