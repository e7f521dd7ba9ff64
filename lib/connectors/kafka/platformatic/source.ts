import { ConnectionPool, Consumer, FetchIsolationLevels, ListOffsetTimestamps } from "@platformatic/kafka";
import type { ClusterMetadata, ConsumerGroupJoinPayload, fetchV17, GroupAssignment, RecordsBatch } from "@platformatic/kafka";
import type { Logger } from "pino";
import type { TopologyMetrics } from "../../../observability/metrics.ts";
import type { Connections } from "../../../runtime/connections.ts";
import type { Source, SourceBatch, SourceMessage } from "../../../runtime/contracts.ts";
import type { FetchingSourceOptions } from "../../../runtime/source-fetch.ts";
import { FETCH_DEFAULTS } from "../../../topology/model.ts";
import { describe, tagOf, withAdmin } from "./admin.ts";
import { platformaticOptions, rebalanceMode } from "./options.ts";

type FetchRequestTopic = fetchV17.FetchRequestTopic;
type FetchResponse = fetchV17.FetchResponse;

/** Record batch attributes: written in a transaction; a transaction marker, not a record. */
const IS_TRANSACTIONAL = 0x10;
const IS_CONTROL = 0x20;

/** The running source of each consumer group (group names are unique in a fleet): the group's transactions commit through it. */
const running = new Map<string, PlatformaticSource>();

/** The source consuming as `group` in this process, if it runs. */
export function runningSource(group: string): PlatformaticSource | undefined {
  return running.get(group);
}

interface Planned {
  key: string;
  topic: string;
  partition: number;
  offset: bigint;
  /** The partition's ownership when planned: data fetched for an earlier ownership is dropped. */
  epoch: number;
}

/** A partition this member owns; `epoch` is new each time it is acquired (and at every join with eager assignment). */
interface Owned {
  topic: string;
  partition: number;
  epoch: number;
}

interface Fetched {
  key: string;
  epoch: number;
  topic: string;
  partition: number;
  /** Where the fetch began: the batch is handed over only if the partition is still there. */
  from: bigint;
  /** After the last record batch (control batches included). */
  next: bigint;
  highWatermark: bigint;
  messages: SourceMessage[];
}

/**
 * A topology's consumer group on @platformatic/kafka. The client keeps the group membership
 * (join, sync, heartbeats, rejoins); the fetching is done here with its Fetch API, because the
 * runtime needs what its message stream does not offer: one batch per partition per fetch,
 * per-partition pause and resume, seek, and commits only of what the runner resolved. Each
 * fetch asks every assigned, unpaused partition from its position (the offset after the last
 * resolved record); batches are handed to the runner, up to `concurrency` at once, and the
 * next fetch waits for them (so one fetch is what is held at once, as with kafkajs: fetching
 * ahead while the runner works measured slower in the runtime bench, 158–220 k rec/s to a null
 * sink against 122–788 k without; a second fetch's records stay alive meanwhile). After each
 * join the positions are read again from the committed offsets, and batches of an earlier
 * generation can no longer move them.
 */
export class PlatformaticSource implements Source {
  private readonly consumer: Consumer;
  private readonly connections: Connections;
  private readonly options: FetchingSourceOptions;
  private readonly logger: Logger;
  private readonly metrics: TopologyMetrics;
  private readonly isolationLevel: number;
  private cluster = "";
  private topics: string[] = [];
  /**
   * Ownership counter: each partition acquired gets the next value as its `epoch`, which is what
   * the runner sees as the batch's generation. With eager assignment every join acquires every
   * partition again; with cooperative assignment a partition kept across a rebalance keeps its
   * epoch (its batches, units and commits go on) and only the moved ones change.
   */
  private epochs = 0;
  private readonly cooperative: boolean;
  /**
   * Cooperative: fetches go over connections of their own. The broker answers a connection's
   * requests in order, and a JoinGroup is held until every member has rejoined (seconds): on the
   * client's one connection to a broker that is also the group coordinator, the fetches of the
   * partitions that stay would wait behind it (measured: 2.9 s stops on every partition).
   */
  private readonly fetchPool: ConnectionPool | undefined;
  /** The member id of the last join: a join under another id (membership lost) keeps nothing. */
  private memberId: string | undefined;
  /** Cooperative: between the group's rebalance signal and this member's next join. */
  private rebalancing = false;
  /** Cooperative: offsets to commit once the rebalance is over (by partition), and the ownership they belong to. */
  private readonly deferred = new Map<string, { topic: string; partition: number; offset: bigint; epoch: number }>();
  private joined = false;
  private crashed: string | undefined;
  private draining = false;
  private stopping = false;
  private readonly assigned = new Map<string, Owned>();
  private readonly pos = new Map<string, bigint>();
  private readonly seeks = new Map<string, number>();
  private readonly paused = new Map<string, number>();
  private readonly inflight = new Set<Promise<void>>();
  /** The group's generation id and member id of the last join: what a transactional offset commit carries. */
  private join: { generationId: number; memberId: string } | undefined;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private patternTimer: NodeJS.Timeout | undefined;

  constructor(connections: Connections, options: FetchingSourceOptions, logger: Logger, metrics: TopologyMetrics, isolation: "read_uncommitted" | "read_committed" = "read_committed") {
    this.connections = connections;
    this.options = options;
    this.logger = logger;
    this.metrics = metrics;
    this.isolationLevel = isolation === "read_committed" ? FetchIsolationLevels.READ_COMMITTED : FetchIsolationLevels.READ_UNCOMMITTED;
    this.cooperative = rebalanceMode(connections, options.connection) === "cooperative";
    const base = platformaticOptions(connections, options.connection);
    this.fetchPool = this.cooperative ? new ConnectionPool(base.clientId, base as ConstructorParameters<typeof ConnectionPool>[1]) : undefined;
    this.consumer = new Consumer({
      ...base,
      groupId: options.group,
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(options.sessionTimeoutMs, 60_000),
      heartbeatInterval: 3_000,
      maxWaitTime: 1000,
      minBytes: 1,
      maxBytes: options.maxBytesPerFetch ?? FETCH_DEFAULTS.maxBytesPerFetch,
      maxBytesPerPartition: options.maxBytesPerPartition ?? FETCH_DEFAULTS.maxBytesPerPartition,
      autocommit: false,
      isolationLevel: this.isolationLevel,
      // Cooperative (incremental) assignment: a rebalance takes from a member only what moves (KIP-429).
      ...(this.cooperative ? { protocols: [{ name: "cooperative-sticky", version: 3 }] } : {}),
    });
    this.consumer.on("consumer:group:join", (p) => this.onJoin(p));
    // Cooperative: the client's first round of a rebalance takes away what moves (its assignments
    // shrink) and rejoins at once, without a join event; stop those partitions now so nothing of
    // theirs is committed once the next owner may read them.
    if (this.cooperative) this.consumer.on("consumer:group:rebalance", () => this.onRevoke());
    this.consumer.on("consumer:group:leave", () => {
      this.joined = false;
      this.metrics.setReady(false);
    });
    this.consumer.on("error", (err: Error) => {
      // A rejoin that failed: no more heartbeats until the next join attempt (a commit or the fetch loop).
      this.crashed = err.message;
      this.metrics.setReady(false);
      this.logger.error({ err: describe(err) }, "consumer group membership failed; rejoining");
      setTimeout(() => void this.rejoin(), 1000).unref();
    });
  }

  ready(): boolean {
    return this.joined && !this.crashed;
  }

  async run(handler: (batch: SourceBatch) => Promise<void>): Promise<void> {
    this.topics = this.options.topics ?? (await this.matchingTopics());
    const meta = await this.consumer.metadata({ topics: this.topics });
    this.cluster = tagOf(meta);
    for (const t of this.topics) this.consumer.topics.track(t);
    running.set(this.options.group, this);
    await this.firstJoin();
    if (this.options.pattern) {
      // New topics that match: subscribe and rejoin (the kafkajs side sees them by its metadata refresh).
      this.patternTimer = setInterval(() => void this.refreshPattern(), 30_000).unref();
    }
    this.loop = this.fetchLoop(handler).catch((err: unknown) => {
      this.crashed = describe(err);
      this.metrics.setReady(false);
      this.logger.error({ err: describe(err) }, "consumer crashed");
    });
  }

  private async matchingTopics(): Promise<string[]> {
    const re = new RegExp(this.options.pattern ?? "^$");
    return withAdmin(this.connections, this.options.connection, async (admin) => (await admin.listTopics({ includeInternals: false })).filter((t) => re.test(t)));
  }

  private async refreshPattern(): Promise<void> {
    try {
      const now = await this.matchingTopics();
      const added = now.filter((t) => !this.topics.includes(t));
      if (added.length === 0 || this.stopping) return;
      this.topics = [...this.topics, ...added];
      for (const t of added) this.consumer.topics.track(t);
      this.logger.info({ added }, "new topics match the source pattern; rejoining");
      await this.consumer.joinGroup({});
    } catch (err) {
      this.logger.debug({ err: describe(err) }, "pattern refresh failed");
    }
  }

  /**
   * The start's join. A broker out of reach — the group's coordinator killed or restarting while
   * this worker waits to be let into the group — is an outage like any other: wait and try again
   * (the client's own 9 tries end within seconds). Anything else (denied, unknown group protocol)
   * fails the start.
   */
  private async firstJoin(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.consumer.joinGroup({});
        return;
      } catch (err) {
        if (this.stopping || !unreachable(err)) throw err;
        this.logger.warn({ err: describe(err), attempt }, "joining the consumer group failed: a broker is out of reach; trying again");
        await new Promise((r) => setTimeout(r, Math.min(5_000, 500 * attempt)));
      }
    }
  }

  private async rejoin(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.consumer.joinGroup({});
    } catch (err) {
      this.logger.warn({ err: describe(err) }, "rejoining the consumer group failed; trying again");
      setTimeout(() => void this.rejoin(), 2000).unref();
    }
  }

  private onJoin(p: ConsumerGroupJoinPayload): void {
    const generationId = p.generationId ?? this.consumer.generationId;
    const sameMember = this.memberId === p.memberId;
    this.memberId = p.memberId;
    this.join = { generationId, memberId: p.memberId };
    this.joined = true;
    this.crashed = undefined;
    this.metrics.rebalanced();
    this.metrics.setReady(true);
    const now = new Set<string>();
    const acquired: GroupAssignment[] = [];
    const assignment: Record<string, number[]> = {};
    const kept: string[] = [];
    for (const a of p.assignments ?? []) {
      assignment[a.topic] = [...a.partitions];
      const fresh: number[] = [];
      for (const partition of a.partitions) {
        const key = `${a.topic}/${partition}`;
        now.add(key);
        // Eager: every join starts every partition again from its committed offset. Cooperative: a partition kept by the same member goes on.
        if (this.cooperative && sameMember && this.assigned.has(key)) {
          kept.push(key);
          continue;
        }
        this.assigned.set(key, { topic: a.topic, partition, epoch: ++this.epochs });
        this.pos.delete(key);
        fresh.push(partition);
      }
      if (fresh.length) acquired.push({ topic: a.topic, partitions: fresh });
    }
    for (const key of [...this.assigned.keys()]) {
      if (!now.has(key)) this.release(key);
    }
    this.logger.info({ assignment, generationId, ...(this.cooperative ? { kept: kept.length } : {}) }, "joined consumer group");
    this.rebalancing = false;
    void this.commitDeferred();
    void this.loadPositions(acquired);
  }

  /** Cooperative: what the client's assignments no longer hold is released before the group gives it to another member. */
  private onRevoke(): void {
    this.rebalancing = true;
    const now = new Set<string>();
    for (const a of this.consumer.assignments ?? []) for (const partition of a.partitions) now.add(`${a.topic}/${partition}`);
    const revoked = [...this.assigned.keys()].filter((k) => !now.has(k));
    if (revoked.length === 0) return;
    for (const key of revoked) this.release(key);
    this.logger.info({ revoked }, "partitions revoked by a cooperative rebalance");
  }

  /**
   * Cooperative: commits of kept partitions that came during a rebalance, now in the new
   * generation. (An OffsetCommit the broker answers "rebalancing" makes the client rejoin, which
   * with cooperative assignment — each member's owned partitions are in its join metadata —
   * starts the next rebalance: commits wait for the join instead.)
   */
  private async commitDeferred(): Promise<void> {
    const offsets = [...this.deferred.values()].filter((d) => this.assigned.get(`${d.topic}/${d.partition}`)?.epoch === d.epoch);
    this.deferred.clear();
    if (offsets.length === 0) return;
    try {
      await this.consumer.commit({ offsets: offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset, leaderEpoch: -1 })) });
    } catch (err) {
      this.logger.warn({ err: describe(err) }, "committing offsets deferred by a rebalance failed; what they cover may be read again");
    }
  }

  /** Forgets a partition: its in-flight batches go stale (the runner abandons them uncommitted), its fetched data is dropped. */
  private release(key: string): void {
    this.assigned.delete(key);
    this.pos.delete(key);
  }

  /** The committed offset of each assigned partition, or its start (earliest/latest) when none. */
  private async loadPositions(assignments: GroupAssignment[]): Promise<void> {
    const epochOf = new Map<string, number>();
    for (const a of assignments) for (const partition of a.partitions) epochOf.set(`${a.topic}/${partition}`, this.assigned.get(`${a.topic}/${partition}`)?.epoch ?? -1);
    const current = () => [...epochOf].some(([k, e]) => this.assigned.get(k)?.epoch === e);
    if (epochOf.size === 0) return;
    for (let attempt = 1; current() && !this.stopping; attempt++) {
      try {
        const found = new Map<string, bigint>();
        if (assignments.length) {
          const committed = await this.consumer.listCommittedOffsets({ topics: assignments });
          const missing: Record<string, number[]> = {};
          for (const a of assignments) {
            for (const partition of a.partitions) {
              const o = committed.get(a.topic)?.[partition];
              if (o !== undefined && o >= 0n) found.set(`${a.topic}/${partition}`, o);
              else (missing[a.topic] ??= []).push(partition);
            }
          }
          const topics = Object.keys(missing);
          if (topics.length) {
            const timestamp = this.options.fromBeginning ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST;
            const starts = await this.consumer.listOffsets({ topics, partitions: missing, timestamp });
            for (const t of topics) for (const partition of missing[t]!) found.set(`${t}/${partition}`, starts.get(t)?.[partition] ?? 0n);
          }
        }
        // Only partitions still held under the same ownership (not released or acquired again meanwhile).
        for (const [k, o] of found) if (this.assigned.get(k)?.epoch === epochOf.get(k)) this.pos.set(k, o);
        this.wake();
        return;
      } catch (err) {
        this.logger.warn({ err: describe(err), attempt }, "reading the committed offsets failed; trying again");
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
      }
    }
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private plan(): Planned[] {
    const out: Planned[] = [];
    for (const [key, { topic, partition, epoch }] of this.assigned) {
      if (this.paused.get(key)) continue;
      // A partition whose committed offset is being read is left out until it is known.
      const offset = this.pos.get(key);
      if (offset !== undefined) out.push({ key, topic, partition, offset, epoch });
    }
    return out;
  }

  private async fetchLoop(handler: (batch: SourceBatch) => Promise<void>): Promise<void> {
    let failures = 0;
    while (!this.stopping && !this.draining) {
      const plan = this.plan();
      if (plan.length === 0) {
        await this.idle(200);
        continue;
      }
      let fetched: Fetched[];
      try {
        fetched = await this.fetch(plan);
        failures = 0;
      } catch (err) {
        failures++;
        this.logger.warn({ err: describe(err), failures }, "fetch failed; trying again");
        await this.idle(Math.min(5000, 200 * failures));
        continue;
      }
      if (this.draining) continue;
      const batches: SourceBatch[] = [];
      for (const f of fetched) {
        // Released or acquired again (a rebalance), sought, resolved elsewhere or paused since the fetch began: this data is not what comes next.
        if (this.assigned.get(f.key)?.epoch !== f.epoch || this.pos.get(f.key) !== f.from || this.paused.get(f.key)) continue;
        if (f.messages.length === 0) {
          // Only transaction markers or aborted records: step over them.
          if (f.next > f.from) this.pos.set(f.key, f.next);
          continue;
        }
        batches.push(this.batch(f));
      }
      if (batches.length) await this.handleAll(batches, handler);
    }
  }

  /** Hands batches to the runner, `concurrency` at once; errors are the runner's (logged, read again). */
  private async handleAll(batches: SourceBatch[], handler: (batch: SourceBatch) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const b = batches[next++]!;
        if (this.draining) return;
        const work = handler(b).catch((err: unknown) => {
          this.logger.warn({ err: describe(err), topic: b.topic, partition: b.partition }, "batch failed; it is read again");
        });
        this.inflight.add(work);
        try {
          await work;
        } finally {
          this.inflight.delete(work);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency, batches.length)) }, worker));
  }

  private batch(f: Fetched): SourceBatch {
    const { key, topic, partition, epoch: gen } = f;
    const seekAt = this.seeks.get(key) ?? 0;
    const mine = () => this.assigned.get(key)?.epoch === gen;
    return {
      cluster: this.cluster,
      topic,
      partition,
      highWatermark: String(f.highWatermark),
      messages: f.messages,
      resolveOffset: (o) => {
        if (mine()) this.pos.set(key, BigInt(o) + 1n);
      },
      commitThrough: async (o) => {
        // Released since (cooperative revoke): its next owner may be reading it; commit nothing.
        if (!mine()) throw new Error(`${key} was revoked by a rebalance; its next owner commits it`);
        if (this.rebalancing && !this.stopping && !this.draining) {
          // Committed with the next join (if the partition is still this member's): processing goes on meanwhile.
          const prev = this.deferred.get(key);
          const offset = BigInt(o) + 1n;
          if (!prev || prev.offset < offset) this.deferred.set(key, { topic, partition, offset, epoch: gen });
          return;
        }
        await this.consumer.commit({ offsets: [{ topic, partition, offset: BigInt(o) + 1n, leaderEpoch: -1 }] });
      },
      seek: (o) => {
        if (!mine()) return;
        this.pos.set(key, BigInt(o));
        this.seeks.set(key, (this.seeks.get(key) ?? 0) + 1);
      },
      // The partition's ownership, not the group's generation: with cooperative assignment a rebalance that keeps the partition leaves it as it is.
      generation: gen,
      currentGeneration: () => this.assigned.get(key)?.epoch ?? -1,
      // The client heartbeats on its own timer; a rebalance shows as a new generation (isStale).
      heartbeat: async () => {},
      isRunning: () => !this.stopping,
      isStale: () => !mine() || (this.seeks.get(key) ?? 0) !== seekAt,
      pause: () => {
        this.paused.set(key, (this.paused.get(key) ?? 0) + 1);
        let done = false;
        return () => {
          if (done) return;
          done = true;
          const n = (this.paused.get(key) ?? 1) - 1;
          if (n > 0) this.paused.set(key, n);
          else this.paused.delete(key);
          this.wake();
        };
      },
    };
  }

  /** One Fetch per leader, in parallel; one entry per partition that answered. */
  private async fetch(plan: Planned[]): Promise<Fetched[]> {
    const meta = await this.consumer.metadata({ topics: this.topics });
    const byNode = new Map<number, { topics: FetchRequestTopic[]; ids: Map<string, string>; planned: Map<string, Planned> }>();
    const maxPerPartition = this.options.maxBytesPerPartition ?? FETCH_DEFAULTS.maxBytesPerPartition;
    for (const p of plan) {
      const t = meta.topics.get(p.topic);
      const leader = t?.partitions[p.partition]?.leader;
      if (!t || leader === undefined || leader < 0) continue;
      let req = byNode.get(leader);
      if (!req) byNode.set(leader, (req = { topics: [], ids: new Map(), planned: new Map() }));
      let topicReq = req.topics.find((x) => x.topicId === t.id);
      if (!topicReq) req.topics.push((topicReq = { topicId: t.id, partitions: [] }));
      topicReq.partitions.push({ partition: p.partition, fetchOffset: p.offset, partitionMaxBytes: maxPerPartition, currentLeaderEpoch: -1, lastFetchedEpoch: -1 });
      req.ids.set(t.id, p.topic);
      req.planned.set(p.key, p);
    }
    const results = await Promise.all(
      [...byNode].map(async ([node, req]) => {
        try {
          const response = await this.consumer.fetch({ node, topics: req.topics, isolationLevel: this.isolationLevel, ...(this.fetchPool ? { connectionPool: this.fetchPool } : {}) });
          return this.parse(response, req.ids, req.planned);
        } catch (err) {
          if (this.resetOutOfRange(err, req.ids, req.planned, meta)) return [];
          throw err;
        }
      }),
    );
    return results.flat();
  }

  /** A position before the log start (retention) or past its end: start again as a new group would. */
  private resetOutOfRange(err: unknown, ids: Map<string, string>, planned: Map<string, Planned>, _meta: ClusterMetadata): boolean {
    const response = (err as { response?: FetchResponse }).response;
    if (!response || !/OFFSET_OUT_OF_RANGE|out of range/i.test(describe(err))) return false;
    let reset = false;
    for (const t of response.responses) {
      const topic = ids.get(t.topicId) ?? t.topicId;
      for (const p of t.partitions) {
        const key = `${topic}/${p.partitionIndex}`;
        if (p.errorCode === 1 && planned.has(key) && this.pos.get(key) === planned.get(key)!.offset) {
          const to = this.options.fromBeginning ? p.logStartOffset : p.highWatermark;
          if (to >= 0n) {
            this.logger.warn({ topic, partition: p.partitionIndex, from: String(planned.get(key)!.offset), to: String(to) }, "fetch position out of range; starting again from the log's " + (this.options.fromBeginning ? "start" : "end"));
            this.pos.set(key, to);
            reset = true;
          }
        }
      }
    }
    return reset;
  }

  private parse(response: FetchResponse, ids: Map<string, string>, planned: Map<string, Planned>): Fetched[] {
    const out: Fetched[] = [];
    const cluster = this.cluster;
    for (const t of response.responses) {
      const topic = ids.get(t.topicId) ?? t.topicId;
      for (const p of t.partitions) {
        const partition = p.partitionIndex;
        const key = `${topic}/${partition}`;
        const plan = planned.get(key);
        if (!plan || p.errorCode !== 0) continue;
        const from = plan.offset;
        const batches: RecordsBatch[] = p.records ?? [];
        let next = from;
        const messages: SourceMessage[] = [];
        const aborted = p.abortedTransactions?.length ? new AbortedTransactions(p.abortedTransactions) : undefined;
        for (const b of batches) {
          const first = b.firstOffset;
          const end = first + BigInt(b.lastOffsetDelta) + 1n;
          if (end > next) next = end;
          if (aborted?.skip(b, end - 1n)) continue;
          if (b.attributes & IS_CONTROL) continue;
          const base = Number(first);
          const baseTs = Number(b.firstTimestamp);
          const records = b.records;
          for (let i = 0; i < records.length; i++) {
            const r = records[i]!;
            const offset = base + r.offsetDelta;
            if (offset < Number(from)) continue;
            messages.push({
              cluster,
              topic,
              partition,
              offset: String(offset),
              timestamp: baseTs + Number(r.timestampDelta),
              rawKey: r.key,
              rawValue: r.value,
              rawHeaders: r.headers.length ? headersToStrings(r.headers) : NO_HEADERS,
            });
          }
        }
        out.push({ key, epoch: plan.epoch, topic, partition, from, next, highWatermark: p.highWatermark, messages });
      }
    }
    return out;
  }

  /** Drains (no new batch; in-flight ones finish and commit), runs the runner's last commits, leaves the group. */
  async stop(beforeLeave?: () => Promise<void>): Promise<void> {
    this.draining = true;
    clearInterval(this.patternTimer);
    this.wake();
    await Promise.allSettled([...this.inflight]);
    await this.commitDeferred();
    await beforeLeave?.().catch((err: unknown) => this.logger.warn({ err }, "last commits before leaving the group failed; what they cover is read again"));
    if (running.get(this.options.group) === this) running.delete(this.options.group);
    this.stopping = true;
    this.wake();
    await this.loop;
    this.joined = false;
    this.metrics.setReady(false);
    try {
      await this.consumer.leaveGroup();
    } catch (err) {
      this.logger.debug({ err: describe(err) }, "leaving the group failed; the session timeout removes this member");
    }
    await this.consumer.close(true).catch(() => {});
    await this.fetchPool?.close().catch(() => {});
  }

  /**
   * The group's current join, while the partition a batch of ownership `gen` was fetched in is
   * still held under it (KIP-447 fencing: the offset commit carries this generation and member id;
   * with cooperative assignment a partition kept across a rebalance commits with the new one).
   */
  groupMetadata(gen: number): { generationId: number; memberId: string; coordinatorId: number } | undefined {
    const coordinatorId = this.consumer.coordinatorId;
    let held = false;
    for (const o of this.assigned.values()) {
      if (o.epoch === gen) {
        held = true;
        break;
      }
    }
    return held && this.join && coordinatorId !== null ? { generationId: this.consumer.generationId, memberId: this.join.memberId, coordinatorId } : undefined;
  }

  /** The group's committed offset of one partition (undefined: none). */
  async committedOffset(topic: string, partition: number): Promise<bigint | undefined> {
    const committed = await this.consumer.listCommittedOffsets({ topics: [{ topic, partitions: [partition] }] });
    const o = committed.get(topic)?.[partition];
    return o !== undefined && o >= 0n ? o : undefined;
  }

  /** The high watermark of each partition of `topic` (index: partition). */
  async ends(topic: string): Promise<bigint[]> {
    const ends = await this.consumer.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.LATEST });
    return [...(ends.get(topic) ?? [])].map((o) => o ?? 0n);
  }

  /** The group's committed offset of each of `partitions` partitions of `topic` (0 where none). */
  async committed(topic: string, partitions: number): Promise<bigint[]> {
    const committed = await this.consumer.listCommittedOffsets({ topics: [{ topic, partitions: Array.from({ length: partitions }, (_, i) => i) }] });
    return Array.from({ length: partitions }, (_, i) => {
      const o = committed.get(topic)?.[i];
      return o !== undefined && o >= 0n ? o : 0n;
    });
  }

  /** Lag per partition: high watermark minus the group's committed offset. */
  async lag(): Promise<Array<{ topic: string; partition: number; lag: number }>> {
    const meta = await this.consumer.metadata({ topics: this.topics });
    const topics: GroupAssignment[] = this.topics.filter((t) => meta.topics.has(t)).map((topic) => ({ topic, partitions: Array.from({ length: meta.topics.get(topic)!.partitionsCount }, (_, i) => i) }));
    if (topics.length === 0) return [];
    const committed = await this.consumer.listCommittedOffsets({ topics });
    const ends = await this.consumer.listOffsets({ topics: topics.map((t) => t.topic), timestamp: ListOffsetTimestamps.LATEST });
    const starts = await this.consumer.listOffsets({ topics: topics.map((t) => t.topic), timestamp: ListOffsetTimestamps.EARLIEST });
    const out: Array<{ topic: string; partition: number; lag: number }> = [];
    for (const { topic, partitions } of topics) {
      for (const partition of partitions) {
        const high = ends.get(topic)?.[partition];
        if (high === undefined) continue;
        const c = committed.get(topic)?.[partition];
        // A pattern source reports only what the group has committed, as the kafkajs side does.
        if ((c === undefined || c < 0n) && this.options.pattern) continue;
        const at = c !== undefined && c >= 0n ? c : (starts.get(topic)?.[partition] ?? 0n);
        out.push({ topic, partition, lag: Math.max(0, Number(high - at)) });
      }
    }
    return out;
  }
}

/**
 * read_committed: the broker returns records up to the last stable offset, aborted ones
 * included, with the list of aborted transactions (producer id, first offset); the client
 * drops a transactional batch of a producer from that list's first offset until the
 * producer's abort marker (as the Java consumer does).
 */
class AbortedTransactions {
  private readonly pending: { producerId: bigint; firstOffset: bigint }[];
  private readonly open = new Set<bigint>();
  constructor(list: readonly { producerId: bigint; firstOffset: bigint }[]) {
    this.pending = [...list].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  }
  /** True for a batch to drop: records of an aborted transaction, or that transaction's marker. */
  skip(b: RecordsBatch, lastOffset: bigint): boolean {
    while (this.pending.length && this.pending[0]!.firstOffset <= lastOffset) this.open.add(this.pending.shift()!.producerId);
    if (!(b.attributes & IS_TRANSACTIONAL) || !this.open.has(b.producerId)) return false;
    // The abort marker ends the aborted transaction; it is no record either.
    if (b.attributes & IS_CONTROL) this.open.delete(b.producerId);
    return true;
  }
}

/** Shared by every message without headers (most). Frozen: read-only. */
const NO_HEADERS: Record<string, string> = Object.freeze({});

function headersToStrings(headers: [Buffer | null, Buffer | null][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) {
    if (!k) continue;
    out[k.toString("utf8")] = v ? v.toString("utf8") : "";
  }
  return out;
}

/** A client error that only says a broker could not be reached (also all the tries of a MultipleErrors). */
export function unreachable(err: unknown): boolean {
  const e = err as { code?: unknown; errors?: unknown };
  if (e?.code === "PLT_KFK_NETWORK") return true;
  return e?.code === "PLT_KFK_MULTIPLE" && Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(unreachable);
}
