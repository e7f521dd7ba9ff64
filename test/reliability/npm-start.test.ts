import { spawn } from "node:child_process";
import path from "node:path";
import { expect, it } from "vitest";
import { describeStack } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

describeStack("npm start", () => {
  it("runs the demo with non-zero throughput for every topology within a minute, then exits cleanly on SIGINT", async () => {
    const child = spawn(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "start"], {
      cwd: ROOT,
      env: { ...process.env, DEMO_RATE: "10", STREAMFLEET_DEMO_SUMMARY_MS: "3000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const topologies = ["ml-audit", "ml-audit-store", "ml-metrics-analytics", "ml-model-alerts", "ml-predictions", "ml-product-features", "ml-training-dispatch", "ml-user-features", "resident-complaint-analytics", "resident-complaints", "resident-notifications", "resident-users"];
    /** Topologies whose latest summary line shows a non-zero rate. */
    const flowing = () => {
      const last = new Map<string, number>();
      for (const m of out.matchAll(/^\s+(\S+)\s+([\d.]+) rec\/s\s+total (\d+)/gm)) last.set(m[1]!, Number(m[2]));
      return topologies.filter((t) => (last.get(t) ?? 0) > 0);
    };
    try {
      await waitUntil(() => out.includes("Ctrl-C to stop"), 90_000, `the demo to start; output so far:\n${out}`);
      expect(out).toMatch(/metrics\s+http:\/\/127\.0\.0\.1:\d+\/metrics/);
      expect(out).toMatch(/features\s+http:\/\/127\.0\.0\.1:\d+\/v1\/features/);
      const started = Date.now();
      await waitUntil(() => flowing().length === topologies.length, 60_000, `every topology to show throughput (flowing: ${flowing().join(", ")})`);
      expect(Date.now() - started).toBeLessThan(60_000);
    } finally {
      child.kill("SIGINT");
    }
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running after 45 s"), 45_000))]);
    expect(code).toBe(0);
    expect(out).toContain("stopped cleanly");
  }, 240_000);
});
