import type { ChainableCommander, Cluster, Redis } from "ioredis";

/**
 * Redis Cluster support shared by the connector, the feature clients and the feature server:
 * which slot a key is in, and pipelines split per node (a cluster pipeline, like a script's
 * KEYS, must stay on one node's slots; a script's KEYS on one slot).
 */

/** A client of one Redis server or of a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

// CRC16/XMODEM (polynomial 0x1021), the hash Redis Cluster takes modulo 16,384.
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

/**
 * The hash slot of a key, as `CLUSTER KEYSLOT` answers: of the hash tag (the text between the
 * first `{` and the first `}` after it, when not empty), else of the whole key (UTF-8 bytes).
 */
export function keySlot(key: string): number {
  let s = key;
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) s = key.slice(open + 1, close);
  }
  const bytes = Buffer.from(s, "utf8");
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc & 0x3fff;
}

/** Which node (its address list, master first) serves a slot, as the client's slot map says; "?" when none. */
export function nodeOfSlot(cluster: Cluster, slot: number): string {
  return cluster.slots[slot]?.join(";") ?? "?";
}

/**
 * Indexes 0..count-1 of commands grouped by what must travel together: on a single Redis one
 * group; on a cluster one group per node serving `keyOf(i)`'s slot (`keyOf` undefined: the
 * command names no key and joins any group).
 */
export function groupPerNode(client: RedisClient, count: number, keyOf: (i: number) => string | undefined): number[][] {
  if (!isCluster(client)) return [Array.from({ length: count }, (_, i) => i)];
  const groups = new Map<string, number[]>();
  const keyless: number[] = [];
  for (let i = 0; i < count; i++) {
    const key = keyOf(i);
    if (key === undefined) {
      keyless.push(i);
      continue;
    }
    const node = nodeOfSlot(client, keySlot(key));
    const g = groups.get(node);
    if (g) g.push(i);
    else groups.set(node, [i]);
  }
  if (keyless.length) {
    const first = groups.values().next();
    if (first.done) groups.set("*", keyless);
    else first.value.push(...keyless);
  }
  return [...groups.values()];
}

/** Results of pipelines run per group, put back in command order. */
export async function perNodePipelines(
  client: RedisClient,
  count: number,
  keyOf: (i: number) => string | undefined,
  add: (p: ChainableCommander, i: number) => void,
  exec: (p: ChainableCommander) => Promise<Array<[Error | null, unknown]>>,
): Promise<Array<[Error | null, unknown]>> {
  const groups = groupPerNode(client, count, keyOf);
  if (groups.length === 1) {
    const p = client.pipeline();
    for (const i of groups[0]!) add(p, i);
    const results = await exec(p);
    if (groups[0]!.every((i, j) => i === j)) return results;
    const out = new Array<[Error | null, unknown]>(count);
    groups[0]!.forEach((i, j) => (out[i] = results[j]!));
    return out;
  }
  const out = new Array<[Error | null, unknown]>(count);
  await Promise.all(
    groups.map(async (g) => {
      const p = client.pipeline();
      for (const i of g) add(p, i);
      const results = await exec(p);
      g.forEach((i, j) => (out[i] = results[j]!));
    }),
  );
  return out;
}

/** A cluster's answer that the slot is elsewhere or unavailable for now (a failover, a resharding): retry, never a refused record. */
export function isClusterRedirect(err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|LOADING|READONLY)\b/.test(err.message);
}
