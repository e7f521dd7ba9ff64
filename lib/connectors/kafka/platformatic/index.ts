/**
 * Everything of the @platformatic/kafka side, loaded only by a connection that uses it
 * (KAFKA_CLIENT=platformatic): importing the client takes 1.5–3 s on a busy machine, a delay no
 * kafkajs worker should pay at start.
 */
export { createTopicsReady, withAdmin } from "./admin.ts";
export { platformaticWriter } from "./producer.ts";
export { replayDeadLetters } from "./replay.ts";
export { PlatformaticSource } from "./source.ts";
