import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { SfError } from "../errors.ts";
import type { ErrorCode } from "../errors.ts";
import { EngineMetrics } from "../observability/metrics.ts";
import { FeatureClient } from "./client.ts";
import type { ViewDef } from "./layout.ts";
import { openApiDocument } from "./openapi.ts";

export interface FeatureServerOptions {
  /** ioredis client; the server does not close it. */
  redis: Redis;
  /** Bearer token every /v1 request must carry. */
  token: string;
  /** Port to listen on; 0 picks a free one. Default 8090. */
  port?: number;
  host?: string;
  /** key_prefix of the redis.features sinks; default "". */
  keyPrefix?: string;
  /** Fixed views; default: the `sf:v1:views` registry the sinks write (re-read every 5 s). */
  views?: readonly ViewDef[];
  metrics?: EngineMetrics;
  logger?: Logger;
}

export interface FeatureServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;
const MAX_IDS = 1000;

class HttpError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  constructor(status: number, code: ErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
const badRequest = (message: string) => new HttpError(400, "SF_ERR_FEATURES_BAD_REQUEST", message);

/** Compares tokens in constant time (hashing first makes the lengths equal). */
function tokenMatches(header: string | undefined, digest: Buffer): boolean {
  const m = header ? /^Bearer\s+(.+)$/i.exec(header) : null;
  const given = crypto.createHash("sha256").update(m ? m[1]!.trim() : "").digest();
  return crypto.timingSafeEqual(given, digest) && m !== null;
}

/** `make(key)` once per distinct key. */
function memo<T>(make: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = make(key)));
    return v;
  };
}

/** Splits an origin-form request target (`/path?query#fragment`) without a URL object per request. */
function splitTarget(target: string): { pathname: string; query: URLSearchParams | undefined } {
  const hash = target.indexOf("#");
  const t = hash < 0 ? target : target.slice(0, hash);
  const q = t.indexOf("?");
  return q < 0 ? { pathname: t, query: undefined } : { pathname: t.slice(0, q), query: new URLSearchParams(t.slice(q + 1)) };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new HttpError(413, "SF_ERR_FEATURES_BAD_REQUEST", `the body is larger than ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseBatch(text: string): { ids: string[]; names?: string[] } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest("the body is not JSON; expected {\"ids\": [\"...\"], \"names\": [\"...\"]}");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("expected a JSON object {\"ids\": [...], \"names\": [...]}");
  const { ids, names } = body as { ids?: unknown; names?: unknown };
  if (!Array.isArray(ids) || ids.length === 0) throw badRequest("expected `ids`: a non-empty array of entity ids");
  if (ids.length > MAX_IDS) throw badRequest(`expected at most ${MAX_IDS} ids, got ${ids.length}`);
  if (!ids.every((id) => typeof id === "string" && id !== "")) throw badRequest("expected every id to be a non-empty string");
  if (names !== undefined && !(Array.isArray(names) && names.every((n) => typeof n === "string"))) throw badRequest("expected `names` to be an array of feature names");
  return { ids: ids as string[], ...(names ? { names: names as string[] } : {}) };
}

/**
 * Starts the HTTP feature server (node:http): GET /v1/features/{view}/{id}?names=a,b,
 * POST /v1/features/{view} {ids, names}, /healthz, /openapi.json, /metrics. Views come from the
 * registry the redis.features sink writes, unless `views` is given.
 */
export async function startFeatureServer(options: FeatureServerOptions): Promise<FeatureServer> {
  const features = new FeatureClient({ redis: options.redis, keyPrefix: options.keyPrefix ?? "", ...(options.views ? { views: options.views } : {}) });
  const metrics = options.metrics ?? new EngineMetrics({ processMetrics: false });
  const digest = crypto.createHash("sha256").update(options.token).digest();
  const openapi = JSON.stringify(openApiDocument());
  const log = options.logger;

  async function route(req: http.IncomingMessage, url: { pathname: string; query: URLSearchParams | undefined }): Promise<[string, number, string]> {
    let parts: string[];
    try {
      parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      throw badRequest(`the path ${url.pathname} is not valid percent-encoding`);
    }
    if (url.pathname === "/healthz") {
      await options.redis.ping();
      return ["healthz", 200, '{"status":"ok"}'];
    }
    if (url.pathname === "/openapi.json") return ["openapi", 200, openapi];
    if (url.pathname === "/metrics") return ["metrics", 200, await metrics.registry.metrics()];
    if (parts[0] !== "v1" || parts[1] !== "features" || parts.length < 3 || parts.length > 4) throw new HttpError(404, "SF_ERR_FEATURES_BAD_REQUEST", `no route ${url.pathname}; see /openapi.json`);
    const name = parts.length === 4 ? "get" : "batch";
    if (!tokenMatches(req.headers.authorization, digest)) throw new HttpError(401, "SF_ERR_FEATURES_UNAUTHORIZED", "expected the header Authorization: Bearer <token>");
    const view = parts[2]!;
    if (name === "get") {
      if (req.method !== "GET") throw new HttpError(405, "SF_ERR_FEATURES_BAD_REQUEST", "use GET for one entity");
      const names = url.query?.get("names")?.split(",").map((s) => s.trim()).filter(Boolean);
      const [row] = await features.getFeatures(view, [parts[3]!], names);
      return [name, 200, JSON.stringify({ view, ...row })];
    }
    if (req.method !== "POST") throw new HttpError(405, "SF_ERR_FEATURES_BAD_REQUEST", "use POST with {\"ids\": [...]} for a batch");
    const { ids, names } = parseBatch(await readBody(req));
    const rows = await features.getFeatures(view, ids, names);
    return [name, 200, JSON.stringify({ view, entities: rows })];
  }

  // Metric series resolved once per route and status, not hashed per request.
  const counter = memo((key: string) => metrics.featureRequests.labels(...(key.split(" ") as [string, string])));
  const timer = memo((route: string) => metrics.featureSeconds.labels(route));

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
    const start = performance.now();
    const url = splitTarget(req.url ?? "/");
    const send = (routeName: string, status: number, body: string) => {
      res.writeHead(status, { "content-type": routeName === "metrics" && status === 200 ? metrics.registry.contentType : "application/json", "content-length": Buffer.byteLength(body), ...(status === 401 ? { "www-authenticate": "Bearer" } : {}) });
      res.end(body);
      counter(`${routeName} ${status}`).inc();
      timer(routeName).observe((performance.now() - start) / 1000);
    };
    const routeName = url.pathname.startsWith("/v1/features/") ? (url.pathname.split("/").length === 5 ? "get" : "batch") : url.pathname === "/healthz" ? "healthz" : url.pathname === "/openapi.json" ? "openapi" : url.pathname === "/metrics" ? "metrics" : "other";
    route(req, url).then(
      ([r, status, body]) => send(r, status, body),
      (err: unknown) => {
        let status = 503;
        let code: ErrorCode = "SF_ERR_SINK_NOT_CONNECTED";
        let message = "Redis is unreachable; retry later";
        if (err instanceof HttpError) [status, code, message] = [err.status, err.code, err.message];
        else if (err instanceof SfError && err.code === "SF_ERR_FEATURES_BAD_REQUEST") [status, code, message] = [err.where === "view" ? 404 : 400, err.code, err.message];
        else log?.warn({ err: err instanceof Error ? err.message : String(err), route: routeName }, "feature read failed");
        send(routeName, status, JSON.stringify({ error: { code, message } }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8090, options.host ?? "0.0.0.0", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log?.info({ port }, "feature server listening");
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
