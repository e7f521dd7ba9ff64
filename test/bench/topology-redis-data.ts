/**
 * The topology-redis benchmark's data: deterministic user events, the per-user aggregates the
 * producer expects, and the check of each contender's Redis result against them.
 */
import type { Redis } from "ioredis";
import { FeatureClient } from "../../lib/features/client.ts";
import type { Contender } from "./topology-redis-child.ts";

export const USERS = 2_000;
const CATEGORIES = ["books", "games", "garden", "music", "sports", "travel", "toys", "food"];
const T0 = Date.UTC(2026, 10, 1);

export interface UserEvent {
  user_id: string;
  amount: number;
  score: number;
  category: string;
  event_time: number;
}

/** A small seeded PRNG (mulberry32): the same stream of records on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Record i of user u = i % 2000. Event times are unique (no tie decides `latest`): on time
 * T0 + 3i; one record in ten is late by d = 2 or 3 of its user's events, T0 + 3i - 6000d + d - 1
 * (i ≡ u mod 2000, so the residues mod 6000 are 3u, 3u + 1, 3u + 2: never equal).
 */
export function events(): (i: number) => UserEvent {
  const rnd = prng(11);
  return (i) => {
    const late = rnd() < 0.1 ? (rnd() < 0.5 ? 2 : 3) : 0;
    return {
      user_id: `u${i % USERS}`,
      amount: Math.round(rnd() * 100_000) / 100,
      score: Math.floor(rnd() * 1_000_000),
      category: CATEGORIES[Math.floor(rnd() * CATEGORIES.length)]!,
      event_time: T0 + 3 * i - (late ? 6000 * late - late + 1 : 0),
    };
  };
}

export interface UserAgg {
  count: number;
  sum: number;
  max: number;
  latest: string;
  latestT: number;
  /** The user's last record in production (= partition) order: what the cache holds. */
  last: UserEvent;
}

/** The producer's expected aggregates, per user id. */
export class Expected {
  readonly users = new Map<string, UserAgg>();

  add(e: UserEvent): void {
    const a = this.users.get(e.user_id);
    if (!a) {
      this.users.set(e.user_id, { count: 1, sum: e.amount, max: e.score, latest: e.category, latestT: e.event_time, last: e });
      return;
    }
    a.count++;
    a.sum += e.amount;
    if (e.score > a.max) a.max = e.score;
    if (e.event_time > a.latestT) {
      a.latest = e.category;
      a.latestT = e.event_time;
    }
    a.last = e;
  }
}

/** What one contender wrote for one user, in the expected aggregates' terms. */
type Got = { count?: number; sum?: number; max?: number; latest?: string; last?: UserEvent } | undefined;

async function readAll(ids: string[], read: (chunk: string[]) => Promise<Got[]>): Promise<Got[]> {
  const out: Got[] = [];
  for (let i = 0; i < ids.length; i += 500) out.push(...(await read(ids.slice(i, i + 500))));
  return out;
}

function reader(contender: Contender, redis: Redis, prefix: string, view: string): (ids: string[]) => Promise<Got[]> {
  if (contender === "hand") {
    return async (ids) => {
      const p = redis.pipeline();
      for (const id of ids) p.hmget(`${prefix}hw:${id}`, "count", "sum", "max_score", "category");
      return ((await p.exec()) ?? []).map(([err, v]) => {
        if (err) throw err;
        const [count, sum, max, latest] = v as (string | null)[];
        return count === null ? undefined : { count: Number(count), sum: Number(sum), max: Number(max), latest: latest ?? undefined };
      });
    };
  }
  if (contender === "features") {
    const client = new FeatureClient({ redis, keyPrefix: prefix });
    return async (ids) =>
      (await client.getFeatures(view, ids)).map((e) => {
        if (!e.found) return undefined;
        const f = e.features;
        return { count: Number(f.count?.value), sum: Number(f.sum_amount?.value), max: Number(f.max_score?.value), latest: f.last_category?.value as string };
      });
  }
  return async (ids) => (await redis.mget(ids.map((id) => `${prefix}user:${id}`))).map((v) => (v === null ? undefined : { last: JSON.parse(v) as UserEvent }));
}

function mismatch(contender: Contender, want: UserAgg, got: Got): string | undefined {
  if (!got) return "nothing written";
  const bad: string[] = [];
  if (contender === "cache") {
    for (const k of ["user_id", "amount", "score", "category", "event_time"] as const) if (got.last?.[k] !== want.last[k]) bad.push(`${k} ${got.last?.[k]} (want ${want.last[k]})`);
    return bad.length ? bad.join(", ") : undefined;
  }
  if (got.count !== want.count) bad.push(`count ${got.count} (want ${want.count})`);
  if (!(Math.abs(got.sum! - want.sum) <= 1e-6 * Math.abs(want.sum))) bad.push(`sum ${got.sum} (want ${want.sum})`);
  if (got.max !== want.max) bad.push(`max ${got.max} (want ${want.max})`);
  if (got.latest !== want.latest) bad.push(`latest ${got.latest} (want ${want.latest}, event time ${want.latestT})`);
  return bad.length ? bad.join(", ") : undefined;
}

/**
 * Compares a contender's Redis result with the expected aggregates of every user: exact count,
 * sum within 1e-6 relative, max, latest by event time (features, hand); the last record (cache).
 * Returns the problems (empty when right).
 */
export async function check(contender: Contender, redis: Redis, prefix: string, view: string, expected: Expected): Promise<string[]> {
  if (contender === "bare") return [];
  const ids = [...expected.users.keys()];
  const got = await readAll(ids, reader(contender, redis, prefix, view));
  const problems: string[] = [];
  ids.forEach((id, i) => {
    const m = mismatch(contender, expected.users.get(id)!, got[i]);
    if (m) problems.push(`${id}: ${m}`);
  });
  return problems;
}
