import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { redis } from "../../lib/connectors/redis/index.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { describeStack } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

/** REDIS_CLUSTER_NODES failures as /readyz reports them: a refused password by name, never its value; a dead node as retriable. */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-cluster-conn-"));
let node: ChildProcess | undefined;
afterAll(() => {
  node?.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

describeStack("Redis Cluster connection errors", () => {
  it("names a refused password (SF_ERR_AUTH_FAILED) and an unreachable cluster (retriable), without the secret", async () => {
    // a cluster node also listens on port + 10000 (its bus): both free, below 65536
    let port = 0;
    for (let i = 0; i < 50 && !port; i++) {
      const p = 21_000 + Math.floor(Math.random() * 8_000);
      if (!(await tcpOpen("127.0.0.1", p)) && !(await tcpOpen("127.0.0.1", p + 10_000))) port = p;
    }
    node = spawn("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--cluster-enabled", "yes", "--requirepass", "right-pw", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await waitUntil(() => tcpOpen("127.0.0.1", port), 10_000, "redis-server up");
    const refused = await redis.health!(new Connections({ REDIS_CLUSTER_NODES: `127.0.0.1:${port}`, REDIS_PASSWORD: "wrong-pw-secret" }), AbortSignal.timeout(5000)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "SF_ERR_AUTH_FAILED", retriable: false });
    expect((refused as Error).message).toContain("REDIS_PASSWORD");
    expect((refused as Error).message).not.toContain("wrong-pw-secret");
    const down = await redis.health!(new Connections({ REDIS_CLUSTER_NODES: "127.0.0.1:1", REDIS_PASSWORD: "pw-secret" }), AbortSignal.timeout(5000)).catch((e: unknown) => e);
    expect(down).toMatchObject({ code: "SF_ERR_SINK_NOT_CONNECTED", retriable: true });
    expect((down as Error).message).not.toContain("pw-secret");
  });
});
