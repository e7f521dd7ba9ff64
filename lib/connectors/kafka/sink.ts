import { z } from "zod";
import { readAvsc } from "../../codecs/avro.ts";
import { SfError } from "../../errors.ts";
import type { ComponentSpec, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate } from "../../topology/template.ts";
import { template } from "../../topology/template-fields.ts";
import { oversized } from "./chunks.ts";
import { checkTopicAccess, sharedWriter } from "./platform.ts";
import { writerIn } from "./transactions.ts";
import type { KafkaWriter, OutMessage } from "./writer.ts";

const schema = z
  .object({
    topic: z.string().min(1).describe("Topic to write; the next topology consumes it"),
    key: template(z.string()).optional().describe("Key template, e.g. {userId}; default: the record's key"),
    value: z
      .discriminatedUnion("type", [
        z.object({ type: z.literal("avro"), schema: z.string().min(1).describe("Local .avsc, registered under `subject` at start"), subject: z.string().optional().describe("Defaults to <topic>-value") }).strict(),
        z.object({ type: z.literal("json") }).strict(),
      ])
      .default({ type: "json" })
      .describe("How values are encoded"),
    headers: z.boolean().default(true).describe("Carry the record's headers over"),
    connection: z.string().default("default"),
  })
  .strict();
type Config = z.infer<typeof schema>;

/** `kafka` sink: Avro (registry) or JSON values, idempotent producer, acks=all; in a transaction under `delivery: exactly_once`. */
export const kafkaSink: ComponentSpec<Config, Sink> = {
  schema,
  transactional: true,
  description: "Write records to a Kafka topic (Avro through the registry, or JSON), idempotent producer with acks=all; how topologies chain.",
  verify(config, ctx) {
    if (config.value.type !== "avro") return [];
    try {
      readAvsc(config.value.schema, ctx.baseDir);
      return [];
    } catch (err) {
      return [{ path: ["value", "schema"], message: (err as Error).message }];
    }
  },
  async create(config, ctx) {
    const key = config.key ? compileTemplate(config.key) : undefined;
    let encode: (v: unknown) => Buffer;
    if (config.value.type === "avro") {
      const { text, type } = readAvsc(config.value.schema, ctx.baseDir);
      const id = await ctx.codecs.register(config.value.subject ?? `${config.topic}-value`, text);
      encode = ctx.codecs.encoder(id, type);
    } else {
      encode = (v) => Buffer.from(JSON.stringify(v));
    }
    let writer: KafkaWriter | undefined;
    const toMessage = (r: StreamRecord): OutMessage => ({
      key: key ? key(r) : r.key === null || r.key === undefined ? null : Buffer.isBuffer(r.key) ? r.key : String(r.key),
      value: encode(r.value),
      headers: config.headers ? r.headers : {},
    });
    return {
      name: ctx.component,
      async open() {
        writer = await sharedWriter(ctx.connections, config.connection, ctx.logger);
        await checkTopicAccess(ctx.connections, config.connection, ctx.logger, config.topic);
      },
      async write(records, scope) {
        const messages: OutMessage[] = [];
        const failed = [];
        for (const r of records) {
          try {
            const m = toMessage(r);
            if (oversized(m)) throw new Error("the encoded record is larger than the broker accepts");
            messages.push(m);
          } catch (err) {
            failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `value does not encode for ${config.topic}: ${(err as Error).message}`) });
          }
        }
        // exactly_once: in the unit's transaction (the topology's source connection, checked at validation).
        const out = scope?.transaction ? writerIn(scope.transaction, writer!) : writer!;
        try {
          await out.send(config.topic, messages);
        } catch (err) {
          // An ACL revoked while running: not retriable, so the batch goes to the DLQ with the reason.
          const denied = writer!.securityError(err, { topics: [config.topic] });
          throw denied ?? new SfError("SF_ERR_SINK_NOT_CONNECTED", `writing to Kafka topic ${config.topic} failed: ${(err as Error).message}`, { cause: err });
        }
        return { failed };
      },
      async close() {},
    };
  },
};
