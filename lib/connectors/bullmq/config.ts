import { z } from "zod";
import { template, valueTemplate } from "../../topology/template-fields.ts";

/** Keep/remove policy for finished jobs: true (remove), false (keep), a count, or an age. */
const keepJobs = z
  .union([
    z.boolean(),
    z.number().int().min(0),
    z.object({ age: z.number().int().min(1).optional().describe("Seconds to keep"), count: z.number().int().min(0).optional().describe("Jobs to keep") }).strict(),
  ])
  .describe("Remove the job when finished: true, false, a number of jobs to keep, or {age, count}. Replays of a removed job enqueue it again, so keep jobs at least as long as a replay can happen.");

export const bullmqSinkSchema = z
  .object({
    connection: z.string().default("default").describe("Connection name: `default` reads REDIS_URL, any other name REDIS_URL__<NAME> (plus REDIS_USERNAME / REDIS_PASSWORD(_FILE) / REDIS_TLS_CA_FILE with the same suffix)"),
    queue: z
      .string()
      .min(1)
      .regex(/^[^:]+$/, "expected a queue name without ':' (BullMQ forbids it)")
      .describe("BullMQ queue name"),
    prefix: z.string().min(1).optional().describe("BullMQ key prefix (BullMQ's default is `bull`)"),
    job_name: template(z.string().min(1)).default("{$topic}").describe("Job name template, e.g. `notify.{channel}`"),
    data: z
      .record(z.string(), valueTemplate(z.unknown()))
      .optional()
      .describe('Job data: field -> value template ("{path}" keeps the type). Absent: the whole record value'),
    job_id: template(z.string().min(1))
      .default("{$id}")
      .describe("Job id template; the default (the record id topic/partition/offset@cluster) makes a replayed record find its job instead of adding another. ':' is escaped and all-digit ids are prefixed, as BullMQ forbids both"),
    options: z
      .object({
        attempts: z.number().int().min(1).optional().describe("Attempts before the job fails"),
        backoff: z
          .object({
            type: z.enum(["fixed", "exponential"]).describe("Back-off between attempts"),
            delay: z.number().int().min(0).describe("Milliseconds (base delay for exponential)"),
          })
          .strict()
          .optional(),
        priority: z.number().int().min(0).max(2_097_151).optional().describe("0 = none; 1 is the highest priority"),
        delay: z.number().int().min(0).optional().describe("Milliseconds before the job can run"),
        remove_on_complete: keepJobs.optional(),
        remove_on_fail: keepJobs.optional(),
      })
      .strict()
      .default({})
      .describe("BullMQ job options applied to every job"),
  })
  .strict();

export type BullmqSinkConfig = z.infer<typeof bullmqSinkSchema>;
