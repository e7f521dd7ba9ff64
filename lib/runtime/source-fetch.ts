import type { LoadedTopology } from "../topology/loader.ts";
import type { SourceOptions, StreamPlatform } from "./contracts.ts";

/** How much a source fetches at once: the topology's `source.max_bytes_per_partition` and `source.max_bytes_per_fetch`. */
export interface FetchLimits {
  maxBytesPerPartition: number;
  maxBytesPerFetch: number;
}

/** What a platform's `source()` receives: the runner's options and the topology's fetch limits. */
export type FetchingSourceOptions = SourceOptions & Partial<FetchLimits>;

/**
 * The stream platform as the runners see it: each source it opens gets its topology's fetch
 * limits. (The runner builds SourceOptions without them; this adds them by topology name, the
 * one place that knows every loaded topology.)
 */
export function withFetchLimits(platform: StreamPlatform, topologies: readonly LoadedTopology[]): StreamPlatform {
  const limits = new Map<string, FetchLimits>(
    topologies.map(({ topology: { name, source } }) => [name, { maxBytesPerPartition: source.max_bytes_per_partition, maxBytesPerFetch: source.max_bytes_per_fetch }]),
  );
  return {
    source: (options, ctx) => platform.source({ ...options, ...limits.get(options.topology) } satisfies FetchingSourceOptions, ctx),
    deadLetters: (ctx) => platform.deadLetters(ctx),
    ensureTopics: (topics, partitions) => platform.ensureTopics(topics, partitions),
    replayDeadLetters: (dlqTopic, group, options) => platform.replayDeadLetters(dlqTopic, group, options),
    ...(platform.transactions ? { transactions: (options) => platform.transactions!(options) } : {}),
    close: () => platform.close(),
  };
}
