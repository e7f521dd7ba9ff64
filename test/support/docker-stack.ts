import type { StackAddresses } from "../../lib/stack/stack.ts";

/**
 * The same services as the native stack, in containers (STREAMFLEET_STACK=docker). Returns
 * the reason as a string when no Docker engine answers, so suites skip and say why.
 */
export async function startDockerStack(): Promise<{ addresses: StackAddresses; stop: () => Promise<void> } | string> {
  const tc = await import("testcontainers");
  try {
    await tc.getContainerRuntimeClient();
  } catch (err) {
    return `no Docker engine answers (${(err as Error).message.split("\n")[0]})`;
  }
  const { GenericContainer, Wait } = tc;
  const kafka = await new GenericContainer("apache/kafka:4.4.0")
    .withExposedPorts({ container: 9092, host: 9092 })
    .withEnvironment({
      KAFKA_NODE_ID: "1",
      KAFKA_PROCESS_ROLES: "broker,controller",
      KAFKA_LISTENERS: "PLAINTEXT://:9092,CONTROLLER://:9093",
      KAFKA_ADVERTISED_LISTENERS: "PLAINTEXT://127.0.0.1:9092",
      KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
      KAFKA_CONTROLLER_QUORUM_VOTERS: "1@localhost:9093",
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
      KAFKA_NUM_PARTITIONS: "3",
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const registry = await new GenericContainer("apicurio/apicurio-registry:3.0.9").withExposedPorts(8080).start();
  const redis = await new GenericContainer("redis:7").withExposedPorts(6379).start();
  const rabbit = await new GenericContainer("rabbitmq:3-management")
    .withExposedPorts(5672)
    .withWaitStrategy(Wait.forLogMessage(/Server startup complete/))
    .start();
  const pg = await new GenericContainer("postgres:15")
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust", POSTGRES_DB: "test" })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2))
    .start();
  const h = (c: { getHost(): string }) => c.getHost();
  return {
    addresses: {
      KAFKA_BROKERS: "127.0.0.1:9092",
      SCHEMA_REGISTRY_URL: `http://${h(registry)}:${registry.getMappedPort(8080)}/apis/ccompat/v7`,
      REDIS_URL: `redis://${h(redis)}:${redis.getMappedPort(6379)}`,
      AMQP_URL: `amqp://guest:guest@${h(rabbit)}:${rabbit.getMappedPort(5672)}`,
      DATABASE_URL: `postgres://postgres@${h(pg)}:${pg.getMappedPort(5432)}/test`,
    },
    stop: async () => {
      for (const c of [kafka, registry, redis, rabbit, pg]) await c.stop();
    },
  };
}
