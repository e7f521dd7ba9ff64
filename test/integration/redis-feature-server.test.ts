import { spawn } from "node:child_process";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";

const scope = new TestScope("featserver");
const TOKEN = "s3cret-token";
const VIEW = `users_${scope.id}`;
afterAll(async () => {
  await scope.cleanup();
});

describeStack("feature server", () => {
  // on the shared Redis and on a Redis Cluster the file starts (batches: a pipeline per node there)
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);
    let sink: Sink;
    let server: FeatureServer;
    const metrics = new EngineMetrics({ processMetrics: false });

    async function call(path: string, init: RequestInit & { token?: string | null } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
      const token = init.token === undefined ? TOKEN : init.token;
      const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body ? { "content-type": "application/json" } : {}) };
      const res = await fetch(`${server.url}${path}`, { ...init, headers });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }

    beforeAll(async () => {
      const view = { name: VIEW, entity: "user", key: "{userId}", event_time: "at", features: [{ name: "orders", kind: "counter" }, { name: "last_item", kind: "latest", field: "item" }] };
      sink = featuresSink.create(featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view] }), makeContext({ connections: target.connections() })) as Sink;
      const now = Date.now();
      await sink.write([makeRecord({ userId: "u1", item: "tea", at: now - 1000 }), makeRecord({ userId: "u1", item: "cake", at: now - 500 }), makeRecord({ userId: "u2", item: "jam", at: now })]);
      server = await startFeatureServer({ redis: target.redis, token: TOKEN, port: 0, host: "127.0.0.1", keyPrefix: scope.keyPrefix, metrics });
    });
    afterAll(async () => {
      await server.close();
      await sink.close();
    });

    it("refuses a missing or wrong token with 401", async () => {
      const missing = await call(`/v1/features/${VIEW}/u1`, { token: null });
      expect(missing.status).toBe(401);
      expect(missing.body).toEqual({ error: { code: "SF_ERR_FEATURES_UNAUTHORIZED", message: expect.stringContaining("Bearer") } });
      const wrong = await call(`/v1/features/${VIEW}/u1`, { token: "s3cret-tokeN" });
      expect(wrong.status).toBe(401);
      const batch = await call(`/v1/features/${VIEW}`, { method: "POST", body: JSON.stringify({ ids: ["u1"] }), token: "nope" });
      expect(batch.status).toBe(401);
    });

    it("checks the token on every request of a keep-alive connection", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const get = (token: string) =>
        new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
          const req = http.get(`${server.url}/v1/features/${VIEW}/u1`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode!, socket: req.socket }));
          });
          req.on("error", reject);
        });
      try {
        const ok = await get(TOKEN);
        const wrong = await get("not-the-token");
        expect([ok.status, wrong.status]).toEqual([200, 401]);
        expect(wrong.socket, "same connection").toBe(ok.socket);
      } finally {
        agent.destroy();
      }
    });

    it("answers one entity with values, event times and staleness", async () => {
      const { status, body } = await call(`/v1/features/${VIEW}/u1`);
      expect(status).toBe(200);
      expect(body).toMatchObject({ view: VIEW, id: "u1", found: true, features: { orders: { value: 2 }, last_item: { value: "cake" } } });
      const item = (body.features as Record<string, { event_time: number; staleness_ms: number }>).last_item;
      expect(item?.staleness_ms).toBeGreaterThanOrEqual(500);
      const some = await call(`/v1/features/${VIEW}/u1?names=orders`);
      expect(Object.keys(some.body.features as object)).toEqual(["orders"]);
    });

    it("answers a batch in the order of the ids, unknown entities not found", async () => {
      const { status, body } = await call(`/v1/features/${VIEW}`, { method: "POST", body: JSON.stringify({ ids: ["u2", "nobody", "u1"], names: ["last_item"] }) });
      expect(status).toBe(200);
      const entities = body.entities as Array<{ id: string; found: boolean; features: Record<string, { value: unknown }> }>;
      expect(entities.map((e) => [e.id, e.found, e.features.last_item!.value])).toEqual([["u2", true, "jam"], ["nobody", false, null], ["u1", true, "cake"]]);
    });

    it("answers a batch of 300 entities (every shard on a cluster) in the order asked", async () => {
      const at = Date.now() - 100;
      await sink.write(Array.from({ length: 600 }, (_, i) => makeRecord({ userId: `b${i % 300}`, item: `i${i}`, at: at + i })));
      const ids = [...Array.from({ length: 300 }, (_, k) => `b${299 - k}`), "nobody"];
      const { status, body } = await call(`/v1/features/${VIEW}`, { method: "POST", body: JSON.stringify({ ids, names: ["orders", "last_item"] }) });
      expect(status).toBe(200);
      const entities = body.entities as Array<{ id: string; found: boolean; features: Record<string, { value: unknown }> }>;
      expect(entities.map((e) => [e.id, e.found, e.features.orders!.value, e.features.last_item!.value])).toEqual(
        ids.map((id) => (id === "nobody" ? [id, false, null, null] : [id, true, 2, `i${300 + Number(id.slice(1))}`])),
      );
    });

    it("answers 400 with the reason for a malformed request, 404 for an unknown view", async () => {
      const cases: Array<[string, RequestInit, number, string]> = [
        [`/v1/features/${VIEW}`, { method: "POST", body: "{not json" }, 400, "not JSON"],
        [`/v1/features/${VIEW}`, { method: "POST", body: JSON.stringify({ ids: [] }) }, 400, "non-empty array"],
        [`/v1/features/${VIEW}`, { method: "POST", body: JSON.stringify({ ids: ["a", 3] }) }, 400, "non-empty string"],
        [`/v1/features/${VIEW}/u1?names=nope`, {}, 400, 'no feature "nope"'],
        [`/v1/features/nosuchview_${scope.id}/u1`, {}, 404, "unknown feature view"],
        [`/v1/features/${VIEW}/%E0%A4%A`, {}, 400, "percent-encoding"],
      ];
      for (const [path, init, status, reason] of cases) {
        const res = await call(path, init);
        expect([path, res.status]).toEqual([path, status]);
        expect((res.body.error as { code: string }).code).toBe("SF_ERR_FEATURES_BAD_REQUEST");
        expect((res.body.error as { message: string }).message).toContain(reason);
      }
    });

    it("serves /healthz and an OpenAPI 3 document without a token, and counts requests", async () => {
      expect(await call("/healthz", { token: null })).toEqual({ status: 200, body: { status: "ok" } });
      expect(await call("/healthz?probe=1", { token: null })).toEqual({ status: 200, body: { status: "ok" } });
      const doc = await call("/openapi.json", { token: null });
      expect(doc.body.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.body.paths as object)).toContain("/v1/features/{view}/{id}");
      const counted = await metrics.featureRequests.get();
      expect(counted.values.find((v) => v.labels.route === "get" && v.labels.status === "401")?.value).toBeGreaterThanOrEqual(1);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toContain("streamfleet_feature_server_request_seconds");
    });

    it("runs as a process (node workers/feature-server.ts) and stops cleanly on SIGTERM", async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const child = spawn(process.execPath, ["workers/feature-server.ts"], {
        env: { ...target.processEnv(), FEATURE_SERVER_PORT: String(port), FEATURE_SERVER_TOKEN: TOKEN, FEATURE_SERVER_KEY_PREFIX: scope.keyPrefix, LOG_LEVEL: "info" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (out += c.toString()));
      let res: Response | undefined;
      for (let i = 0; i < 100 && !res; i++) {
        res = await fetch(`http://127.0.0.1:${port}/v1/features/${VIEW}/u2`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => undefined);
        if (!res) await new Promise((r) => setTimeout(r, 100));
      }
      expect(res?.status).toBe(200);
      expect(((await res!.json()) as { features: { last_item: { value: string } } }).features.last_item.value).toBe("jam");
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out).toContain("feature server stopped");
      expect(out).not.toContain(TOKEN);
    });
  });
});
