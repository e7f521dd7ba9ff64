import https from "node:https";
import { SfError } from "../errors.ts";
import { authFailed, tlsError } from "../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../runtime/connections.ts";
import type { AvroType } from "./avro.ts";
import { avroType, frame, readSchemaId } from "./avro.ts";

export interface RegistryAuth {
  username: string;
  password: string;
}

/** One registered version of a subject. */
export interface SubjectVersion {
  subject: string;
  version: number;
  id: number;
  schema: string;
}

interface WriterEntry {
  type?: AvroType;
  error?: SfError;
  /** Resolvers from this writer schema to reader types, by reader. */
  resolvers: Map<AvroType, AvroType>;
}

/**
 * The schema registry (Confluent API) and the Avro types built from it, cached per schema
 * id for the life of the process: decoding a batch fetches each unknown id once, then
 * decodes synchronously.
 */
export class SchemaCodecs {
  readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly writers = new Map<number, WriterEntry>();
  private readonly pending = new Map<number, Promise<void>>();

  /** The CA an https registry's certificate must chain to (else the system's CAs). */
  private readonly agent: https.Agent | undefined;

  constructor(url: string, auth?: RegistryAuth, tls?: { ca: Buffer }) {
    this.url = url.replace(/\/$/, "");
    this.headers = { accept: "application/vnd.schemaregistry.v1+json, application/json" };
    if (auth) this.headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
    this.agent = tls ? new https.Agent({ ca: tls.ca, keepAlive: true }) : undefined;
  }

  /**
   * The registry of the environment: SCHEMA_REGISTRY_URL, SCHEMA_REGISTRY_USERNAME and
   * SCHEMA_REGISTRY_PASSWORD(_FILE) for basic auth, SCHEMA_REGISTRY_CA_FILE for an https
   * registry whose certificate a private CA signed.
   */
  static fromConnections(connections: Connections): SchemaCodecs {
    const url = connections.require("SCHEMA_REGISTRY_URL");
    const user = connections.get("SCHEMA_REGISTRY_USERNAME");
    const ca = connections.file("SCHEMA_REGISTRY_CA_FILE");
    return new SchemaCodecs(url, user ? { username: user, password: connections.require("SCHEMA_REGISTRY_PASSWORD") } : undefined, ca ? { ca } : undefined);
  }

  /**
   * Registers an Avro schema under a subject and returns its id: idempotent (the same schema
   * gets the same id, also when several processes register it at once), and judged by the
   * subject's own compatibility level. Reads and changes no compatibility setting.
   */
  async register(subject: string, schemaText: string): Promise<number> {
    const res = await this.request(`/subjects/${encodeURIComponent(subject)}/versions`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/vnd.schemaregistry.v1+json" },
      body: JSON.stringify({ schema: schemaText, schemaType: "AVRO" }),
    });
    if (res.ok) return ((await res.json()) as { id: number }).id;
    const reason = await errorText(res);
    if (res.status === 409) throw new SfError("SF_ERR_SCHEMA_INCOMPATIBLE", `registering a schema under subject ${subject} at ${this.url} was refused by the subject's compatibility level: ${reason}`);
    throw new SfError("SF_ERR_SCHEMA_REGISTRY", `registering a schema under subject ${subject} at ${this.url} failed: HTTP ${res.status} ${reason}`, { retriable: res.status >= 500 });
  }

  /** Every registered version of a subject, oldest first; empty when the subject does not exist. */
  async versions(subject: string): Promise<SubjectVersion[]> {
    const base = `/subjects/${encodeURIComponent(subject)}/versions`;
    const res = await this.request(base);
    if (res.status === 404) {
      await res.arrayBuffer();
      return [];
    }
    if (!res.ok) throw new SfError("SF_ERR_SCHEMA_REGISTRY", `listing the versions of subject ${subject} at ${this.url} failed: HTTP ${res.status} ${await errorText(res)}`);
    const numbers = (await res.json()) as number[];
    const all = await Promise.all(
      numbers.map(async (n) => {
        const r = await this.request(`${base}/${n}`);
        // A version deleted between the two requests is no longer the subject's.
        if (r.status === 404) return (await r.arrayBuffer(), undefined);
        if (!r.ok) throw new SfError("SF_ERR_SCHEMA_REGISTRY", `fetching version ${n} of subject ${subject} failed: HTTP ${r.status} ${await errorText(r)}`);
        const body = (await r.json()) as { id: number; schema: string; version: number };
        return { subject, version: body.version, id: body.id, schema: body.schema };
      }),
    );
    return all.filter((v) => v !== undefined);
  }

  /** The latest schema of a subject: its id and text. */
  async latest(subject: string): Promise<{ id: number; schema: string; version: number }> {
    const res = await this.request(`/subjects/${encodeURIComponent(subject)}/versions/latest`);
    if (res.status === 404) throw new SfError("SF_ERR_SCHEMA_NOT_FOUND", `subject ${subject} does not exist in the registry at ${this.url}`);
    if (!res.ok) throw new SfError("SF_ERR_SCHEMA_REGISTRY", `fetching the latest version of subject ${subject} failed: HTTP ${res.status} ${await errorText(res)}`);
    return (await res.json()) as { id: number; schema: string; version: number };
  }

  /** Throws unless the registry answers. */
  async ping(): Promise<void> {
    const res = await this.request("/subjects");
    await res.arrayBuffer();
    if (!res.ok) throw new SfError("SF_ERR_SCHEMA_REGISTRY", `schema registry at ${this.url} answered HTTP ${res.status}`);
  }

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response;
    try {
      const options = { headers: this.headers, signal: AbortSignal.timeout(10_000), ...init };
      res = await (this.agent ? httpsRequest(`${this.url}${path}`, options, this.agent) : fetch(`${this.url}${path}`, options));
    } catch (err) {
      throw tlsError(err, this.secured) ?? new SfError("SF_ERR_SCHEMA_REGISTRY", `schema registry at ${this.url} did not answer: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      await res.arrayBuffer();
      throw authFailed(undefined, this.secured, `the registry answered HTTP ${res.status}`);
    }
    return res;
  }

  private get secured(): SecuredConnection {
    return { what: "schema registry", target: this.url, credentials: "SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD(_FILE)", ca: "SCHEMA_REGISTRY_CA_FILE" };
  }

  private fetchWriter(id: number): Promise<void> {
    let p = this.pending.get(id);
    if (!p) {
      p = (async () => {
        const res = await this.request(`/schemas/ids/${id}`);
        if (res.status === 404) {
          this.writers.set(id, { error: new SfError("SF_ERR_DECODE_UNKNOWN_SCHEMA", `schema id ${id} is not known to the registry`), resolvers: new Map() });
          return;
        }
        if (!res.ok) throw new SfError("SF_ERR_SCHEMA_REGISTRY", `fetching schema id ${id} failed: HTTP ${res.status}`);
        const { schema } = (await res.json()) as { schema: string };
        this.writers.set(id, { type: avroType(schema, `schema id ${id}`), resolvers: new Map() });
      })().finally(() => this.pending.delete(id));
      this.pending.set(id, p);
    }
    return p;
  }

  /** Fetches the writer schemas of these buffers that are not cached yet (registry outages throw, retriable). */
  prepare(buffers: readonly (Buffer | null)[]): Promise<void> {
    return this.prepareField(buffers.map((b) => ({ b })), "b");
  }

  /** `prepare` for `items[i][field]`: the hot path reads each batch's buffers in place. */
  async prepareField<F extends string>(items: readonly { readonly [K in F]: Buffer | null }[], field: F): Promise<void> {
    let missing: Set<number> | undefined;
    let known: number | undefined;
    for (let i = 0; i < items.length; i++) {
      const b = items[i]![field];
      if (!b || b.length < 5 || b[0] !== 0) continue;
      const id = b.readInt32BE(1);
      if (id === known) continue;
      if (this.writers.has(id)) known = id;
      else (missing ??= new Set()).add(id);
    }
    if (missing) await Promise.all([...missing].map((id) => this.fetchWriter(id)));
  }

  /** Decodes one framed Avro buffer (after prepare), into the reader type when given. */
  decode(buf: Buffer, reader?: AvroType): unknown {
    const id = readSchemaId(buf);
    const entry = this.writers.get(id);
    if (!entry) throw new SfError("SF_ERR_DECODE_UNKNOWN_SCHEMA", `schema id ${id} was not prepared`, { retriable: true });
    if (entry.error) throw entry.error;
    const writer = entry.type!;
    if (reader && reader !== writer) {
      let resolver = entry.resolvers.get(reader);
      if (resolver === undefined && reader.equals(writer)) {
        // Same schema on both sides: read with the reader directly, no resolution per record.
        entry.resolvers.set(reader, reader);
        resolver = reader;
      }
      if (resolver === reader) {
        try {
          return readBody(reader, buf);
        } catch (err) {
          throw new SfError("SF_ERR_DECODE_MALFORMED", `bytes do not decode with schema id ${id}: ${(err as Error).message}`);
        }
      }
      if (!resolver) {
        try {
          resolver = reader.createResolver(writer) as AvroType;
        } catch (err) {
          throw new SfError("SF_ERR_VALIDATE_FAILED", `writer schema id ${id} cannot be read as ${reader.name ?? "the reader schema"}: ${(err as Error).message}`);
        }
        entry.resolvers.set(reader, resolver);
      }
      try {
        return readBody(reader, buf, resolver);
      } catch (err) {
        throw new SfError("SF_ERR_DECODE_MALFORMED", `bytes do not decode with schema id ${id}: ${(err as Error).message}`);
      }
    }
    try {
      return readBody(writer, buf);
    } catch (err) {
      throw new SfError("SF_ERR_DECODE_MALFORMED", `bytes do not decode with schema id ${id}: ${(err as Error).message}`);
    }
  }

  /** An encoder for a registered schema: framing plus avsc, no I/O per record. */
  encoder(id: number, type: AvroType): (value: unknown) => Buffer {
    // Encoded after the frame into one reused buffer, then copied out once: toBuffer + frame
    // allocated and copied twice per record.
    let scratch = frame(id, Buffer.alloc(4096));
    return (value) => {
      let end = type.encode(value, scratch, 5);
      if (end < 0) {
        scratch = frame(id, Buffer.alloc(2 * (scratch.length - end)));
        end = type.encode(value, scratch, 5);
      }
      const out = Buffer.allocUnsafe(end);
      scratch.copy(out, 0, 0, end);
      return out;
    };
  }
}

/** The registry's `message` from an error answer, or its text. */
async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    return text;
  }
}

/**
 * The Avro body after the 5-byte frame, read in place: fromBuffer(buf.subarray(5)) would make
 * a Buffer view per record. Same checks and messages as fromBuffer.
 */
function readBody(type: AvroType, buf: Buffer, resolver?: AvroType): unknown {
  const { value, offset } = type.decode(buf, 5, resolver as never);
  if (offset < 0) throw new Error("truncated buffer");
  if (offset < buf.length) throw new Error("trailing data");
  return value;
}

/**
 * fetch's subset the registry calls use, over node:https with an agent that trusts a private
 * CA (Node's fetch takes no CA option).
 */
function httpsRequest(url: string, init: RequestInit, agent: https.Agent): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? "GET", headers: init.headers as Record<string, string>, agent, signal: init.signal ?? undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        const status = res.statusCode ?? 500;
        resolve(new Response(body.length > 0 && status !== 204 ? body : null, { status, headers: res.headers as Record<string, string> }));
      });
    });
    req.on("error", reject);
    req.end(typeof init.body === "string" ? init.body : undefined);
  });
}
