import http from "node:http";
import type { AddressInfo } from "node:net";
import type { EngineMetrics } from "./metrics.ts";

export interface ComponentStatus {
  component: string;
  status: "up" | "down";
  latencyMs: number;
  lastError?: string;
  checkedAt: string;
}

export interface AdminServerOptions {
  port: number;
  host?: string;
  metrics: EngineMetrics;
  /** Joined its group(s): the consumer side is ready. */
  ready: () => boolean;
  /** One entry per dependency (kafka, schema registry, redis, rabbitmq, postgres). */
  health: () => Promise<ComponentStatus[]>;
}

export interface AdminServer {
  url: string;
  close(): Promise<void>;
}

/**
 * A worker's admin HTTP server: /metrics (Prometheus), /healthz (alive), /readyz (joined
 * its groups and every dependency answers), /health (JSON per component).
 */
export async function startAdminServer(o: AdminServerOptions): Promise<AdminServer> {
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    void (async () => {
      try {
        switch (path) {
          case "/metrics": {
            const body = await o.metrics.registry.metrics();
            res.writeHead(200, { "content-type": o.metrics.registry.contentType });
            res.end(body);
            return;
          }
          case "/healthz":
            return json(res, 200, { status: "alive" });
          case "/readyz": {
            const components = await o.health();
            const down = components.filter((c) => c.status === "down");
            const joined = o.ready();
            const ok = joined && down.length === 0;
            return json(res, ok ? 200 : 503, { status: ok ? "ready" : "unready", joined, down: down.map((c) => ({ component: c.component, error: c.lastError })) });
          }
          case "/health": {
            const components = await o.health();
            const ok = components.every((c) => c.status === "up");
            return json(res, ok ? 200 : 503, { status: ok ? "up" : "degraded", ready: o.ready(), components });
          }
          default:
            return json(res, 404, { error: { code: "NOT_FOUND", message: `no route ${path}; try /metrics, /healthz, /readyz or /health` } });
        }
      } catch (err) {
        json(res, 500, { error: { code: "INTERNAL", message: (err as Error).message } });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address.includes(":") ? `[${addr.address}]` : addr.address}:${addr.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
