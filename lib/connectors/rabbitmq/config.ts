import { z } from "zod";
import { template, valueTemplate } from "../../topology/template-fields.ts";

const exchangeType = z.enum(["direct", "topic", "fanout", "headers"]);

export const exchangeSchema = z
  .object({
    name: z.string().min(1).describe("Exchange name"),
    type: exchangeType.default("direct").describe("Exchange type"),
    durable: z.boolean().default(true).describe("Survives a broker restart"),
    auto_delete: z.boolean().default(false),
  })
  .strict();

export const bindingSchema = z
  .object({
    exchange: z.string().min(1).describe("Exchange the queue is bound to"),
    routing_key: z.string().default("").describe("Binding key (topic patterns such as `training.#` for topic exchanges)"),
  })
  .strict();

export const queueSchema = z
  .object({
    name: z.string().min(1).describe("Queue name"),
    durable: z.boolean().default(true).describe("Survives a broker restart (quorum queues are always durable)"),
    quorum: z.boolean().default(false).describe("Declare a quorum queue (x-queue-type: quorum): replicated, safer for work that must not be lost"),
    dead_letter_exchange: z.string().optional().describe("x-dead-letter-exchange: where rejected / expired messages go"),
    dead_letter_routing_key: z.string().optional().describe("x-dead-letter-routing-key"),
    max_length: z.number().int().min(1).optional().describe("x-max-length: most messages the queue holds"),
    overflow: z
      .enum(["drop-head", "reject-publish", "reject-publish-dlx"])
      .optional()
      .describe("x-overflow at max_length; `reject-publish` makes the broker nack, and the sink retries the batch"),
    message_ttl_ms: z.number().int().min(0).optional().describe("x-message-ttl"),
    delivery_limit: z.number().int().min(1).optional().describe("x-delivery-limit (quorum queues): redeliveries before dead-lettering"),
    bindings: z.array(bindingSchema).default([]),
  })
  .strict();

export const rabbitmqSinkSchema = z
  .object({
    connection: z
      .string()
      .default("default")
      .describe("Connection name: `default` reads AMQP_URL, any other AMQP_URL__<NAME>; AMQP_USERNAME / AMQP_PASSWORD(_FILE) override the URL's credentials, AMQP_TLS_CA_FILE for amqps://"),
    exchange: z.string().default("").describe("Exchange to publish to (\"\" is the default exchange: the routing key names a queue)"),
    routing_key: template(z.string()).default("").describe("Routing key template, e.g. `training.{model}`"),
    message_id: template(z.string().min(1)).default("{$id}").describe("messageId template; the default record id lets consumers drop replayed duplicates"),
    body: z
      .record(z.string(), valueTemplate(z.unknown()))
      .optional()
      .describe('JSON body: field -> value template ("{path}" keeps the type). Absent: the whole record value'),
    headers: z.record(z.string(), valueTemplate(z.unknown())).default({}).describe("Message headers: name -> value template"),
    message_type: template(z.string()).optional().describe("AMQP `type` property template, e.g. `training.requested`"),
    persistent: z.boolean().default(true).describe("delivery-mode 2: the broker writes the message to disk"),
    mandatory: z.boolean().default(true).describe("Unroutable messages come back and the batch is retried, never counted as delivered"),
    confirm_timeout_ms: z.number().int().min(100).default(30_000).describe("Longest wait for the broker's confirms of one batch"),
    declare: z
      .object({
        exchanges: z.array(exchangeSchema).default([]),
        queues: z.array(queueSchema).default([]),
      })
      .strict()
      .default({ exchanges: [], queues: [] })
      .describe("Exchanges, queues and bindings declared at open and after every reconnect"),
  })
  .strict();

export type RabbitmqSinkConfig = z.infer<typeof rabbitmqSinkSchema>;
export type QueueDeclaration = z.infer<typeof queueSchema>;
export type Declarations = RabbitmqSinkConfig["declare"];
