import { execFileSync, spawn } from "node:child_process";
import http from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../lib/features/layout.ts";
import type { ViewDef } from "../../lib/features/layout.ts";
import { freePort } from "../support/observability.ts";
import { PrivateRedis } from "../support/private-redis.ts";

const TOKEN = "processes-token";
const view: ViewDef = { name: "proc_view", entity: "user", features: [{ name: "orders", kind: "counter" }] };
let privateRedis: PrivateRedis;

/** One GET on a connection of its own, so the cluster hands each request to the next process. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
      .on("error", reject);
  });
}
const children = (pid: number) => execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" }).split("\n").map(Number).filter(Boolean);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  privateRedis = await PrivateRedis.start();
  const redis = new Redis(privateRedis.url);
  await redis.hset(keys.views(""), view.name, JSON.stringify(view));
  await redis.hset(keys.entity("", view.name, "u1"), { orders: "5", "orders@t": String(Date.now()) });
  redis.disconnect();
});
afterAll(async () => {
  await privateRedis?.kill();
});

describe("feature server processes (FEATURE_SERVER_PROCESSES)", () => {
  it("runs two processes on one port, /metrics counts both, SIGTERM stops them all", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["workers/feature-server.ts"], {
      env: { ...process.env, REDIS_URL: privateRedis.url, FEATURE_SERVER_PORT: String(port), FEATURE_SERVER_TOKEN: TOKEN, FEATURE_SERVER_PROCESSES: "2", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    let ok = 0;
    for (let i = 0; i < 100 && ok === 0; i++) {
      const res = await get(port, `/v1/features/${view.name}/u1`).catch(() => undefined);
      if (res?.status === 200) ok++;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(ok).toBe(1);
    // both processes listening: every request below is answered, whichever process takes it
    for (let i = 0; i < 9 && children(child.pid!).length < 2; i++) await new Promise((r) => setTimeout(r, 200));
    const workers = children(child.pid!);
    expect(workers).toHaveLength(2);
    for (let i = 0; i < 40; i++) {
      const res = await get(port, `/v1/features/${view.name}/u1`);
      expect(res.status).toBe(200);
      expect((JSON.parse(res.body) as { features: { orders: { value: number } } }).features.orders.value).toBe(5);
      ok++;
    }
    // whichever process answers /metrics, it counts the requests of both. A scrape the primary cannot
    // aggregate in time (prom-client's fixed 5 s, reached only on a machine saturated by the rest of the
    // suite) answers "# metrics of the cluster unavailable" and the next scrape is whole, as Prometheus
    // would see it: up to 3 tries for each of 3 scrapes, and no scrape may ever count wrong.
    for (let i = 0; i < 3; i++) {
      let text = "";
      for (let attempt = 0; attempt < 3; attempt++) {
        const res = await get(port, "/metrics");
        text = res.body;
        if (res.status === 200 && !text.startsWith("# metrics of the cluster unavailable")) break;
      }
      const counted = Number(/^streamfleet_feature_server_requests_total\{route="get",status="200"\} (\d+)$/m.exec(text)?.[1]);
      expect(counted, `the /metrics answer:\n${text.slice(0, 600)}`).toBe(ok);
    }
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(workers.filter(alive)).toEqual([]);
    expect(out).toContain("feature server stopped");
    expect(out).not.toContain(TOKEN);
  });
});
