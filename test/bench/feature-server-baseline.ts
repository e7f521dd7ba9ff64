/**
 * The feature-server bench's baseline: what a skilled engineer would write by hand with the
 * same libraries — node:http, one ioredis client (auto-pipelining on), a bearer-token string
 * compare, one HMGET (a pipeline of them for a POSTed batch) and JSON.stringify of the raw
 * reply as an object. It does not do what the server does beyond that: no view registry,
 * no decoding of values, event times or staleness, no constant-time token check, no
 * Prometheus histogram, no in-flight bound or deadline. It records its own handler time
 * exactly and answers GET /stats with the percentiles (and resets them).
 * Run by test/bench/feature-server.bench.ts: node feature-server-baseline.ts <port> <token> <keyPrefix> <view> <fields,...>
 */
import http from "node:http";
import { Redis } from "ioredis";

const [port, token, prefix, view, fieldList] = process.argv.slice(2) as [string, string, string, string, string];
const fields = fieldList.split(",");
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { enableAutoPipelining: true });
const auth = `Bearer ${token}`;
const base = `/v1/features/${view}`;
let times = new Float64Array(1 << 20);
let n = 0;

const pick = (xs: Float64Array, p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

function answer(res: http.ServerResponse, start: number, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
  if (n < times.length) times[n++] = performance.now() - start;
}

function entity(id: string, reply: (string | null)[]): Record<string, unknown> {
  const features: Record<string, string | null> = {};
  fields.forEach((f, i) => (features[f] = reply[i] ?? null));
  return { id, features };
}

http
  .createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
    const start = performance.now();
    const url = req.url ?? "/";
    if (url === "/stats") {
      const xs = times.slice(0, n).sort();
      const body = JSON.stringify({ n, p50: pick(xs, 50), p90: pick(xs, 90), p99: pick(xs, 99), p999: pick(xs, 99.9), max: pick(xs, 100) });
      times = new Float64Array(1 << 20);
      n = 0;
      return void res.end(body);
    }
    if (req.headers.authorization !== auth) return answer(res, start, 401, '{"error":"unauthorized"}');
    if (req.method === "GET" && url.startsWith(`${base}/`)) {
      const id = url.slice(base.length + 1);
      redis.hmget(`${prefix}sf:v1:fv:${view}:${id}`, ...fields).then(
        (reply) => answer(res, start, 200, JSON.stringify({ view, ...entity(id, reply) })),
        () => answer(res, start, 503, '{"error":"redis"}'),
      );
      return;
    }
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const { ids } = JSON.parse(body) as { ids: string[] };
      const p = redis.pipeline();
      for (const id of ids) p.hmget(`${prefix}sf:v1:fv:${view}:${id}`, ...fields);
      p.exec().then(
        (rs) => answer(res, start, 200, JSON.stringify({ view, entities: ids.map((id, i) => entity(id, rs![i]![1] as (string | null)[])) })),
        () => answer(res, start, 503, '{"error":"redis"}'),
      );
    });
  })
  .listen(Number(port), "127.0.0.1");
