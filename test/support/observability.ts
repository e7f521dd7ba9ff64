import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const DASHBOARD = path.join(ROOT, "observability/grafana/dashboards/streamfleet.json");
export const ALERTS = path.join(ROOT, "observability/prometheus/alerts.yml");

/** A TCP port nobody listens on right now (on loopback). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `fn` until it returns a value other than undefined, or throws with the last state. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Prometheus {
  url: string;
  /** Instant query; the vector's samples as [labels, value]. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  stop(): Promise<void>;
}

/** A real Prometheus on loopback scraping `target` (host:port) every second, with the repo's alert rules loaded. */
export async function startPrometheus(target: string): Promise<Prometheus> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-prometheus-"));
  const port = await freePort();
  const config = [
    "global: { scrape_interval: 1s, evaluation_interval: 1s }",
    `rule_files: [${JSON.stringify(ALERTS)}]`,
    "scrape_configs:",
    "  - job_name: streamfleet",
    `    static_configs: [{ targets: [${JSON.stringify(target)}] }]`,
  ].join("\n");
  fs.writeFileSync(path.join(dir, "prometheus.yml"), config);
  const child: ChildProcess = spawn(
    "prometheus",
    [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually("prometheus to be ready", async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
      return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    stop,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as { status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}

/** Metric families in a Prometheus text exposition: name -> type, from the `# TYPE` lines. */
export function exportedFamilies(exposition: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of exposition.split("\n")) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Metric names a PromQL expression selects: identifiers followed by `{` or `[`, and every streamfleet_* name. */
export function promqlMetricNames(expr: string): Set<string> {
  const names = new Set<string>();
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of noStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)) names.add(m[1]!);
  for (const m of noStrings.matchAll(/\bstreamfleet_[a-zA-Z0-9_:]+/g)) names.add(m[0]);
  if (/^\s*up\b/.test(noStrings)) names.add("up");
  return names;
}

/** Every PromQL expression of the Grafana dashboard and of the alert rules, with where it comes from. */
export function observabilityQueries(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }>; templating: { list: Array<{ name: string; definition?: string }> } };
  for (const p of dash.panels) for (const t of p.targets ?? []) out.push({ where: `dashboard panel "${p.title}"`, expr: t.expr });
  for (const v of dash.templating.list) if (v.definition) out.push({ where: `dashboard variable ${v.name}`, expr: v.definition.replace(/^label_values\((.*?),[^,]*\)$/, "$1") });
  const rules = parse(fs.readFileSync(ALERTS, "utf8")) as { groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }> };
  for (const g of rules.groups) for (const r of g.rules) out.push({ where: `alert ${r.alert ?? r.record}`, expr: r.expr });
  return out;
}
