import type { EngineMetrics } from "../observability/metrics.ts";

interface Row {
  processed: number;
  dlq: number;
  lag: number;
}

async function snapshot(metrics: EngineMetrics): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  const row = (t: string) => rows.get(t) ?? (rows.set(t, { processed: 0, dlq: 0, lag: 0 }), rows.get(t)!);
  for (const v of (await metrics.processed.get()).values) {
    const t = String(v.labels.topology);
    if (v.labels.outcome !== "retried") row(t).processed += v.value;
    if (v.labels.outcome === "dlq") row(t).dlq += v.value;
  }
  for (const v of (await metrics.lag.get()).values) row(String(v.labels.topology)).lag += v.value;
  return rows;
}

/**
 * Per-topology throughput, lag and DLQ count, redrawn every interval on a terminal.
 * Returns a stop function.
 */
export function startLiveView(metrics: EngineMetrics, write: (s: string) => void, header: string[], intervalMs = 2000): () => void {
  let prev = new Map<string, Row>();
  let prevAt = Date.now();
  const timer = setInterval(() => {
    void snapshot(metrics).then((now) => {
      const secs = (Date.now() - prevAt) / 1000;
      const lines = [...header, "", `${"topology".padEnd(34)} ${"rec/s".padStart(9)} ${"total".padStart(10)} ${"lag".padStart(8)} ${"dlq".padStart(6)}`];
      for (const [t, r] of [...now].sort()) {
        const rate = (r.processed - (prev.get(t)?.processed ?? 0)) / secs;
        lines.push(`${t.padEnd(34)} ${rate.toFixed(1).padStart(9)} ${String(r.processed).padStart(10)} ${String(r.lag).padStart(8)} ${String(r.dlq).padStart(6)}`);
      }
      write(`\x1b[H\x1b[2J${lines.join("\n")}\n`);
      prev = now;
      prevAt = Date.now();
    });
  }, intervalMs);
  return () => clearInterval(timer);
}
