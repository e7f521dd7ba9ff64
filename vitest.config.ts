import { defineConfig } from "vitest/config";

/**
 * Two groups, run one after the other against the same real stack: first unit,
 * integration and e2e files in parallel; then reliability files (outages, kills, restarts
 * of shared servers) one at a time, so an outage never hits another file's test.
 */
export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "main",
          include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts", "test/e2e/**/*.test.ts", "test/package/**/*.test.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: "reliability",
          include: ["test/reliability/**/*.test.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Against the secured stack (docs/security.md), which its own global setup starts.
        extends: true,
        test: {
          name: "security",
          include: ["test/security/**/*.test.ts"],
          globalSetup: ["test/security/global-setup.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
