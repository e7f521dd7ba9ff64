import { missingToolsLine } from "../../lib/stack/tools.ts";
import type { Tool } from "../../lib/stack/tools.ts";

/** True under CI (`.ci/run` sets CI=true): there every tool is installed, and a missing one fails. */
export function underCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === "true";
}

export interface ToolGate {
  /** Skip the test: a tool is missing and this is not CI. */
  skip: boolean;
  /** The test's name, with the install line appended when it is skipped. */
  title(name: string): string;
  /** Throws the install line when a tool is missing (the CI case: the test fails with it). */
  check(): void;
}

/**
 * For tests that run programs npm cannot install (Java, Maven, Prometheus, promtool, Python):
 * `it.skipIf(gate.skip)(gate.title("…"), () => { gate.check(); … })`.
 */
export function needTools(tools: readonly Tool[], env: NodeJS.ProcessEnv = process.env): ToolGate {
  const line = missingToolsLine(tools, env.PATH ?? "");
  const skip = line !== undefined && !underCi(env);
  return {
    skip,
    title: (name) => (skip ? `${name} (skipped: ${line})` : name),
    check: () => {
      if (line) throw new Error(line);
    },
  };
}
