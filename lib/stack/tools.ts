import { which } from "./daemon.ts";

/**
 * The programs the stack and the tests run that npm cannot install, each with the Debian
 * package that brings it. One place says what is missing and how to install it, for
 * `stack up`, for the tests (skipped with that line, or failed under CI) and for `.ci/run`.
 */
export const TOOLS = {
  java: { label: "Java 17+", apt: "openjdk-17-jre-headless" },
  mvn: { label: "Maven", apt: "maven" },
  prometheus: { label: "Prometheus", apt: "prometheus" },
  promtool: { label: "promtool", apt: "prometheus" },
  python3: { label: "Python 3", apt: "python3" },
} as const satisfies Record<string, { label: string; apt: string }>;

export type Tool = keyof typeof TOOLS;

/** The tools of `tools` that are not on PATH (`pathVar`, default the process's). */
export function missingTools(tools: readonly Tool[], pathVar = process.env.PATH ?? ""): Tool[] {
  return [...new Set(tools)].filter((t) => which(t, pathVar) === undefined);
}

/** The one command that installs `tools` (Debian packages, each once). */
export function installCommand(tools: readonly Tool[]): string {
  return `apt-get install ${[...new Set(tools.map((t) => TOOLS[t].apt))].join(" ")}`;
}

/**
 * One line saying which of `tools` are missing and the command that installs them, or
 * undefined when all are on PATH: "Java 17+ and Maven are not on PATH: install them
 * (`apt-get install openjdk-17-jre-headless maven`)".
 */
export function missingToolsLine(tools: readonly Tool[], pathVar = process.env.PATH ?? ""): string | undefined {
  const missing = missingTools(tools, pathVar);
  if (missing.length === 0) return undefined;
  const labels = missing.map((t) => TOOLS[t].label);
  const names = labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(", ")} and ${labels.at(-1)}`;
  const verb = labels.length === 1 ? "is" : "are";
  return `${names} ${verb} not on PATH: install ${labels.length === 1 ? "it" : "them"} (\`${installCommand(missing)}\`)`;
}
