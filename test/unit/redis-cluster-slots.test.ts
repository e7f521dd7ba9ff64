import { Cluster, Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createRedisClient } from "../../lib/connectors/redis/client.ts";
import { groupPerNode, keySlot } from "../../lib/connectors/redis/cluster.ts";
import { keys } from "../../lib/features/layout.ts";
import { Connections } from "../../lib/runtime/connections.ts";

describe("Redis Cluster: slots and the connection settings", () => {
  it("computes the slot Redis computes (CRC16 of the hash tag, else of the key, mod 16384)", () => {
    // values from `redis-cli CLUSTER KEYSLOT` (Redis 7.0)
    expect(["a", "b", "c", "d", "123456789"].map(keySlot)).toEqual([15495, 3300, 7365, 11298, 0x31c3 & 0x3fff]);
    expect(keySlot("{user1000}.following")).toBe(keySlot("user1000"));
    expect(keySlot("foo{}{bar}")).toBe(keySlot("foo{}{bar}")); // an empty tag: the whole key
    expect(keySlot("foo{}{bar}")).not.toBe(keySlot("bar"));
    expect([keySlot("héllo"), keySlot("{héllo}x")]).toEqual([11061, 11061]); // UTF-8 bytes
  });

  it("puts an entity's hashes of every view in its id's slot on a cluster, and keeps single-Redis keys as they were", () => {
    expect(keys.entity("p:", "activity", "r1")).toBe("p:sf:v1:fv:activity:r1");
    expect(keys.entity("p:", "activity", "r1", true)).toBe("p:sf:v1:fv:activity:{r1}");
    expect(keySlot(keys.entity("", "activity", "r1", true))).toBe(keySlot(keys.entity("x:", "profile", "r1", true)));
  });

  it("builds a Cluster client from REDIS_CLUSTER_NODES (suffixed per connection), a single client from REDIS_URL", () => {
    const c = createRedisClient(new Connections({ REDIS_CLUSTER_NODES__CACHE: "127.0.0.1:7001, 127.0.0.1:7002", REDIS_URL: "redis://127.0.0.1:6379" }), "cache");
    expect(c).toBeInstanceOf(Cluster);
    const single = createRedisClient(new Connections({ REDIS_CLUSTER_NODES__CACHE: "127.0.0.1:7001", REDIS_URL: "redis://127.0.0.1:6379" }));
    expect(single).toBeInstanceOf(Redis);
    c.disconnect();
    single.disconnect();
    expect(() => createRedisClient(new Connections({ REDIS_CLUSTER_NODES: "127.0.0.1" }))).toThrow(/REDIS_CLUSTER_NODES is a comma-separated list of host:port/);
    expect(() => createRedisClient(new Connections({ REDIS_CLUSTER_NODES: " , " }))).toThrow(/names no node/);
  });

  it("groups commands per node of a cluster's slot map, keyless ones with any group", () => {
    const fake = { isCluster: true, slots: [] as string[][] } as unknown as Cluster;
    for (let s = 0; s < 16384; s++) (fake.slots as string[][])[s] = [s < 8192 ? "a:1" : "b:2"];
    const ks = ["b", "a", undefined, "c", "d"]; // slots 3300, 15495, -, 7365, 11298
    expect(groupPerNode(fake, ks.length, (i) => ks[i])).toEqual([[0, 3, 2], [1, 4]]);
    expect(groupPerNode(new Redis({ lazyConnect: true }), 3, () => "x")).toEqual([[0, 1, 2]]);
  });
});
