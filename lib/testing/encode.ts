/**
 * Test inputs to Kafka bytes, through the topology's codecs: JSON as JSON, strings as UTF-8,
 * Avro with the writer schema in Confluent framing (registered in the run's local registry,
 * so the worker's decoder reads it by id). Where the Avro schema comes from is reported.
 */
import path from "node:path";
import type { CodecConfig } from "../codecs/index.ts";
import type { AvroType } from "../codecs/avro.ts";
import { avroErrors, avroType, readAvsc } from "../codecs/avro.ts";
import { SchemaCodecs } from "../codecs/registry.ts";
import { errorMessage } from "../errors.ts";
import type { LocalRegistry } from "./local-registry.ts";

/** A reason a case cannot run here (no schema to encode with): reported as "not run", never guessed. */
export class NotRunnable extends Error {}

/** A test input the codec refuses (a value its schema rejects): the case fails with this. */
export class BadInput extends Error {}

interface Writer {
  encode(value: unknown): Buffer;
  type: AvroType;
}

export class InputEncoder {
  private readonly registry: LocalRegistry;
  private readonly codecs: SchemaCodecs;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly writers = new Map<string, Promise<Writer>>();
  /** Where each Avro schema came from, once per schema: "value of t: local ../x.avsc". */
  readonly notes: string[] = [];

  constructor(registry: LocalRegistry, env: Readonly<Record<string, string | undefined>>) {
    this.registry = registry;
    this.codecs = new SchemaCodecs(registry.url);
    this.env = env;
  }

  /**
   * Encodes one side of an input. `local`: a writer .avsc named by the input (relative to
   * `testDir`); otherwise the codec's own schema (relative to `baseDir`), otherwise the
   * subject's latest version in the real registry, when one answers.
   */
  async encode(codec: CodecConfig, side: "key" | "value", topic: string, value: unknown, where: { baseDir: string; testDir: string; local?: string }): Promise<Buffer | null> {
    if (value === null || value === undefined) return null;
    switch (codec.type) {
      case "json":
        return Buffer.from(JSON.stringify(value));
      case "string":
      case "raw":
        return Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
      case "avro": {
        const writer = await this.writer(codec, side, topic, where);
        const problems = avroErrors(writer.type, value);
        if (problems.length) throw new BadInput(`the ${side} does not match its Avro schema ${writer.type.name ?? ""}: ${problems.join("; ")}`);
        return writer.encode(value);
      }
    }
  }

  private writer(codec: Extract<CodecConfig, { type: "avro" }>, side: "key" | "value", topic: string, where: { baseDir: string; testDir: string; local?: string }): Promise<Writer> {
    const file = where.local ? path.resolve(where.testDir, where.local) : codec.schema ? path.resolve(where.baseDir, codec.schema) : undefined;
    const subject = codec.subject ?? `${topic}-${side}`;
    const id = file ?? `registry:${subject}`;
    let w = this.writers.get(id);
    if (!w) {
      w = this.load(file, subject, side, topic);
      this.writers.set(id, w);
    }
    return w;
  }

  private async load(file: string | undefined, subject: string, side: string, topic: string): Promise<Writer> {
    let text: string;
    if (file) {
      text = readAvsc(file, "/").text;
      this.notes.push(`${side} schema of ${topic}: local ${path.relative(process.cwd(), file) || file}`);
    } else {
      const url = this.env.SCHEMA_REGISTRY_URL;
      if (!url) throw new NotRunnable(`the ${side} of ${topic} is Avro without a local .avsc and SCHEMA_REGISTRY_URL is not set (name a writer schema with \`schema:\` on the input)`);
      try {
        const latest = await new SchemaCodecs(url).latest(subject);
        text = latest.schema;
        this.notes.push(`${side} schema of ${topic}: registry ${url} (${subject} version ${latest.version})`);
      } catch (err) {
        throw new NotRunnable(`the ${side} of ${topic} is Avro without a local .avsc, and its subject ${subject} could not be read from the registry: ${errorMessage(err)} (name a writer schema with \`schema:\` on the input)`);
      }
    }
    const type = avroType(text, file ?? subject);
    const id = this.registry.register(subject, text);
    return { type, encode: this.codecs.encoder(id, type) };
  }
}
