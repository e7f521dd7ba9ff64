/**
 * Everything of the kafkajs side, loaded only by a connection that uses it (KAFKA_CLIENT=kafkajs),
 * as platformatic/index.ts is for the other client: a worker holds only the client it reads with
 * (kafkajs's modules are ~18 MB of a process's memory, @platformatic/kafka's ~55 MB).
 */
export { Partitioners } from "kafkajs";
export { sendAll } from "./chunks.ts";
export { createKafka, kafkaSecurityError } from "./client.ts";
export { replayDeadLetters } from "./replay.ts";
export { KafkaSource } from "./source.ts";
export { createTopicsReady } from "./topics.ts";
