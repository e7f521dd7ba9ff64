import { z } from "zod";
import { SfError } from "../errors.ts";
import type { AvroType } from "./avro.ts";
import { readAvsc } from "./avro.ts";
import { prepareReader } from "./reader-check.ts";
import type { SchemaCodecs } from "./registry.ts";

export const codecSchema = z
  .discriminatedUnion("type", [
    z
      .object({
        type: z.literal("avro"),
        subject: z.string().min(1).optional().describe("Registry subject; defaults to <first topic>-value (or -key)"),
        schema: z
          .string()
          .min(1)
          .optional()
          .describe(
            "A local .avsc (relative to the topology file): the reader schema. At start the worker checks that it can read every version of the subject and stops naming the field when it cannot; it registers it only when the subject does not exist yet",
          ),
      })
      .strict()
      .describe("Avro in the Confluent wire format, schemas from the registry"),
    z.object({ type: z.literal("json") }).strict().describe("UTF-8 JSON"),
    z.object({ type: z.literal("string") }).strict().describe("UTF-8 text"),
    z.object({ type: z.literal("raw") }).strict().describe("Bytes as a Buffer"),
  ])
  .describe("How a key or value is decoded");
export type CodecConfig = z.infer<typeof codecSchema>;

/** Decodes one side (key or value) of records; built once per topology. */
export interface Decoder {
  /**
   * Fetches what the batch needs (Avro writer schemas) before `decode`; throws retriable errors
   * only. Absent when the codec needs nothing. Reads `items[i][field]`: no array per batch.
   */
  prepare?<F extends string>(items: readonly { readonly [K in F]: Buffer | null }[], field: F): Promise<void>;
  /** Decodes one buffer, throwing SfError(SF_ERR_DECODE_*) for a poison record. */
  decode(buf: Buffer | null): unknown;
  /** The reader schema, when the codec has one. */
  readonly reader?: AvroType;
}

export async function createDecoder(
  config: CodecConfig,
  opts: { codecs: SchemaCodecs; baseDir: string; defaultSubject: string },
): Promise<Decoder> {
  switch (config.type) {
    case "raw":
      return { decode: (b) => b };
    case "string":
      return { decode: (b) => (b === null ? null : b.toString("utf8")) };
    case "json":
      return {
        decode(b) {
          if (b === null) return null;
          try {
            return JSON.parse(b.toString("utf8"));
          } catch (err) {
            throw new SfError("SF_ERR_DECODE_MALFORMED", `value is not valid JSON: ${(err as Error).message}`);
          }
        },
      };
    case "avro": {
      const subject = config.subject ?? opts.defaultSubject;
      let reader: AvroType | undefined;
      if (config.schema) {
        const local = readAvsc(config.schema, opts.baseDir);
        await prepareReader(opts.codecs, subject, local);
        reader = local.type;
      }
      const codecs = opts.codecs;
      return {
        reader,
        prepare: (items, field) => codecs.prepareField(items, field),
        decode(b) {
          if (b === null) return null;
          return codecs.decode(b, reader);
        },
      };
    }
  }
}
