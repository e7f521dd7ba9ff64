import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ALERTS, ROOT } from "../support/observability.ts";
import { needTools } from "../support/tools.ts";

/** promtool comes with the Debian package `prometheus` (.ci/run installs it). */
const promtoolGate = needTools(["promtool"]);

function promtool(...args: string[]): { status: number | null; output: string } {
  promtoolGate.check();
  const r = spawnSync("promtool", args, { cwd: path.dirname(ALERTS), encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("Prometheus alert rules", () => {
  it.skipIf(promtoolGate.skip)(promtoolGate.title("pass `promtool check rules`"), () => {
    const r = promtool("check", "rules", path.relative(path.dirname(ALERTS), ALERTS));
    expect(r.output).toContain("SUCCESS: 6 rules found");
    expect(r.status).toBe(0);
  });

  it.skipIf(promtoolGate.skip)(promtoolGate.title("fire as their unit tests expect (`promtool test rules alerts.test.yml`)"), () => {
    const r = promtool("test", "rules", path.join(ROOT, "observability/prometheus/alerts.test.yml"));
    expect(r.output).toContain("SUCCESS");
    expect(r.status).toBe(0);
  });
});
