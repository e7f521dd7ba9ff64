import type { Options } from "amqplib";
import type { StreamRecord } from "../../runtime/contracts.ts";
import type { Template, ValueTemplate } from "../../topology/template.ts";

/** One message ready to publish. */
export interface Outgoing {
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
}

export interface MessageTemplates {
  routingKey: Template;
  messageId: Template;
  type: Template | undefined;
  headers: ReadonlyArray<readonly [string, ValueTemplate]>;
  body: ReadonlyArray<readonly [string, ValueTemplate]> | undefined;
  persistent: boolean;
  mandatory: boolean;
}

/** Builds a record's message from templates compiled once; throws when the body is not JSON-able. */
export function buildMessage(r: StreamRecord, t: MessageTemplates): Outgoing {
  let value: unknown = r.value;
  if (t.body) {
    const out: Record<string, unknown> = {};
    for (const [k, get] of t.body) out[k] = get(r);
    value = out;
  }
  const headers: Record<string, unknown> = {};
  for (const [k, get] of t.headers) headers[k] = get(r);
  const options: Options.Publish = {
    persistent: t.persistent,
    mandatory: t.mandatory,
    messageId: t.messageId(r),
    contentType: "application/json",
    // AMQP timestamps are whole seconds.
    timestamp: Math.floor(r.origin.timestamp / 1000),
    headers,
  };
  if (t.type) options.type = t.type(r);
  return { routingKey: t.routingKey(r), content: Buffer.from(JSON.stringify(value ?? null)), options };
}
