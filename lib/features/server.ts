import crypto from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type pg from "pg";
import { SfError } from "../errors.ts";
import { isCluster, perNodePipelines } from "../connectors/redis/cluster.ts";
import type { RedisClient } from "../connectors/redis/cluster.ts";
import type { ErrorCode } from "../errors.ts";
import { EngineMetrics } from "../observability/metrics.ts";
import { FeatureClient } from "./client.ts";
import { answerHistorical, historicalView } from "./historical-http.ts";
import { HttpError, namesParam, parseBatch, parseTarget, readBody, tokenMatches } from "./http.ts";
import type { Target } from "./http.ts";
import type { ViewDef } from "./layout.ts";
import { storeOf } from "./layout.ts";
import { openApiDocument } from "./openapi.ts";
import { readPlan } from "./read-plan.ts";
import type { ReadPlan } from "./read-plan.ts";

export interface FeatureServerOptions {
  /** ioredis client (or Cluster client); the server does not close it. `enableAutoPipelining` lets concurrent GETs share one write to Redis. */
  redis: RedisClient;
  /** Bearer token every /v1 request must carry. */
  token: string;
  /** Port to listen on; 0 picks a free one. Default 8090. */
  port?: number;
  host?: string;
  /** key_prefix of the redis.features sinks; default "". */
  keyPrefix?: string;
  /** Fixed views; default: the `sf:v1:views` registry the sinks write (re-read every 5 s). */
  views?: readonly ViewDef[];
  /** Feature reads (/v1) being answered at once; one more gets 503 with Retry-After. Default 256. */
  maxInFlight?: number;
  /** A feature read not answered within this many ms gets 504 (checked every quarter of it). Default 250. */
  deadlineMs?: number;
  metrics?: EngineMetrics;
  logger?: Logger;
  /** A pg pool on the offline feature log's database: enables POST /v1/historical/{view}. The server does not close it. */
  offline?: pg.Pool;
  /**
   * How a POSTed batch reads Redis: "script" (default) one EVALSHA that HMGETs every entity and
   * answers one flat array; "pipeline" one pipeline of an HMGET per entity, for a Redis where
   * scripts are not allowed (the server also switches to it by itself on NOPERM). On a Redis
   * Cluster always "pipeline", one per node (a script's keys must share one slot, and a batch's
   * entities are spread over all of them).
   */
  batchRead?: "script" | "pipeline";
  /** What GET /metrics answers; default the text of `metrics.registry` (a cluster worker asks its primary for every process's). */
  metricsText?: () => Promise<string>;
  /** Serve HTTPS with this certificate chain and key (PEM); default: plain HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
}

export interface FeatureServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** A /v1 request being answered: in arrival order, so also in deadline order. */
interface Pending {
  readonly deadline: number;
  settled: boolean;
  send(status: number, body: string, code?: ErrorCode): void;
}

const PLAN_CACHE = 1024;
const PLAN_RECHECK_MS = 1000;
/** HMGET of the same fields (ARGV) from every key (KEYS), answered as one flat array: field j of key i at i * #ARGV + j. */
const BATCH_SCRIPT = `local out, n, w = {}, 0, #ARGV
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, w do n = n + 1; out[n] = r[j] end
end
return out`;
const BATCH_SHA = crypto.createHash("sha1").update(BATCH_SCRIPT).digest("hex");
const errorBody = (code: ErrorCode, message: string) => JSON.stringify({ error: { code, message } });

/**
 * Starts the HTTP feature server (node:http): GET /v1/features/{view}/{id}?names=a,b,
 * POST /v1/features/{view} {ids, names}, /healthz, /openapi.json, /metrics. Views come from the
 * registry the redis.features sink writes, unless `views` is given. Feature reads are bounded
 * (`maxInFlight`, then 503 + Retry-After) and have a deadline (`deadlineMs`, then 504).
 */
export async function startFeatureServer(options: FeatureServerOptions): Promise<FeatureServer> {
  const { redis } = options;
  const prefix = options.keyPrefix ?? "";
  const features = new FeatureClient({ redis, keyPrefix: prefix, ...(options.views ? { views: options.views } : {}), ...(options.offline ? { offline: options.offline } : {}) });
  const metrics = options.metrics ?? new EngineMetrics({ processMetrics: false });
  const digest = crypto.hash("sha256", options.token, "buffer");
  const openapi = JSON.stringify(openApiDocument());
  const maxInFlight = options.maxInFlight ?? 256;
  const deadlineMs = options.deadlineMs ?? 250;
  const log = options.logger;
  const plans = new Map<string, ReadPlan>();
  const pending = new Set<Pending>();

  /** The cached plan for (view, names); rebuilt when the registry hands a new definition. */
  async function plan(viewName: string, names: string | readonly string[] | undefined): Promise<ReadPlan> {
    const key = `${viewName}?${typeof names === "string" || names === undefined ? (names ?? "") : names.join(",")}`;
    const view = await features.view(viewName);
    const cached = plans.get(key);
    if (cached && cached.view === view) return cached;
    const list = typeof names === "string" ? names.split(",").map((s) => s.trim()).filter(Boolean) : names;
    const resolved = await features.resolve(viewName, ["-"], list);
    if (plans.size >= PLAN_CACHE) plans.clear();
    const made = readPlan(resolved.view, resolved.names);
    plans.set(key, made);
    return made;
  }

  // A GET's plan by (view, raw query), checked against the registry at most once a second: most
  // reads take it without parsing the query, awaiting the registry or building the cache key.
  const recent = new Map<string, { plan: ReadPlan; checkedAt: number }>();
  function readOne(t: Target): Promise<string> {
    const key = t.query === undefined ? t.view : `${t.view}?${t.query}`;
    const hit = recent.get(key);
    if (hit && performance.now() - hit.checkedAt < PLAN_RECHECK_MS) return hmgetOne(hit.plan, t);
    return plan(t.view, namesParam(t.query)).then((p) => {
      if (recent.size >= PLAN_CACHE) recent.clear();
      recent.set(key, { plan: p, checkedAt: performance.now() });
      return hmgetOne(p, t);
    });
  }
  async function hmgetOne(p: ReadPlan, t: Target): Promise<string> {
    const asOf = Date.now();
    const reply = await redis.hmget(cluster ? features.entityKey(storeOf(p.view), t.id) : `${prefix}sf:v1:fv:${storeOf(p.view)}:${t.id}`, ...p.fields(asOf));
    return p.entityJson(t.id, reply, asOf, 0, `{"view":${p.viewJson},`);
  }

  // A batch is one command: EVALSHA of BATCH_SCRIPT (EVAL when Redis has not cached it yet) with
  // every entity key, answering one flat array; or, with batchRead "pipeline" (or when the Redis
  // user may not run scripts), one pipeline of an HMGET per entity.
  const cluster = isCluster(redis);
  let batchRead = cluster ? "pipeline" : (options.batchRead ?? "script");
  async function readFlat(keys: string[], wanted: readonly string[]): Promise<(string | null)[]> {
    const args = [...keys, ...wanted];
    try {
      return (await redis.evalsha(BATCH_SHA, keys.length, ...args)) as (string | null)[];
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return (await redis.eval(BATCH_SCRIPT, keys.length, ...args)) as (string | null)[];
    }
  }
  async function readPipelined(keys: string[], wanted: readonly string[]): Promise<(string | null)[]> {
    const results = await perNodePipelines(
      redis,
      keys.length,
      (i) => keys[i]!,
      (pipe, i) => pipe.hmget(keys[i]!, ...wanted),
      async (pipe) => {
        const r = await pipe.exec();
        if (!r) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "Redis dropped the feature read pipeline");
        return r;
      },
    );
    const flat: (string | null)[] = [];
    for (const [err, reply] of results) {
      if (err) throw err;
      for (const v of reply as (string | null)[]) flat.push(v);
    }
    return flat;
  }

  async function readMany(t: Target, req: http.IncomingMessage): Promise<string> {
    const { ids, names } = parseBatch(await readBody(req));
    const p = await plan(t.view, names);
    const asOf = Date.now();
    const wanted = p.fields(asOf);
    const base = `${prefix}sf:v1:fv:${storeOf(p.view)}:`;
    const keys = cluster ? ids.map((id) => features.entityKey(storeOf(p.view), id)) : ids.map((id) => base + id);
    let flat: (string | null)[];
    if (batchRead === "script") {
      try {
        flat = await readFlat(keys, wanted);
      } catch (err) {
        // an ACL without @scripting (or a managed Redis without scripts): the pipeline from now on
        if (!(err instanceof Error) || !/^(NOPERM|ERR unknown command)/.test(err.message)) throw err;
        log?.warn({ err: err.message }, "the Redis user may not run scripts: batch reads use a pipeline of HMGETs");
        batchRead = "pipeline";
        flat = await readPipelined(keys, wanted);
      }
    } else flat = await readPipelined(keys, wanted);
    let out = `{"view":${p.viewJson},"entities":[`;
    for (let i = 0; i < ids.length; i++) out += `${i ? "," : ""}${p.entityJson(ids[i]!, flat, asOf, i * wanted.length)}`;
    return `${out}]}`;
  }

  async function other(t: Target): Promise<[string, string]> {
    if (t.pathname === "/healthz") {
      await redis.ping();
      return ["healthz", '{"status":"ok"}'];
    }
    if (t.pathname === "/openapi.json") return ["openapi", openapi];
    if (t.pathname === "/metrics") return ["metrics", await (options.metricsText ? options.metricsText() : metrics.registry.metrics())];
    throw new HttpError(404, "SF_ERR_FEATURES_BAD_REQUEST", `no route ${t.pathname}; see /openapi.json`);
  }

  /** The answer for a failure: our HttpErrors and bad requests as they are, anything else is Redis being unreachable. */
  function failure(err: unknown, routeName: string): [number, ErrorCode, string] {
    if (err instanceof HttpError) return [err.status, err.code, err.message];
    if (err instanceof SfError && err.code === "SF_ERR_FEATURES_BAD_REQUEST") return [err.where === "view" ? 404 : 400, err.code, err.message];
    log?.warn({ err: err instanceof Error ? err.message : String(err), route: routeName }, "feature read failed");
    return [503, "SF_ERR_SINK_NOT_CONNECTED", "Redis is unreachable; retry later"];
  }

  /** The view of a /v1/historical/{view} path; undefined for other paths; null when the answer (400) was sent. */
  function historicalViewOf(pathname: string, fail: (err: unknown) => void): string | undefined | null {
    try {
      return historicalView(pathname);
    } catch (err) {
      fail(err);
      return null;
    }
  }

  // Metric series resolved once per route and status, not hashed per request.
  const counters = new Map<string, Map<number, ReturnType<typeof metrics.featureRequests.labels>>>();
  const counter = (routeName: string, status: number) => {
    let byStatus = counters.get(routeName);
    if (!byStatus) counters.set(routeName, (byStatus = new Map()));
    let c = byStatus.get(status);
    if (!c) byStatus.set(status, (c = metrics.featureRequests.labels(routeName, String(status))));
    return c;
  };
  const timers = new Map(["get", "batch", "historical", "healthz", "openapi", "metrics", "other"].map((r) => [r, metrics.featureSeconds.labels(r)]));
  const inFlight = metrics.featureInFlight;

  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const start = performance.now();
    let t: Target | undefined;
    let routeName = "other";
    const send = (status: number, body: string, headers?: Record<string, string>) => {
      const json = routeName !== "metrics" || status !== 200;
      res.writeHead(status, { "content-type": json ? "application/json" : metrics.registry.contentType, "content-length": Buffer.byteLength(body), ...headers });
      res.end(body);
      counter(routeName, status).inc();
      timers.get(routeName)!.observe((performance.now() - start) / 1000);
    };
    const fail = (err: unknown) => {
      const [status, code, message] = failure(err, routeName);
      send(status, errorBody(code, message), status === 401 ? { "www-authenticate": "Bearer" } : undefined);
    };
    try {
      t = parseTarget(req.url ?? "/");
    } catch (err) {
      return fail(err);
    }
    const historical = t.kind === "other" ? historicalViewOf(t.pathname, fail) : undefined;
    if (historical === null) return;
    if (historical !== undefined) {
      // a training-set export: long and streamed, so outside the in-flight bound and the read deadline
      routeName = "historical";
      if (!tokenMatches(req.headers.authorization, digest)) return fail(new HttpError(401, "SF_ERR_FEATURES_UNAUTHORIZED", "expected the header Authorization: Bearer <token>"));
      if (req.method !== "POST") return fail(new HttpError(405, "SF_ERR_FEATURES_BAD_REQUEST", 'use POST with {"rows": [...]}'));
      answerHistorical(features, options.offline, historical, req, res).then(() => {
        counter(routeName, 200).inc();
        timers.get(routeName)!.observe((performance.now() - start) / 1000);
      }, fail);
      return;
    }
    if (t.kind === "other") {
      routeName = ["/healthz", "/openapi.json", "/metrics"].includes(t.pathname) ? t.pathname.slice(1).replace(".json", "") : "other";
      other(t).then(([, body]) => send(200, body), fail);
      return;
    }
    routeName = t.kind;
    if (!tokenMatches(req.headers.authorization, digest)) return fail(new HttpError(401, "SF_ERR_FEATURES_UNAUTHORIZED", "expected the header Authorization: Bearer <token>"));
    if (t.kind === "get" && req.method !== "GET") return fail(new HttpError(405, "SF_ERR_FEATURES_BAD_REQUEST", "use GET for one entity"));
    if (t.kind === "batch" && req.method !== "POST") return fail(new HttpError(405, "SF_ERR_FEATURES_BAD_REQUEST", "use POST with {\"ids\": [...]} for a batch"));
    if (pending.size >= maxInFlight) {
      req.resume();
      return send(503, errorBody("SF_ERR_FEATURES_OVERLOADED", `the feature server is answering ${maxInFlight} reads already; retry after 1 s`), { "retry-after": "1" });
    }
    const p: Pending = {
      deadline: start + deadlineMs,
      settled: false,
      send(status, body, code) {
        if (p.settled) return;
        p.settled = true;
        pending.delete(p);
        inFlight.dec();
        if (code) fail(new HttpError(status, code, body));
        else send(status, body);
      },
    };
    pending.add(p);
    inFlight.inc();
    (t.kind === "get" ? readOne(t) : readMany(t, req)).then(
      (body) => p.send(200, body),
      (err: unknown) => {
        if (p.settled) return;
        const [status, code, message] = failure(err, routeName);
        p.send(status, message, code);
      },
    );
  }

  // The oldest pending read is the first to miss its deadline: the sweep stops at the first one still in time.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const p of pending) {
      if (p.deadline > now) break;
      p.send(504, `no answer within the ${deadlineMs} ms deadline (Redis slow or the server overloaded); retry`, "SF_ERR_FEATURES_DEADLINE");
    }
  }, Math.max(1, Math.floor(deadlineMs / 4)));
  sweep.unref();

  const serverOptions = { noDelay: true, keepAliveTimeout: 65_000 };
  const server = options.tls ? https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key }, handle) : http.createServer(serverOptions, handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8090, options.host ?? "0.0.0.0", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log?.info({ port, maxInFlight, deadlineMs, tls: options.tls !== undefined }, "feature server listening");
  return {
    port,
    // "localhost" for HTTPS: certificates name hosts; the secured stack's names localhost and 127.0.0.1
    url: options.tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweep);
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

