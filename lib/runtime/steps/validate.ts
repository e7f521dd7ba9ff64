import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { avroErrors, readAvsc } from "../../codecs/avro.ts";
import { SfError } from "../../errors.ts";
import { shapeOfAvro } from "../../topology/shape.ts";
import type { ComponentSpec, RecordFailure, Step, StreamRecord } from "../contracts.ts";

const schema = z.object({ schema: z.string().min(1).describe("A local .avsc the value must match") }).strict();

/** `validate`: checks values against a named Avro schema; mismatches go to the DLQ. */
export const validateStep: ComponentSpec<z.infer<typeof schema>, Step> = {
  schema,
  description: "Check each value against an Avro schema; records that do not match go to the DLQ with the failing paths.",
  verify(config, ctx) {
    return fs.existsSync(path.resolve(ctx.baseDir, config.schema)) ? [] : [{ path: ["schema"], message: `expected an .avsc file, ${path.resolve(ctx.baseDir, config.schema)} does not exist` }];
  },
  shape(config, _input, ctx) {
    // Past this step every value matches the schema.
    try {
      return shapeOfAvro(readAvsc(config.schema, ctx.baseDir).type);
    } catch {
      return undefined;
    }
  },
  create(config, ctx) {
    const { type } = readAvsc(config.schema, ctx.baseDir);
    return {
      name: ctx.component,
      async process(records) {
        const ok: StreamRecord[] = [];
        const failed: RecordFailure[] = [];
        for (const r of records) {
          const problems = avroErrors(type, r.value);
          if (problems.length === 0) ok.push(r);
          else failed.push({ record: r, error: new SfError("SF_ERR_VALIDATE_FAILED", `value does not match ${type.name ?? config.schema}: ${problems.slice(0, 5).join("; ")}`) });
        }
        return { records: ok, failed };
      },
    };
  },
};
