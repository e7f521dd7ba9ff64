import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { keys } from "../../lib/features/layout.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { RedisClient } from "../../lib/connectors/redis/cluster.ts";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { redisClusterDown, redisClusterNodes, redisClusterUp } from "../../lib/stack/redis-cluster.ts";
import type { RedisClusterOptions } from "../../lib/stack/redis-cluster.ts";
import { stack } from "./scope.ts";

/**
 * The Redis-backed suites run twice: on the shared single Redis and on a Redis Cluster of
 * three masters that the suite starts itself (`stack up --redis-cluster`'s code, on free
 * loopback ports of its own and a state dir in /tmp), stopped when the suite ends.
 */
export type RedisMode = "single" | "cluster";
export const REDIS_MODES: readonly RedisMode[] = ["single", "cluster"];

export interface RedisTarget {
  readonly mode: RedisMode;
  /** The connection variables of the default connection: REDIS_URL or REDIS_CLUSTER_NODES. */
  readonly env: Record<string, string>;
  /** A client for the test's own reads (a Cluster client in cluster mode). */
  readonly redis: RedisClient;
  /** process.env with this target's connection (REDIS_URL removed in cluster mode, so nothing falls back to it). */
  processEnv(): Record<string, string | undefined>;
  connections(): Connections;
  /** The entity hash key the sink writes in this mode. */
  entityKey(prefix: string, view: string, id: string): string;
  /** The seed nodes of the cluster (cluster mode). */
  readonly options?: RedisClusterOptions;
}

async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + Math.floor(Math.random() * 8_000);
    // +10000: the cluster bus ports
    const busy = await Promise.all([0, 1, 2, 10_000, 10_001, 10_002].map((d) => tcpOpen("127.0.0.1", base + d)));
    if (!busy.some(Boolean)) return base;
  }
  throw new Error("no free loopback ports for the test Redis Cluster");
}

/** Starts a private three-master Redis Cluster; retries on a port another test took meanwhile. */
export async function startTestCluster(): Promise<RedisClusterOptions> {
  for (let attempt = 0; ; attempt++) {
    const o: RedisClusterOptions = { stateDir: fs.mkdtempSync(path.join(os.tmpdir(), "sf-test-cluster-")), masters: 3, basePort: await freeBase(), startTimeoutMs: 60_000 };
    try {
      await redisClusterUp(o);
      return o;
    } catch (err) {
      await redisClusterDown(o).catch(() => {});
      fs.rmSync(o.stateDir, { recursive: true, force: true });
      if (attempt >= 3 || !(err instanceof Error) || !/PORT_IN_USE|in use/.test(`${(err as { code?: string }).code} ${err.message}`)) throw err;
    }
  }
}

export async function stopTestCluster(o: RedisClusterOptions): Promise<void> {
  await redisClusterDown(o);
  fs.rmSync(o.stateDir, { recursive: true, force: true });
}

export function clusterClient(o: RedisClusterOptions): Cluster {
  return new Cluster(redisClusterNodes(o).split(",").map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) })));
}

// One cluster per test file, shared by its describe blocks: counted as they are collected
// (before any runs), started by the first block's beforeAll, stopped after the last one's afterAll.
let shared: { users: number; started?: Promise<RedisClusterOptions> } = { users: 0 };

/** The target of one mode; its hooks start (and stop) the file's cluster around the enclosing describe. */
export function useRedis(mode: RedisMode): RedisTarget {
  let options: RedisClusterOptions | undefined;
  let client: RedisClient | undefined;
  let env: Record<string, string> = {};
  if (mode === "cluster") shared.users++;
  beforeAll(async () => {
    if (mode === "single") {
      env = { REDIS_URL: stack().REDIS_URL };
      client = new Redis(stack().REDIS_URL);
      return;
    }
    shared.started ??= startTestCluster();
    options = await shared.started;
    env = { REDIS_CLUSTER_NODES: redisClusterNodes(options) };
    client = clusterClient(options);
  }, 120_000);
  afterAll(async () => {
    client?.disconnect();
    if (options && --shared.users === 0) {
      shared = { users: 0 };
      await stopTestCluster(options);
    }
  });
  return {
    mode,
    get env() {
      return env;
    },
    get redis() {
      return client!;
    },
    get options() {
      return options;
    },
    processEnv() {
      const base: Record<string, string | undefined> = { ...process.env };
      if (mode === "cluster") delete base.REDIS_URL;
      return { ...base, ...env };
    },
    connections() {
      return new Connections(this.processEnv());
    },
    entityKey: (prefix, view, id) => keys.entity(prefix, view, id, mode === "cluster"),
  };
}
