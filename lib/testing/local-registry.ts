import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The schema registry of an offline test run: the read and register endpoints of the
 * Confluent API that SchemaCodecs calls, answered in process from memory. With it, a test
 * run decodes through the worker's own path — createDecoder, the reader check against the
 * subject, Confluent framing, schema ids, reader/writer resolution — without a server.
 * It holds only what the run put in it: the topologies' local schemas and the writer
 * schemas of test inputs (some fetched once from a real registry, see schemas.ts).
 */
export class LocalRegistry {
  private readonly subjects = new Map<string, number[]>();
  private readonly schemas: string[] = [];
  private server: http.Server | undefined;
  url = "";

  /** Registers a schema text under a subject (idempotent: the same text keeps its id); returns its id. */
  register(subject: string, schema: string): number {
    let index = this.schemas.indexOf(schema);
    if (index < 0) index = this.schemas.push(schema) - 1;
    const id = index + 1;
    const versions = this.subjects.get(subject) ?? [];
    if (!versions.includes(id)) versions.push(id);
    this.subjects.set(subject, versions);
    return id;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const [status, body] = this.answer(req.method ?? "GET", decodeURI(req.url ?? "/"), Buffer.concat(chunks).toString("utf8"));
        res.writeHead(status, { "content-type": "application/vnd.schemaregistry.v1+json" });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private answer(method: string, url: string, body: string): [number, unknown] {
    const notFound: [number, unknown] = [404, { error_code: 40401, message: `not found: ${url}` }];
    if (url === "/subjects") return [200, [...this.subjects.keys()]];
    const byId = /^\/schemas\/ids\/(\d+)$/.exec(url);
    if (byId) {
      const schema = this.schemas[Number(byId[1]) - 1];
      return schema === undefined ? notFound : [200, { schema }];
    }
    const m = /^\/subjects\/([^/]+)\/versions(?:\/([^/]+))?$/.exec(url);
    if (!m) return notFound;
    const subject = decodeURIComponent(m[1]!);
    if (method === "POST" && m[2] === undefined) return [200, { id: this.register(subject, (JSON.parse(body) as { schema: string }).schema) }];
    const versions = this.subjects.get(subject);
    if (!versions) return notFound;
    if (m[2] === undefined) return [200, versions.map((_, i) => i + 1)];
    const version = m[2] === "latest" ? versions.length : Number(m[2]);
    const id = versions[version - 1];
    return id === undefined ? notFound : [200, { subject, version, id, schema: this.schemas[id - 1] }];
  }
}
