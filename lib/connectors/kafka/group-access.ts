import type { Kafka } from "kafkajs";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import type { StreamPlatform } from "../../runtime/contracts.ts";

/** The few members of kafkajs's cluster (src/cluster) the probe uses: not in its typings. */
interface ProbeCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  brokerPool: { seedBroker?: { findGroupCoordinator(request: { groupId: string; coordinatorType: number }): Promise<unknown> } };
}

/** How a kafkajs client makes the cluster its consumers, producers and admins connect through. */
const CREATE_CLUSTER = "private:Kafka:createCluster";

/**
 * Asks one broker, once, where consumer group `group`'s coordinator is, over `kafka`'s own
 * connection settings (brokers, TLS, SASL), and returns the broker's error: kafkajs's own
 * lookup answers every refusal with "Failed to find group coordinator"
 * (KafkaJSGroupCoordinatorNotFound) and keeps the broker's reason to a debug log, so a group
 * the ACLs deny looks like an outage. The error returned is kafkajs's KafkaJSProtocolError,
 * whose `type` names the broker's code (GROUP_AUTHORIZATION_FAILED). Undefined when the broker
 * names a coordinator, or when the question cannot be put (a kafkajs without that cluster
 * factory, no broker reached within `timeoutMs`: then nothing is known beyond kafkajs's own error).
 */
export async function findCoordinatorError(kafka: Kafka, group: string, timeoutMs = 10_000): Promise<Error | undefined> {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const create = key && (kafka as unknown as Record<symbol, unknown>)[key];
  if (typeof create !== "function") return undefined;
  const cluster = (create as (o: object) => ProbeCluster)({ allowAutoTopicCreation: false });
  const ask = (async () => {
    try {
      await cluster.connect();
      await cluster.brokerPool.seedBroker?.findGroupCoordinator({ groupId: group, coordinatorType: 0 });
      return undefined;
    } catch (err) {
      // Only the broker's answer counts: a connection that failed says nothing of the group.
      return (err as { name?: string }).name === "KafkaJSProtocolError" ? (err as Error) : undefined;
    }
  })();
  // A broker not reached is retried by the client for a while: the start waits `timeoutMs` at most.
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, timeoutMs, undefined)));
  try {
    return await Promise.race([ask, gaveUp]);
  } finally {
    clearTimeout(timer);
    void ask.finally(() => cluster.disconnect()).catch(() => {});
  }
}

/**
 * `platform`, its sources' start failures read as the security errors they are: a source that
 * fails to start with a client's error (kafkajs's consumer: a group the broker refused, see
 * source.ts) throws the SfError the other denials throw — the connection, the principal and
 * the group named, nothing retried. The classifier is loaded only when a start fails. Only
 * `source` is replaced, on the instance, so the platform keeps every other member it has.
 */
export function classifySourceFailures<P extends StreamPlatform>(platform: P, connections: Connections): P {
  const source = platform.source.bind(platform);
  platform.source = (options, ctx) => {
    const s = source(options, ctx);
    const run = s.run.bind(s);
    s.run = async (handler) => {
      try {
        await run(handler);
      } catch (err) {
        if (err instanceof SfError) throw err;
        const { kafkaSecurityError } = await import("./client.ts");
        throw kafkaSecurityError(err, connections, options.connection, { group: options.group, topics: options.topics }) ?? err;
      }
    };
    return s;
  };
  return platform;
}
