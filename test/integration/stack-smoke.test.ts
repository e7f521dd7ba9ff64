import { SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { Redis } from "ioredis";
import amqp from "amqplib";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("smoke");
afterAll(() => scope.cleanup());

describeStack("the real stack answers", () => {
  it("moves an Avro record through Kafka 4 and the schema registry", async () => {
    const topic = scope.topic("avro");
    await scope.createTopics([topic], 1);
    const registry = new SchemaRegistry({ host: stack().SCHEMA_REGISTRY_URL });
    const schema = {
      type: "record",
      name: "Ping",
      namespace: `smoke.${scope.id}`,
      fields: [
        { name: "id", type: "string" },
        { name: "n", type: "int" },
      ],
    };
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject: `${topic}-value` });
    const encoded = await registry.encode(id, { id: "a1", n: 42 });
    expect(encoded[0]).toBe(0); // Confluent wire format: magic byte, then the schema id
    expect(encoded.readInt32BE(1)).toBe(id);

    const kafka = scope.kafka();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: "a1", value: encoded }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: scope.group("smoke") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const decoded = await new Promise<unknown>((resolve, reject) => {
      consumer.run({ eachMessage: async ({ message }) => resolve(await registry.decode(message.value!)) }).catch(reject);
    });
    await consumer.disconnect();
    expect(decoded).toEqual({ id: "a1", n: 42 });
  });

  it("round-trips a key with a TTL through Redis", async () => {
    const redis = new Redis(stack().REDIS_URL);
    const key = `${scope.keyPrefix}hello`;
    await redis.set(key, "world", "EX", 60);
    expect(await redis.get(key)).toBe("world");
    expect(await redis.ttl(key)).toBeGreaterThan(50);
    redis.disconnect();
  });

  it("publishes with confirms to RabbitMQ and consumes the message", async () => {
    const queue = scope.queue("smoke");
    const conn = await amqp.connect(stack().AMQP_URL);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    ch.sendToQueue(queue, Buffer.from("hello"), { persistent: true, messageId: "m-1" });
    await ch.waitForConfirms();
    const msg = await ch.get(queue, { noAck: false });
    expect(msg && msg.content.toString()).toBe("hello");
    expect(msg && msg.properties.messageId).toBe("m-1");
    if (msg) ch.ack(msg);
    await conn.close();
  });

  it("writes and reads a row in PostgreSQL", async () => {
    const client = new pg.Client({ connectionString: stack().DATABASE_URL });
    await client.connect();
    const schema = scope.pgSchema;
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE "${schema}".t (id text primary key, n int)`);
    await client.query(`INSERT INTO "${schema}".t VALUES ($1, $2)`, ["a", 7]);
    const { rows } = await client.query(`SELECT n FROM "${schema}".t WHERE id = 'a'`);
    expect(rows).toEqual([{ n: 7 }]);
    await client.end();
  });
});
