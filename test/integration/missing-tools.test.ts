import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/observability.ts";
import { stack } from "../support/scope.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-missing-tools-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface JsonReport {
  testResults: Array<{ assertionResults: Array<{ fullName: string; status: string; failureMessages: string[] }> }>;
}

/**
 * Runs vitest on two of the project's own test files on a machine without Java, Maven,
 * Prometheus or promtool: a PATH holding only node, and a Kafka the stack would have to start.
 */
async function vitestWithoutTools(env: NodeJS.ProcessEnv): Promise<{ status: number | null; output: string; tests: JsonReport["testResults"][number]["assertionResults"] }> {
  const bin = fs.mkdtempSync(path.join(tmp, "bin-"));
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  const report = path.join(bin, "report.json");
  const { KAFKA_BROKERS: _, ...others } = stack();
  const r = spawnSync(
    process.execPath,
    [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "test/unit/alert-rules.test.ts", "test/e2e/observability.test.ts", "--reporter=json", `--outputFile=${report}`],
    {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 90_000,
      env: { HOME: process.env.HOME, PATH: bin, ...others, STREAMFLEET_KAFKA_PORT: String(await freePort()), STREAMFLEET_STACK_DIR: path.join(bin, "state"), ...env },
    },
  );
  const tests = fs.existsSync(report) ? (JSON.parse(fs.readFileSync(report, "utf8")) as JsonReport).testResults.flatMap((f) => f.assertionResults) : [];
  return { status: r.status, output: `${r.stdout}${r.stderr}`, tests };
}

describe("without Java, Maven, Prometheus and promtool", () => {
  it("the tests that need them are skipped, each saying what to install, and the run passes", { timeout: 120_000 }, async () => {
    const r = await vitestWithoutTools({});
    expect(r.output).toContain("[stack] not started: Java 17+ and Maven are not on PATH: install them (`apt-get install openjdk-17-jre-headless maven`)");
    expect(r.status).toBe(0);
    expect(r.tests.length).toBeGreaterThan(5);
    expect(r.tests.filter((t) => t.status !== "skipped")).toEqual([]);
    const promtool = r.tests.filter((t) => t.fullName.startsWith("Prometheus alert rules"));
    expect(promtool).toHaveLength(2);
    for (const t of promtool) expect(t.fullName).toMatch(/\(skipped: promtool is not on PATH: install it \(`apt-get install prometheus`\)\)$/);
    for (const t of r.tests.filter((t) => !promtool.includes(t))) {
      expect(t.fullName).toMatch(/^a worker watched by a real Prometheus \(skipped: Java 17\+ and Maven are not on PATH: install them/);
    }
  });

  it("under CI (CI=true) the run fails with the install line instead", { timeout: 120_000 }, async () => {
    const r = await vitestWithoutTools({ CI: "true" });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain("Java 17+ and Maven are not on PATH: install them (`apt-get install openjdk-17-jre-headless maven`)");
  });
});
