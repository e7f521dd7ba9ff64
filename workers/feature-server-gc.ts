/**
 * Imported first by workers/feature-server.ts: restarts the process image (same pid, so
 * signals and supervisors are unaffected) with a 4 MB young-generation semi-space unless the
 * command line sets one. On the 2-core reference machine V8's default (16 MB) made each
 * scavenge of the server's heap take 10–25 ms, every ~0.4 s at 2,000 req/s; at 4 MB they take
 * ~2.5 ms, four times as often, for about the same GC time in all (1 MB: ~1 ms each, but the
 * 100-entity batches then promote more and spend more in GC).
 * V8 reads the flag only at start-up (v8.setFlagsFromString is too late), hence the re-exec.
 * FEATURE_SERVER_SEMI_SPACE_MB picks another size; 0 keeps V8's default. Figures: BENCHMARKS.md.
 */
const FLAG = "--max-semi-space-size";
const mb = process.env.FEATURE_SERVER_SEMI_SPACE_MB ?? "4";
if (mb !== "0" && !process.execArgv.some((a) => a.startsWith(FLAG)) && typeof process.execve === "function") {
  process.execve(process.execPath, [process.execPath, `${FLAG}=${mb}`, ...process.execArgv, ...process.argv.slice(1)], process.env as Record<string, string>);
}
