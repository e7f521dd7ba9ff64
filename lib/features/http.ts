/** The feature server's request parsing: pure helpers, no Redis. */
import crypto from "node:crypto";
import type http from "node:http";
import type { ErrorCode } from "../errors.ts";

const MAX_BODY = 1 << 20;
const MAX_IDS = 1000;

/** An answer other than 200, with its HTTP status and catalogue code. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  constructor(status: number, code: ErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
export const badRequest = (message: string) => new HttpError(400, "SF_ERR_FEATURES_BAD_REQUEST", message);

/** Compares tokens in constant time (hashing first makes the lengths equal). */
export function tokenMatches(header: string | undefined, digest: Buffer): boolean {
  let given: string | undefined;
  if (header?.startsWith("Bearer ")) given = header.slice(7).trim();
  else if (header) given = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
  return crypto.timingSafeEqual(crypto.hash("sha256", given ?? "", "buffer"), digest) && given !== undefined && given !== "";
}

/** A request target, split without a URL object: `kind` "get" (view + id), "batch" (view), or the path. */
export interface Target {
  pathname: string;
  query: string | undefined;
  kind: "get" | "batch" | "other";
  view: string;
  id: string;
}

const decode = (s: string, pathname: string) => {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    throw badRequest(`the path ${pathname} is not valid percent-encoding`);
  }
};

/** Splits an origin-form target (`/path?query#fragment`); /v1/features/{view}[/{id}] is recognised. Throws 400 on bad percent-encoding. */
export function parseTarget(target: string): Target {
  const hash = target.indexOf("#");
  const t = hash < 0 ? target : target.slice(0, hash);
  const q = t.indexOf("?");
  const pathname = q < 0 ? t : t.slice(0, q);
  const query = q < 0 ? undefined : t.slice(q + 1);
  const out: Target = { pathname, query, kind: "other", view: "", id: "" };
  if (!pathname.startsWith("/v1/features/")) return out;
  const rest = pathname.slice(13);
  const slash = rest.indexOf("/");
  if (slash < 0) [out.kind, out.view] = ["batch", decode(rest, pathname)];
  else if (rest.indexOf("/", slash + 1) < 0) [out.kind, out.view, out.id] = ["get", decode(rest.slice(0, slash), pathname), decode(rest.slice(slash + 1), pathname)];
  if (out.view === "" || (out.kind === "get" && out.id === "")) out.kind = "other";
  return out;
}

/** The `names` query parameter, as given (the read plan cache key); undefined when absent or empty. */
export function namesParam(query: string | undefined): string | undefined {
  if (!query) return undefined;
  const names = new URLSearchParams(query).get("names");
  return names ? names : undefined;
}

export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new HttpError(413, "SF_ERR_FEATURES_BAD_REQUEST", `the body is larger than ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function parseBatch(text: string): { ids: string[]; names?: string[] } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest("the body is not JSON; expected {\"ids\": [\"...\"], \"names\": [\"...\"]}");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("expected a JSON object {\"ids\": [...], \"names\": [...]}");
  const { ids, names } = body as { ids?: unknown; names?: unknown };
  if (!Array.isArray(ids) || ids.length === 0) throw badRequest("expected `ids`: a non-empty array of entity ids");
  if (ids.length > MAX_IDS) throw badRequest(`expected at most ${MAX_IDS} ids, got ${ids.length}`);
  if (!ids.every((id) => typeof id === "string" && id !== "")) throw badRequest("expected every id to be a non-empty string");
  if (names !== undefined && !(Array.isArray(names) && names.every((n) => typeof n === "string"))) throw badRequest("expected `names` to be an array of feature names");
  return { ids: ids as string[], ...(names ? { names: names as string[] } : {}) };
}
